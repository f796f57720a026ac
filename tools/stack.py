"""The queue path on a laptop: Google's Pub/Sub emulator, a local GCS, and a `cutq worker`.

``make stack`` (or ``python -m tools.stack``) starts Google's Pub/Sub emulator and
gcp-storage-emulator on fixed ports, creates the buckets, topics, subscriptions, retry and
dead-letter policy the way the Terraform module does (infra/terraform/modules/cutq, defaults),
writes the variables a client needs to ``out/stack.env``, and runs one `cutq worker` in the
foreground until Ctrl-C. In another shell::

    source out/stack.env
    cutq submit samples/ --wait --download out/stack

goes through the real queue path: staging upload → jobs topic → worker → results bucket →
events topic → download.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support holds the emulator launcher

from tests.support.emulators import GoogleEmulator, find_emulator  # noqa: E402
from tests.support.servers import local_gcs_server  # noqa: E402

PROJECT = "local"
PREFIX = "cutq"  # var.name_prefix
# The Terraform module's defaults (variables.tf), for the pull subscription.
ACK_DEADLINE_S = 120  # var.ack_deadline_seconds
RETRY_MIN_BACKOFF_S = 10  # var.retry_minimum_backoff_seconds
RETRY_MAX_BACKOFF_S = 600  # var.retry_maximum_backoff_seconds
MAX_DELIVERY_ATTEMPTS = 10  # var.max_delivery_attempts
BULK_RETRY_MIN_BACKOFF_S = 60  # var.bulk_retry_minimum_backoff_seconds
BULK_MAX_DELIVERY_ATTEMPTS = 10  # var.bulk_max_delivery_attempts
OUTPUT_PREFIX = "cutouts"  # var.output_prefix


def names(project: str = PROJECT) -> dict[str, str]:
    """Resource names as the Terraform module makes them (storage.tf, pubsub.tf)."""
    return {
        "inputs_bucket": f"{project}-{PREFIX}-inputs",
        "results_bucket": f"{project}-{PREFIX}-results",
        "jobs_topic": f"projects/{project}/topics/{PREFIX}-jobs",
        "events_topic": f"projects/{project}/topics/{PREFIX}-events",
        "dead_letter_topic": f"projects/{project}/topics/{PREFIX}-jobs-dead-letter",
        "bulk_topic": f"projects/{project}/topics/{PREFIX}-jobs-bulk",
        "bulk_dead_letter_topic": f"projects/{project}/topics/{PREFIX}-jobs-bulk-dead-letter",
        "jobs_subscription": f"projects/{project}/subscriptions/{PREFIX}-jobs-pull",
        "bulk_subscription": f"projects/{project}/subscriptions/{PREFIX}-jobs-bulk-pull",
        "dead_letter_subscription": (
            f"projects/{project}/subscriptions/{PREFIX}-jobs-dead-letter-inspect"
        ),
        "bulk_dead_letter_subscription": (
            f"projects/{project}/subscriptions/{PREFIX}-jobs-bulk-dead-letter-inspect"
        ),
        "events_subscription": f"projects/{project}/subscriptions/{PREFIX}-events-tail",
    }


TOPICS = ("jobs_topic", "bulk_topic", "events_topic", "dead_letter_topic", "bulk_dead_letter_topic")


def create_resources(n: dict[str, str]) -> None:
    """Buckets, topics and subscriptions (env already points at the emulators)."""
    from google.cloud import pubsub_v1, storage
    from google.pubsub_v1 import types as gapic

    gcs = storage.Client(project=PROJECT)
    for bucket in (n["inputs_bucket"], n["results_bucket"]):
        gcs.create_bucket(bucket)
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    try:
        for topic in TOPICS:
            publisher.create_topic(name=n[topic])
        # One lane each (docs/lanes.md): subscription, retry policy and dead letters.
        for lane, topic, dead, min_backoff_s, attempts in (
            ("jobs", "jobs_topic", "dead_letter", RETRY_MIN_BACKOFF_S, MAX_DELIVERY_ATTEMPTS),
            ("bulk", "bulk_topic", "bulk_dead_letter", BULK_RETRY_MIN_BACKOFF_S,
             BULK_MAX_DELIVERY_ATTEMPTS),
        ):  # fmt: skip
            subscriber.create_subscription(
                request=gapic.Subscription(
                    name=n[f"{lane}_subscription"],
                    topic=n[topic],
                    ack_deadline_seconds=ACK_DEADLINE_S,
                    retry_policy=gapic.RetryPolicy(
                        minimum_backoff={"seconds": min_backoff_s},
                        maximum_backoff={"seconds": RETRY_MAX_BACKOFF_S},
                    ),
                    dead_letter_policy=gapic.DeadLetterPolicy(
                        dead_letter_topic=n[f"{dead}_topic"],
                        max_delivery_attempts=attempts,
                    ),
                )
            )
            subscriber.create_subscription(name=n[f"{dead}_subscription"], topic=n[f"{dead}_topic"])
        subscriber.create_subscription(name=n["events_subscription"], topic=n["events_topic"])
    finally:
        subscriber.close()
        publisher.stop()
        publisher.transport.close()


def client_env(n: dict[str, str], pubsub_host: str, gcs_url: str) -> dict[str, str]:
    """What `cutq submit` (and any client) needs to use the stack."""
    return {
        "PUBSUB_EMULATOR_HOST": pubsub_host,
        "STORAGE_EMULATOR_HOST": gcs_url,
        "CUTQ_JOBS_TOPIC": n["jobs_topic"],
        "CUTQ_BULK_TOPIC": n["bulk_topic"],
        "CUTQ_EVENTS_TOPIC": n["events_topic"],
        "CUTQ_SUBMITTER_STAGING": f"gs://{n['inputs_bucket']}/staging",
        "CUTQ_SUBMITTER_OUTPUT": f"gs://{n['results_bucket']}/{OUTPUT_PREFIX}",
    }


def worker_env(n: dict[str, str], pubsub_host: str, gcs_url: str) -> dict[str, str]:
    """The worker's settings as the Terraform module gives them (main.tf worker_env)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUTQ_")}
    env.update(
        PUBSUB_EMULATOR_HOST=pubsub_host,
        STORAGE_EMULATOR_HOST=gcs_url,
        CUTQ_SUBSCRIPTION=n["jobs_subscription"],
        CUTQ_BULK_SUBSCRIPTION=n["bulk_subscription"],
        CUTQ_EVENTS_TOPIC=n["events_topic"],
        CUTQ_OUTPUT=f"gs://{n['results_bucket']}/{OUTPUT_PREFIX}",
        CUTQ_ALLOWED_BUCKETS=f"{n['inputs_bucket']},{n['results_bucket']}",
        CUTQ_DEVICE="cpu",
    )
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pubsub-port", type=int, default=8085)
    parser.add_argument("--gcs-port", type=int, default=9023)
    parser.add_argument("--env-file", type=Path, default=ROOT / "out" / "stack.env")
    args = parser.parse_args(argv)
    if find_emulator() is None:
        from tests.support.emulators import INSTALL_HINT

        print(INSTALL_HINT, file=sys.stderr)
        return 2
    # Ctrl-C and SIGTERM both stop the worker (SIGTERM: it drains), then the emulators.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    n = names()
    gcs_url = f"http://127.0.0.1:{args.gcs_port}"
    with contextlib.ExitStack() as stack:
        # Create-only writes (ifGenerationMatch=0) answer 412 as Cloud Storage does: a second
        # `cutq cancel` says "already cancelled", two workers never both write a result.
        gcs = local_gcs_server("127.0.0.1", args.gcs_port)
        gcs.start()
        stack.callback(gcs.stop)
        print(f"GCS (gcp-storage-emulator)   {gcs_url}", flush=True)
        pubsub = stack.enter_context(GoogleEmulator(port=args.pubsub_port))
        print(f"Pub/Sub (Google's emulator)  {pubsub.host}", flush=True)
        os.environ.update(PUBSUB_EMULATOR_HOST=pubsub.host, STORAGE_EMULATOR_HOST=gcs_url)
        create_resources(n)
        for key in ("inputs_bucket", "results_bucket"):
            print(f"  bucket        gs://{n[key]}")
        for key in TOPICS:
            print(f"  topic         {n[key]}")
        print(
            f"  subscription  {n['jobs_subscription']} (interactive; ack deadline "
            f"{ACK_DEADLINE_S} s, retry {RETRY_MIN_BACKOFF_S}-{RETRY_MAX_BACKOFF_S} s, dead "
            f"letter after {MAX_DELIVERY_ATTEMPTS} attempts)"
        )
        print(
            f"  subscription  {n['bulk_subscription']} (bulk; retry {BULK_RETRY_MIN_BACKOFF_S}-"
            f"{RETRY_MAX_BACKOFF_S} s, dead letter after {BULK_MAX_DELIVERY_ATTEMPTS} attempts)"
        )
        for key in ("dead_letter_subscription", "bulk_dead_letter_subscription",
                    "events_subscription"):  # fmt: skip
            print(f"  subscription  {n[key]}")
        args.env_file.parent.mkdir(parents=True, exist_ok=True)
        exports = client_env(n, pubsub.host, gcs_url)
        args.env_file.write_text("".join(f"export {k}={v}\n" for k, v in exports.items()))
        print(f"\nIn another shell:\n  source {os.path.relpath(args.env_file)}")
        print("  cutq submit samples/ --wait --download out/stack\n", flush=True)
        worker = subprocess.Popen(
            [sys.executable, "-m", "cutq.cli", "worker"],
            env=worker_env(n, pubsub.host, gcs_url),
        )
        stack.callback(_stop, worker)
        try:
            while worker.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("\nstopping", flush=True)
        return worker.returncode or 0
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


if __name__ == "__main__":
    sys.exit(main())
