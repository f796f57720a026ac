"""Jobs from a Pub/Sub subscription over StreamingPull (Cloud Run worker pool, GKE, a VM).

Flow control holds at most ``max_in_flight`` messages — a few batches — so the rest stay in
Pub/Sub for other workers; the client library extends the leases of held messages while they
wait. Shutdown order matters: the pipeline stops taking jobs (new deliveries are held, still
leased, so flow control stays full and nothing more arrives) and finishes or nacks what runs
while the stream is open, so those acks and nacks reach Pub/Sub; only then is the stream
cancelled and each held delivery nacked once (:meth:`PubSubSource.close`).
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


class PubSubSource:
    """StreamingPull from one subscription, with flow control at ``max_in_flight`` messages."""

    def __init__(
        self,
        subscription: str,
        *,
        drain_idle_s: float | None = None,
        subscriber: pubsub_v1.SubscriberClient | None = None,
    ) -> None:
        self.subscription = subscription
        self.drain_idle_s = drain_idle_s
        self._own_client = subscriber is None
        self._client = subscriber or pubsub_v1.SubscriberClient()
        self._future: pubsub_v1.subscriber.futures.StreamingPullFuture | None = None
        self._pipeline: Pipeline | None = None

    def start(self, pipeline: Pipeline) -> None:
        config = pipeline.config
        self._pipeline = pipeline
        flow_control = pubsub_v1.types.FlowControl(
            max_messages=config.max_in_flight,
            max_bytes=config.max_in_flight * 64 * 1024 + 1,  # jobs are small pointers
            max_lease_duration=3600,
            # Short lease renewals: if this process dies, Pub/Sub redelivers its jobs to other
            # workers after ~lease_extension_s instead of the client's default 60 s.
            min_duration_per_lease_extension=config.lease_extension_s,
            max_duration_per_lease_extension=config.lease_extension_s,
        )
        self._future = self._client.subscribe(
            self.subscription,
            callback=lambda message: pipeline.submit(PubSubDelivery(message)),
            flow_control=flow_control,
            # On close, wait for callbacks still holding a message (see close()).
            await_callbacks_on_shutdown=True,
        )
        log.info(
            "pulling from %s (at most %d messages in flight)",
            self.subscription,
            config.max_in_flight,
        )

    def wait(self, stop: threading.Event) -> str:
        """``signal``, ``idle`` (nothing in flight for ``drain_idle_s``) or ``stream-error``."""
        assert self._future is not None and self._pipeline is not None
        pipeline = self._pipeline
        while not stop.wait(0.25):
            if self._future.done():
                log.error("streaming pull stopped: %s", self._future.exception())
                return "stream-error"
            if not pipeline.healthy:
                return "model-failed"
            if (
                self.drain_idle_s is not None
                and pipeline.in_flight() == 0
                and time.monotonic() - pipeline.last_activity >= self.drain_idle_s
            ):
                log.info("idle for %.0fs with nothing in flight: draining done", self.drain_idle_s)
                return "idle"
        return "signal"

    def stop_intake(self) -> None:
        """Nothing to tell: held deliveries keep flow control full, so no more arrive."""

    def close(self, pipeline: Pipeline, deadline: float) -> None:
        """Cancel the stream, then nack the held deliveries while acks can still flow.

        Order matters: ``cancel`` stops the stream first, then (``await_callbacks_on_shutdown``)
        waits for callbacks, which are the deliveries the pipeline held; releasing them nacks
        each once through the still-running dispatcher, and nothing new can arrive to take the
        freed room. The client then nacks what it had buffered but not yet dispatched.
        """
        if self._future is not None:
            self._future.cancel()
        pipeline.release_held()
        if self._future is not None:
            with contextlib.suppress(Exception):  # cancelled or already failed: both expected
                self._future.result(timeout=max(0.1, deadline - time.monotonic()))
        if self._own_client:
            self._client.close()
