"""Soak cutq: N jobs through W `cutq worker` processes against local GCS and Pub/Sub servers,
with a fault every K seconds (SIGKILL + restart of a worker, a storage 503 burst, a SIGTERM
scale-in + restart, a Pub/Sub server restart, in rotation). Prints one JSON report: how every
job ended (lost, duplicated, computed twice and dead-lettered must be 0), throughput and the
workers' memory drift.

    python bench/soak.py --jobs 10000 --workers 2 --fault-every-s 15

Uses STORAGE_EMULATOR_HOST / PUBSUB_EMULATOR_HOST when they are set (an external Pub/Sub
emulator cannot be restarted: that fault is then skipped); otherwise starts the GCS emulator
in a child process and the Pub/Sub server in this one (its restart fault needs it).
Exit status 0 when nothing was lost, duplicated, computed twice or dead-lettered and every
scale-in exited 0 in time; 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.support holds the local servers and the soak itself

from cutq.core.storage import open_storage  # noqa: E402
from tests.doubles.pubsub.server import LocalPubSubServer  # noqa: E402
from tests.support.emulators import PubSubEmulator  # noqa: E402
from tests.support.servers import local_gcs  # noqa: E402
from tests.support.soak import SoakSettings, run_soak  # noqa: E402


@contextlib.contextmanager
def local_pubsub() -> Iterator[PubSubEmulator]:
    """A LocalPubSubServer in this process, unless PUBSUB_EMULATOR_HOST names one."""
    project = os.environ.get("PUBSUB_PROJECT_ID", "cutq-soak")
    existing = os.environ.get("PUBSUB_EMULATOR_HOST")
    if existing:
        yield PubSubEmulator(existing, project, None)
        return
    with LocalPubSubServer() as server:
        os.environ["PUBSUB_EMULATOR_HOST"] = server.address
        yield PubSubEmulator(server.address, project, server)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fault-every-s", type=float, default=15.0)
    parser.add_argument("--timeout-s", type=float, default=3600.0)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument(
        "--one-lane", action="store_true", help="every job on the jobs topic (no bulk lane)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    settings = SoakSettings(
        jobs=args.jobs,
        workers=args.workers,
        fault_every_s=args.fault_every_s,
        timeout_s=args.timeout_s,
        max_batch=args.max_batch,
        max_in_flight=max(16, 2 * args.max_batch),
        lanes=not args.one_lane,
    )
    with local_gcs() as gcs_url, local_pubsub() as emulator:
        bucket = f"soak-{uuid.uuid4().hex[:10]}"
        open_storage(f"gs://{bucket}").client.create_bucket(bucket)  # type: ignore[attr-defined]
        report = run_soak(emulator, gcs_url, bucket, settings)
    print(json.dumps(report, indent=2))
    clean = (
        report["lost"] == 0
        and report["duplicate_results"] == 0
        and not report["conflicting"]
        and report["computed_twice"] == 0
        and report["dead_lettered"] == 0
        and not report["scale_in_problems"]
    )
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
