"""Client to result through the real parts: Submitter → Pub/Sub → `cutq worker` → events → wait.

The submitter stages local files in GCS and publishes jobs; a worker (the `cutq worker` code
path) processes them; the watcher collects the completion events. Nothing simulated.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cutq.core.storage import open_storage
from cutq.submitter.client import Submitter, SubmitterConfig
from tests.support.cloud import Cloud, ThreadWorker, tiny_image
from tests.support.emulators import PubSubEmulator


@pytest.fixture
def cloud(pubsub_emulator: PubSubEmulator, gcs_bucket: str) -> Iterator[Cloud]:
    cloud = Cloud(pubsub_emulator, gcs_bucket)
    yield cloud
    cloud.close()


@pytest.mark.timeout(300)
def test_submit_500_local_files_and_wait_for_all(cloud: Cloud, tmp_path: Path) -> None:
    files = []
    for index in range(500):
        path = tmp_path / f"product-{index:03d}.png"
        path.write_bytes(tiny_image(index))
        files.append(path)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    config = SubmitterConfig(
        jobs_topic=cloud.jobs_topic,
        events_topic=cloud.events_topic,
        output=cloud.output.uri,
        staging=f"gs://{cloud.bucket}/staging",
    )
    worker = ThreadWorker(cloud.worker_config(max_batch=16, max_in_flight=64, io_threads=6))
    try:
        with Submitter(config) as submitter, submitter.watch() as watcher:
            handles = list(
                submitter.submit_many([*files, tmp_path / "broken.png"], attributes={"order": "42"})
            )
            results = watcher.wait(handles, timeout_s=240)
    finally:
        worker.stop()
    assert len(handles) == len({h.job_id for h in handles}) == 501
    by_id = {result.job_id: result for result in results}
    assert set(by_id) == {h.job_id for h in handles}
    broken = by_id[handles[-1].job_id]
    assert broken.status == "failed" and broken.error_code == "image_undecodable"
    done = [by_id[h.job_id] for h in handles[:-1]]
    assert all(result.status == "completed" for result in done)
    for handle in handles[:3]:  # the result is where the handle said it would be
        for uri in handle.result_uris.values():
            info = open_storage(uri).stat(uri)
            assert info is not None and info.size > 0
    assert len(cloud.results()) == 500
