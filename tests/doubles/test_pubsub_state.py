"""PubSubState with a fake clock: Pub/Sub's delivery semantics, no gRPC, no sleeping."""

from __future__ import annotations

import threading

import pytest

from tests.doubles.pubsub import (
    DeadLetterPolicy,
    FakeClock,
    OutgoingMessage,
    PubSubState,
    RetryPolicy,
    SubscriptionConfig,
)
from tests.doubles.pubsub.model import AlreadyExists, InvalidArgument, NotFound

TOPIC = "projects/p/topics/jobs"
SUB = "projects/p/subscriptions/jobs-sub"
DLQ = "projects/p/topics/jobs-dead"
DLQ_SUB = "projects/p/subscriptions/jobs-dead-sub"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(clock: FakeClock) -> PubSubState:
    state = PubSubState(clock)
    state.create_topic(TOPIC)
    return state


def subscribe(state: PubSubState, **settings: object) -> None:
    state.create_subscription(SubscriptionConfig(SUB, TOPIC, **settings))  # type: ignore[arg-type]


def publish(state: PubSubState, *payloads: bytes, topic: str = TOPIC, **attributes: str) -> None:
    state.publish(topic, [OutgoingMessage(p, attributes) for p in payloads])


def test_messages_published_before_the_subscription_are_not_delivered(state):
    publish(state, b"early")
    subscribe(state)
    publish(state, b"late")
    assert [d.message.data for d in state.pull(SUB, 10)] == [b"late"]


def test_ack_settles_and_unknown_or_repeated_ack_ids_are_ignored(state):
    subscribe(state)
    publish(state, b"a", b"b")
    first, second = state.pull(SUB, 10)
    state.acknowledge(SUB, [first.ack_id, "no-such-ack-id", first.ack_id])
    assert state.stats(SUB).outstanding == 1
    state.acknowledge(SUB, [second.ack_id])
    assert state.stats(SUB).backlog == 0
    assert state.pull(SUB, 10) == []


def test_expired_lease_is_redelivered_with_a_new_ack_id_and_the_old_one_is_dead(state, clock):
    subscribe(state, ack_deadline_s=30)
    publish(state, b"job")
    (first,) = state.pull(SUB, 10)
    clock.advance(29.9)
    assert state.pull(SUB, 10) == []
    clock.advance(0.1)
    (second,) = state.pull(SUB, 10)
    assert second.message.message_id == first.message.message_id
    assert second.ack_id != first.ack_id
    assert second.delivery_attempt == 0  # only set with a dead-letter policy, as in Pub/Sub
    state.acknowledge(SUB, [first.ack_id])  # expired: ignored
    assert state.stats(SUB).outstanding == 1
    state.acknowledge(SUB, [second.ack_id])
    assert state.stats(SUB).backlog == 0


def test_modify_ack_deadline_extends_the_lease(state, clock):
    subscribe(state)
    publish(state, b"job")
    (delivery,) = state.pull(SUB, 1)
    clock.advance(8)
    state.modify_ack_deadline(SUB, [delivery.ack_id], 60)
    clock.advance(59)
    assert state.expire() == 0
    clock.advance(1)
    assert state.expire() == 1
    assert state.stats(SUB).ready == 1


def test_modify_ack_deadline_can_shorten_the_lease(state, clock):
    subscribe(state, ack_deadline_s=600)
    publish(state, b"job")
    (delivery,) = state.pull(SUB, 1)
    state.modify_ack_deadline(SUB, [delivery.ack_id], 10)
    clock.advance(10)
    assert state.expire() == 1


def test_nack_redelivers_immediately_without_retry_policy(state):
    subscribe(state)
    publish(state, b"job")
    (first,) = state.pull(SUB, 1)
    state.modify_ack_deadline(SUB, [first.ack_id], 0)
    (second,) = state.pull(SUB, 1)
    assert second.message.data == b"job"


def test_dead_letter_after_max_delivery_attempts_with_pubsub_attributes(state, clock):
    state.create_topic(DLQ)
    state.create_subscription(SubscriptionConfig(DLQ_SUB, DLQ))
    subscribe(state, dead_letter_policy=DeadLetterPolicy(DLQ, max_delivery_attempts=5))
    publish(state, b"poison", kind="cutout")

    attempts = []
    for _ in range(5):
        (delivery,) = state.pull(SUB, 1)
        attempts.append(delivery.delivery_attempt)
        state.modify_ack_deadline(SUB, [delivery.ack_id], 0)

    assert attempts == [1, 2, 3, 4, 5]
    assert state.pull(SUB, 1) == []
    assert state.stats(SUB).dead_lettered == 1
    (dead,) = state.pull(DLQ_SUB, 1)
    assert dead.message.data == b"poison"
    assert dead.message.attributes == {
        "kind": "cutout",
        "CloudPubSubDeadLetterSourceDeliveryCount": "5",
        "CloudPubSubDeadLetterSourceSubscription": "jobs-sub",
        "CloudPubSubDeadLetterSourceSubscriptionProject": "p",
        "CloudPubSubDeadLetterSourceTopicPublishTime": "2023-11-14T22:13:20.000+00:00",
    }


def test_expiries_count_as_failed_deliveries_for_dead_lettering(state, clock):
    state.create_topic(DLQ)
    subscribe(state, dead_letter_policy=DeadLetterPolicy(DLQ, max_delivery_attempts=5))
    publish(state, b"slow")
    for attempt in range(1, 6):
        (delivery,) = state.pull(SUB, 1)
        assert delivery.delivery_attempt == attempt
        clock.advance(10)
    assert state.stats(SUB).dead_lettered == 1
    assert state.stats(SUB).backlog == 0


def test_dead_letter_topic_deleted_later_keeps_redelivering(state):
    state.create_topic(DLQ)
    subscribe(state, dead_letter_policy=DeadLetterPolicy(DLQ, max_delivery_attempts=5))
    state.delete_topic(DLQ)
    publish(state, b"job")
    for _ in range(6):
        (delivery,) = state.pull(SUB, 1)
        state.modify_ack_deadline(SUB, [delivery.ack_id], 0)
    assert delivery.delivery_attempt == 6
    assert state.stats(SUB).ready == 1


def test_retry_policy_backs_off_exponentially_up_to_the_maximum(state, clock):
    subscribe(state, retry_policy=RetryPolicy(minimum_backoff_s=10, maximum_backoff_s=30))
    publish(state, b"job")
    waits = []
    for _ in range(4):
        (delivery,) = state.pull(SUB, 1)
        state.modify_ack_deadline(SUB, [delivery.ack_id], 0)
        assert state.stats(SUB).delayed == 1
        waited = 0.0
        while state.stats(SUB).ready == 0:
            clock.advance(0.5)
            waited += 0.5
        waits.append(waited)
    assert waits == [10, 20, 30, 30]


def test_retry_policy_applies_to_expired_leases(state, clock):
    subscribe(state, retry_policy=RetryPolicy(minimum_backoff_s=5, maximum_backoff_s=600))
    publish(state, b"job")
    state.pull(SUB, 1)
    clock.advance(10)
    assert state.stats(SUB).delayed == 1
    clock.advance(4.9)
    assert state.pull(SUB, 1) == []
    clock.advance(0.1)
    assert len(state.pull(SUB, 1)) == 1


def test_stream_flow_control_limits_outstanding_messages(state):
    subscribe(state)
    publish(state, *[b"m%d" % i for i in range(5)])
    stream = state.open_stream(SUB, ack_deadline_s=60, max_messages=2)
    first = state.pull(SUB, 100, stream)
    assert len(first) == 2
    assert state.pull(SUB, 100, stream) == []
    state.acknowledge(SUB, [first[0].ack_id])
    assert len(state.pull(SUB, 100, stream)) == 1
    state.modify_ack_deadline(SUB, [first[1].ack_id], 0)  # a nack frees room too
    assert len(state.pull(SUB, 100, stream)) == 1


def test_stream_flow_control_by_bytes_lets_one_message_overshoot(state):
    subscribe(state)
    publish(state, b"x" * 600, b"y" * 600, b"z" * 300)
    stream = state.open_stream(SUB, ack_deadline_s=60, max_bytes=500)
    (big,) = state.pull(SUB, 100, stream)  # alone over the limit: delivered anyway
    assert state.pull(SUB, 100, stream) == []
    stream.max_bytes = 1000
    assert state.pull(SUB, 100, stream) == []  # 600 + 600 > 1000
    state.acknowledge(SUB, [big.ack_id])
    assert [d.message.data[:1] for d in state.pull(SUB, 100, stream)] == [b"y", b"z"]


def test_stream_ack_deadline_applies_to_its_deliveries(state, clock):
    subscribe(state, ack_deadline_s=600)
    publish(state, b"job")
    stream = state.open_stream(SUB, ack_deadline_s=20)
    state.pull(SUB, 1, stream)
    clock.advance(20)
    assert state.expire() == 1


def test_wait_and_pull_wakes_up_when_a_message_is_published(state):
    subscribe(state)
    publisher = threading.Timer(0.05, publish, args=(state, b"late"))
    publisher.start()
    try:
        deliveries = state.wait_and_pull(SUB, 10, timeout_s=10)
    finally:
        publisher.join()
    assert [d.message.data for d in deliveries] == [b"late"]


def test_wait_and_pull_returns_empty_when_interrupted(state):
    subscribe(state)
    stop = threading.Event()
    stopper = threading.Timer(0.05, lambda: (stop.set(), state.interrupt()))
    stopper.start()
    try:
        assert state.wait_and_pull(SUB, 10, timeout_s=10, interrupted=stop.is_set) == []
    finally:
        stopper.join()


def test_filter_is_stored_not_applied_as_on_googles_emulator(state):
    subscribe(state, filter='attributes.kind = "mask"')
    publish(state, b"1", kind="mask")
    publish(state, b"2", kind="cutout")
    assert [d.message.data for d in state.pull(SUB, 10)] == [b"1", b"2"]
    assert state.get_subscription(SUB)[0].filter == 'attributes.kind = "mask"'


def test_deleting_the_topic_detaches_but_keeps_subscriptions(state):
    subscribe(state)
    publish(state, b"job")
    state.delete_topic(TOPIC)
    config, _ = state.get_subscription(SUB)
    assert config.topic == "_deleted-topic_"
    assert len(state.pull(SUB, 1)) == 1
    with pytest.raises(NotFound):
        publish(state, b"more")


@pytest.mark.parametrize(
    "make",
    [
        lambda s: s.create_topic(TOPIC),
        lambda s: (subscribe(s), subscribe(s)),
    ],
)
def test_creating_twice_is_already_exists(state, make):
    with pytest.raises(AlreadyExists):
        make(state)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: publish(s, b"x", topic="projects/p/topics/missing"),
        lambda s: s.pull("projects/p/subscriptions/missing", 1),
        lambda s: s.acknowledge("projects/p/subscriptions/missing", ["1"]),
        lambda s: s.create_subscription(SubscriptionConfig(SUB, "projects/p/topics/missing")),
        lambda s: subscribe(s, dead_letter_policy=DeadLetterPolicy("projects/p/topics/none")),
        lambda s: s.delete_subscription(SUB),
        lambda s: s.delete_topic("projects/p/topics/missing"),
    ],
)
def test_missing_resources_are_not_found(state, call):
    with pytest.raises(NotFound):
        call(state)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: subscribe(s, ack_deadline_s=9),
        lambda s: subscribe(s, ack_deadline_s=601),
        lambda s: DeadLetterPolicy(DLQ, max_delivery_attempts=4),
        lambda s: DeadLetterPolicy(DLQ, max_delivery_attempts=101),
        lambda s: RetryPolicy(minimum_backoff_s=20, maximum_backoff_s=10),
        lambda s: RetryPolicy(minimum_backoff_s=0, maximum_backoff_s=601),
        lambda s: publish(s, b""),
        lambda s: publish(s, b"x", googkey="v"),
        lambda s: s.publish(TOPIC, []),
        lambda s: (subscribe(s), s.modify_ack_deadline(SUB, ["1"], 601)),
        lambda s: (subscribe(s), s.pull(SUB, 0)),
        lambda s: (subscribe(s), s.open_stream(SUB, ack_deadline_s=5)),
    ],
)
def test_documented_limits_are_invalid_argument(state, call):
    with pytest.raises(InvalidArgument):
        call(state)
