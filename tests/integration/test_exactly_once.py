"""Exactly once under real delivery: real `cutq worker` processes, the real clients, real signals.

* A job in the backlog twice, two workers: one result object, one `completed` event that is
  not a duplicate, the other delivery reported as a duplicate.
* Two workers, a few hundred jobs each published once, no faults: every job is delivered once
  (issue 23 item 6: what was measured as redeliveries of finished jobs does not happen).
* SIGTERM in the middle of a backlog: the worker exits 0 within the grace period plus 1 s,
  and no message is delivered more often than it was really processed, plus one (the single
  nack that returns a held, unstarted message); nothing finished comes back as a duplicate.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from cutq.core.contract import new_job
from tests.support.cloud import Cloud, ThreadWorker, worker_process
from tests.support.emulators import PubSubEmulator


@pytest.fixture
def cloud(pubsub_emulator: PubSubEmulator, gcs_bucket: str) -> Iterator[Cloud]:
    """On Google's Pub/Sub emulator."""
    cloud = Cloud(pubsub_emulator, gcs_bucket)
    yield cloud
    cloud.close()


@pytest.fixture
def cloud_double(pubsub_double: PubSubEmulator, gcs_bucket: str) -> Iterator[Cloud]:
    """On our double: a second worker takes over the subscription after the first one's stream
    went away, which Google's emulator does not serve (tests/doubles/test_differential.py)."""
    cloud = Cloud(pubsub_double, gcs_bucket)
    yield cloud
    cloud.close()


def job_lines(log: str) -> dict[str, list[dict]]:
    """The worker's one JSON line per settled job, by job id."""
    lines: dict[str, list[dict]] = defaultdict(list)
    for text in log.splitlines():
        if not text.startswith("{"):
            continue
        entry = json.loads(text)
        if entry.get("logger") == "cutq.worker.joblog":
            lines[entry["job_id"]].append(entry)
    return lines


def stop(process: subprocess.Popen, timeout_s: float = 30) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    finally:
        process.kill()
        process.wait()
    if process.stdout is None:  # its output went to a file
        return ""
    with process.stdout:
        return process.stdout.read().decode()


@pytest.mark.timeout(240)
def test_one_job_twice_in_the_backlog_with_two_workers_ends_once(cloud: Cloud) -> None:
    (uri,) = cloud.upload_images(1)
    job = new_job(uri, cloud.output)
    for _ in range(2):
        cloud.publish_raw(job.to_message())
    config = cloud.worker_config(max_batch=1)
    workers = [worker_process(config), worker_process(config)]
    try:
        events = cloud.pull_all(cloud.events_sub, expected=2, timeout_s=120)
    finally:
        logs = [stop(process) for process in workers]
    data = [event["body"]["data"] for event in events]
    assert [d["job_id"] for d in data] == [job.job_id] * 2
    assert sorted(d["duplicate"] for d in data) == [False, True]
    assert {d["status"] for d in data} == {"completed"}
    assert len(cloud.results()) == 1
    statuses = Counter(
        line["status"] for log in logs for line in job_lines(log).get(job.job_id, [])
    )
    assert statuses == {"completed": 1, "duplicate": 1}, logs
    assert cloud.drain(cloud.dead_sub) == []


@pytest.mark.timeout(420)
def test_two_workers_and_a_few_hundred_jobs_deliver_every_job_once(
    cloud: Cloud, tmp_path: Path
) -> None:
    ids = cloud.publish_jobs(cloud.upload_images(240))
    config = cloud.worker_config(max_batch=8, max_in_flight=8, lease_extension_s=20)
    logs = [tmp_path / f"worker-{index}.log" for index in range(2)]
    workers = [worker_process(config, log_path=path) for path in logs]
    try:
        events = cloud.pull_all(cloud.events_sub, expected=len(ids), timeout_s=300)
    finally:
        for process in workers:
            stop(process, timeout_s=60)
    lines: dict[str, list[dict]] = defaultdict(list)
    for path in logs:
        for job_id, entries in job_lines(path.read_text()).items():
            lines[job_id] += entries
    assert sorted(e["body"]["data"]["job_id"] for e in events) == sorted(ids)
    again = {job_id: [e["status"] for e in entries] for job_id, entries in lines.items()}
    assert {job_id: s for job_id, s in again.items() if s != ["completed"]} == {}
    assert set(lines) == set(ids)
    assert not [line for entries in lines.values() for line in entries if line["ack_failed"]]
    assert cloud.drain(cloud.events_sub) == []  # no late event from a redelivery
    assert len(cloud.results()) == len(ids)


@pytest.mark.timeout(300)
def test_sigterm_mid_backlog_exits_in_grace_and_burns_no_delivery_attempts(
    cloud_double: Cloud,
) -> None:
    cloud = cloud_double
    grace_s = 5.0
    ids = cloud.publish_jobs(cloud.upload_images(200))
    process = worker_process(
        cloud.worker_config(max_batch=4, max_in_flight=32, max_wait_ms=50, grace_period_s=grace_s)
    )
    try:
        deadline = time.monotonic() + 120
        while len(cloud.results()) < 12 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = process.wait(timeout=60)
        took_s = time.monotonic() - signalled
    finally:
        log = stop(process)
    assert code == 0, log[-3000:]
    assert took_s <= grace_s + 1.0, f"exit took {took_s:.1f}s with a {grace_s}s grace period"
    first = job_lines(log)
    done_first = {job_id for job_id, lines in first.items() if lines[-1]["status"] == "completed"}
    assert 0 < len(done_first) < 200

    worker = ThreadWorker(cloud.worker_config())  # the rest, on a second worker
    events: list[dict] = []
    deadline = time.monotonic() + 180
    while len({e["body"]["data"]["job_id"] for e in events}) < 200 and time.monotonic() < deadline:
        events += cloud.pull_all(cloud.events_sub, expected=1, timeout_s=5)
    worker.stop()
    finals = {e["body"]["data"]["job_id"]: e["body"]["data"] for e in events}
    assert set(finals) == set(ids)
    assert all(data["status"] == "completed" for data in finals.values())
    assert not [e for e in events if e["body"]["data"]["duplicate"]], "a finished job came back"
    assert len(cloud.results()) == 200
    for job_id, data in finals.items():
        if job_id in done_first:
            continue
        processed = sum(line["status"] == "returned" for line in first.get(job_id, []))
        earlier_deliveries = data["attempt"] - 1
        assert earlier_deliveries <= processed + 1, (job_id, data["attempt"], first.get(job_id))
    assert cloud.drain(cloud.dead_sub) == []
