"""Cancelling a bulk run while a worker serves it, on Google's Pub/Sub emulator and the local
GCS server, through the library calls (``Submitter.start_run``, ``Submitter.cancel``).

What it pins: once the worker's view holds the cancellation, no batch starts that it would
cover (checked at the model's door, not only at admission: jobs already loaded and waiting
for the model are not computed); every job not yet done ends ``cancelled`` within a bounded
time; the jobs done before keep their results; each job ends exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from cutq.core.contract import new_job
from cutq.core.control import RUN_ID_ATTRIBUTE
from cutq.submitter.client import Submitter, SubmitterConfig
from tests.support.cloud import Cloud, ThreadWorker
from tests.support.emulators import PubSubEmulator
from tests.support.ledger import pull_quietly, tally

JOBS = 1000
CANCEL_AFTER = 100
# Refresh (1 s) + settling ~900 jobs without computing them, each with its ending mark (one
# create-only write: issue 31): 51 s here against 40 s without marks, on the shared CPU.
CANCELLED_WITHIN_S = 90.0


@pytest.fixture
def cloud(pubsub_emulator: PubSubEmulator, gcs_bucket: str) -> Iterator[Cloud]:
    cloud = Cloud(pubsub_emulator, gcs_bucket)
    yield cloud
    cloud.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_cancelling_a_bulk_run_of_1000_midway(cloud: Cloud) -> None:
    inputs = cloud.upload_images(10)
    submitter = Submitter(
        SubmitterConfig(jobs_topic=cloud.jobs_topic, output=cloud.output.uri),
        publisher=cloud.publisher,
    )
    run_id = submitter.start_run(details={"jobs": JOBS})
    ids = []
    for index in range(JOBS):
        job = new_job(inputs[index % 10], cloud.output, job_id=f"bulk-{index:04d}")
        cloud.publisher.publish(cloud.jobs_topic, job.to_message(), **{RUN_ID_ATTRIBUTE: run_id})
        ids.append(job.job_id)
    # max_in_flight well above max_batch: many jobs are loaded and waiting for the model when
    # the cancellation lands, which is what the check at batch start is for.
    worker = ThreadWorker(cloud.worker_config(max_in_flight=48, control_refresh_s=1.0))
    watch = worker.service.cancellations
    assert watch is not None
    runner = worker.service.runner
    run, batches = runner.run, []

    def spy(tensors, urgent=False):  # type: ignore[no-untyped-def]
        # Whether the worker's view held the cancellation as this batch started.
        batches.append((len(tensors), watch.covers("-", run_id)))
        time.sleep(0.3)  # a slower model: loaded jobs queue at its door, as on a busy GPU
        return run(tensors, urgent)

    runner.run = spy  # type: ignore[method-assign]
    events: list[dict] = []
    try:
        while sum(e["body"]["data"]["status"] == "completed" for e in events) < CANCEL_AFTER:
            events += pull_quietly(cloud, cloud.events_sub)
        cancelled_at = time.monotonic()
        report = submitter.cancel(run_ids=[run_id], reason="started by mistake")
        assert report.cancelled == [f"run {run_id}"] and report.ok
        again = submitter.cancel(run_ids=[run_id, "run-that-never-was"])
        assert list(again.already) == [f"run {run_id}"] and again.cancelled == []
        assert again.unknown_runs == ["run-that-never-was"]
        while len({e["body"]["data"]["job_id"] for e in events}) < JOBS:
            assert time.monotonic() - cancelled_at < CANCELLED_WITHIN_S, "cancelling too slow"
            events += pull_quietly(cloud, cloud.events_sub)
        ended_s = time.monotonic() - cancelled_at
        visible_s = watch.seen_at[f"run {run_id}"] - cancelled_at
    finally:
        worker.stop()
    result = tally(ids, events, cloud.drain(cloud.dead_sub), cloud.results())
    computed_after = sum(size for size, visible in batches if visible)
    print(
        f"completed {result.completed}, cancelled {result.cancelled} of {JOBS}; "
        f"visible to the worker {visible_s:.2f} s after the cancel call; all ended "
        f"{ended_s:.1f} s after it; stats: {worker.stats.summary()}"
    )
    assert computed_after == 0, f"{computed_after} job(s) computed after the cancel was seen"
    result.assert_nothing_lost()
    assert result.completed + result.cancelled == JOBS and result.failed == 0
    assert CANCEL_AFTER <= result.completed < JOBS // 2, result.as_dict()
    assert sum(size for size, _ in batches) == result.completed, "computed = completed"
    assert worker.stats.cancelled >= result.cancelled  # and redeliveries of some
    done = {uri.rsplit("/", 1)[-1].split(".")[0] for uri in cloud.results()}
    assert len(done) == result.completed, "each completed job keeps its result, no other has one"
    assert visible_s <= 1.0 + 1.0, "seen within one refresh (plus one listing)"
