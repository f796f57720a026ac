"""Jobs from a Pub/Sub subscription over StreamingPull (Cloud Run worker pool, GKE, a VM).

Flow control holds at most ``max_in_flight`` messages — a few batches — so the rest stay in
Pub/Sub for other workers; the client library extends the leases of held messages while they
wait. Shutdown order matters (the service keeps it): the pipeline stops taking jobs (new
deliveries are held, still leased, so flow control stays full and nothing more arrives) and
finishes or nacks what runs while the stream is open, so those acks and nacks reach Pub/Sub;
only then is the stream cancelled (:meth:`PubSubSource.stop_intake`) and each held delivery
nacked once — after the cancel, so a nack cannot free room for another message.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from concurrent.futures import Future
from datetime import datetime, timezone

from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.subscriber.exceptions import AcknowledgeError
from google.cloud.pubsub_v1.subscriber.message import Message

from cutq.core.errors import AckFailed
from cutq.core.lanes import Lane
from cutq.worker.config import WorkerConfig
from cutq.worker.lane_policy import LanePolicy
from cutq.worker.sources import Intake, Sources, StopReason

log = logging.getLogger(__name__)
ACK_TIMEOUT_S = 60.0  # exactly-once delivery: how long an ack's confirmation may take


class PubSubDelivery:
    """A received Pub/Sub message seen through the :class:`~cutq.worker.sources.Delivery` lens,
    with the lane of the subscription it came from (None: its attribute decides)."""

    def __init__(self, message: Message, lane: Lane | None = None) -> None:
        self._message = message
        self.lane = lane

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

    @property
    def last_attempt(self) -> bool:
        return False  # the subscription's dead-letter policy decides, out of the worker's sight

    def ack(self) -> None:
        """Acknowledge, and know it landed: with exactly-once delivery on, the response says
        whether Pub/Sub accepted it (else the message may come back) and a refusal raises
        :class:`AckFailed`; without it the response is immediate, and acks are best effort."""
        _landed(self._message.ack_with_response(), "ack", self.message_id)

    def nack(self) -> None:
        _landed(self._message.nack_with_response(), "nack", self.message_id)


def _landed(response: Future, what: str, message_id: str) -> None:
    try:
        response.result(timeout=ACK_TIMEOUT_S)
    except AcknowledgeError as error:
        raise AckFailed(f"{what} of {message_id} refused: {error.error_code.name}") from error
    except TimeoutError as error:
        raise AckFailed(f"{what} of {message_id} not confirmed in {ACK_TIMEOUT_S}s") from error


class PubSubSource:
    """StreamingPull from one subscription, with flow control at ``max_in_flight`` messages;
    ``lane``: every message from it is in that lane."""

    def __init__(
        self,
        subscription: str,
        *,
        max_in_flight: int,
        lease_extension_s: int,
        subscriber: pubsub_v1.SubscriberClient | None = None,
        lane: Lane | None = None,
    ) -> None:
        self.subscription = subscription
        self.lane = lane
        self.max_in_flight = max_in_flight
        self.lease_extension_s = lease_extension_s
        self._own_client = subscriber is None
        self._client = subscriber or pubsub_v1.SubscriberClient()
        self._future: pubsub_v1.subscriber.futures.StreamingPullFuture | None = None
        self._closed = False

    @classmethod
    def from_config(cls, config: WorkerConfig) -> PubSubSource | Sources:
        """The source for ``config.subscription`` with the config's flow control and lease;
        with a ``bulk_subscription``, both lanes' sources as one.

        Flow control is how bulk leaves room for interactive jobs: each lane's subscription
        leases at most as many messages as the lane may hold slots
        (:meth:`~cutq.worker.lane_policy.LanePolicy.limit`: the interactive lane every one of
        ``max_in_flight``, the bulk lane all but the interactive reserve). Each subscription
        has its own stream and callback threads, so bulk deliveries waiting for a slot never
        hold up an interactive one."""
        assert config.subscription
        policy = LanePolicy.of(config)
        if not config.bulk_subscription:
            return cls(
                config.subscription,
                max_in_flight=policy.limit(Lane.INTERACTIVE),
                lease_extension_s=config.lease_extension_s,
            )
        interactive = cls(
            config.subscription,
            max_in_flight=policy.limit(Lane.INTERACTIVE),
            lease_extension_s=config.lease_extension_s,
            lane=Lane.INTERACTIVE,
        )
        bulk = cls(
            config.bulk_subscription,
            max_in_flight=policy.limit(Lane.BULK),
            lease_extension_s=config.lease_extension_s,
            lane=Lane.BULK,
        )
        return Sources([interactive, bulk])

    def start(self, intake: Intake) -> None:
        flow_control = pubsub_v1.types.FlowControl(
            max_messages=self.max_in_flight,
            max_bytes=self.max_in_flight * 64 * 1024 + 1,  # jobs are small pointers
            max_lease_duration=3600,
            # Short lease renewals: if this process dies, Pub/Sub redelivers its jobs to other
            # workers after ~lease_extension_s instead of the client's default 60 s.
            min_duration_per_lease_extension=self.lease_extension_s,
            max_duration_per_lease_extension=self.lease_extension_s,
        )
        self._future = self._client.subscribe(
            self.subscription,
            callback=lambda message: intake.submit(PubSubDelivery(message, self.lane)),
            flow_control=flow_control,
            # On close, wait for callbacks still holding a message (see close()).
            await_callbacks_on_shutdown=True,
        )
        log.info(
            "pulling from %s (%s lane, at most %d messages in flight)",
            self.subscription,
            self.lane.value if self.lane else "any",
            self.max_in_flight,
        )

    def ended(self) -> StopReason | None:
        if self._future is not None and self._future.done() and not self._future.cancelled():
            log.error("streaming pull stopped: %s", self._future.exception())
            return StopReason.SOURCE_FAILED
        return None

    def stop_intake(self) -> None:
        """Cancel the stream: nothing new arrives, and the client's dispatcher keeps sending
        acks and nacks until the callbacks it waits for (the held deliveries) return."""
        if self._future is not None:
            self._future.cancel()

    def close(self, deadline: float) -> None:
        """Wait for the stream's shutdown (the held deliveries' nacks, then the client's nacks
        of what it had buffered but not dispatched), then close the client."""
        if self._closed:
            return
        self._closed = True
        if self._future is not None:
            self._future.cancel()
            with contextlib.suppress(Exception):  # cancelled or already failed: both expected
                self._future.result(timeout=max(0.1, deadline - time.monotonic()))
        if self._own_client:
            self._client.close()
