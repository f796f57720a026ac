"""The local GCS and Pub/Sub servers for benchmarks, in a child process of their own.

Both are pure Python and would take the GIL (and, on a small CPU, the cores) from the worker
being measured, so they run in ``tests.support.servers``' child process. :func:`local_cloud`
points the environment at them and yields a :class:`tests.support.cloud.Cloud` (topics,
subscriptions, a bucket).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator


@contextlib.contextmanager
def local_cloud() -> Iterator[object]:
    """Servers in a child process; yields a fresh ``Cloud`` on them (the env is restored)."""
    from cutq.core.storage import open_storage
    from tests.support.cloud import Cloud
    from tests.support.emulators import PubSubEmulator
    from tests.support.servers import child_servers

    saved = {k: os.environ.get(k) for k in ("STORAGE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST")}
    try:
        with child_servers(gcs=True, pubsub=True) as addresses:
            os.environ["STORAGE_EMULATOR_HOST"] = addresses["gcs"]
            os.environ["PUBSUB_EMULATOR_HOST"] = addresses["pubsub"]
            bucket = f"bench-{uuid.uuid4().hex[:10]}"
            open_storage(f"gs://{bucket}").client.create_bucket(bucket)  # type: ignore[attr-defined]
            cloud = Cloud(PubSubEmulator(addresses["pubsub"], "cutq-bench", None), bucket)
            try:
                yield cloud
            finally:
                cloud.close()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
