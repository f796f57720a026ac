"""Bulk publish rate before and after named requests and per-source identity.

Prints one JSON object: ``Submitter.submit_many`` over N already-listed objects (no staging)
against the local google.pubsub.v1 server (tests/doubles/pubsub), in alternating rounds with

* ``before``: ``submitter/client.py`` as it was at ``--base`` (read with ``git show``),
* ``after``: today's client with plain sources,
* ``named``: today's client with each source a ``NamedSource`` carrying a name and a ref,

and the ratios of their median rates (1.0: no change).

    .venv/bin/python bench/identity_bench.py --jobs 3000 --rounds 3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def load_old_client(base: str):  # type: ignore[no-untyped-def]
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{base}:submitter/client.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="cutq-bench-")) / "old_client.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("cutq_old_client", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def one_round(client, topic: str, count: int, named: bool, offset: int) -> float:  # type: ignore[no-untyped-def]
    from cutq.core.storage import ObjectInfo
    from cutq.submitter.staging import NamedSource

    infos = (
        ObjectInfo(f"gs://bench-inputs/p/{offset + i:08d}.jpg", 1000, generation=i + 1)
        for i in range(count)
    )
    sources = (
        (
            NamedSource(info, name=f"SKU-{i // 4}/{i % 4}.jpg", ref=f"SKU-{i // 4}")
            for i, info in enumerate(infos)
        )
        if named
        else infos
    )
    config = client.SubmitterConfig(topic, output="gs://bench-results/out")
    started = time.perf_counter()
    with client.Submitter(config) as submitter:
        published = sum(1 for _ in submitter.submit_many(sources))
    assert published == count
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base", default="2a700bc", help="the commit 'before' is read from")
    args = parser.parse_args()

    from google.cloud import pubsub_v1

    from cutq.submitter import client as new_client
    from tests.doubles.pubsub import LocalPubSubServer

    old_client = load_old_client(args.base)
    server = LocalPubSubServer()
    server.start()
    os.environ["PUBSUB_EMULATOR_HOST"] = server.address
    topic, sub = "projects/bench/topics/jobs", "projects/bench/subscriptions/jobs"
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    rates: dict[str, list[float]] = {"before": [], "after": [], "named": []}
    try:
        publisher.create_topic(name=topic)
        subscriber.create_subscription(name=sub, topic=topic)
        offset = 0
        for _ in range(args.rounds):
            for label, client, named in (
                ("before", old_client, False),
                ("after", new_client, False),
                ("named", new_client, True),
            ):
                rates[label].append(one_round(client, topic, args.jobs, named, offset))
                offset += args.jobs
    finally:
        subscriber.close()
        publisher.stop()
        publisher.transport.close()
        server.stop()
    medians = {label: statistics.median(values) for label, values in rates.items()}
    print(
        json.dumps(
            {
                "jobs_per_round": args.jobs,
                "rounds": args.rounds,
                "jobs_per_s": {k: [round(v, 1) for v in values] for k, values in rates.items()},
                "after_over_before": round(medians["after"] / medians["before"], 3),
                "named_over_before": round(medians["named"] / medians["before"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
