"""The Pub/Sub source as the service drives it, with the client library replaced at its edge
(``subscribe`` and the received message), for what Google's emulator cannot show on demand:
the order of a cancel and a nack, and an ack that exactly-once delivery refuses."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from google.cloud.pubsub_v1.subscriber.exceptions import AcknowledgeError, AcknowledgeStatus

from cutq.core.contract import OutputSpec, new_job
from cutq.core.errors import AckFailed
from cutq.worker.config import WorkerConfig
from cutq.worker.sources import Intake, StopReason
from cutq.worker.sources import pubsub as pubsub_module
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


class Recorder:
    """A subscriber client that records what it was asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.stream = FailingStream()
        self.closed = 0

    def subscribe(self, subscription: str, **kwargs: object) -> FailingStream:
        self.calls.append((subscription, kwargs))
        return self.stream

    def close(self) -> None:
        self.closed += 1


class FailingStream:
    """A streaming pull future that can end on its own (``fail``) and waits in ``result``."""

    def __init__(self) -> None:
        self.failed: BaseException | None = None
        self.cancels = 0
        self.timeouts: list[float | None] = []

    def fail(self, error: BaseException) -> None:
        self.failed = error

    def cancel(self) -> bool:
        self.cancels += 1
        return True

    def cancelled(self) -> bool:
        return self.cancels > 0 and self.failed is None

    def done(self) -> bool:
        return self.cancels > 0 or self.failed is not None

    def exception(self) -> BaseException | None:
        return self.failed

    def result(self, timeout: float | None = None) -> None:
        self.timeouts.append(timeout)
        raise RuntimeError("the stream was cancelled")


def test_the_stream_is_opened_with_flow_control_at_max_in_flight_and_short_leases() -> None:
    client, submitted = Recorder(), []
    source = PubSubSource(
        "projects/p/subscriptions/s",
        max_in_flight=4,
        lease_extension_s=30,
        subscriber=client,  # type: ignore[arg-type]
    )
    source.start(Intake(submitted.append, lambda: True, lambda: 0))
    ((subscription, kwargs),) = client.calls
    flow = kwargs["flow_control"]
    assert subscription == "projects/p/subscriptions/s"
    assert (flow.max_messages, flow.max_bytes, flow.max_lease_duration) == (4, 262145, 3600)  # type: ignore[attr-defined]
    assert flow.min_duration_per_lease_extension == 30  # type: ignore[attr-defined]
    assert flow.max_duration_per_lease_extension == 30  # type: ignore[attr-defined]
    assert kwargs["await_callbacks_on_shutdown"] is True
    received = Received(b"job", [])
    kwargs["callback"](received)  # type: ignore[operator]
    (delivery,) = submitted
    assert isinstance(delivery, PubSubDelivery) and delivery.data == b"job"


def test_the_source_has_ended_only_when_the_stream_failed_on_its_own() -> None:
    client = Recorder()
    source = PubSubSource("s", max_in_flight=1, lease_extension_s=10, subscriber=client)  # type: ignore[arg-type]
    assert source.ended() is None  # not started
    source.start(Intake(lambda d: None, lambda: True, lambda: 0))
    assert source.ended() is None  # streaming
    client.stream.fail(RuntimeError("stream broke"))
    assert source.ended() is StopReason.SOURCE_FAILED
    cancelled = Recorder()
    source = PubSubSource("s", max_in_flight=1, lease_extension_s=10, subscriber=cancelled)  # type: ignore[arg-type]
    source.start(Intake(lambda d: None, lambda: True, lambda: 0))
    source.stop_intake()
    assert cancelled.stream.cancels == 1 and source.ended() is None  # our own cancel


def test_close_waits_for_the_stream_until_the_deadline_and_closes_only_its_own_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    given = Recorder()
    source = PubSubSource("s", max_in_flight=1, lease_extension_s=10, subscriber=given)  # type: ignore[arg-type]
    source.stop_intake()  # before start: nothing to cancel
    source.start(Intake(lambda d: None, lambda: True, lambda: 0))
    deadline = time.monotonic() + 5
    source.close(deadline)
    source.close(deadline)  # once
    (timeout,) = given.stream.timeouts
    assert timeout is not None and 4 < timeout <= 5
    assert given.stream.cancels == 1 and given.closed == 0  # the caller's client stays open
    source = PubSubSource("s", max_in_flight=1, lease_extension_s=10, subscriber=given)  # type: ignore[arg-type]
    source.start(Intake(lambda d: None, lambda: True, lambda: 0))
    source.close(time.monotonic() - 5)
    assert given.stream.timeouts[-1] == 0.1  # past the deadline: a short last look
    own = Recorder()
    monkeypatch.setattr(pubsub_module.pubsub_v1, "SubscriberClient", lambda: own)
    config = WorkerConfig(subscription="projects/p/subscriptions/s", lease_extension_s=20)
    source = PubSubSource.from_config(config)
    assert (source.subscription, source.lease_extension_s) == (config.subscription, 20)
    assert source.max_in_flight == config.max_in_flight
    with pytest.raises(AssertionError):  # no subscription: no Pub/Sub source
        PubSubSource.from_config(WorkerConfig())
    source.close(time.monotonic() + 1)  # never started: nothing to wait for
    source.close(time.monotonic() + 1)
    assert own.closed == 1 and own.stream.timeouts == []


def test_a_received_message_is_seen_through_the_delivery_lens() -> None:
    received = Received(b"job", [])
    received.publish_time = datetime(2026, 12, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    received.attributes = {"k": "v"}
    received.delivery_attempt = 3
    delivery = PubSubDelivery(received)  # type: ignore[arg-type]
    assert delivery.data == b"job" and delivery.attributes == {"k": "v"}
    assert delivery.message_id == "m1" and delivery.delivery_attempt == 3
    assert delivery.publish_time == datetime(2026, 12, 1, 10, tzinfo=timezone.utc)
    assert delivery.publish_time.tzinfo is timezone.utc
    assert delivery.last_attempt is False  # the dead-letter policy decides, out of sight


def test_a_refused_or_unconfirmed_ack_or_nack_raises_ack_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order: list[str] = []
    refused = PubSubDelivery(Received(b"job", order, refuse=True))  # type: ignore[arg-type]
    for settle, what in ((refused.ack, "ack"), (refused.nack, "nack")):
        with pytest.raises(AckFailed) as refusal:
            settle()
        assert str(refusal.value) == f"{what} of m1 refused: INVALID_ACK_ID"
    assert order == ["ack", "nack"]
    PubSubDelivery(Received(b"job", order)).ack()  # type: ignore[arg-type]  # accepted
    monkeypatch.setattr(pubsub_module, "ACK_TIMEOUT_S", 0.05)

    class Unconfirmed(Received):
        def _response(self, what: str) -> Future:
            return Future()  # never answered

    silent = PubSubDelivery(Unconfirmed(b"job", order))  # type: ignore[arg-type]
    error = within(lambda: raised(silent.ack))
    assert isinstance(error, AckFailed) and str(error) == "ack of m1 not confirmed in 0.05s"


def raised(call) -> BaseException | None:  # type: ignore[no-untyped-def]
    try:
        call()
    except Exception as error:
        return error
    return None


def within(call, seconds: float = 5.0):  # type: ignore[no-untyped-def]
    """``call()``'s result, failing (not hanging) when it does not return in ``seconds``."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert result, f"did not return within {seconds}s"
    return result[0]
