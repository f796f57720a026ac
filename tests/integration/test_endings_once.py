"""Each job's ending is news once, whatever the ending, on Google's Pub/Sub emulator with two
workers (issue 31): a consumer counting ``duplicate: false`` events counts each job once.

* **Cancel under load**: a 600-job bulk run served by two workers is cancelled midway; the
  emulator redelivers some of the cancelled jobs (two subscribers), and each redelivery's
  ``cancelled`` event says ``duplicate: true``.
* **Duplicate publishes**: each job published three times, its ending ``completed``,
  ``failed`` (an ISO week date as deadline: not RFC 3339), ``failed`` ``deadline_exceeded``
  or ``cancelled``; whichever worker gets each copy, one event per job is news.

Each test prints one JSON line: events seen, repeats marked, the split of endings.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from cutq.core.contract import new_job
from cutq.core.control import RUN_ID_ATTRIBUTE, Expiry
from cutq.submitter.client import Submitter, SubmitterConfig
from tests.support.cloud import Cloud, ThreadWorker
from tests.support.emulators import PubSubEmulator
from tests.support.ledger import news_per_job, pull_quietly, tally

JOBS = 600
CANCEL_AFTER = 60


@pytest.fixture
def cloud(pubsub_emulator: PubSubEmulator, gcs_bucket: str) -> Iterator[Cloud]:
    cloud = Cloud(pubsub_emulator, gcs_bucket)
    yield cloud
    cloud.close()


def slowed(worker: ThreadWorker, seconds: float) -> None:
    """A slower model (``seconds`` a batch): jobs queue at its door, as on a busy GPU."""
    run = worker.service.runner.run

    def slow(tensors, **how):  # type: ignore[no-untyped-def]  # how: urgent (the lane policy)
        time.sleep(seconds)
        return run(tensors, **how)

    worker.service.runner.run = slow  # type: ignore[method-assign]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_cancelling_a_run_served_by_two_workers_reports_each_job_once(cloud: Cloud) -> None:
    inputs = cloud.upload_images(10)
    submitter = Submitter(
        SubmitterConfig(jobs_topic=cloud.jobs_topic, output=cloud.output.uri),
        publisher=cloud.publisher,
    )
    run_id = submitter.start_run(details={"jobs": JOBS})
    ids, futures = [], []
    for index in range(JOBS):
        job = new_job(inputs[index % 10], cloud.output, job_id=f"bulk-{index:04d}")
        attributes = {RUN_ID_ATTRIBUTE: run_id}
        futures.append(cloud.publisher.publish(cloud.jobs_topic, job.to_message(), **attributes))
        ids.append(job.job_id)
    for future in futures:
        future.result(timeout=30)
    config = cloud.worker_config(max_in_flight=48, control_refresh_s=1.0)
    workers = [ThreadWorker(config), ThreadWorker(config)]
    for worker in workers:
        slowed(worker, 0.2)
    events: list[dict] = []
    try:
        while sum(e["body"]["data"]["status"] == "completed" for e in events) < CANCEL_AFTER:
            events += pull_quietly(cloud, cloud.events_sub)
        submitter.cancel(run_ids=[run_id], reason="started by mistake")
        deadline = time.monotonic() + 120
        while len({e["body"]["data"]["job_id"] for e in events}) < JOBS:
            assert time.monotonic() < deadline, "not every job ended"
            events += pull_quietly(cloud, cloud.events_sub)
        quiet_until = time.monotonic() + 5  # late redeliveries' events
        while time.monotonic() < quiet_until:
            events += pull_quietly(cloud, cloud.events_sub)
    finally:
        for worker in workers:
            worker.stop()
    result = tally(ids, events, cloud.drain(cloud.dead_sub), cloud.results())
    news = news_per_job(events)
    statuses = Counter(
        (e["body"]["data"]["status"], e["body"]["data"]["duplicate"]) for e in events
    )
    print(
        json.dumps(
            {
                "scenario": "cancel-under-load",
                "workers": 2,
                "jobs": JOBS,
                "completed": result.completed,
                "cancelled": result.cancelled,
                "events": len(events),
                "by_status_duplicate": {f"{s}/{d}": n for (s, d), n in sorted(statuses.items())},
                "jobs_with_one_news_event": sum(n == 1 for n in news.values()),
            }
        )
    )
    result.assert_nothing_lost()
    assert result.completed + result.cancelled == JOBS and result.dead_lettered == 0
    assert result.cancelled > 0, "the cancel landed after every job was done: nothing tested"
    assert news == dict.fromkeys(ids, 1), {k: n for k, n in news.items() if n != 1}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_three_publishes_of_each_job_to_two_workers_make_one_news_event_per_job(
    cloud: Cloud,
) -> None:
    inputs = cloud.upload_images(8)
    submitter = Submitter(
        SubmitterConfig(jobs_topic=cloud.jobs_topic, output=cloud.output.uri),
        publisher=cloud.publisher,
    )
    past = Expiry(deadline=datetime(2020, 1, 1, tzinfo=timezone.utc))  # expired everywhere
    expected: dict[str, tuple[str, str | None]] = {}
    messages: dict[str, bytes] = {}
    for index, uri in enumerate(inputs * 5):  # 40 jobs, 10 of each ending
        kind = ("completed", "invalid", "expired", "cancelled")[index % 4]
        job_id = f"{kind}-{index:03d}"
        job = new_job(uri, cloud.output, job_id=job_id, expiry=past if kind == "expired" else None)
        body = json.loads(job.to_message())
        if kind == "invalid":
            body["deadline"] = "2099-W01-1T00:00:00Z"  # ISO 8601, not RFC 3339: refused
        messages[job_id] = json.dumps(body).encode()
        expected[job_id] = {
            "completed": ("completed", None),
            "invalid": ("failed", "invalid_job"),
            "expired": ("failed", "deadline_exceeded"),
            "cancelled": ("cancelled", None),
        }[kind]
    cancelled = [job_id for job_id, (status, _) in expected.items() if status == "cancelled"]
    submitter.cancel(job_ids=cancelled)  # before the workers start: in their first listing
    for _ in range(3):
        for data in messages.values():
            cloud.publish_raw(data)
    workers = [ThreadWorker(cloud.worker_config(max_batch=4)) for _ in range(2)]
    try:
        events = cloud.pull_all(cloud.events_sub, expected=3 * len(messages), timeout_s=180)
        time.sleep(3)
        events += cloud.drain(cloud.events_sub)  # late redeliveries' events
    finally:
        for worker in workers:
            worker.stop()
    data = [event["body"]["data"] for event in events]
    endings = {(d["job_id"], d["status"], (d.get("error") or {}).get("code")) for d in data}
    assert endings == {(job_id, *ending) for job_id, ending in expected.items()}
    news = news_per_job(events)
    print(
        json.dumps(
            {
                "scenario": "three-publishes",
                "workers": 2,
                "jobs": len(messages),
                "events": len(events),
                "news": sum(news.values()),
                "repeats": sum(d["duplicate"] for d in data),
                "by_status": dict(Counter(d["status"] for d in data)),
            }
        )
    )
    assert news == dict.fromkeys(messages, 1), {k: n for k, n in news.items() if n != 1}
    assert cloud.drain(cloud.dead_sub) == []
    done = sum(status == "completed" for status, _ in expected.values())
    assert len(cloud.results()) == done  # one object per completed job, none for the others
