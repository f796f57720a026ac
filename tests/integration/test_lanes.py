"""Both lanes through one `cutq worker` on Google's Pub/Sub emulator: an interactive job
published behind a bulk backlog is served before the backlog, and every job of both lanes
ends once (the exactly-once rules hold per lane; the mixed-lane soak runs the faults)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

import pytest

from tests.support.cloud import Cloud, ThreadWorker
from tests.support.emulators import PubSubEmulator

BULK_JOBS = 40


@pytest.fixture
def cloud(pubsub_emulator: PubSubEmulator, gcs_bucket: str) -> Iterator[Cloud]:
    cloud = Cloud(pubsub_emulator, gcs_bucket, lanes=True)
    yield cloud
    cloud.close()


def first_completions(events: list[dict]) -> dict[str, datetime]:
    """job id → the time of its first (non-duplicate) ``completed`` event."""
    done: dict[str, datetime] = {}
    for event in events:
        data = event["body"]["data"]
        if data["status"] == "completed" and not data["duplicate"]:
            at = datetime.fromisoformat(event["body"]["time"].replace("Z", "+00:00"))
            done.setdefault(data["job_id"], at)
    return done


@pytest.mark.timeout(240)
def test_an_interactive_job_overtakes_the_bulk_backlog_and_every_job_ends_once(
    cloud: Cloud,
) -> None:
    """Plausible bugs this catches: the worker not pulling the bulk subscription (the bulk
    jobs never complete), or interactive jobs queued behind bulk ones (published after the
    first bulk job ended, the interactive one would end after most of the backlog)."""
    uris = cloud.upload_images(BULK_JOBS + 1)
    bulk_ids = cloud.publish_jobs(uris[:BULK_JOBS], bulk=lambda _: True)
    config = cloud.worker_config(max_batch=1, max_in_flight=4, resize="static")
    assert config.bulk_subscription == cloud.bulk_sub and config.interactive_reserve == 1
    worker = ThreadWorker(config)
    events: list[dict] = []
    deadline = time.monotonic() + 120
    while not first_completions(events) and time.monotonic() < deadline:
        events += cloud.pull_all(cloud.events_sub, expected=1, timeout_s=5)
    (urgent,) = cloud.publish_jobs(uris[BULK_JOBS:])  # no attribute, jobs topic: interactive
    ids = [*bulk_ids, urgent]
    while not set(ids) <= set(first_completions(events)) and time.monotonic() < deadline + 60:
        events += cloud.pull_all(cloud.events_sub, expected=1, timeout_s=5)
    worker.stop()
    events += cloud.drain(cloud.events_sub)
    done = first_completions(events)
    assert set(done) == set(ids), f"{len(set(ids) - set(done))} job(s) never completed"
    after = sum(1 for job in bulk_ids if done[job] > done[urgent])
    assert after >= BULK_JOBS // 2, f"only {after} bulk jobs ended after the interactive one"
    assert cloud.drain(cloud.dead_sub) == [] and cloud.drain(cloud.bulk_dead_sub) == []
    assert len(cloud.results()) == BULK_JOBS + 1
    stats = worker.stats
    assert (stats.completed, stats.failed) == (BULK_JOBS + 1, 0)
