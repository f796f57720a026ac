"""`cutq worker` against the local GCS and Pub/Sub servers, with the real clients.

Each job must end exactly once as a result plus a `completed` event, as a `failed` event, or
in the dead-letter topic; nothing is acked before its result and event are durable.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from cutq.core.storage import open_storage
from cutq.worker.sources import StopReason
from tests.support.cloud import Cloud, ThreadWorker, worker_process
from tests.support.emulators import PubSubEmulator
from tests.support.faulty_proxy import Fault, FaultyProxy


@pytest.fixture
def cloud(pubsub_emulator: PubSubEmulator, gcs_bucket: str) -> Iterator[Cloud]:
    """On Google's Pub/Sub emulator. One worker per subscription: after a streaming client
    disconnects, the emulator may not deliver that subscription's messages again."""
    cloud = Cloud(pubsub_emulator, gcs_bucket)
    yield cloud
    cloud.close()


@pytest.fixture
def cloud_double(pubsub_double: PubSubEmulator, gcs_bucket: str) -> Iterator[Cloud]:
    """On our Pub/Sub double: for a second worker taking over a subscription after the first
    one's stream went away, which Google's emulator does not serve (see
    tests/doubles/test_differential.py)."""
    cloud = Cloud(pubsub_double, gcs_bucket)
    yield cloud
    cloud.close()


def completed_ids(events: list[dict]) -> Counter:
    return Counter(
        e["body"]["data"]["job_id"] for e in events if e["body"]["data"]["status"] == "completed"
    )


def completed_split(events: list[dict]) -> tuple[Counter, Counter]:
    """(first completions, re-emitted ones) per job id: ``"duplicate": false`` and ``true``."""
    first, again = Counter(), Counter()
    for e in events:
        data = e["body"]["data"]
        if data["status"] == "completed":
            (again if data["duplicate"] else first)[data["job_id"]] += 1
    return first, again


def pull_until_each_completed(cloud: Cloud, ids: list[str], timeout_s: float) -> list[dict]:
    """Events until every job has its first ``completed`` event."""
    events: list[dict] = []
    deadline = time.monotonic() + timeout_s
    while not set(ids) <= set(completed_split(events)[0]) and time.monotonic() < deadline:
        events += cloud.pull_all(cloud.events_sub, expected=1, timeout_s=5)
    return events


@pytest.mark.timeout(300)
def test_thousand_jobs_one_result_and_one_event_each(cloud: Cloud) -> None:
    """Every job is computed once: one result object and one ``completed`` event with
    ``"duplicate": false``. Pub/Sub may deliver a job again (Google's emulator does, for a
    few percent of these jobs: see the README's Development section); a redelivery finds the
    result and re-emits the event with ``"duplicate": true``, never a second first one."""
    uris = cloud.upload_images(1000)
    ids = cloud.publish_jobs(uris, attributes={"batch": "b1"})
    worker = ThreadWorker(cloud.worker_config(max_batch=16, max_in_flight=64, io_threads=6))
    events = pull_until_each_completed(cloud, ids, timeout_s=240)
    worker.stop()
    events += cloud.drain(cloud.events_sub)  # whatever it published until it stopped
    first, again = completed_split(events)
    attempts = Counter(
        e["body"]["data"]["attempt"] for e in events if e["body"]["data"]["duplicate"]
    )
    print(
        f"{len(events)} events, {len(again)} jobs re-emitted (attempts {attempts}); {worker.stats}"
    )
    assert first == Counter(ids)  # every job completed once as a first completion
    assert set(again) <= set(ids)  # anything more is a marked re-emission of a known job
    assert all(
        e["attributes"]["status"] == "completed" and e["attributes"]["batch"] == "b1"
        for e in events
    )
    assert len(cloud.results()) == 1000
    assert cloud.drain(cloud.dead_sub) == []
    computed = [e["body"]["data"] for e in events if not e["body"]["data"]["duplicate"]]
    assert worker.stats.batches < 1000 and max(d["batch_size"] for d in computed) > 1  # shared
    assert worker.stats.completed == 1000 and worker.stats.duplicates == sum(again.values())
    sample = computed[0]
    assert set(sample["timings_ms"]) >= {
        "queue",
        "download",
        "decode",
        "batch_wait",
        "infer",
        "encode",
        "upload",
        "total",
    }


def test_permanent_errors_become_failed_events_and_are_acked(cloud: Cloud) -> None:
    storage = open_storage(f"gs://{cloud.bucket}")
    storage.write(f"gs://{cloud.bucket}/in/text.png", b"just text", content_type="image/png")
    cloud.publish_raw(b"{not json")
    cloud.publish_raw(b"\xff\xfe\xfd")
    cloud.publish_raw(json.dumps({"input": f"gs://{cloud.bucket}/in/missing.png"}).encode())
    cloud.publish_raw(json.dumps({"input": f"gs://{cloud.bucket}/in/text.png"}).encode())
    cloud.publish_raw(json.dumps({"input": "gs://other-bucket/a.png"}).encode())
    cloud.publish_raw(json.dumps({"input": f"gs://{cloud.bucket}/a.png", "model": "x"}).encode())
    cloud.publish_raw(json.dumps({"input": f"gs://{cloud.bucket}/a.png", "size": 3}).encode())
    good = cloud.upload_images(1)
    cloud.publish_jobs(good)
    worker = ThreadWorker(cloud.worker_config(allowed_buckets=(cloud.bucket,)))
    events = cloud.pull_all(cloud.events_sub, expected=8)
    worker.stop()
    codes = Counter(e["body"]["data"].get("error", {}).get("code") for e in events)
    assert codes == Counter(
        {
            "invalid_message": 2,
            "input_not_found": 1,
            "image_undecodable": 1,
            "access_denied": 1,
            "unknown_model": 1,
            "invalid_job": 1,
            None: 1,
        }
    )
    assert all(
        e["attributes"]["error_code"] for e in events if e["attributes"]["status"] == "failed"
    )
    assert cloud.drain(cloud.jobs_sub) == [] and cloud.drain(cloud.dead_sub) == []
    assert worker.stats.failed == 7 and worker.stats.completed == 1


def test_duplicate_deliveries_write_one_result(cloud: Cloud) -> None:
    uris = cloud.upload_images(3)
    ids = cloud.publish_jobs(uris)
    worker = ThreadWorker(cloud.worker_config())
    first = cloud.pull_all(cloud.events_sub, expected=3)
    generations = {uri: open_storage(uri).stat(uri).generation for uri in cloud.results()}
    cloud.publish_jobs(uris)  # the same jobs again: same ids, same result paths
    again = cloud.pull_all(cloud.events_sub, expected=3)
    worker.stop()
    assert completed_ids(first) == completed_ids(again) == Counter(ids)
    assert all(e["body"]["data"]["duplicate"] for e in again)
    assert {e["body"]["data"]["outputs"][0]["uri"] for e in again} == set(generations)
    assert {
        uri: open_storage(uri).stat(uri).generation for uri in cloud.results()
    } == generations  # nothing rewritten
    assert worker.stats.duplicates == 3


def test_storage_outage_is_retried_then_dead_lettered(
    pubsub_emulator: PubSubEmulator, gcs_server: str, gcs_bucket: str
) -> None:
    cloud = Cloud(pubsub_emulator, gcs_bucket, max_delivery_attempts=5)
    uris = cloud.upload_images(2, prefix="ok") + cloud.upload_images(1, prefix="poison")
    poison = uris[-1]
    with FaultyProxy(gcs_server) as proxy:
        proxy.rule = lambda method, path: Fault(503) if "poison" in path else None
        os.environ["STORAGE_EMULATOR_HOST"] = proxy.url
        try:
            ids = cloud.publish_jobs(uris)
            worker = ThreadWorker(cloud.worker_config())
            events = cloud.pull_all(cloud.events_sub, expected=2)
            dead = cloud.pull_all(cloud.dead_sub, expected=1, timeout_s=60)
            worker.stop()
        finally:
            os.environ["STORAGE_EMULATOR_HOST"] = gcs_server
            cloud.close()
    assert completed_ids(events) == Counter(ids[:2])
    assert len(dead) == 1 and dead[0]["body"]["input"] == poison
    assert dead[0]["attributes"]["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert proxy.faults_served >= 5 and worker.stats.returned >= 5


def _wait_for_results(cloud: Cloud, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while len(cloud.results()) < count and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.mark.timeout(240)
def test_killed_worker_loses_nothing(cloud_double: Cloud) -> None:
    cloud = cloud_double
    uris = cloud.upload_images(120)
    ids = cloud.publish_jobs(uris)
    config = cloud.worker_config(max_batch=4, max_in_flight=16, max_wait_ms=200)
    process = worker_process(config)
    try:
        _wait_for_results(cloud, 8, timeout_s=90)  # mid-run: some done, some in flight
        assert process.poll() is None, process.stdout.read().decode()[-3000:]  # type: ignore[union-attr]
    finally:
        process.kill()
        process.wait(timeout=30)
        process.stdout.close()  # type: ignore[union-attr]
    done_by_first = len(cloud.results())
    assert 0 < done_by_first < 120
    worker = ThreadWorker(cloud.worker_config())  # another worker finishes the jobs
    events: list[dict] = []
    deadline = time.monotonic() + 150
    while set(completed_ids(events)) != set(ids) and time.monotonic() < deadline:
        events += cloud.pull_all(cloud.events_sub, expected=1, timeout_s=5)
    worker.stop()
    assert set(completed_ids(events)) == set(ids)  # every job completed, none lost
    assert len(cloud.results()) == 120  # one result each, however often delivered
    assert cloud.drain(cloud.dead_sub) == []


@pytest.mark.timeout(240)
def test_sigterm_drains_within_the_grace_period(cloud_double: Cloud) -> None:
    cloud = cloud_double
    uris = cloud.upload_images(60)
    ids = cloud.publish_jobs(uris)
    process = worker_process(
        cloud.worker_config(max_batch=4, max_in_flight=8, max_wait_ms=100, grace_period_s=20)
    )
    try:
        _wait_for_results(cloud, 4, timeout_s=90)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
        log = process.stdout.read().decode()  # type: ignore[union-attr]
    finally:
        process.kill()
        process.stdout.close()  # type: ignore[union-attr]
    assert code == 0, log[-3000:]
    assert "received SIGTERM" in log and "stopped:" in log
    finished = cloud.pull_all(cloud.events_sub, expected=len(cloud.results()), timeout_s=20)
    assert len(completed_ids(finished)) == len(cloud.results())  # each result has its event
    # Jobs it returned come back at once; any the client library still held when the stream
    # closed come back when their lease expires. Either way, none is lost.
    worker = ThreadWorker(cloud.worker_config())
    rest = cloud.pull_all(cloud.events_sub, expected=60 - len(finished), timeout_s=120)
    worker.stop()
    assert set(completed_ids(finished + rest)) == set(ids)
    assert len(cloud.results()) == 60


def test_drain_idle_exits_when_the_queue_is_empty(cloud: Cloud) -> None:
    ids = cloud.publish_jobs(cloud.upload_images(5))
    worker = ThreadWorker(cloud.worker_config(drain_idle_s=1.5))
    worker.thread.join(timeout=60)
    assert worker.reason is StopReason.IDLE
    assert completed_ids(cloud.pull_all(cloud.events_sub, expected=5)) == Counter(ids)
