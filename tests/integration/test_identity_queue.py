"""Results traced to their product on the queue path: ``cutq submit --ref '{parent}' --names …``
through Google's Pub/Sub emulator and the GCS emulator to a worker. Two products' photos share
a file name (``SKU-123/front.jpg``, ``SKU-456/front.jpg``); the events, the result objects'
metadata and the worker's log lines name each source and its ref, the result names follow the
template, a resubmission (the same jobs again) writes nothing new, and an object of another
job under a job's name is an ``output_collision``, never overwritten nor taken as done."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cutq.cli import main
from cutq.core.contract import OutputSpec
from cutq.core.request import JobRequest
from cutq.core.storage import open_storage
from cutq.submitter.client import NamedSource, Submitter, SubmitterConfig
from tests.conftest import SAMPLES
from tests.support.cloud import Cloud, ThreadWorker
from tests.support.emulators import PubSubEmulator

TEMPLATE = "{ref}_{stem}_{hash}.{rendition}.{ext}"


@pytest.fixture
def cloud(pubsub_emulator: PubSubEmulator, gcs_bucket: str) -> Iterator[Cloud]:
    cloud = Cloud(pubsub_emulator, gcs_bucket)
    yield cloud
    cloud.close()


@pytest.fixture
def job_lines() -> Iterator[list[str]]:
    """The worker's per-job log lines (a handler on its logger: main() resets the root's)."""
    lines: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("cutq.worker.joblog")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def submit(cloud: Cloud, inputs: Path, *extra: str) -> int:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return main([
            "submit", str(inputs), "--no-progress", "--topic", cloud.jobs_topic,
            "--events-topic", cloud.events_topic, "--output", cloud.output.uri,
            "--staging", f"gs://{cloud.bucket}/staging", "--wait", "--timeout-s", "120", *extra,
        ])  # fmt: skip
    finally:  # main() points logging at this test's captured stderr: put it back
        root.handlers[:], root.level = handlers, level


@pytest.mark.timeout(300)
def test_events_metadata_and_logs_name_each_source_and_its_ref(
    cloud: Cloud, tmp_path: Path, job_lines: list[str]
) -> None:
    inputs = tmp_path / "shoot"
    for sku, sample in (("SKU-123", "red-ball.jpg"), ("SKU-456", "orange-cmyk.jpg")):
        (inputs / sku).mkdir(parents=True)
        shutil.copy(SAMPLES / sample, inputs / sku / "front.jpg")
    worker = ThreadWorker(cloud.worker_config())
    try:
        assert submit(cloud, inputs, "--ref", "{parent}", "--names", TEMPLATE) == 0
        first = cloud.pull_all(cloud.events_sub, expected=2)
        names_after_first = sorted(cloud.results())
        assert submit(cloud, inputs, "--ref", "{parent}", "--names", TEMPLATE) == 0
        again = cloud.pull_all(cloud.events_sub, expected=2)
    finally:
        worker.stop()
    by_ref = {}
    for message in first:
        data, attributes = message["body"]["data"], message["attributes"]
        assert data["status"] == "completed" and data["duplicate"] is False
        assert data["input"].startswith(f"gs://{cloud.bucket}/staging/")  # the bytes' hash …
        assert data["name"] == f"{data['ref']}/front.jpg"  # … and the name it was sent under
        assert (attributes["ref"], attributes["name"]) == (data["ref"], data["name"])
        by_ref[data["ref"]] = data
    assert sorted(by_ref) == ["SKU-123", "SKU-456"]
    # Two sources named front.jpg: two objects, each named by the template.
    assert len(names_after_first) == 2
    storage = open_storage(f"gs://{cloud.bucket}")
    for ref, data in by_ref.items():
        (output,) = data["outputs"]
        assert output["uri"].rsplit("/", 1)[1] == f"{ref}_front_{data['job_id'][:12]}.cutout.png"
        info = storage.stat(output["uri"])
        assert info is not None
        assert info.metadata["cutq-ref"] == ref
        assert info.metadata["cutq-name"] == f"{ref}/front.jpg"
        assert info.metadata["cutq-job-id"] == data["job_id"]
        line = f"{data['job_id']} ref={ref} name={ref}/front.jpg batch="
        assert any(line in text for text in job_lines), job_lines
    # The same jobs again: the same names, nothing new written, the identity re-reported.
    assert sorted(cloud.results()) == names_after_first
    for message in again:
        data = message["body"]["data"]
        assert data["duplicate"] is True
        assert data["outputs"] == by_ref[data["ref"]]["outputs"]
        assert data["name"] == f"{data['ref']}/front.jpg"


@pytest.mark.timeout(300)
def test_another_jobs_object_under_a_jobs_name_is_an_output_collision(cloud: Cloud) -> None:
    output = OutputSpec(cloud.output.uri, template=TEMPLATE)
    config = SubmitterConfig(cloud.jobs_topic, output=output.uri, staging=f"gs://{cloud.bucket}/s")
    request = JobRequest(output=output, ref="SKU-9")
    source = NamedSource(SAMPLES / "red-ball.jpg", name="SKU-9/front.jpg")
    storage = open_storage(f"gs://{cloud.bucket}")
    with Submitter(config) as submitter:
        (taken,) = submitter.prepare(source, request).result_uris().values()
        storage.write(
            taken, b"not ours", content_type="image/png", metadata={"cutq-job-id": "other"}
        )
        handle = submitter.submit(source, request)
    worker = ThreadWorker(cloud.worker_config())
    try:
        (event,) = cloud.pull_all(cloud.events_sub, expected=1)
    finally:
        worker.stop()
    data = event["body"]["data"]
    assert (data["job_id"], data["status"]) == (handle.job_id, "failed")
    assert data["error"]["code"] == "output_collision"
    assert (data["ref"], data["name"]) == ("SKU-9", "SKU-9/front.jpg")
    assert storage.read(taken, max_bytes=100) == b"not ours"
