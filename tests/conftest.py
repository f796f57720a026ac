"""Shared fixtures: local servers that speak the real protocols, started by the tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cutq.submitter.storage import reset_backends
from tests.support.servers import child_servers

pytest_plugins = ["tests.support.pubsub.fixtures"]

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[str]:
    """gcp-storage-emulator in a child process; yields its URL and sets STORAGE_EMULATOR_HOST.

    A child process, so that its request handling does not compete for this process's GIL
    (tests.support.servers). When the caller already points STORAGE_EMULATOR_HOST at a
    server, that one is used.
    """
    existing = os.environ.get("STORAGE_EMULATOR_HOST")
    if existing:
        yield existing
        return
    with child_servers(gcs=True, pubsub=False) as addresses:
        os.environ["STORAGE_EMULATOR_HOST"] = addresses["gcs"]
        reset_backends()
        try:
            yield addresses["gcs"]
        finally:
            del os.environ["STORAGE_EMULATOR_HOST"]
            reset_backends()


@pytest.fixture
def gcs_bucket(gcs_server: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket on the local GCS server; yields its name."""
    from cutq.submitter.storage import open_storage

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
