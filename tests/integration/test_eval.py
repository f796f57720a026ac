"""``cutq eval`` end to end, and the bundled model's quality bar on the generated set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cutq.cli import main
from cutq.worker.evaluation.dataset import DEFAULT_SEED, generate
from cutq.worker.evaluation.evaluate import evaluate
from cutq.worker.models.u2netp import U2NetP
from cutq.worker.runtime.inference import Runner

#: The quality bar (issue 3): the bundled u2netp reaches this mean IoU at threshold 0.5.
MIN_MEAN_IOU = 0.85
#: The first images of the default set (seed 0, 80 images): the whole set takes ~45 s of
#: model time on a quiet 2-core CPU, too long for a shared CI box; `cutq eval` runs all 80.
SUBSET = 40


@pytest.mark.slow
def test_bundled_u2netp_reaches_the_quality_bar() -> None:
    runner = Runner(U2NetP(), "cpu")
    runner.setup()
    report = evaluate(runner, generate(SUBSET, DEFAULT_SEED), resize="static", max_batch=8)
    assert len(report.images) == SUBSET
    assert report.means["iou"] >= MIN_MEAN_IOU, report.render()
    assert report.means["s_measure"] >= 0.9, report.render()
    assert report.means["mae"] <= 0.03, report.render()
    assert report.images_per_s > 0


def test_cli_prints_a_table_writes_json_and_saves_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path, saved = tmp_path / "report.json", tmp_path / "saved"
    options = ["--json", str(report_path), "--save-dir", str(saved)]
    code = main(
        ["eval", "--count", "3", "--seed", "5", "--device", "cpu", "--max-batch", "2", *options]
    )
    assert code == 0
    table = capsys.readouterr().out
    assert "mIoU" in table and "images/s" in table and "u2netp" in table
    doc = json.loads(report_path.read_text())
    assert doc["model"]["name"] == "u2netp" and doc["model"]["version"]
    assert doc["device"] == "cpu" and doc["resize"] == "static" and doc["seed"] == 5
    assert doc["count"] == 3 and len(doc["images"]) == 3
    assert set(doc["mean"]) == {
        "iou",
        "mae",
        "s_measure",
        "max_f",
        "mean_f",
        "weighted_f",
        "mean_e",
    }
    assert doc["license"] == "Apache-2.0" and doc["commercial_use"] == "yes"
    assert doc["images_per_s"] > 0
    first = doc["images"][0]
    assert first["name"] == "s5-0000" and first["input_size"] == [320, 320]
    assert 0.0 <= first["iou"] <= 1.0
    assert len(list(saved.glob("*.png"))) == 9
    pred = np.asarray(Image.open(saved / "s5-0000.pred.png"))
    gt = np.asarray(Image.open(saved / "s5-0000.gt.png"))
    assert pred.shape == gt.shape == (first["height"], first["width"])


def test_cli_dynamic_resize_json_on_stdout_and_quality_gate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["eval", "--count", "1", "--seed", "7", "--device", "cpu"]
    assert main([*args, "--resize", "dynamic", "--json", "-"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["resize"] == "dynamic" and doc["count"] == 1
    for image in doc["images"]:
        h, w = image["input_size"]
        assert h % 32 == 0 and w % 32 == 0 and max(h, w) <= 640
    # A bar no model can meet: the command says so and exits 1.
    assert main([*args, "--min-iou", "1.01"]) == 1
    assert "below --min-iou" in capsys.readouterr().err


def test_cli_rejects_an_empty_set(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--count", "0"]) == 2
    assert "--count" in capsys.readouterr().err
