"""pytest fixtures for code that talks to Pub/Sub.

Load with `pytest_plugins = ["tests.support.pubsub.fixtures"]` (top-level conftest or test
module). `pubsub_emulator` is session-scoped: if PUBSUB_EMULATOR_HOST is already set (for
example to Google's emulator) the suite uses that server; otherwise it starts a
`LocalPubSubServer` on a free port and sets PUBSUB_EMULATOR_HOST for the session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from google.cloud import pubsub_v1

from .emulator import PubSubEmulator
from .server import LocalPubSubServer

EMULATOR_HOST_ENV = "PUBSUB_EMULATOR_HOST"
PROJECT_ENV = "PUBSUB_PROJECT_ID"
DEFAULT_PROJECT = "cutq-test"


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
