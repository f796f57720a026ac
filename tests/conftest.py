"""Shared fixtures: local servers that speak the real protocols, started by the tests.

Pub/Sub is Google's own emulator (``pubsub_emulator``, one per session). Where it is not
installed, the tests that need it skip, naming the install command; with
``CUTQ_REQUIRE_EMULATORS=1`` (``.ci/run`` sets it) they fail instead, so CI never silently
drops them. Our own google.pubsub.v1 double (``pubsub_double``) serves only what Google's
emulator cannot: restarts with state kept, a controllable clock, injected stream faults.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.cloud import pubsub_v1

from tests.support.emulators import INSTALL_HINT, GoogleEmulator, PubSubEmulator, find_emulator
from tests.support.servers import local_gcs

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"

EMULATOR_HOST_ENV = "PUBSUB_EMULATOR_HOST"
REQUIRE_ENV = "CUTQ_REQUIRE_EMULATORS"
PROJECT = "cutq-test"


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[str]:
    """gcp-storage-emulator for the session (tests.support.servers.local_gcs); its URL.

    It runs in a child process, so that its request handling does not compete for this
    process's GIL. When STORAGE_EMULATOR_HOST already names a server, that one is used.
    """
    with local_gcs() as url:
        yield url


@pytest.fixture
def gcs_bucket(gcs_server: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket on the local GCS server; yields its name."""
    from cutq.core.storage import open_storage

    storage = open_storage("gs://x")
    name = "t-" + request.node.name.lower().replace("_", "-").replace("[", "-").strip("]-")[:40]
    name = "".join(ch if ch.isalnum() or ch == "-" else "-" for ch in name).rstrip("-")
    bucket = storage.client.bucket(name)  # type: ignore[attr-defined]
    if bucket.exists():
        for blob in storage.client.list_blobs(name):  # type: ignore[attr-defined]
            blob.delete()
    else:
        storage.client.create_bucket(name)  # type: ignore[attr-defined]
    return name


def missing_emulator(what: str) -> None:
    """Skip the test naming the install command, or fail it under CUTQ_REQUIRE_EMULATORS=1."""
    message = f"{what}: {INSTALL_HINT}"
    if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
        pytest.fail(f"{message} ({REQUIRE_ENV} is set: a missing emulator is an error)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def google_pubsub() -> Iterator[GoogleEmulator | None]:
    """Google's Pub/Sub emulator for the session (None when PUBSUB_EMULATOR_HOST names one).

    It takes seconds to start, so there is one per session and every test makes its own
    topics and subscriptions. Remember its quirk (tests.support.emulators): after a
    StreamingPull client disconnects, later messages on THAT subscription may never be
    delivered, so use one subscription per worker-process lifetime.
    """
    if os.environ.get(EMULATOR_HOST_ENV):
        yield None
        return
    if find_emulator() is None:
        missing_emulator("Google's Pub/Sub emulator")
    with GoogleEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="session")
def pubsub_emulator(google_pubsub: GoogleEmulator | None) -> Iterator[PubSubEmulator]:
    """Google's emulator as the session's PUBSUB_EMULATOR_HOST (or the external one named)."""
    external = os.environ.get(EMULATOR_HOST_ENV)
    if google_pubsub is None:
        assert external
        yield PubSubEmulator(external, os.environ.get("PUBSUB_PROJECT_ID", PROJECT))
        return
    os.environ[EMULATOR_HOST_ENV] = google_pubsub.host
    try:
        yield PubSubEmulator(google_pubsub.host, PROJECT)
    finally:
        del os.environ[EMULATOR_HOST_ENV]


@pytest.fixture
def pubsub_double(monkeypatch: pytest.MonkeyPatch) -> Iterator[PubSubEmulator]:
    """Our own Pub/Sub double (tests.doubles.pubsub), private to the test, as the test's
    PUBSUB_EMULATOR_HOST: for restarts with state kept, a clock, injected stream faults."""
    from tests.doubles.pubsub import LocalPubSubServer

    with LocalPubSubServer() as server:
        monkeypatch.setenv(EMULATOR_HOST_ENV, server.address)
        yield PubSubEmulator(server.address, "cutq-double", server)


@pytest.fixture
def pubsub_publisher(pubsub_emulator: PubSubEmulator) -> Iterator[pubsub_v1.PublisherClient]:
    """A PublisherClient for the session's emulator, flushed and closed afterwards."""
    publisher = pubsub_v1.PublisherClient()
    try:
        yield publisher
    finally:
        publisher.stop()
        publisher.transport.close()


@pytest.fixture
def pubsub_subscriber(pubsub_emulator: PubSubEmulator) -> Iterator[pubsub_v1.SubscriberClient]:
    """A SubscriberClient for the session's emulator, closed afterwards."""
    subscriber = pubsub_v1.SubscriberClient()
    try:
        yield subscriber
    finally:
        subscriber.close()
