"""Shared fixtures: local servers that speak the real protocols, started by the tests."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from cutq.submitter.storage import reset_backends

pytest_plugins = ["tests.support.pubsub.fixtures"]

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[str]:
    """gcp-storage-emulator in this process; yields its URL and sets STORAGE_EMULATOR_HOST.

    When the caller already points STORAGE_EMULATOR_HOST at a server, that one is used.
    """
    existing = os.environ.get("STORAGE_EMULATOR_HOST")
    if existing:
        yield existing
        return
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    url = f"http://127.0.0.1:{port}"
    os.environ["STORAGE_EMULATOR_HOST"] = url
    reset_backends()
    try:
        yield url
    finally:
        server.stop()
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
