"""A local Pub/Sub that the real google-cloud-pubsub client talks to over gRPC.

`LocalPubSubServer` serves google.pubsub.v1 (topics, subscriptions, Publish, Pull,
StreamingPull, Acknowledge, ModifyAckDeadline) over `PubSubState`, an in-memory model of
Pub/Sub's delivery semantics with an injectable clock.

It is a test double, not the reference: Google's emulator (tests.support.emulators) is. It
serves only what Google's cannot: restarts with state kept, a controllable clock, injected
stream faults; tests/doubles/test_differential.py shows where the two agree.
"""

from .clock import Clock, FakeClock, SystemClock
from .model import (
    DeadLetterPolicy,
    Delivery,
    OutgoingMessage,
    PubSubError,
    RetryPolicy,
    SubscriptionConfig,
    SubscriptionStats,
)
from .server import LocalPubSubServer
from .state import PubSubState

__all__ = [
    "Clock",
    "DeadLetterPolicy",
    "Delivery",
    "FakeClock",
    "LocalPubSubServer",
    "OutgoingMessage",
    "PubSubError",
    "PubSubState",
    "RetryPolicy",
    "SubscriptionConfig",
    "SubscriptionStats",
    "SystemClock",
]
