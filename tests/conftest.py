"""Shared fixtures: local servers that speak the real protocols, started by the tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import local_gcs

pytest_plugins = ["tests.support.pubsub.fixtures"]

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


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
