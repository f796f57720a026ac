"""Submitter benchmark: bulk publish rate and the memory of listing a large prefix.

Prints one JSON object. Two measurements:

* ``publish``: ``Submitter.submit_many`` over N already-listed objects (no staging) against a
  local google.pubsub.v1 server (tests/doubles/pubsub), or the one ``PUBSUB_EMULATOR_HOST``
  names: jobs/s with batching and flow control, confirmed by the server.
* ``listing``: ``iter_inputs`` over a ``file://`` directory of M empty files, with peak RSS
  and the tracemalloc peak. It is a ``file://`` directory because gcp-storage-emulator
  rewrites its whole object index on every write (O(n) per write, so seeding 100,000 objects
  takes hours) and returns a listing in one page; the property measured — memory independent
  of the number of objects listed — comes from the same lazy iterator either way.

    .venv/bin/python bench/submit_bench.py --jobs 20000 --objects 100000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def bench_publish(count: int) -> dict[str, float]:
    from google.cloud import pubsub_v1

    from cutq.core.storage import ObjectInfo
    from cutq.submitter.client import Submitter, SubmitterConfig
    from tests.doubles.pubsub import LocalPubSubServer

    server = None
    if not os.environ.get("PUBSUB_EMULATOR_HOST"):
        server = LocalPubSubServer()
        server.start()
        os.environ["PUBSUB_EMULATOR_HOST"] = server.address
    topic, sub = "projects/bench/topics/jobs", "projects/bench/subscriptions/jobs"
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    try:
        publisher.create_topic(name=topic)
        subscriber.create_subscription(name=sub, topic=topic)
        sources = (
            ObjectInfo(f"gs://bench-inputs/p/{i:08d}.jpg", 1000, generation=i + 1)
            for i in range(count)
        )
        config = SubmitterConfig(topic, output="gs://bench-results/out")
        started = time.perf_counter()
        with Submitter(config) as submitter:
            published = sum(1 for _ in submitter.submit_many(sources))
        elapsed = time.perf_counter() - started
        backlog = server.state.stats(sub).backlog if server is not None else None
        return {
            "jobs": published,
            "seconds": round(elapsed, 3),
            "jobs_per_s": round(published / elapsed, 1),
            "server_backlog": backlog,
        }
    finally:
        subscriber.close()
        publisher.stop()
        publisher.transport.close()
        if server is not None:
            server.stop()


def bench_listing(count: int) -> dict[str, float]:
    from cutq.submitter.bulk import iter_inputs

    with tempfile.TemporaryDirectory(prefix="cutq-bench-") as directory:
        root = Path(directory)
        for shard in range(0, count, 1000):
            folder = root / f"{shard // 1000:04d}"
            folder.mkdir()
            for i in range(shard, min(shard + 1000, count)):
                (folder / f"{i:08d}.jpg").touch()
        rss_before = _rss_mb()
        tracemalloc.start()
        started = time.perf_counter()
        listed = sum(1 for _ in iter_inputs([root.as_uri()]))
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return {
            "objects": listed,
            "seconds": round(elapsed, 2),
            "objects_per_s": round(listed / elapsed, 0),
            "tracemalloc_peak_mb": round(peak / 2**20, 2),
            "rss_before_mb": round(rss_before, 1),
            "rss_peak_mb": round(_rss_mb(), 1),
        }


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs to publish")
    parser.add_argument("--objects", type=int, default=100_000, help="files to list")
    args = parser.parse_args()
    result = {"listing": bench_listing(args.objects), "publish": bench_publish(args.jobs)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
