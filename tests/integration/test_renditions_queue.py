"""``cutq submit --preset`` through Google's Pub/Sub emulator and the GCS emulator to a worker:
one job per image, each rendition in the bucket, verdicts and flags in the events (and, for a
resubmission, re-emitted from the objects' metadata without a second model run)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from cutq.cli import main
from cutq.core.tally import Exit
from tests.conftest import SAMPLES
from tests.support.cloud import Cloud, ThreadWorker
from tests.support.emulators import PubSubEmulator


@pytest.fixture
def cloud(pubsub_emulator: PubSubEmulator, gcs_bucket: str) -> Iterator[Cloud]:
    cloud = Cloud(pubsub_emulator, gcs_bucket)
    yield cloud
    cloud.close()


def submit(cloud: Cloud, inputs: Path, download: Path) -> int:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return main([
            "submit", str(inputs), "--no-progress", "--topic", cloud.jobs_topic,
            "--events-topic", cloud.events_topic, "--output", cloud.output.uri,
            "--staging", f"gs://{cloud.bucket}/staging", "--wait", "--timeout-s", "120",
            "--download", str(download), "--preset", "amazon-main", "--preset", "thumbnail",
        ])  # fmt: skip
    finally:  # main() points logging at this test's captured stderr: put it back
        root.handlers[:], root.level = handlers, level


@pytest.mark.timeout(300)
def test_submit_with_presets_through_the_emulators(cloud: Cloud, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("red-ball.jpg", "blue-pair.png", "teal.webp"):
        shutil.copy(SAMPLES / name, inputs / name)
    worker = ThreadWorker(cloud.worker_config())
    try:
        # Exit 3: the samples are under Amazon's 1000 px, so every amazon-main verdict fails.
        assert submit(cloud, inputs, tmp_path / "first") == Exit.VERDICT_FAIL
        first = cloud.pull_all(cloud.events_sub, expected=3)
        again = submit(cloud, inputs, tmp_path / "again")  # the same jobs: already done
        # --wait finds the results as objects before any event: their verdicts are unknown
        # to it, and unknown exits like a review (never as OK).
        assert again == Exit.REVIEW
        again = cloud.pull_all(cloud.events_sub, expected=3)
    finally:
        worker.stop()
    assert worker.stats.batches == 3  # three model runs for six pictures, none on resubmission
    downloaded = sorted(p.name for p in (tmp_path / "first").iterdir())
    assert len(downloaded) == 6
    assert sum(name.endswith(".amazon-main.jpg") for name in downloaded) == 3
    for path in (tmp_path / "first").glob("*.jpg"):
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.width == image.height
    assert len(cloud.results()) == 6
    by_id = {}
    for message in first:
        data = message["body"]["data"]
        assert data["status"] == "completed" and data["duplicate"] is False
        assert [o["name"] for o in data["outputs"]] == ["amazon-main", "thumbnail"]
        assert data["outputs"][0]["verdict"] == "fail"  # the samples are under 1000 px
        assert "zoom minimum" in data["outputs"][0]["failed"][0]
        assert message["attributes"]["flags"] == ",".join(data["flags"])
        by_id[data["job_id"]] = data
    for message in again:
        data = message["body"]["data"]
        assert data["duplicate"] is True
        earlier = by_id[data["job_id"]]
        assert data["outputs"] == earlier["outputs"]  # verdicts re-emitted from metadata
        assert (data["flags"], data["quality"]) == (earlier["flags"], earlier["quality"])
