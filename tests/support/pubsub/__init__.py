"""A local Pub/Sub that the real google-cloud-pubsub client talks to over gRPC.

`LocalPubSubServer` serves google.pubsub.v1 (topics, subscriptions, Publish, Pull,
StreamingPull, Acknowledge, ModifyAckDeadline) over `PubSubState`, an in-memory model of
Pub/Sub's delivery semantics with an injectable clock. `fixtures` holds the pytest fixtures.
"""

from .clock import Clock, FakeClock, SystemClock
from .emulator import PubSubEmulator
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
    "PubSubEmulator",
    "PubSubError",
    "PubSubState",
    "RetryPolicy",
    "SubscriptionConfig",
    "SubscriptionStats",
    "SystemClock",
]
