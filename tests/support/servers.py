"""The local GCS and Pub/Sub servers in a child process of their own.

Both servers are pure Python. Run inside the process under test they take its GIL, and on a
small CPU its cores, from the worker being exercised: a thousand-job test then measures lock
contention, not the worker. ``python -m tests.support.servers --gcs --pubsub`` prints one
JSON line with the addresses of the servers it started and serves until its stdin closes;
:func:`child_servers` starts it and stops it again.

Tests that reach into the Pub/Sub server's state (fake clocks, restarts) keep using the
in-process ``LocalPubSubServer`` instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def child_servers(*, gcs: bool = True, pubsub: bool = True) -> Iterator[dict[str, str]]:
    """Start the servers in a child process; yields ``{"gcs": url, "pubsub": host:port}``."""
    flags = [flag for flag, wanted in (("--gcs", gcs), ("--pubsub", pubsub)) if wanted]
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.support.servers", *flags],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        if not line:
            raise RuntimeError(f"the server process exited early (code {child.wait(10)})")
        yield json.loads(line)
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


@contextlib.contextmanager
def local_gcs() -> Iterator[str]:
    """gcp-storage-emulator in a child process; yields its URL.

    STORAGE_EMULATOR_HOST points at it while the context lasts. When the caller already
    points STORAGE_EMULATOR_HOST at a server, that one is used and nothing is started.
    """
    existing = os.environ.get("STORAGE_EMULATOR_HOST")
    if existing:
        yield existing
        return
    with child_servers(gcs=True, pubsub=False) as addresses:
        os.environ["STORAGE_EMULATOR_HOST"] = addresses["gcs"]
        try:
            yield addresses["gcs"]
        finally:
            del os.environ["STORAGE_EMULATOR_HOST"]


def _skip_metadata_snapshots() -> None:
    """Stop gcp-storage-emulator re-serialising every object's metadata on every write.

    After each write it dumps the metadata of all objects it holds to a ``.meta`` file, which
    it reads back only when it starts. In memory that file is never read again, and the dump
    makes each write cost O(objects held): a thousand-job test slowed down by every test
    before it. The objects themselves, and the answers the server gives, do not change.
    """
    from gcp_storage_emulator.storage import Storage

    Storage._write_config_to_file = lambda self: None  # type: ignore[method-assign]


def _honour_create_only_writes() -> None:
    """Make gcp-storage-emulator answer ``ifGenerationMatch=0`` the way Cloud Storage does.

    Cloud Storage's JSON API creates the object only if none exists when the request carries
    ``ifGenerationMatch=0``, and answers 412 Precondition Failed otherwise; the emulator ignores
    the parameter and overwrites. The worker's result writes are create-only (of two workers
    racing on one job exactly one may write), so the tests' server must decide like the real
    one: check and create under one lock, for media and multipart uploads (results are small;
    resumable uploads are not covered).
    """
    from http import HTTPStatus

    from gcp_storage_emulator.exceptions import NotFound
    from gcp_storage_emulator.handlers import objects
    from gcp_storage_emulator.server import HANDLERS

    original = objects.insert
    lock = threading.Lock()

    def insert(request, response, storage, *args, **kwargs):  # type: ignore[no-untyped-def]
        if request.query.get("ifGenerationMatch") != ["0"]:
            return original(request, response, storage, *args, **kwargs)
        name = (request.query.get("name") or [None])[0]
        if name is None and isinstance(request.data, dict):
            name = request.data.get("meta", {}).get("name")
        with lock:
            try:
                storage.get_file_obj(request.params["bucket_name"], name)
            except NotFound:
                return original(request, response, storage, *args, **kwargs)
            message = "At least one of the pre-conditions you specified did not hold."
            response.status = HTTPStatus.PRECONDITION_FAILED
            response.json(
                {
                    "error": {
                        "code": 412,
                        "message": message,
                        "errors": [
                            {"message": message, "domain": "global", "reason": "conditionNotMet"}
                        ],
                    }
                }
            )
            return None

    objects.insert = insert
    for _, handlers in HANDLERS:
        for method, handler in list(handlers.items()):
            if handler is original:
                handlers[method] = insert


def local_gcs_server(host: str, port: int) -> Any:
    """gcp-storage-emulator in memory, answering create-only writes as Cloud Storage does (the
    tests' server and ``make stack``'s); not started yet."""
    from gcp_storage_emulator.server import create_server

    _skip_metadata_snapshots()
    _honour_create_only_writes()
    return create_server(host, port, in_memory=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gcs", action="store_true", help="start gcp-storage-emulator")
    parser.add_argument("--pubsub", action="store_true", help="start LocalPubSubServer")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        addresses: dict[str, str] = {}
        if args.gcs:
            port = free_port()
            gcs = local_gcs_server("127.0.0.1", port)
            gcs.start()
            stack.callback(gcs.stop)
            addresses["gcs"] = f"http://127.0.0.1:{port}"
        if args.pubsub:
            from tests.doubles.pubsub import LocalPubSubServer

            addresses["pubsub"] = stack.enter_context(LocalPubSubServer()).address
        print(json.dumps(addresses), flush=True)
        sys.stdin.read()  # until the parent closes our stdin (or exits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
