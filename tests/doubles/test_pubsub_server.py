"""The real google-cloud-pubsub client against our Pub/Sub double: what only the double
serves (a fake clock, restarts with state kept, a raw stream under a controlled clock).

What both serve is compared with Google's emulator in test_differential.py.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.subscriber.message import Message
from google.cloud.pubsub_v1.types import FlowControl
from google.pubsub_v1 import types as gapic

from tests.doubles.pubsub import FakeClock, LocalPubSubServer
from tests.support.emulators import PubSubEmulator


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            return False
        pause.wait(0.01)
    return True


class Received:
    """Thread-safe record of what a streaming-pull callback saw."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: list[Message] = []

    def add(self, message: Message) -> int:
        with self._lock:
            self.messages.append(message)
            return sum(m.message_id == message.message_id for m in self.messages)

    def ids(self) -> list[str]:
        with self._lock:
            return [m.message_id for m in self.messages]


@contextlib.contextmanager
def streaming(
    subscriber: pubsub_v1.SubscriberClient,
    subscription: str,
    callback: Callable[[Message], None],
    **kwargs: object,
) -> Iterator[None]:
    future = subscriber.subscribe(subscription, callback, **kwargs)  # type: ignore[arg-type]
    try:
        yield
    finally:
        future.cancel()
        future.result(timeout=30)


def create(
    emulator: PubSubEmulator,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    **subscription: object,
) -> tuple[str, str]:
    topic = emulator.topic_path("jobs")
    publisher.create_topic(name=topic)
    name = emulator.subscription_path("jobs")
    subscriber.create_subscription(request={"name": name, "topic": topic, **subscription})
    return topic, name


@pytest.fixture
def local_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalPubSubServer]:
    """A private server with a fake clock: leases expire only when the test says so."""
    with LocalPubSubServer(clock=FakeClock()) as server:
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", server.address)
        yield server


@pytest.fixture
def local(local_server: LocalPubSubServer) -> Iterator[tuple[PubSubEmulator, object, object]]:
    emulator = PubSubEmulator(local_server.address, "local", local_server)
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    try:
        yield emulator, publisher, subscriber
    finally:
        subscriber.close()
        publisher.stop()
        publisher.transport.close()


def test_expired_lease_is_redelivered(local):
    emulator, publisher, subscriber = local
    clock = emulator.server.state.clock
    topic, sub = create(emulator, publisher, subscriber)
    message_id = publisher.publish(topic, b"slow").result()
    (first,) = subscriber.pull(subscription=sub, max_messages=5, timeout=10).received_messages
    clock.advance(9)
    assert emulator.server.state.stats(sub).outstanding == 1
    clock.advance(1)
    (second,) = subscriber.pull(subscription=sub, max_messages=5, timeout=10).received_messages
    assert second.message.message_id == message_id
    assert second.ack_id != first.ack_id
    subscriber.acknowledge(subscription=sub, ack_ids=[first.ack_id])  # expired: ignored
    assert emulator.server.state.stats(sub).outstanding == 1
    subscriber.acknowledge(subscription=sub, ack_ids=[second.ack_id])
    assert emulator.server.state.stats(sub).backlog == 0


def test_nack_waits_out_the_retry_policy_backoff(local):
    emulator, publisher, subscriber = local
    clock, state = emulator.server.state.clock, emulator.server.state
    retry = {"minimum_backoff": {"seconds": 10}, "maximum_backoff": {"seconds": 60}}
    topic, sub = create(emulator, publisher, subscriber, retry_policy=retry)
    publisher.publish(topic, b"flaky").result()
    for backoff_s in (10, 20):
        (delivery,) = subscriber.pull(
            subscription=sub, max_messages=1, timeout=10
        ).received_messages
        subscriber.modify_ack_deadline(
            subscription=sub, ack_ids=[delivery.ack_id], ack_deadline_seconds=0
        )
        clock.advance(backoff_s - 0.5)
        assert state.stats(sub).delayed == 1
        clock.advance(0.5)
        assert state.stats(sub).ready == 1
    policy = subscriber.get_subscription(subscription=sub).retry_policy
    assert (policy.minimum_backoff.total_seconds(), policy.maximum_backoff.total_seconds()) == (
        10,
        60,
    )


def test_raw_stream_acks_modacks_and_redelivers_expired_leases(local):
    emulator, publisher, subscriber = local
    clock, state = emulator.server.state.clock, emulator.server.state
    topic, sub = create(emulator, publisher, subscriber)
    for i in range(2):
        publisher.publish(topic, b"%d" % i).result()
    requests: queue.Queue[gapic.StreamingPullRequest | None] = queue.Queue()
    requests.put(
        gapic.StreamingPullRequest(
            subscription=sub, stream_ack_deadline_seconds=10, max_outstanding_messages=2
        )
    )
    responses = subscriber.streaming_pull(requests=iter(requests.get, None))
    try:
        received: list[gapic.ReceivedMessage] = []
        while len(received) < 2:
            received.extend(next(responses).received_messages)
        first, second = received
        requests.put(
            gapic.StreamingPullRequest(
                ack_ids=[first.ack_id],
                modify_deadline_ack_ids=[second.ack_id],
                modify_deadline_seconds=[0],
            )
        )
        (again,) = next(responses).received_messages
        assert again.message.message_id == second.message.message_id
        clock.advance(10)  # the stream's ack deadline passes: redelivered on the stream
        (third,) = next(responses).received_messages
        assert third.message.message_id == second.message.message_id
        requests.put(gapic.StreamingPullRequest(ack_ids=[third.ack_id]))
        assert wait_for(lambda: state.stats(sub).backlog == 0)
    finally:
        requests.put(None)
        responses.cancel()


@pytest.mark.parametrize(
    ("downtime_s", "within_s"),
    [
        pytest.param(None, 5, id="port-handover"),
        # A real outage: the client's reopen throttle (5 tries per 10 s) sets the pace.
        pytest.param(0.2, 14, id="outage", marks=pytest.mark.slow),
    ],
)
def test_server_restart_mid_stream_client_reconnects_and_gets_the_rest(
    monkeypatch, downtime_s, within_s
):
    with LocalPubSubServer() as server:
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", server.address)
        emulator = PubSubEmulator(server.address, "restart", server)
        publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        try:
            topic, sub = create(emulator, publisher, subscriber)
            sent = {publisher.publish(topic, b"%d" % i).result() for i in range(30)}
            received = Received()
            work = threading.Event()

            def callback(message: Message) -> None:
                received.add(message)
                work.wait(0.02)
                message.ack()

            flow = FlowControl(max_messages=1)
            with streaming(subscriber, sub, callback, flow_control=flow):
                assert wait_for(lambda: len(received.ids()) >= 5)
                server.restart(downtime_s=downtime_s)
                assert wait_for(lambda: set(received.ids()) == sent, timeout_s=within_s)
            assert server.state.stats(sub).streams == 0
        finally:
            subscriber.close()
            publisher.stop()
            publisher.transport.close()
