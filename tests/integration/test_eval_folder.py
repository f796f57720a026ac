"""``cutq eval --data``: the user's own labelled photos in the DIS layout (im/, gt/), two models
side by side, a per-image CSV, and metrics equal to pysodmetrics' own on the same masks."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import py_sod_metrics as sod
import pytest
from PIL import Image

from cutq.cli import main
from cutq.worker.evaluation.dataset import generate
from tests.support import onnx_graphs

METRICS = ("iou", "mae", "s_measure", "max_f", "mean_f", "weighted_f", "mean_e")


def dis_folder(root: Path, count: int = 3) -> list[str]:
    """Photos as JPEG (im/) and masks as PNG (gt/), the way DIS5K ships them."""
    (root / "im").mkdir(parents=True)
    (root / "gt").mkdir()
    names = []
    for sample in generate(count, seed=11):
        name = f"sku-{sample.name}"
        Image.fromarray(sample.image).save(root / "im" / f"{name}.jpg", quality=92)
        Image.fromarray(np.where(sample.mask >= 128, 255, 0).astype(np.uint8)).save(
            root / "gt" / f"{name}.png"
        )
        names.append(name)
    (root / "im" / "notes.txt").write_text("not an image: ignored")
    return names


def weak_spec(folder: Path) -> Path:
    """A second model: one colour channel through a sigmoid (a poor but real saliency map)."""
    onnx_graphs.nchw_graph(folder / "weak.onnx", channel=0, gain=6.0, bias=-3.0)
    spec = folder / "weak.json"
    spec.write_text(
        json.dumps(
            {
                "name": "weak",
                "file": "weak.onnx",
                "input_size": [128, 128],
                "sigmoid": True,
                "license": "CC-BY-NC-4.0",
                "commercial_use": False,
            }
        )
    )
    return spec


def test_eval_scores_a_dis_folder_as_pysodmetrics_does_two_models_side_by_side(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "my-photos"
    names = dis_folder(data)
    spec = weak_spec(tmp_path)
    report, table, saved = tmp_path / "r.json", tmp_path / "scores.csv", tmp_path / "saved"
    code = main(
        ["eval", "--data", str(data), "--model-spec", str(spec), "--against", "u2netp",
         "--csv", str(table), "--device", "cpu", "--max-batch", "2", "--json", str(report),
         "--save-dir", str(saved)]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "weighted F" in out and "mean E" in out and "Δ u2netp" in out
    assert "u2netp: licence Apache-2.0, commercial use yes" in out
    assert "weak: licence CC-BY-NC-4.0, commercial use no" in out
    docs = json.loads(report.read_text())["reports"]
    assert [d["model"]["name"] for d in docs] == ["weak", "u2netp"]  # as docs/models.md shows
    assert all(d["source"] == str(data) and d["seed"] is None for d in docs)
    for doc, folder in ((docs[0], saved), (docs[1], saved / "u2netp")):
        assert [i["name"] for i in doc["images"]] == names
        # pysodmetrics' own evaluators, fed the masks cutq scored and the folder's gt files.
        mae, sm, wfm = sod.MAE(), sod.Smeasure(), sod.WeightedFmeasure()
        em = sod.Emeasure()
        fm = sod.FmeasureV2(
            {"f": sod.FmeasureHandler(with_dynamic=True, with_adaptive=False, beta=0.3)}
        )
        for name in names:
            pred = np.asarray(Image.open(folder / f"{name}.pred.png"))
            gt = np.asarray(Image.open(data / "gt" / f"{name}.png"))
            for metric in (mae, sm, wfm, em, fm):
                metric.step(pred=pred, gt=gt)
        expected = {
            "mae": mae.get_results()["mae"],
            "s_measure": sm.get_results()["sm"],
            "weighted_f": wfm.get_results()["wfm"],
            "mean_e": em.get_results()["em"]["curve"].mean(),
            "mean_f": fm.get_results()["f"]["dynamic"].mean(),
        }
        for key, value in expected.items():
            assert doc["mean"][key] == pytest.approx(float(value), abs=1e-9), key
        assert doc["dataset_max_f"] == pytest.approx(float(fm.get_results()["f"]["dynamic"].max()))
    assert docs[1]["mean"]["s_measure"] > docs[0]["mean"]["s_measure"]  # the weak one is
    with table.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * len(names)
    for row in rows:
        doc = docs[[d["model"]["name"] for d in docs].index(row["model"])]
        image = next(i for i in doc["images"] if i["name"] == row["image"])
        assert int(row["width"]) == image["width"] and row["version"] == doc["model"]["version"]
        for key in METRICS:
            assert float(row[key]) == pytest.approx(image[key], abs=1e-6)


def test_a_folder_that_does_not_pair_up_stops_before_any_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "set"
    names = dis_folder(data, count=2)
    (data / "gt" / f"{names[1]}.png").unlink()
    assert main(["eval", "--data", str(data), "--device", "cpu"]) == 2
    assert f"no mask in gt/ for {names[1]}.jpg" in capsys.readouterr().err
    Image.new("L", (7, 7)).save(data / "gt" / f"{names[1]}.png")
    assert main(["eval", "--data", str(data), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"{names[1]}.jpg is" in err and f"but its mask {names[1]}.png is 7×7" in err
    assert main(["eval", "--data", str(tmp_path / "none"), "--device", "cpu"]) == 2
    assert "the DIS layout" in capsys.readouterr().err
    assert main(["eval", "--data", str(data), "--count", "3"]) == 2
