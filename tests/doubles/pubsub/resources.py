"""google.pubsub.v1 protobuf messages ↔ the plain model: names, settings, messages.

The servicers work on the raw protobuf classes under the proto-plus types of the installed
`google.pubsub_v1` package (`Type.pb()`): fast, and exactly what travels on the wire.
"""

from __future__ import annotations

import re
from typing import Any

from google.pubsub_v1.types import pubsub

from .model import (
    DEFAULT_ACK_DEADLINE_S,
    DEFAULT_MAX_DELIVERY_ATTEMPTS,
    DEFAULT_MAXIMUM_BACKOFF_S,
    DEFAULT_MINIMUM_BACKOFF_S,
    DeadLetterPolicy,
    Delivery,
    InvalidArgument,
    OutgoingMessage,
    RetryPolicy,
    SubscriptionConfig,
    Unsupported,
)

Pb = Any
"""A raw protobuf message; its classes are built at import time, so type checkers see Any."""
Topic = pubsub.Topic.pb()
Subscription = pubsub.Subscription.pb()
PubsubMessage = pubsub.PubsubMessage.pb()
ReceivedMessage = pubsub.ReceivedMessage.pb()

_RESOURCE_ID = r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}"
_NAMES = {
    kind: re.compile(rf"(projects/[^/]+)/{kind}/({_RESOURCE_ID})")
    for kind in ("topics", "subscriptions")
}


def check_name(name: str, kind: str) -> str:
    """Validate a `projects/<p>/<kind>/<id>` name as Pub/Sub's resource-name rules say."""
    match = _NAMES[kind].fullmatch(name)
    if match is None or match.group(2).startswith("goog"):
        raise InvalidArgument(
            f"invalid {kind[:-1]} name {name!r}: expected projects/<project>/{kind}/<id>,"
            " the id 3-255 characters of [A-Za-z0-9-_.~+%], starting with a letter, not 'goog'"
        )
    return name


def outgoing(message: Pb) -> OutgoingMessage:
    return OutgoingMessage(message.data, dict(message.attributes), message.ordering_key)


def received(delivery: Delivery) -> Pb:
    message = delivery.message
    wire = PubsubMessage(
        data=message.data,
        attributes=dict(message.attributes),
        message_id=message.message_id,
        ordering_key=message.ordering_key,
    )
    wire.publish_time.FromNanoseconds(round(message.publish_time * 1e9))
    return ReceivedMessage(
        ack_id=delivery.ack_id, message=wire, delivery_attempt=delivery.delivery_attempt
    )


def subscription_config(request: Pb) -> tuple[SubscriptionConfig, Pb]:
    """Validate a Subscription and fill in the defaults Pub/Sub fills in.

    Returns the settings the state enforces and the resource to echo in Get/List.
    """
    resource = Subscription()
    resource.CopyFrom(request)
    check_name(resource.name, "subscriptions")
    check_name(resource.topic, "topics")
    _reject_unsupported(resource)
    resource.ack_deadline_seconds = resource.ack_deadline_seconds or DEFAULT_ACK_DEADLINE_S

    dead_letter = None
    if resource.dead_letter_policy.dead_letter_topic:
        policy = resource.dead_letter_policy
        policy.max_delivery_attempts = policy.max_delivery_attempts or DEFAULT_MAX_DELIVERY_ATTEMPTS
        check_name(policy.dead_letter_topic, "topics")
        dead_letter = DeadLetterPolicy(policy.dead_letter_topic, policy.max_delivery_attempts)
    else:
        resource.ClearField("dead_letter_policy")

    retry = None
    if resource.HasField("retry_policy"):
        policy = resource.retry_policy
        if not policy.HasField("minimum_backoff"):
            policy.minimum_backoff.FromNanoseconds(int(DEFAULT_MINIMUM_BACKOFF_S * 1e9))
        if not policy.HasField("maximum_backoff"):
            policy.maximum_backoff.FromNanoseconds(int(DEFAULT_MAXIMUM_BACKOFF_S * 1e9))
        retry = RetryPolicy(
            policy.minimum_backoff.ToNanoseconds() / 1e9,
            policy.maximum_backoff.ToNanoseconds() / 1e9,
        )

    resource.state = Subscription.State.ACTIVE
    config = SubscriptionConfig(
        name=resource.name,
        topic=resource.topic,
        ack_deadline_s=resource.ack_deadline_seconds,
        filter=resource.filter,
        dead_letter_policy=dead_letter,
        retry_policy=retry,
    )
    return config, resource


def _reject_unsupported(resource: Pb) -> None:
    unsupported = {
        "push delivery": resource.push_config.push_endpoint,
        "BigQuery export": resource.HasField("bigquery_config"),
        "Cloud Storage export": resource.HasField("cloud_storage_config"),
        "message ordering": resource.enable_message_ordering,
        "exactly-once delivery": resource.enable_exactly_once_delivery,
    }
    named = [feature for feature, requested in unsupported.items() if requested]
    if named:
        raise Unsupported(f"LocalPubSubServer does not implement {', '.join(named)}")
