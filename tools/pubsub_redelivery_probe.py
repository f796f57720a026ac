"""Does a Pub/Sub server deliver again messages that were already acked? A measurement.

``python -m tools.pubsub_redelivery_probe google`` (or ``double``) publishes N messages,
subscribes with StreamingPull and client flow control ``--max-messages``, and acks them at
``--rate`` per second from one consumer thread (the callback only queues them, as the worker's
pipeline does). It prints how many messages were delivered more than once, and for those
whether the second delivery came before or after the first ack. See docs/development.md.
"""

from __future__ import annotations

import argparse
import collections
import os
import queue
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def probe(host: str, n: int, rate: float, max_messages: int, lease_s: int) -> dict[str, object]:
    from google.cloud import pubsub_v1
    from google.cloud.pubsub_v1.subscriber.message import Message
    from google.cloud.pubsub_v1.types import FlowControl

    os.environ["PUBSUB_EMULATOR_HOST"] = host
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic, sub = "projects/probe/topics/jobs", "projects/probe/subscriptions/jobs"
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=sub, topic=topic, ack_deadline_seconds=10)
    for future in [publisher.publish(topic, b"%d" % i) for i in range(n)]:
        future.result()
    received: dict[bytes, list[float]] = collections.defaultdict(list)
    acked: dict[bytes, float] = {}
    work: queue.Queue[Message | None] = queue.Queue()
    start = time.monotonic()

    def consume() -> None:
        while (message := work.get()) is not None:
            time.sleep(1.0 / rate)
            message.ack()
            acked.setdefault(message.data, time.monotonic() - start)

    consumer = threading.Thread(target=consume)
    consumer.start()
    flow = FlowControl(
        max_messages=max_messages,
        min_duration_per_lease_extension=lease_s,
        max_duration_per_lease_extension=lease_s,
    )
    future = subscriber.subscribe(
        sub,
        lambda m: (received[m.data].append(time.monotonic() - start), work.put(m)),
        flow_control=flow,
    )
    while len(acked) < n and time.monotonic() - start < n / rate + 60:
        time.sleep(0.5)
    time.sleep(3)  # late redeliveries
    work.put(None)
    consumer.join()
    future.cancel()
    future.result(timeout=30)
    subscriber.close()
    publisher.stop()
    again = {k: v for k, v in received.items() if len(v) > 1}
    after_ack = sum(v[1] > acked.get(k, float("inf")) for k, v in again.items())
    return {
        "messages": n,
        "deliveries": sum(len(v) for v in received.values()),
        "delivered more than once": len(again),
        "of which again after the first ack": after_ack,
        "seconds": round(time.monotonic() - start, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", choices=["google", "double"])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--rate", type=float, default=20.0, help="acks per second")
    parser.add_argument("--max-messages", type=int, default=64, help="client flow control")
    parser.add_argument("--lease-s", type=int, default=10, help="lease extension")
    args = parser.parse_args(argv)
    if args.server == "google":
        from tests.support.emulators import GoogleEmulator

        server: object = GoogleEmulator()
    else:
        from tests.doubles.pubsub import LocalPubSubServer

        server = LocalPubSubServer()
    with server as running:  # type: ignore[attr-defined]
        host = running.host if args.server == "google" else running.address
        result = probe(host, args.messages, args.rate, args.max_messages, args.lease_s)
    print(args.server, vars(args) | result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
