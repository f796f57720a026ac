"""Jobs from a Pub/Sub subscription over StreamingPull (Cloud Run worker pool, GKE, a VM).

Flow control holds at most ``max_in_flight`` messages — a few batches — so the rest stay in
Pub/Sub for other workers; the client library extends the leases of held messages while they
wait. Shutdown order matters: the pipeline stops taking jobs and finishes (or nacks) what it
holds while the stream is still open, so those acks and nacks reach Pub/Sub; only then is the
stream cancelled (the client nacks anything it still buffered).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone

from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.subscriber.message import Message

from cutq.worker.pipeline import Pipeline

log = logging.getLogger(__name__)


class PubSubDelivery:
    """A received Pub/Sub message seen through the :class:`~cutq.worker.sources.Delivery` lens."""

    def __init__(self, message: Message) -> None:
        self._message = message

    @property
    def data(self) -> bytes:
        return self._message.data

    @property
    def attributes(self) -> Mapping[str, str]:
        return self._message.attributes

    @property
    def publish_time(self) -> datetime:
        return self._message.publish_time.astimezone(timezone.utc)

    @property
    def delivery_attempt(self) -> int | None:
        return self._message.delivery_attempt

    @property
    def message_id(self) -> str:
        return self._message.message_id

    def ack(self) -> None:
        self._message.ack()

    def nack(self) -> None:
        self._message.nack()


def run_subscriber(
    pipeline: Pipeline,
    subscription: str,
    stop: threading.Event,
    *,
    drain_idle_s: float | None = None,
    grace_s: float = 25.0,
    subscriber: pubsub_v1.SubscriberClient | None = None,
) -> str:
    """Pull from ``subscription`` until ``stop`` is set (or idle for ``drain_idle_s``).

    Returns why it stopped: ``"signal"``, ``"idle"`` or ``"stream-error"``. The pipeline is
    closed on return; the caller still owns the process.
    """
    config = pipeline.config
    own_client = subscriber is None
    client = subscriber or pubsub_v1.SubscriberClient()
    flow_control = pubsub_v1.types.FlowControl(
        max_messages=config.max_in_flight,
        max_bytes=config.max_in_flight * 64 * 1024 + 1,  # jobs are small pointers
        max_lease_duration=3600,
        # Short lease renewals: if this process dies, Pub/Sub redelivers its jobs to other
        # workers after ~lease_extension_s instead of the client's default 60 s.
        min_duration_per_lease_extension=config.lease_extension_s,
        max_duration_per_lease_extension=config.lease_extension_s,
    )
    future = client.subscribe(
        subscription,
        callback=lambda m: pipeline.submit(PubSubDelivery(m)),
        flow_control=flow_control,
    )
    log.info("pulling from %s (at most %d messages in flight)", subscription, config.max_in_flight)
    reason = "signal"
    try:
        while not stop.wait(0.25):
            if future.done():
                error = future.exception()
                log.error("streaming pull stopped: %s", error)
                reason = "stream-error"
                break
            if (
                drain_idle_s is not None
                and pipeline.in_flight() == 0
                and time.monotonic() - pipeline.last_activity >= drain_idle_s
            ):
                log.info("idle for %.0fs with nothing in flight: draining done", drain_idle_s)
                reason = "idle"
                break
    finally:
        pipeline.close(grace_s)  # acks and nacks still flow over the open stream
        future.cancel()
        with contextlib.suppress(Exception):  # cancelled or already failed: both expected
            future.result(timeout=30)
        if own_client:
            client.close()
    return reason
