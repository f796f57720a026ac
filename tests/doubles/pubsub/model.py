"""Value types and errors of the local Pub/Sub, with the limits Pub/Sub documents.

Plain Python: no gRPC and no protobuf, so the state machine can be tested on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType

MIN_ACK_DEADLINE_S = 10
MAX_ACK_DEADLINE_S = 600
DEFAULT_ACK_DEADLINE_S = 10
MIN_DELIVERY_ATTEMPTS = 5
MAX_DELIVERY_ATTEMPTS = 100
DEFAULT_MAX_DELIVERY_ATTEMPTS = 5
DEFAULT_MINIMUM_BACKOFF_S = 10.0
DEFAULT_MAXIMUM_BACKOFF_S = 600.0
MAX_BACKOFF_S = 600.0
MAX_MESSAGE_BYTES = 10_000_000
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_KEY_BYTES = 256
MAX_ATTRIBUTE_VALUE_BYTES = 1024
DELETED_TOPIC = "_deleted-topic_"
"""What a subscription's `topic` reads once its topic was deleted (as in Pub/Sub)."""


class PubSubError(Exception):
    """Root of the errors the local Pub/Sub raises; each subclass maps to one gRPC status."""


class NotFound(PubSubError):
    """A topic or subscription named in a request does not exist (NOT_FOUND)."""


class AlreadyExists(PubSubError):
    """Creating a topic or subscription whose name is taken (ALREADY_EXISTS)."""


class InvalidArgument(PubSubError):
    """A request breaks a documented limit or is malformed (INVALID_ARGUMENT)."""


class Unsupported(PubSubError):
    """A valid request for a feature the local server does not implement (UNIMPLEMENTED)."""


@dataclass(frozen=True)
class OutgoingMessage:
    """A message as a publisher sends it, before the server assigns id and publish time."""

    data: bytes = b""
    attributes: Mapping[str, str] = field(default_factory=dict)
    ordering_key: str = ""

    def validate(self) -> None:
        if not self.data and not self.attributes:
            raise InvalidArgument("a message must have non-empty data or at least one attribute")
        if len(self.attributes) > MAX_ATTRIBUTES:
            raise InvalidArgument(f"a message has at most {MAX_ATTRIBUTES} attributes")
        for key, value in self.attributes.items():
            if not key or len(key.encode()) > MAX_ATTRIBUTE_KEY_BYTES:
                raise InvalidArgument(f"attribute key {key!r} is empty or too long")
            if key.startswith("goog"):
                raise InvalidArgument(f"attribute key {key!r} may not start with 'goog'")
            if len(value.encode()) > MAX_ATTRIBUTE_VALUE_BYTES:
                raise InvalidArgument(f"attribute {key!r} is over {MAX_ATTRIBUTE_VALUE_BYTES} B")
        if message_size(self.data, self.attributes, self.ordering_key) > MAX_MESSAGE_BYTES:
            raise InvalidArgument(f"a message is at most {MAX_MESSAGE_BYTES} bytes")


def message_size(data: bytes, attributes: Mapping[str, str], ordering_key: str = "") -> int:
    """Payload bytes as flow control counts them (data, attribute keys and values, key)."""
    attribute_bytes = sum(len(k.encode()) + len(v.encode()) for k, v in attributes.items())
    return len(data) + attribute_bytes + len(ordering_key.encode())


@dataclass(frozen=True)
class Message:
    """A published message: immutable, shared by every subscription that receives it."""

    message_id: str
    data: bytes
    attributes: Mapping[str, str]
    publish_time: float
    ordering_key: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "attributes", MappingProxyType(dict(self.attributes)))

    @property
    def size(self) -> int:
        return message_size(self.data, self.attributes, self.ordering_key)


def dead_letter_attributes(message: Message, subscription: str, deliveries: int) -> dict[str, str]:
    """The message's attributes plus those Pub/Sub adds when it forwards to a dead-letter topic."""
    _, project, _, subscription_id = subscription.split("/", 3)
    published = datetime.fromtimestamp(message.publish_time, tz=timezone.utc)
    return {
        **message.attributes,
        "CloudPubSubDeadLetterSourceDeliveryCount": str(deliveries),
        "CloudPubSubDeadLetterSourceSubscription": subscription_id,
        "CloudPubSubDeadLetterSourceSubscriptionProject": project,
        "CloudPubSubDeadLetterSourceTopicPublishTime": published.isoformat(timespec="milliseconds"),
    }


@dataclass(frozen=True)
class DeadLetterPolicy:
    """Forward a message to `topic` once it has been delivered `max_delivery_attempts` times."""

    topic: str
    max_delivery_attempts: int = DEFAULT_MAX_DELIVERY_ATTEMPTS

    def __post_init__(self) -> None:
        if not self.topic:
            raise InvalidArgument("dead_letter_policy.dead_letter_topic is required")
        attempts = self.max_delivery_attempts
        if not MIN_DELIVERY_ATTEMPTS <= attempts <= MAX_DELIVERY_ATTEMPTS:
            raise InvalidArgument(
                f"max_delivery_attempts must be {MIN_DELIVERY_ATTEMPTS}-{MAX_DELIVERY_ATTEMPTS},"
                f" got {attempts}"
            )


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff before redelivering a nacked or expired message."""

    minimum_backoff_s: float = DEFAULT_MINIMUM_BACKOFF_S
    maximum_backoff_s: float = DEFAULT_MAXIMUM_BACKOFF_S

    def __post_init__(self) -> None:
        low, high = self.minimum_backoff_s, self.maximum_backoff_s
        if not (0 <= low <= MAX_BACKOFF_S and 0 <= high <= MAX_BACKOFF_S and low <= high):
            raise InvalidArgument(
                f"retry policy backoff must satisfy 0 <= minimum <= maximum <= {MAX_BACKOFF_S:g}"
                f" s, got {low:g} s and {high:g} s"
            )

    def backoff_s(self, deliveries: int) -> float:
        """Delay after the `deliveries`-th delivery failed: minimum doubling up to maximum."""
        doublings = min(max(deliveries - 1, 0), 30)
        return min(self.maximum_backoff_s, self.minimum_backoff_s * 2**doublings)


@dataclass(frozen=True)
class SubscriptionConfig:
    """The delivery-relevant settings of a subscription."""

    name: str
    topic: str
    ack_deadline_s: int = DEFAULT_ACK_DEADLINE_S
    filter: str = ""
    dead_letter_policy: DeadLetterPolicy | None = None
    retry_policy: RetryPolicy | None = None

    def __post_init__(self) -> None:
        validate_ack_deadline(self.ack_deadline_s, "ack_deadline_seconds")


def validate_ack_deadline(seconds: float, what: str) -> None:
    if not MIN_ACK_DEADLINE_S <= seconds <= MAX_ACK_DEADLINE_S:
        raise InvalidArgument(
            f"{what} must be {MIN_ACK_DEADLINE_S}-{MAX_ACK_DEADLINE_S} s, got {seconds}"
        )


@dataclass(frozen=True)
class Delivery:
    """One delivery of a message: what Pull and StreamingPull hand to a subscriber."""

    ack_id: str
    message: Message
    delivery_attempt: int
    """Deliveries so far, counting this one; 0 unless the subscription dead-letters."""


@dataclass(frozen=True)
class SubscriptionStats:
    """Where a subscription's unacknowledged messages are, for assertions in tests."""

    ready: int
    """Deliverable now."""
    delayed: int
    """Waiting out a retry-policy backoff."""
    outstanding: int
    """Delivered and not yet acked, nacked or expired."""
    dead_lettered: int
    """Forwarded to the dead-letter topic so far."""
    streams: int
    """StreamingPull streams open on the subscription."""

    @property
    def backlog(self) -> int:
        return self.ready + self.delayed + self.outstanding


@dataclass(eq=False)
class Stream:
    """One StreamingPull stream: its ack deadline and server-side flow control."""

    subscription: str
    client_id: str
    ack_deadline_s: int
    max_messages: int = 0
    """At most this many unacked messages delivered on the stream; 0: no limit."""
    max_bytes: int = 0
    """At most this many unacked bytes (one message may overshoot); 0: no limit."""
    outstanding_messages: int = 0
    outstanding_bytes: int = 0
    closed: bool = False
    error: PubSubError | None = None
    """Set when a request on the stream was invalid; the stream then ends with it."""

    def has_room_for(self, size: int) -> bool:
        if self.max_messages and self.outstanding_messages >= self.max_messages:
            return False
        over_bytes = self.outstanding_bytes + size > self.max_bytes
        return not (self.max_bytes and self.outstanding_messages and over_bytes)

    def lease_started(self, size: int) -> None:
        self.outstanding_messages += 1
        self.outstanding_bytes += size

    def lease_ended(self, size: int) -> None:
        self.outstanding_messages -= 1
        self.outstanding_bytes -= size
