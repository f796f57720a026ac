"""The differential suite's machinery: one scenario, two Pub/Subs, what the client observed.

A scenario is a function of a :class:`Backend` (a publisher and a subscriber client bound to
one server, and fresh names on it) that drives the real google-cloud-pubsub client and
returns what it observed as plain data. ``test_differential.py`` runs each scenario on
Google's emulator and on our double and compares; every comparison becomes a row of
:data:`ROWS`, which ``conftest.py`` prints as a table at the end of the run.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from google.api_core import exceptions
from google.cloud import pubsub_v1

from tests.support.emulators import PubSubEmulator


@dataclass
class Row:
    scenario: str
    google: Any
    ours: Any
    note: str = ""

    @property
    def equal(self) -> bool:
        return self.google == self.ours


ROWS: list[Row] = []


@dataclass
class Backend:
    """Clients for one server; PUBSUB_EMULATOR_HOST is read when a client is made."""

    name: str
    emulator: PubSubEmulator
    publisher: pubsub_v1.PublisherClient = field(init=False)
    subscriber: pubsub_v1.SubscriberClient = field(init=False)

    def __post_init__(self) -> None:
        with pointed_at(self.emulator.host):
            self.publisher = pubsub_v1.PublisherClient()
            self.subscriber = pubsub_v1.SubscriberClient()

    def new_subscriber(self) -> pubsub_v1.SubscriberClient:
        with pointed_at(self.emulator.host):
            return pubsub_v1.SubscriberClient()

    def topic(self, prefix: str = "t") -> str:
        name = self.emulator.topic_path(prefix)
        self.publisher.create_topic(name=name)
        return name

    def subscription(self, topic: str, **settings: object) -> str:
        name = self.emulator.subscription_path("s")
        self.subscriber.create_subscription(request={"name": name, "topic": topic, **settings})
        return name

    def pull(self, subscription: str, max_messages: int = 100, timeout_s: float = 3.0) -> list:
        """One unary Pull; an empty answer and a deadline are both "nothing"."""
        try:
            response = self.subscriber.pull(
                subscription=subscription, max_messages=max_messages, timeout=timeout_s
            )
        except exceptions.DeadlineExceeded:
            return []
        return list(response.received_messages)

    def pull_until(self, subscription: str, count: int, timeout_s: float = 15.0) -> list:
        got: list = []
        deadline = time.monotonic() + timeout_s
        while len(got) < count and time.monotonic() < deadline:
            got += self.pull(subscription, max_messages=count - len(got))
        return got

    def close(self) -> None:
        self.subscriber.close()
        self.publisher.stop()
        self.publisher.transport.close()


@contextlib.contextmanager
def pointed_at(host: str) -> Iterator[None]:
    saved = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = host
    try:
        yield
    finally:
        if saved is None:
            del os.environ["PUBSUB_EMULATOR_HOST"]
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = saved


def error_name(call: Callable[[], object]) -> str:
    """The google.api_core exception class a call raised, or "ok"."""
    try:
        call()
    except exceptions.GoogleAPICallError as error:
        return type(error).__name__
    return "ok"


def format_table(rows: list[Row]) -> str:
    """One line per observation: a scenario observing several things gets one line each."""
    header = ("scenario", "Google's emulator", "ours", "equal?")
    lines = []
    for row in rows:
        if isinstance(row.google, dict) and isinstance(row.ours, dict):
            keys = list(dict.fromkeys([*row.google, *row.ours]))
            for i, key in enumerate(keys):
                google, ours = row.google.get(key), row.ours.get(key)
                verdict = "yes" if google == ours else (f"no: {row.note}" if row.note else "NO")
                name = f"{row.scenario}: {key}" if i == 0 else f"  … {key}"
                lines.append((name, _short(google), _short(ours), verdict))
        else:
            lines.append((row.scenario, _short(row.google), _short(row.ours), _verdict(row)))
    widths = [max(len(str(x[i])) for x in [header, *lines]) for i in range(4)]
    out = [" | ".join(str(cell).ljust(w) for cell, w in zip(header, widths, strict=True))]
    out.append("-+-".join("-" * w for w in widths))
    out += [" | ".join(str(c).ljust(w) for c, w in zip(x, widths, strict=True)) for x in lines]
    return "\n".join(out)


def _verdict(row: Row) -> str:
    if row.equal:
        return "yes"
    return f"no: {row.note}" if row.note else "NO"


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 90 else text[:87] + "..."
