"""``cutq run`` end to end with the edge options and each result format (bundled model)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from cutq.cli import main
from tests.conftest import SAMPLES

SUBJECT = np.array([235.0, 200.0, 60.0])  # a warm disc …
BACKDROP = np.array([30.0, 60.0, 200.0])  # … on a blue backdrop, with a soft edge


def completed(out: Path) -> list[dict]:
    docs = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert all(doc["data"]["status"] == "completed" for doc in docs), docs
    return [doc["data"] for doc in docs]


def result_path(data: dict, kind: str = "cutout") -> Path:
    (output,) = [o for o in data["outputs"] if o["kind"] == kind]
    return Path(output["uri"].removeprefix("file://"))


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("samples")
    for name in ("red-ball.jpg", "brown-rgba.png"):
        shutil.copy(SAMPLES / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def soft_disc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The subject's colour is known: a disc with a 12 px soft edge over another colour."""
    height, width = 240, 320
    yy, xx = np.mgrid[0:height, 0:width]
    distance = np.hypot(yy - height / 2, xx - width / 2) - 70
    alpha = np.clip(0.5 - distance / 12.0, 0.0, 1.0)[..., None]
    rgb = alpha * SUBJECT + (1 - alpha) * BACKDROP
    path = tmp_path_factory.mktemp("disc") / "disc.png"
    Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8)).save(path)
    return path


def run(inputs: Path, out: Path, *flags: str) -> int:
    return main(["run", str(inputs), "--out", str(out), "--no-progress", *flags])


@pytest.mark.parametrize(
    ("flags", "suffix", "pil_format", "mode"),
    [
        (["--format", "jpeg", "--background", "#ffffff"], ".jpg", "JPEG", "RGB"),
        (["--format", "jpeg", "--background", "#ffffff", "--quality", "60"], ".jpg", "JPEG", "RGB"),
        (["--format", "webp", "--quality", "80"], ".webp", "WEBP", "RGBA"),
        pytest.param(
            ["--format", "avif", "--quality", "60"],
            ".avif",
            "AVIF",
            "RGBA",
            marks=pytest.mark.skipif(not features.check("avif"), reason="Pillow without AVIF"),
        ),
    ],
)
def test_each_format_through_cutq_run(
    samples: Path, tmp_path: Path, flags: list[str], suffix: str, pil_format: str, mode: str
) -> None:
    assert run(samples, tmp_path / "out", *flags) == 0
    for data in completed(tmp_path / "out"):
        path = result_path(data)
        assert path.suffix == suffix
        with Image.open(path) as image:
            assert image.format == pil_format and image.mode == mode
            assert image.size == (data["outputs"][0]["width"], data["outputs"][0]["height"])
            if mode == "RGB":  # composited on white: the corners are the background
                assert min(image.convert("RGB").getpixel((0, 0))) >= 235


def test_lossy_formats_are_smaller_and_quality_matters(samples: Path, tmp_path: Path) -> None:
    sizes = {}
    for name, flags in {
        "png": [],
        "webp-lossless": ["--format", "webp"],
        "webp-90": ["--format", "webp", "--quality", "90"],
        "webp-50": ["--format", "webp", "--quality", "50"],
    }.items():
        assert run(samples / "red-ball.jpg", tmp_path / name, *flags) == 0
        (data,) = completed(tmp_path / name)
        sizes[name] = data["outputs"][0]["size"]
    assert sizes["webp-50"] < sizes["webp-90"] < sizes["webp-lossless"] < sizes["png"]


def test_jpeg_masks_are_grayscale(samples: Path, tmp_path: Path) -> None:
    assert run(samples, tmp_path / "out", "--format", "jpeg", "--kind", "mask") == 0
    for data in completed(tmp_path / "out"):
        path = result_path(data, "mask")
        assert path.name.endswith(".mask.jpg")
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "L"


@pytest.mark.parametrize(
    "flags",
    [
        ["--format", "jpeg"],  # a JPEG cutout needs a background
        ["--format", "jpeg", "--background", "#ffffff80"],
        ["--format", "png", "--quality", "80"],
        ["--format", "webp", "--quality", "0"],
    ],
)
def test_bad_format_options_are_configuration_errors(
    samples: Path, tmp_path: Path, flags: list[str]
) -> None:
    assert run(samples, tmp_path / "out", *flags) == 2


def test_foreground_estimation_gives_edges_the_subjects_colour(
    soft_disc: Path, tmp_path: Path
) -> None:
    cutouts = {}
    for mode in ("none", "ml"):
        out = tmp_path / mode
        assert run(soft_disc, out, "--foreground", mode) == 0
        (data,) = completed(out)
        cutouts[mode] = np.asarray(Image.open(result_path(data)).convert("RGBA"), np.float64)
    alpha = cutouts["none"][..., 3]
    assert (cutouts["ml"][..., 3] == alpha).all()  # the mask is the same: only colours change
    edge = (alpha > 40) & (alpha < 215)
    assert edge.sum() > 200
    error = {
        mode: np.abs(cutout[..., :3][edge] - SUBJECT).mean() for mode, cutout in cutouts.items()
    }
    # The input's own colours carry the blue backdrop into the edge; the estimate moves them
    # towards the subject's (not all the way: u2netp's soft band also covers pure backdrop).
    assert error["none"] > 100
    assert error["ml"] < 0.8 * error["none"], error
    opaque = alpha == 255  # where nothing is mixed, the colours stay the input's
    assert np.abs(cutouts["ml"][..., :3][opaque] - cutouts["none"][..., :3][opaque]).mean() < 2


def test_post_process_and_matting_options_reach_the_mask(soft_disc: Path, tmp_path: Path) -> None:
    masks = {}
    for name, flags in {
        "plain": [],
        "post": ["--post-process"],
        "matting": ["--matting"],
    }.items():
        out = tmp_path / name
        assert run(soft_disc, out, "--kind", "mask", *flags) == 0
        (data,) = completed(out)
        masks[name] = np.asarray(Image.open(result_path(data, "mask")))
    assert set(np.unique(masks["post"])) <= {0, 255}  # opened, blurred, thresholded
    assert len(np.unique(masks["plain"])) > 2
    assert (masks["matting"] != masks["plain"]).any()
    assert len(np.unique(masks["matting"])) > 2  # matting keeps a soft edge


def test_cutq_eval_edges_and_formats_write_a_table_json_and_pictures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path = tmp_path / "report.json"
    code = main(
        [
            "eval",
            "--count",
            "2",
            "--device",
            "cpu",
            "--edges",
            "none,foreground=ml,post_process",
            "--formats",
            "--json",
            str(report_path),
            "--save-dir",
            str(tmp_path / "pictures"),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "composite error over" in printed and "post_process" in printed
    assert "jpeg q90 on white" in printed
    report = json.loads(report_path.read_text())
    variants = [row["variant"] for row in report["edges"]]
    assert variants[:3] == ["none", "foreground=ml", "post_process"]
    assert all(row["mae_band"] > 0 for row in report["edges"])
    assert {row["format"] for row in report["formats"]} >= {"png", "webp q80", "jpeg q80 on white"}
    height, width = report["images"][0]["height"], report["images"][0]["width"]
    with Image.open(tmp_path / "pictures" / "s0-0000.edges.png") as strip:
        assert strip.size == (4 * width, height + 16)  # input, then one cutout per variant
    assert main(["eval", "--count", "1", "--edges", "bogus"]) == 2
