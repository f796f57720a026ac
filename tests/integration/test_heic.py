"""HEIC (iPhones' default), made here by pillow-heif, through `cutq run` and through the queue
(`cutq submit` → Google's Pub/Sub emulator → a worker → the GCS emulator → download)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cutq.cli import main
from cutq.worker.render import colour
from tests.support.cloud import Cloud, ThreadWorker
from tests.support.emulators import PubSubEmulator


def heic_photo(path: Path) -> Path:
    """A red disc on green, saved as HEIC (HEVC inside) by pillow-heif."""
    import pillow_heif

    yy, xx = np.mgrid[0:120, 0:160]
    disc = np.hypot(yy - 60, xx - 80) < 40
    rgb = np.where(disc[..., None], [220, 30, 40], [40, 160, 60]).astype(np.uint8)
    pillow_heif.from_pillow(Image.fromarray(rgb)).save(path, quality=90)
    assert path.read_bytes()[4:12] == b"ftypheic"
    return path


def check_result(path: Path) -> None:
    with Image.open(path) as result:
        result.load()
        assert result.format == "PNG" and result.mode == "RGBA"
        assert result.size == (160, 120)
        assert result.info["icc_profile"] == colour.srgb_icc()
        alpha = np.asarray(result)[:, :, 3]
    assert alpha[60, 80] > 200 and alpha[5, 5] < 60  # the disc kept, the backdrop cut away


def test_a_heic_completes_through_cutq_run(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    heic_photo(inputs / "IMG_0001.HEIC")  # picked out of the folder by its suffix
    out = tmp_path / "out"
    assert main(["run", str(inputs), "--out", str(out), "--no-progress"]) == 0
    (event,) = [json.loads(line)["data"] for line in (out / "events.jsonl").read_text().split("\n")
                if line]  # fmt: skip
    assert event["status"] == "completed", event
    check_result(Path(event["outputs"][0]["uri"].removeprefix("file://")))


@pytest.fixture
def cloud(pubsub_emulator: PubSubEmulator, gcs_bucket: str) -> Iterator[Cloud]:
    cloud = Cloud(pubsub_emulator, gcs_bucket)
    yield cloud
    cloud.close()


@pytest.mark.timeout(240)
def test_a_heic_completes_through_the_queue(cloud: Cloud, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    heic_photo(inputs / "IMG_0002.heic")
    worker = ThreadWorker(cloud.worker_config())
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        code = main([
            "submit", str(inputs), "--no-progress", "--topic", cloud.jobs_topic,
            "--events-topic", cloud.events_topic, "--output", cloud.output.uri,
            "--staging", f"gs://{cloud.bucket}/staging", "--wait", "--timeout-s", "120",
            "--download", str(tmp_path / "down"),
        ])  # fmt: skip
    finally:
        root.handlers[:], root.level = handlers, level
        worker.stop()
    assert code == 0
    (downloaded,) = sorted((tmp_path / "down").iterdir())
    check_result(downloaded)
