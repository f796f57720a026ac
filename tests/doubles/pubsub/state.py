"""In-memory Pub/Sub: topics, subscriptions, messages and leases.

Semantics follow Pub/Sub's documentation: at-least-once delivery; a message published before a
subscription exists is not delivered to it; a delivery is leased for the ack deadline and
redelivered when the lease expires or is nacked (ModifyAckDeadline to 0), after the retry
policy's backoff if the subscription has one; with a dead-letter policy, `delivery_attempt`
counts deliveries and the message is forwarded to the dead-letter topic (with Pub/Sub's
`CloudPubSubDeadLetterSource*` attributes) once a delivery numbered `max_delivery_attempts`
fails. Acks and modacks of unknown or expired ack ids are ignored.

The state is passive: time is read from an injectable clock, and leases and backoffs are
settled when something looks (pull, stats) or when `expire()` is called, which the server
does from a background thread. One lock guards everything; a condition wakes pullers.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from .clock import Clock, SystemClock
from .model import (
    DELETED_TOPIC,
    MAX_ACK_DEADLINE_S,
    AlreadyExists,
    Delivery,
    InvalidArgument,
    Message,
    NotFound,
    OutgoingMessage,
    PubSubError,
    Stream,
    SubscriptionConfig,
    SubscriptionStats,
    dead_letter_attributes,
    validate_ack_deadline,
)


@dataclass(eq=False)
class _Entry:
    """One message's progress in one subscription."""

    message: Message
    deliveries: int = 0
    ack_id: str | None = None
    deadline: float = 0.0
    stream: Stream | None = None


@dataclass(eq=False)
class _Subscription:
    config: SubscriptionConfig
    resource: object
    ready: deque[_Entry] = field(default_factory=deque)
    delayed: list[tuple[float, int, _Entry]] = field(default_factory=list)
    leases: dict[str, _Entry] = field(default_factory=dict)
    deadlines: list[tuple[float, int, str]] = field(default_factory=list)
    streams: set[Stream] = field(default_factory=set)
    dead_lettered: int = 0


@dataclass(eq=False)
class _Topic:
    resource: object
    subscriptions: set[str] = field(default_factory=set)


class PubSubState:
    """Topics, subscriptions and deliveries. Thread-safe; `resource`s are opaque to it."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self._changed = threading.Condition(threading.RLock())
        self._topics: dict[str, _Topic] = {}
        self._subscriptions: dict[str, _Subscription] = {}
        self._message_ids = itertools.count(1)
        self._ack_ids = itertools.count(1)
        self._tiebreak = itertools.count()

    # Topics -----------------------------------------------------------------------------------

    def create_topic(self, name: str, resource: object = None) -> None:
        with self._changed:
            if name in self._topics:
                raise AlreadyExists(f"topic {name} already exists")
            self._topics[name] = _Topic(resource)

    def get_topic(self, name: str) -> object:
        with self._changed:
            return self._topic(name).resource

    def delete_topic(self, name: str) -> None:
        """Delete a topic; its subscriptions stay, detached (their topic reads _deleted-topic_)."""
        with self._changed:
            topic = self._topics.pop(name, None)
            if topic is None:
                raise NotFound(f"topic {name} not found")
            for sub_name in topic.subscriptions:
                sub = self._subscriptions[sub_name]
                sub.config = replace(sub.config, topic=DELETED_TOPIC)

    def publish(self, topic: str, messages: Sequence[OutgoingMessage]) -> list[Message]:
        """Store the messages in every subscription of `topic`."""
        if not messages:
            raise InvalidArgument("a publish request needs at least one message")
        for outgoing in messages:
            outgoing.validate()
        with self._changed:
            self._topic(topic)
            published = [self._publish_locked(topic, outgoing) for outgoing in messages]
            self._changed.notify_all()
            return published

    # Subscriptions ----------------------------------------------------------------------------

    def create_subscription(self, config: SubscriptionConfig, resource: object = None) -> None:
        with self._changed:
            if config.name in self._subscriptions:
                raise AlreadyExists(f"subscription {config.name} already exists")
            topic = self._topic(config.topic)
            self._check_dead_letter_topic(config)
            self._subscriptions[config.name] = _Subscription(config, resource)
            topic.subscriptions.add(config.name)

    def get_subscription(self, name: str) -> tuple[SubscriptionConfig, object]:
        with self._changed:
            sub = self._subscription(name)
            return sub.config, sub.resource

    def delete_subscription(self, name: str) -> None:
        with self._changed:
            sub = self._subscriptions.pop(name, None)
            if sub is None:
                raise NotFound(f"subscription {name} not found")
            topic = self._topics.get(sub.config.topic)
            if topic is not None:
                topic.subscriptions.discard(name)
            self._changed.notify_all()

    def stats(self, name: str) -> SubscriptionStats:
        with self._changed:
            self._expire_locked(self.clock.now())
            sub = self._subscription(name)
            return SubscriptionStats(
                ready=len(sub.ready),
                delayed=len(sub.delayed),
                outstanding=len(sub.leases),
                dead_lettered=sub.dead_lettered,
                streams=len(sub.streams),
            )

    # Delivery ---------------------------------------------------------------------------------

    def pull(
        self, subscription: str, max_messages: int, stream: Stream | None = None
    ) -> list[Delivery]:
        """Lease up to `max_messages` deliverable messages now (an empty list if none)."""
        if max_messages <= 0:
            raise InvalidArgument(f"max_messages must be positive, got {max_messages}")
        with self._changed:
            sub = self._subscription(subscription)
            if self._expire_locked(self.clock.now()):
                self._changed.notify_all()
            return self._take_locked(sub, max_messages, stream)

    def wait_and_pull(
        self,
        subscription: str,
        max_messages: int,
        timeout_s: float,
        *,
        stream: Stream | None = None,
        interrupted: Callable[[], bool] = lambda: False,
    ) -> list[Delivery]:
        """Like `pull`, but wait up to `timeout_s` (real time) for a message to lease.

        Returns early, possibly empty, once `interrupted()` is true, `interrupt()` was called
        or the stream was closed or failed.
        """
        give_up_at = time.monotonic() + timeout_s
        with self._changed:
            while True:
                deliveries = self.pull(subscription, max_messages, stream)
                stream_done = stream is not None and (stream.closed or stream.error is not None)
                remaining = give_up_at - time.monotonic()
                if deliveries or stream_done or interrupted() or remaining <= 0:
                    return deliveries
                self._changed.wait(remaining)

    def acknowledge(self, subscription: str, ack_ids: Iterable[str]) -> None:
        """Settle the deliveries; unknown, stale or expired ack ids are ignored."""
        with self._changed:
            sub = self._subscription(subscription)
            for ack_id in ack_ids:
                entry = sub.leases.pop(ack_id, None)
                if entry is not None:
                    self._end_lease(entry)
            self._changed.notify_all()

    def modify_ack_deadline(self, subscription: str, ack_ids: Iterable[str], seconds: int) -> None:
        """Move the lease deadlines to now + `seconds`; 0 nacks (redelivery as policy allows)."""
        if not 0 <= seconds <= MAX_ACK_DEADLINE_S:
            raise InvalidArgument(f"ack deadline must be 0-{MAX_ACK_DEADLINE_S} s, got {seconds}")
        with self._changed:
            sub = self._subscription(subscription)
            now = self.clock.now()
            for ack_id in ack_ids:
                entry = sub.leases.get(ack_id)
                if entry is None:
                    continue
                if seconds == 0:
                    del sub.leases[ack_id]
                    self._end_lease(entry)
                    self._redeliver_locked(sub, entry, now)
                else:
                    entry.deadline = now + seconds
                    heapq.heappush(sub.deadlines, (entry.deadline, next(self._tiebreak), ack_id))
            self._changed.notify_all()

    def expire(self) -> int:
        """Settle expired leases and finished backoffs; returns how many messages moved."""
        with self._changed:
            moved = self._expire_locked(self.clock.now())
            if moved:
                self._changed.notify_all()
            return moved

    def interrupt(self) -> None:
        """Wake every `wait_and_pull` so it can look at its `interrupted` flag."""
        with self._changed:
            self._changed.notify_all()

    # Streams ----------------------------------------------------------------------------------

    def open_stream(
        self,
        subscription: str,
        *,
        ack_deadline_s: int,
        client_id: str = "",
        max_messages: int = 0,
        max_bytes: int = 0,
    ) -> Stream:
        validate_ack_deadline(ack_deadline_s, "stream_ack_deadline_seconds")
        if max_messages < 0 or max_bytes < 0:
            raise InvalidArgument("max_outstanding_messages and _bytes must not be negative")
        with self._changed:
            sub = self._subscription(subscription)
            stream = Stream(subscription, client_id, ack_deadline_s, max_messages, max_bytes)
            sub.streams.add(stream)
            return stream

    def set_stream_ack_deadline(self, stream: Stream, seconds: int) -> None:
        validate_ack_deadline(seconds, "stream_ack_deadline_seconds")
        with self._changed:
            stream.ack_deadline_s = seconds

    def fail_stream(self, stream: Stream, error: PubSubError) -> None:
        with self._changed:
            stream.error = error
            self._changed.notify_all()

    def close_stream(self, stream: Stream) -> None:
        """Forget the stream; its leases run on until acked or expired (as in Pub/Sub)."""
        with self._changed:
            stream.closed = True
            sub = self._subscriptions.get(stream.subscription)
            if sub is not None:
                sub.streams.discard(stream)
            self._changed.notify_all()

    # Internals (lock held) --------------------------------------------------------------------

    def _topic(self, name: str) -> _Topic:
        topic = self._topics.get(name)
        if topic is None:
            raise NotFound(f"topic {name} not found")
        return topic

    def _subscription(self, name: str) -> _Subscription:
        sub = self._subscriptions.get(name)
        if sub is None:
            raise NotFound(f"subscription {name} not found")
        return sub

    def _check_dead_letter_topic(self, config: SubscriptionConfig) -> None:
        policy = config.dead_letter_policy
        if policy is not None and policy.topic not in self._topics:
            raise NotFound(f"dead-letter topic {policy.topic} not found")

    def _publish_locked(self, topic: str, outgoing: OutgoingMessage) -> Message:
        message = Message(
            message_id=str(next(self._message_ids)),
            data=outgoing.data,
            attributes=outgoing.attributes,
            publish_time=self.clock.now(),
            ordering_key=outgoing.ordering_key,
        )
        for sub_name in self._topics[topic].subscriptions:
            sub = self._subscriptions[sub_name]
            # Filters are stored, not applied: as Google's emulator does (the service applies
            # them; nothing the double serves needs them).
            sub.ready.append(_Entry(message))
        return message

    def _take_locked(
        self, sub: _Subscription, max_messages: int, stream: Stream | None
    ) -> list[Delivery]:
        now = self.clock.now()
        deadline_s = stream.ack_deadline_s if stream is not None else sub.config.ack_deadline_s
        counts_attempts = sub.config.dead_letter_policy is not None
        deliveries: list[Delivery] = []
        while sub.ready and len(deliveries) < max_messages:
            entry = sub.ready[0]
            size = entry.message.size
            if stream is not None and not stream.has_room_for(size):
                break
            sub.ready.popleft()
            entry.deliveries += 1
            entry.ack_id = f"{next(self._ack_ids)}-{entry.message.message_id}"
            entry.deadline = now + deadline_s
            entry.stream = stream
            if stream is not None:
                stream.lease_started(size)
            sub.leases[entry.ack_id] = entry
            heapq.heappush(sub.deadlines, (entry.deadline, next(self._tiebreak), entry.ack_id))
            attempt = entry.deliveries if counts_attempts else 0
            deliveries.append(Delivery(entry.ack_id, entry.message, attempt))
        return deliveries

    def _end_lease(self, entry: _Entry) -> None:
        if entry.stream is not None:
            entry.stream.lease_ended(entry.message.size)
        entry.ack_id, entry.stream = None, None

    def _expire_locked(self, now: float) -> int:
        moved = 0
        for sub in self._subscriptions.values():
            while sub.deadlines and sub.deadlines[0][0] <= now:
                _, _, ack_id = heapq.heappop(sub.deadlines)
                entry = sub.leases.get(ack_id)
                if entry is None or entry.deadline > now:
                    continue  # settled already, or extended (a later heap item stands for it)
                del sub.leases[ack_id]
                self._end_lease(entry)
                self._redeliver_locked(sub, entry, now)
                moved += 1
            while sub.delayed and sub.delayed[0][0] <= now:
                sub.ready.append(heapq.heappop(sub.delayed)[2])
                moved += 1
        return moved

    def _redeliver_locked(self, sub: _Subscription, entry: _Entry, now: float) -> None:
        """A delivery failed (nack or expiry): dead-letter, back off, or make it ready again."""
        policy = sub.config.dead_letter_policy
        # Pub/Sub cannot forward to a dead-letter topic deleted since, and keeps redelivering.
        if (
            policy is not None
            and entry.deliveries >= policy.max_delivery_attempts
            and policy.topic in self._topics
        ):
            self._dead_letter_locked(sub, entry, policy.topic)
            return
        retry = sub.config.retry_policy
        backoff_s = retry.backoff_s(entry.deliveries) if retry is not None else 0.0
        if backoff_s > 0:
            heapq.heappush(sub.delayed, (now + backoff_s, next(self._tiebreak), entry))
        else:
            sub.ready.append(entry)

    def _dead_letter_locked(self, sub: _Subscription, entry: _Entry, topic: str) -> None:
        message = entry.message
        attributes = dead_letter_attributes(message, sub.config.name, entry.deliveries)
        self._publish_locked(topic, OutgoingMessage(message.data, attributes, message.ordering_key))
        sub.dead_lettered += 1
