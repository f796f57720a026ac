"""``cutq run`` end to end on the bundled samples with the bundled model (no cloud)."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cutq.cli import main
from tests.conftest import SAMPLES


def events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    for name in ("red-ball.jpg", "green-rotated-exif.jpg", "orange-cmyk.jpg", "brown-rgba.png"):
        shutil.copy(SAMPLES / name, folder / name)
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    (folder / "notes.txt").write_text("not an image: ignored when scanning a directory")
    return folder


def test_run_writes_one_rgba_png_and_one_event_per_input(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = main(["run", str(inputs), "--out", str(out), "--no-progress", "--max-batch", "2"])
    assert code == 1  # one input failed
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    results = sorted((out / f"dt={today}").glob("*.png"))
    assert len(results) == 4
    docs = events(out)
    assert len(docs) == 5
    by_input = {Path(doc["data"]["input"]).name: doc["data"] for doc in docs}
    assert by_input["corrupt.jpg"]["status"] == "failed"
    assert by_input["corrupt.jpg"]["error"]["code"] == "image_undecodable"
    for name in ("red-ball.jpg", "green-rotated-exif.jpg", "orange-cmyk.jpg", "brown-rgba.png"):
        data = by_input[name]
        assert data["status"] == "completed", data
        output = data["outputs"][0]
        image = Image.open(output["uri"].removeprefix("file://"))
        assert image.mode == "RGBA"
        assert (image.width, image.height) == (output["width"], output["height"])
        assert set(data["timings_ms"]) >= {
            "queue",
            "download",
            "decode",
            "batch_wait",
            "infer",
            "encode",
            "upload",
            "total",
        }
        alpha = np.asarray(image)[:, :, 3]
        centre = alpha[
            alpha.shape[0] // 3 : 2 * alpha.shape[0] // 3,
            alpha.shape[1] // 3 : 2 * alpha.shape[1] // 3,
        ]
        assert centre.mean() > 200 and alpha[:4].mean() < 30  # subject kept, backdrop gone
    rotated = by_input["green-rotated-exif.jpg"]["outputs"][0]
    assert (rotated["width"], rotated["height"]) == (720, 480)  # EXIF applied: upright
    rgba = np.asarray(Image.open(by_input["brown-rgba.png"]["outputs"][0]["uri"][7:]))
    assert rgba[:24, :, 3].max() == 0  # the input's own transparency is kept


def test_second_run_recomputes_nothing(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    main(["run", str(inputs / "red-ball.jpg"), "--out", str(out), "--no-progress"])
    first = events(out)[0]["data"]
    result = Path(first["outputs"][0]["uri"][7:])
    written = result.stat().st_mtime_ns
    assert main(["run", str(inputs / "red-ball.jpg"), "--out", str(out), "--no-progress"]) == 0
    second = events(out)[1]["data"]
    assert second["duplicate"] is True and second["job_id"] == first["job_id"]
    assert second["outputs"][0]["uri"] == first["outputs"][0]["uri"]
    assert result.stat().st_mtime_ns == written


def test_mask_webp_and_background_options(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert (
        main(
            [
                "run",
                str(inputs / "red-ball.jpg"),
                "--out",
                str(out),
                "--no-progress",
                "--kind",
                "both",
                "--format",
                "webp",
                "--background",
                "#ffffff",
                "--resize",
                "dynamic",
                "--threshold",
                "0.5",
            ]
        )
        == 0
    )
    outputs = {o["kind"]: o for o in events(out)[0]["data"]["outputs"]}
    cutout = Image.open(outputs["cutout"]["uri"][7:])
    mask = Image.open(outputs["mask"]["uri"][7:])
    assert cutout.format == "WEBP" and cutout.mode == "RGB"  # composited onto white
    assert outputs["mask"]["uri"].endswith(".mask.webp")
    assert set(np.unique(np.asarray(mask.convert("L")))) <= {0, 255}  # thresholded
    assert np.asarray(cutout)[2, 2].tolist() == [255, 255, 255]


def test_bad_options_exit_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(SAMPLES), "--out", str(tmp_path), "--background", "red"]) == 2
    assert "output_background" in capsys.readouterr().err
    assert main(["run", str(SAMPLES), "--out", str(tmp_path), "--model", "nope"]) == 2


def test_a_job_that_keeps_failing_transiently_ends_as_retries_exhausted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The local stand-in for a dead-letter topic: three transient failures, then one
    `failed` event with code retries_exhausted in events.jsonl (never a silent drop)."""
    from cutq.core.errors import StorageUnavailable
    from cutq.core.storage.local import LocalStorage

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("red-ball.jpg", "orange-cmyk.jpg"):
        shutil.copy(SAMPLES / name, folder / name)
    real_read = LocalStorage.read
    reads: list[str] = []

    def flaky_read(self, uri: str, **kwargs):  # type: ignore[no-untyped-def]
        if uri.endswith("orange-cmyk.jpg"):
            reads.append(uri)
            raise StorageUnavailable(f"{uri}: the disk went away")
        return real_read(self, uri, **kwargs)

    monkeypatch.setattr(LocalStorage, "read", flaky_read)
    out = tmp_path / "out"
    assert main(["run", str(folder), "--out", str(out), "--no-progress"]) == 1
    docs = events(out)
    failed = [d["data"] for d in docs if d["data"]["status"] == "failed"]
    assert [d["error"]["code"] for d in failed] == ["retries_exhausted"]
    assert failed[0]["attempt"] == 3 and failed[0]["input"].endswith("orange-cmyk.jpg")
    assert [d["data"]["status"] for d in docs].count("completed") == 1
    assert len(reads) == 3
    assert "1 × retries_exhausted" in capsys.readouterr().out


def test_sigint_finishes_or_returns_what_runs_then_prints_the_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cutq run` handles SIGINT/SIGTERM like the worker: stop taking files, finish or return
    what runs within the grace period, then the summary (exit 1: not everything was done). A
    job returned by the stop is not retried and not reported as exhausted."""
    import os
    import signal
    import threading

    from cutq.core.storage.local import LocalStorage

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("red-ball.jpg", "orange-cmyk.jpg"):
        shutil.copy(SAMPLES / name, folder / name)
    real_read = LocalStorage.read
    stuck, release = threading.Event(), threading.Event()

    def stuck_read(self, uri: str, **kwargs):  # type: ignore[no-untyped-def]
        if uri.endswith("orange-cmyk.jpg"):
            stuck.set()
            release.wait(60)
        return real_read(self, uri, **kwargs)

    def interrupt() -> None:
        if stuck.wait(60):
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(LocalStorage, "read", stuck_read)
    monkeypatch.setenv("CUTQ_GRACE_PERIOD_S", "1")
    out = tmp_path / "out"
    threading.Thread(target=interrupt, daemon=True).start()
    try:
        code = main(["run", str(folder), "--out", str(out), "--no-progress"])
    finally:
        release.set()
    printed = capsys.readouterr().out
    assert code == 1
    assert "stopped (signal):" in printed and "not processed" in printed, printed
    assert "retries_exhausted" not in printed
    assert not [d for d in events(out) if d["data"]["status"] == "failed"]
