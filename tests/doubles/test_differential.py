"""The same scenarios on Google's Pub/Sub emulator and on our double; what the client sees must
be the same. The table (scenario, Google's, ours, equal?) is printed at the end of the run.

Two rows are known to differ and pin Google's emulator quirks (the double follows the
service there; tests that need the service's behaviour use the double):
- the retry policy's minimum backoff is not applied after the first nack (only later ones);
- an ack deadline under 10 s is accepted by the emulator (the service and ours reject it).
One quirk is intermittent: after a streaming client disconnects, the emulator sometimes stops
delivering that subscription (and sometimes delivers, as the service does). That row accepts
either outcome from the emulator and requires the service's from ours.
Where the double was richer than the emulator and no test needed it, it was cut down to
match (filters: stored, not applied).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from google.api_core import exceptions
from google.cloud.pubsub_v1.subscriber.message import Message
from google.cloud.pubsub_v1.types import FlowControl

from tests.doubles.differential import ROWS, Backend, Row, error_name
from tests.support.emulators import PubSubEmulator

Scenario = Callable[[Backend], object]


@pytest.fixture(scope="module")
def google(pubsub_emulator: PubSubEmulator) -> Iterator[Backend]:
    backend = Backend("google", pubsub_emulator)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def ours() -> Iterator[Backend]:
    from tests.doubles.pubsub import LocalPubSubServer

    with LocalPubSubServer() as server:
        backend = Backend("ours", PubSubEmulator(server.address, "cutq-double", server))
        yield backend
        backend.close()


# --- scenarios --------------------------------------------------------------------------------


def round_trip(b: Backend) -> object:
    topic = b.topic()
    sub = b.subscription(topic)
    for i in range(3):
        b.publisher.publish(topic, b"m%d" % i, kind="cutout", n=str(i)).result(timeout=30)
    got = b.pull_until(sub, 3)
    b.subscriber.acknowledge(subscription=sub, ack_ids=[r.ack_id for r in got])
    return {
        "data": sorted(r.message.data.decode() for r in got),
        "attrs": sorted(tuple(sorted(r.message.attributes.items())) for r in got)[0],
        "attempt": sorted({r.delivery_attempt for r in got}),
        "deadline": b.subscriber.get_subscription(subscription=sub).ack_deadline_seconds,
        "after ack": len(b.pull(sub, timeout_s=2)),
    }


def nack_redelivers(b: Backend) -> object:
    topic = b.topic()
    sub = b.subscription(topic)
    sent = b.publisher.publish(topic, b"x").result(timeout=30)
    (first,) = b.pull_until(sub, 1)
    b.subscriber.modify_ack_deadline(
        subscription=sub, ack_ids=[first.ack_id], ack_deadline_seconds=0
    )
    (again,) = b.pull_until(sub, 1)
    b.subscriber.acknowledge(subscription=sub, ack_ids=[again.ack_id])
    return {
        "same message": again.message.message_id == sent,
        "new ack id": again.ack_id != first.ack_id,
        "attempt": again.delivery_attempt,
    }


def lease_expiry(b: Backend) -> object:
    topic = b.topic()
    sub = b.subscription(topic)
    b.publisher.publish(topic, b"slow").result(timeout=30)
    (first,) = b.pull_until(sub, 1)
    b.subscriber.modify_ack_deadline(
        subscription=sub, ack_ids=[first.ack_id], ack_deadline_seconds=1
    )
    quiet = len(b.pull(sub, timeout_s=0.5))  # still leased
    time.sleep(1.5)
    again = b.pull_until(sub, 1)
    stale_ack = error_name(
        lambda: b.subscriber.acknowledge(subscription=sub, ack_ids=[first.ack_id])
    )
    b.subscriber.acknowledge(subscription=sub, ack_ids=[r.ack_id for r in again])
    return {"while leased": quiet, "after expiry": len(again), "ack of expired id": stale_ack}


def modack_extends(b: Backend) -> object:
    topic = b.topic()
    sub = b.subscription(topic)
    b.publisher.publish(topic, b"long").result(timeout=30)
    (first,) = b.pull_until(sub, 1)
    seen = 0
    for _ in range(3):  # 3 s in all, never more than 1 s from the last extension
        b.subscriber.modify_ack_deadline(
            subscription=sub, ack_ids=[first.ack_id], ack_deadline_seconds=2
        )
        time.sleep(1.0)
        seen += len(b.pull(sub, timeout_s=0.1))
    b.subscriber.acknowledge(subscription=sub, ack_ids=[first.ack_id])
    return {"redelivered while extended": seen}


def dead_letter(b: Backend) -> object:
    dead_topic = b.topic("dead")
    dead_sub = b.subscription(dead_topic)
    topic = b.topic()
    sub = b.subscription(
        topic,
        dead_letter_policy={"dead_letter_topic": dead_topic, "max_delivery_attempts": 5},
        retry_policy={"minimum_backoff": {"seconds": 0}, "maximum_backoff": {"seconds": 1}},
    )
    b.publisher.publish(topic, b"poison", kind="cutout").result(timeout=30)
    attempts, dead = [], []
    deadline = time.monotonic() + 60
    while not dead and time.monotonic() < deadline:  # the emulator forwards on a later pull
        for r in b.pull(sub, timeout_s=1):
            attempts.append(r.delivery_attempt)
            b.subscriber.modify_ack_deadline(
                subscription=sub, ack_ids=[r.ack_id], ack_deadline_seconds=0
            )
        dead = b.pull(dead_sub, timeout_s=0.5) if len(attempts) >= 5 else []
    dead = dead[0]
    attributes = dict(dead.message.attributes)
    return {
        "attempts": attempts,
        "dead data": dead.message.data.decode(),
        "dead attrs (CloudPubSubDeadLetter…)": sorted(
            k.removeprefix("CloudPubSubDeadLetter") for k in attributes
        ),
        "count": attributes.get("CloudPubSubDeadLetterSourceDeliveryCount"),
        "source": attributes.get("CloudPubSubDeadLetterSourceSubscription") == sub.split("/")[-1],
        "left on source": len(b.pull(sub, timeout_s=1)),
    }


def retry_backoff(b: Backend) -> object:
    topic = b.topic()
    sub = b.subscription(
        topic, retry_policy={"minimum_backoff": {"seconds": 2}, "maximum_backoff": {"seconds": 5}}
    )
    b.publisher.publish(topic, b"flaky").result(timeout=30)
    (delivery,) = b.pull_until(sub, 1)
    waits = []
    for _ in range(2):
        b.subscriber.modify_ack_deadline(
            subscription=sub, ack_ids=[delivery.ack_id], ack_deadline_seconds=0
        )
        nacked = time.monotonic()
        (delivery,) = b.pull_until(sub, 1)
        waited = time.monotonic() - nacked
        waits.append("< 1 s" if waited < 1 else "1.5-6 s" if 1.5 <= waited < 6 else f"{waited:.1f}")
    b.subscriber.acknowledge(subscription=sub, ack_ids=[delivery.ack_id])
    return {"redelivered after nack 1, 2": waits}


def error_codes(b: Backend) -> object:
    topic = b.topic()
    sub = b.subscription(topic)
    project = b.emulator.project
    missing_topic = f"projects/{project}/topics/missing-topic"
    missing_sub = f"projects/{project}/subscriptions/missing-sub"
    return {
        "topic exists": error_name(lambda: b.publisher.create_topic(name=topic)),
        "sub exists": error_name(lambda: b.subscriber.create_subscription(name=sub, topic=topic)),
        "publish to missing topic": error_name(
            lambda: b.publisher.publish(missing_topic, b"x").result(timeout=30)
        ),
        "get missing sub": error_name(
            lambda: b.subscriber.get_subscription(subscription=missing_sub)
        ),
        "delete missing topic": error_name(lambda: b.publisher.delete_topic(topic=missing_topic)),
        "sub on missing topic": error_name(
            lambda: b.subscriber.create_subscription(
                name=b.emulator.subscription_path(), topic=missing_topic
            )
        ),
        "pull missing sub": error_name(
            lambda: b.subscriber.pull(subscription=missing_sub, max_messages=1, timeout=5)
        ),
        "short topic name": error_name(
            lambda: b.publisher.create_topic(name=f"projects/{project}/topics/ab")
        ),
        "topic name with space": error_name(
            lambda: b.publisher.create_topic(name=f"projects/{project}/topics/bad name")
        ),
        "topic name starting with goog": error_name(
            lambda: b.publisher.create_topic(name=f"projects/{project}/topics/goog-x")
        ),
        "ack_deadline 700": error_name(
            lambda: b.subscriber.create_subscription(
                name=b.emulator.subscription_path(), topic=topic, ack_deadline_seconds=700
            )
        ),
    }


def flow_control(b: Backend) -> object:
    topic = b.topic()
    sub = b.subscription(topic)
    for future in [b.publisher.publish(topic, b"%d" % i) for i in range(20)]:
        future.result(timeout=30)
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}
    seen: list[str] = []
    pause = threading.Event()

    def callback(message: Message) -> None:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        pause.wait(0.05)
        with lock:
            state["now"] -= 1
            seen.append(message.message_id)
        message.ack()

    client = b.new_subscriber()  # its own stream, closed with the client
    future = client.subscribe(sub, callback, flow_control=FlowControl(max_messages=2))
    deadline = time.monotonic() + 30
    while len(set(seen)) < 20 and time.monotonic() < deadline:
        pause.wait(0.05)
    pause.wait(0.5)  # a redelivery would show up now
    future.cancel()
    future.result(timeout=30)
    client.close()
    return {"delivered": len(set(seen)), "deliveries": len(seen), "peak <= 2": state["peak"] <= 2}


def stream_missing_subscription(b: Backend) -> object:
    client = b.new_subscriber()
    future = client.subscribe(b.emulator.subscription_path("gone"), lambda m: None)
    try:
        future.result(timeout=30)
    except exceptions.GoogleAPICallError as error:
        return type(error).__name__
    finally:
        client.close()
    return "ok"


def filter_applied(b: Backend) -> object:
    topic = b.topic()
    sub = b.subscription(topic, filter='attributes.kind = "mask"')
    b.publisher.publish(topic, b"no", kind="cutout").result(timeout=30)
    b.publisher.publish(topic, b"yes", kind="mask").result(timeout=30)
    got = b.pull_until(sub, 2, timeout_s=4)
    b.subscriber.acknowledge(subscription=sub, ack_ids=[r.ack_id for r in got])
    stored = b.subscriber.get_subscription(subscription=sub).filter
    return {
        "stored": stored == 'attributes.kind = "mask"',
        "delivered": sorted(r.message.data.decode() for r in got),
    }


def short_deadline(b: Backend) -> object:
    topic = b.topic()
    return error_name(
        lambda: b.subscriber.create_subscription(
            name=b.emulator.subscription_path(), topic=topic, ack_deadline_seconds=5
        )
    )


def after_stream_disconnect(b: Backend) -> object:
    """One streaming client takes a message and goes away; the next one (as a restarted
    worker would) waits 5 s for messages published after that."""
    topic = b.topic()
    sub = b.subscription(topic)
    got: dict[str, list[str]] = {"first": [], "second": []}

    def stream(key: str, until: Callable[[], bool], wait_s: float) -> None:
        def callback(message: Message) -> None:
            got[key].append(message.data.decode())
            message.ack()

        client = b.new_subscriber()
        future = client.subscribe(sub, callback)
        deadline = time.monotonic() + wait_s
        while not until() and time.monotonic() < deadline:
            time.sleep(0.1)
        future.cancel()
        future.result(timeout=30)
        client.close()

    b.publisher.publish(topic, b"before").result(timeout=30)
    stream("first", lambda: bool(got["first"]), 15)
    for i in range(3):
        b.publisher.publish(topic, b"after-%d" % i).result(timeout=30)
    stream("second", lambda: len(got["second"]) == 3, 5)
    return {"first stream": len(got["first"]), "next stream": len(got["second"])}


SCENARIOS: dict[str, tuple[Scenario, str]] = {
    # name: (scenario, why Google's and ours may differ: "" when they must not)
    "publish, pull, ack (data, attributes, attempt, default deadline)": (round_trip, ""),
    "nack (modack 0) redelivers at once": (nack_redelivers, ""),
    "lease expiry redelivers; ack of the expired ack id": (lease_expiry, ""),
    "modack keeps extending the lease": (modack_extends, ""),
    "dead letter after 5 attempts (attempts, attributes)": (dead_letter, ""),
    "retry policy minimum backoff 2 s, two nacks": (
        retry_backoff,
        "emulator quirk: no backoff after the first nack",
    ),
    "error codes for bad names and missing resources": (error_codes, ""),
    "StreamingPull flow control max_messages=2, 20 messages": (flow_control, ""),
    "StreamingPull on a missing subscription": (stream_missing_subscription, ""),
    "subscription filter (stored; applied?)": (filter_applied, ""),
    "ack_deadline_seconds=5 at create": (
        short_deadline,
        "emulator accepts it; ours rejects it, as the service does",
    ),
    "delivery after a streaming client disconnected": (
        after_stream_disconnect,
        "emulator quirk, intermittent (the service delivers)",
    ),
}

# Scenarios where the emulator's quirk shows only on some runs: what the service does (ours
# must do exactly this), and a check that the emulator's result is either that or the quirk.
INTERMITTENT: dict[str, tuple[object, Callable[[object], bool]]] = {
    "delivery after a streaming client disconnected": (
        {"first stream": 1, "next stream": 3},
        lambda got: isinstance(got, dict) and got["first stream"] == 1 and got["next stream"] < 3,
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_same_on_google_and_ours(name: str, google: Backend, ours: Backend) -> None:
    scenario, known_difference = SCENARIOS[name]
    row = Row(name, scenario(google), scenario(ours), known_difference)
    ROWS.append(row)
    if name in INTERMITTENT:
        service, is_quirk = INTERMITTENT[name]
        assert row.ours == service
        assert row.google == service or is_quirk(row.google), row.google
    elif known_difference:
        assert not row.equal, f"{name}: now equal ({row.google}); drop the known difference"
    else:
        assert row.google == row.ours
