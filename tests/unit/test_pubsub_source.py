"""The Pub/Sub source as the service drives it, with the client library replaced at its edge
(``subscribe`` and the received message), for what Google's emulator cannot show on demand:
the order of a cancel and a nack, and an ack that exactly-once delivery refuses."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from datetime import datetime, timezone
from pathlib import Path

import pytest
from google.cloud.pubsub_v1.subscriber.exceptions import AcknowledgeError, AcknowledgeStatus

from cutq.core.contract import OutputSpec, new_job
from cutq.worker.sources import Intake
from cutq.worker.sources.pubsub import PubSubDelivery, PubSubSource
from tests.support.gated import Gated, make_photos, service_for


class Received:
    """A received message as the client library hands it over; ``refuse`` makes exactly-once
    delivery refuse its ack."""

    def __init__(self, data: bytes, order: list[str], refuse: bool = False) -> None:
        self.data = data
        self.attributes: dict[str, str] = {}
        self.publish_time = datetime(2026, 12, 1, tzinfo=timezone.utc)
        self.delivery_attempt = 1
        self.message_id = "m1"
        self.order = order
        self.refuse = refuse
        self.settled = threading.Event()

    def _response(self, what: str) -> Future:
        self.order.append(what)
        self.settled.set()
        future: Future = Future()
        if self.refuse:
            future.set_exception(AcknowledgeError(AcknowledgeStatus.INVALID_ACK_ID, "expired"))
        else:
            future.set_result(AcknowledgeStatus.SUCCESS)
        return future

    def ack_with_response(self) -> Future:
        return self._response("ack")

    def nack_with_response(self) -> Future:
        return self._response("nack")


class Stream:
    """The streaming pull future: records its cancel."""

    def __init__(self, order: list[str]) -> None:
        self.order = order
        self._cancelled = False

    def cancel(self) -> bool:
        self.order.append("cancel")
        self._cancelled = True
        return True

    def cancelled(self) -> bool:
        return self._cancelled

    def done(self) -> bool:
        return self._cancelled

    def result(self, timeout: float | None = None) -> None:
        return None


class Subscriber:
    def __init__(self, order: list[str]) -> None:
        self.order = order
        self.callback = lambda message: None

    def subscribe(self, subscription: str, callback, **kwargs: object) -> Stream:  # type: ignore[no-untyped-def]
        self.callback = callback
        return Stream(self.order)


def job_data(tmp_path: Path) -> bytes:
    (path,) = make_photos(tmp_path, 1)
    return new_job(path.as_uri(), OutputSpec((tmp_path / "out").as_uri())).to_message()


def test_held_deliveries_are_nacked_only_after_the_stream_is_cancelled(tmp_path: Path) -> None:
    """A nack frees flow control: before the cancel, the client would pull the next message
    and burn its delivery attempt."""
    order: list[str] = []
    subscriber = Subscriber(order)
    service, _ = service_for(tmp_path, Gated())
    source = PubSubSource(
        "projects/p/subscriptions/s",
        max_in_flight=8,
        lease_extension_s=10,
        subscriber=subscriber,  # type: ignore[arg-type]
    )
    source.start(Intake(service.pipeline.submit, service.ready, service.pipeline.in_flight))
    service.pipeline.stop_taking()  # the worker is stopping: a new delivery is held
    late = Received(job_data(tmp_path), order)
    held = threading.Thread(target=subscriber.callback, args=(late,), daemon=True)
    held.start()
    while service.pipeline.held() < 1:
        assert held.is_alive(), "the delivery was not held"
        threading.Event().wait(0.01)
    service.close(source)
    held.join(10)
    assert order[:2] == ["cancel", "nack"]  # (close cancels again, harmlessly)


def test_an_ack_refused_by_exactly_once_delivery_is_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    order: list[str] = []
    service, events = service_for(tmp_path, Gated())
    message = Received(job_data(tmp_path), order, refuse=True)
    with caplog.at_level(logging.INFO, logger="cutq.worker.joblog"):
        service.pipeline.submit(PubSubDelivery(message))  # type: ignore[arg-type]
        assert message.settled.wait(30)
        assert service.pipeline.wait_idle(30)
    service.close()
    assert order == ["ack"] and [e.status for e in events.published] == ["completed"]
    stats = service.pipeline.stats
    assert stats.completed == 1 and stats.ack_failures == 1
    (line,) = [r for r in caplog.records if r.name == "cutq.worker.joblog"]
    assert line.status == "completed" and line.ack_failed is True  # type: ignore[attr-defined]
    assert line.lane == "interactive"  # type: ignore[attr-defined]  # (no lane, no attribute)
