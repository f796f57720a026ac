"""The local GCS and Pub/Sub servers for benchmarks, in a child process of their own.

The tests run them in-process; a benchmark should not, because both are pure Python and
would take the GIL (and, on a small CPU, the cores) from the worker being measured.
``python -m bench.servers`` prints one JSON line with their addresses and serves until its
stdin closes. :func:`local_cloud` starts it, points the environment at it and yields a
:class:`tests.support.cloud.Cloud` (topics, subscriptions, a bucket).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def local_cloud() -> Iterator[object]:
    """Servers in a child process; yields a fresh ``Cloud`` on them (the env is restored)."""
    from cutq.submitter.storage import open_storage, reset_backends
    from tests.support.cloud import Cloud
    from tests.support.pubsub import PubSubEmulator

    child = subprocess.Popen(
        [sys.executable, "-m", "bench.servers"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    saved = {k: os.environ.get(k) for k in ("STORAGE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST")}
    cloud = None
    try:
        assert child.stdout is not None
        addresses = json.loads(child.stdout.readline())
        os.environ["STORAGE_EMULATOR_HOST"] = addresses["gcs"]
        os.environ["PUBSUB_EMULATOR_HOST"] = addresses["pubsub"]
        reset_backends()
        bucket = f"bench-{uuid.uuid4().hex[:10]}"
        open_storage(f"gs://{bucket}").client.create_bucket(bucket)  # type: ignore[attr-defined]
        cloud = Cloud(PubSubEmulator(addresses["pubsub"], "cutq-bench", None), bucket)
        yield cloud
    finally:
        if cloud is not None:
            cloud.close()
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_backends()


def main() -> int:
    from gcp_storage_emulator.server import create_server

    from tests.support.pubsub import LocalPubSubServer

    port = _free_port()
    gcs = create_server("127.0.0.1", port, in_memory=True)
    gcs.start()
    with LocalPubSubServer() as pubsub:
        print(json.dumps({"gcs": f"http://127.0.0.1:{port}", "pubsub": pubsub.address}))
        sys.stdout.flush()
        sys.stdin.read()  # until the parent closes our stdin (or exits)
    gcs.stop()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
