"""`make stack` (tools/stack.py): Google's Pub/Sub emulator, a local GCS and a worker; then
`cutq submit samples/ --wait --download` through the real queue path, as the README shows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES
from tests.infra.tfconfig import MODULE, TerraformConfig
from tests.support.emulators import find_emulator, free_port
from tools import stack


def test_stack_creates_what_the_terraform_module_does() -> None:
    module = TerraformConfig.load(MODULE)
    defaults = {name: body.get("default") for name, body in module.variables.items()}
    assert defaults["ack_deadline_seconds"] == stack.ACK_DEADLINE_S
    assert defaults["retry_minimum_backoff_seconds"] == stack.RETRY_MIN_BACKOFF_S
    assert defaults["retry_maximum_backoff_seconds"] == stack.RETRY_MAX_BACKOFF_S
    assert defaults["max_delivery_attempts"] == stack.MAX_DELIVERY_ATTEMPTS
    assert defaults["bulk_retry_minimum_backoff_seconds"] == stack.BULK_RETRY_MIN_BACKOFF_S
    assert defaults["bulk_max_delivery_attempts"] == stack.BULK_MAX_DELIVERY_ATTEMPTS
    assert defaults["output_prefix"] == stack.OUTPUT_PREFIX
    assert defaults["name_prefix"] == stack.PREFIX
    names = stack.names("p")
    topics = module.per_lane("google_pubsub_topic", "jobs")
    pulls = module.per_lane("google_pubsub_subscription", "jobs_pull")
    dead_topics = module.per_lane("google_pubsub_topic", "dead_letter")
    dead_subs = module.per_lane("google_pubsub_subscription", "dead_letter")
    for ours, theirs in (
        (names["jobs_subscription"], pulls["interactive"]["name"]),
        (names["dead_letter_subscription"], dead_subs["interactive"]["name"]),
        (names["dead_letter_topic"], dead_topics["interactive"]["name"]),
        (names["bulk_topic"], topics["bulk"]["name"]),
        (names["bulk_subscription"], pulls["bulk"]["name"]),
        (names["bulk_dead_letter_topic"], dead_topics["bulk"]["name"]),
        (names["bulk_dead_letter_subscription"], dead_subs["bulk"]["name"]),
    ):
        assert ours.rsplit("/", 1)[1] == theirs.replace("${var.name_prefix}", stack.PREFIX)


@pytest.mark.timeout(180)
def test_make_stack_then_submit_samples_wait_and_download(
    google_pubsub: object, tmp_path: Path
) -> None:
    if find_emulator() is None:  # google_pubsub skipped already unless an external one is set
        pytest.skip("the stack starts its own Google emulator, and none is installed here")
    env_file = tmp_path / "stack.env"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.stack", "--pubsub-port", str(free_port()),
         "--gcs-port", str(free_port()), "--env-file", str(env_file)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    log: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line)
            if "pulling from" in line:
                break
        assert env_file.exists(), "".join(log)
        client_env = dict(env)
        for line in env_file.read_text().splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            client_env[key] = value
        _check_subscription(client_env["PUBSUB_EMULATOR_HOST"])
        started = time.monotonic()
        submit = subprocess.run(
            [sys.executable, "-m", "cutq.cli", "submit", str(SAMPLES), "--wait",
             "--timeout-s", "120", "--download", str(tmp_path / "out")],
            env=client_env,
            capture_output=True,
            text=True,
            timeout=150,
        )  # fmt: skip
        assert submit.returncode == 0, submit.stdout + submit.stderr
        assert "completed 8, failed 0" in submit.stdout, submit.stdout
        print(f"submit --wait took {time.monotonic() - started:.1f} s")
        _check_create_only(client_env)
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=60)
        log.append(rest)
    assert process.returncode == 0, "".join(log)[-3000:]
    assert "stopped: 8 completed, 0 failed" in "".join(log)
    samples = sorted(p for p in SAMPLES.iterdir() if p.suffix in {".png", ".jpg", ".webp"})
    downloaded = sorted((tmp_path / "out").iterdir())
    assert len(downloaded) == len(samples) == 8
    assert all(p.suffix == ".png" and p.stat().st_size > 0 for p in downloaded)


def _check_create_only(client_env: dict[str, str]) -> None:
    """The stack's GCS refuses a second create-only write (ifGenerationMatch=0) as Cloud
    Storage does, so a second `cutq cancel` says "already cancelled" there too."""
    uri = client_env["CUTQ_SUBMITTER_OUTPUT"] + "/create-only-probe"
    code = (
        "import sys\n"
        "from cutq.core.errors import AlreadyExists\n"
        "from cutq.core.storage import open_storage\n"
        "storage = open_storage(sys.argv[1])\n"
        "storage.write(sys.argv[1], b'first', content_type='text/plain', if_absent=True)\n"
        "try:\n"
        "    storage.write(sys.argv[1], b'second', content_type='text/plain', if_absent=True)\n"
        "except AlreadyExists:\n"
        "    print('refused', storage.read(sys.argv[1], max_bytes=100))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, uri], env=client_env, capture_output=True, text=True
    )
    assert done.stdout.strip() == "refused b'first'", done.stdout + done.stderr


def _check_subscription(host: str) -> None:
    """Both lanes' subscriptions on the stack's emulator have the Terraform module's policies."""
    from google.cloud import pubsub_v1

    from tests.doubles.differential import pointed_at

    with pointed_at(host):
        subscriber = pubsub_v1.SubscriberClient()
    try:
        names = stack.names()
        sub = subscriber.get_subscription(subscription=names["jobs_subscription"])
        bulk = subscriber.get_subscription(subscription=names["bulk_subscription"])
    finally:
        subscriber.close()
    assert bulk.topic == names["bulk_topic"]
    assert bulk.retry_policy.minimum_backoff.total_seconds() == stack.BULK_RETRY_MIN_BACKOFF_S
    assert bulk.dead_letter_policy.dead_letter_topic == names["bulk_dead_letter_topic"]
    assert bulk.dead_letter_policy.max_delivery_attempts == stack.BULK_MAX_DELIVERY_ATTEMPTS
    assert sub.topic == names["jobs_topic"]
    assert sub.ack_deadline_seconds == stack.ACK_DEADLINE_S
    assert sub.retry_policy.minimum_backoff.total_seconds() == stack.RETRY_MIN_BACKOFF_S
    assert sub.retry_policy.maximum_backoff.total_seconds() == stack.RETRY_MAX_BACKOFF_S
    assert sub.dead_letter_policy.dead_letter_topic == names["dead_letter_topic"]
    assert sub.dead_letter_policy.max_delivery_attempts == stack.MAX_DELIVERY_ATTEMPTS
