"""pytest fixtures for code that talks to Pub/Sub.

Load with `pytest_plugins = ["tests.support.pubsub.fixtures"]` (top-level conftest or test
module). `pubsub_emulator` is session-scoped: if PUBSUB_EMULATOR_HOST is already set (for
example to Google's emulator) the suite uses that server; otherwise it starts a
`LocalPubSubServer` on a free port and sets PUBSUB_EMULATOR_HOST for the session.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from google.cloud import pubsub_v1

from .server import LocalPubSubServer

EMULATOR_HOST_ENV = "PUBSUB_EMULATOR_HOST"
PROJECT_ENV = "PUBSUB_PROJECT_ID"
DEFAULT_PROJECT = "cutq-test"


@dataclass(frozen=True)
class PubSubEmulator:
    """Where the session's Pub/Sub is; `server` is None when it runs outside this process."""

    host: str
    project: str
    server: LocalPubSubServer | None

    def topic_path(self, prefix: str = "topic") -> str:
        """A fresh topic name (the server is shared by the whole session)."""
        return f"projects/{self.project}/topics/{_unique(prefix)}"

    def subscription_path(self, prefix: str = "sub") -> str:
        return f"projects/{self.project}/subscriptions/{_unique(prefix)}"


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[PubSubEmulator]:
    project = os.environ.get(PROJECT_ENV, DEFAULT_PROJECT)
    external = os.environ.get(EMULATOR_HOST_ENV)
    if external:
        yield PubSubEmulator(external, project, None)
        return
    with LocalPubSubServer() as server:
        os.environ[EMULATOR_HOST_ENV] = server.address
        try:
            yield PubSubEmulator(server.address, project, server)
        finally:
            del os.environ[EMULATOR_HOST_ENV]


@pytest.fixture
def pubsub_publisher(pubsub_emulator: PubSubEmulator) -> Iterator[pubsub_v1.PublisherClient]:
    """A PublisherClient for the session's server, flushed and closed afterwards."""
    publisher = pubsub_v1.PublisherClient()
    try:
        yield publisher
    finally:
        publisher.stop()
        publisher.transport.close()


@pytest.fixture
def pubsub_subscriber(pubsub_emulator: PubSubEmulator) -> Iterator[pubsub_v1.SubscriberClient]:
    """A SubscriberClient for the session's server, closed afterwards."""
    subscriber = pubsub_v1.SubscriberClient()
    try:
        yield subscriber
    finally:
        subscriber.close()
