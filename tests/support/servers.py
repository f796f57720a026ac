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
from collections.abc import Iterator
from pathlib import Path

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
    from cutq.submitter.storage import reset_backends

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


def _skip_metadata_snapshots() -> None:
    """Stop gcp-storage-emulator re-serialising every object's metadata on every write.

    After each write it dumps the metadata of all objects it holds to a ``.meta`` file, which
    it reads back only when it starts. In memory that file is never read again, and the dump
    makes each write cost O(objects held): a thousand-job test slowed down by every test
    before it. The objects themselves, and the answers the server gives, do not change.
    """
    from gcp_storage_emulator.storage import Storage

    Storage._write_config_to_file = lambda self: None  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gcs", action="store_true", help="start gcp-storage-emulator")
    parser.add_argument("--pubsub", action="store_true", help="start LocalPubSubServer")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        addresses: dict[str, str] = {}
        if args.gcs:
            from gcp_storage_emulator.server import create_server

            _skip_metadata_snapshots()
            port = free_port()
            gcs = create_server("127.0.0.1", port, in_memory=True)
            gcs.start()
            stack.callback(gcs.stop)
            addresses["gcs"] = f"http://127.0.0.1:{port}"
        if args.pubsub:
            from tests.support.pubsub import LocalPubSubServer

            addresses["pubsub"] = stack.enter_context(LocalPubSubServer()).address
        print(json.dumps(addresses), flush=True)
        sys.stdin.read()  # until the parent closes our stdin (or exits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
