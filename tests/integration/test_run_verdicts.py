"""``cutq run`` counts verdicts and flags in its summary and exits by them (docs/verdicts.md,
"Exit codes"); an empty input and skipped files are named with counts and reasons."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.verdict_set import make, open_source
from cutq.cli import main
from cutq.core.tally import Exit
from tests.conftest import SAMPLES


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    shutil.copy(SAMPLES / "red-ball.jpg", folder / "red-ball.jpg")  # one whole ball
    cut = make(open_source("samples:red-ball.jpg"), [{"crop": [0, 0, 420, 600]}])
    cut.save(folder / "red-ball-cut.png")  # the ball cut through its middle
    (folder / "camera.cr2").write_bytes(b"II*\0\x10\0\0\0CR")  # a camera raw
    (folder / "README").write_text("no extension")
    return folder


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main(["--log-level", "WARNING", "run", "--no-progress", *args])
    return code, capsys.readouterr().out.splitlines()


def test_an_empty_folder_exits_5_naming_what_it_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "IMG_0001.CR2").write_bytes(b"\0\0\0\x18ftypheic")
    code, lines = run(capsys, str(folder), "--out", str(tmp_path / "out"))
    assert code == Exit.NO_INPUT == 5
    assert lines == [
        "no image in the inputs: nothing to do",
        "  skipped 1 file(s)",
        "  skipped: 1 × .cr2: not an image format this install reads",
    ]
    assert not (tmp_path / "out" / "events.jsonl").exists()  # no model was even loaded


@pytest.mark.timeout(300)
def test_a_result_that_needs_review_exits_4_unless_review_is_accepted(
    inputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = run(
        capsys, str(inputs), "--out", str(tmp_path / "a"), "--preset", "google-shopping"
    )
    assert code == Exit.REVIEW == 4, lines
    assert lines[0].startswith("2 image(s): 2 completed, 0 failed")
    assert lines[1] == "  verdicts: 1 pass, 1 review, 0 fail · flags: 1 edge"
    assert "  skipped 2 file(s)" in lines
    assert "  skipped: 1 × .cr2: not an image format this install reads" in lines
    assert "  skipped: 1 × no extension" in lines
    code, lines = run(
        capsys,
        str(inputs),
        "--out",
        str(tmp_path / "b"),
        "--preset",
        "google-shopping",
        "--preset",
        "amazon-main",  # the ball is 800 px: under Amazon's 1000 px zoom minimum
        "--accept-review",
    )
    assert code == Exit.VERDICT_FAIL == 3, lines  # accepting review never hides a fail
    assert lines[1] == "  verdicts: 1 pass, 1 review, 2 fail · flags: 1 edge"
    code, lines = run(
        capsys, str(inputs), "--out", str(tmp_path / "c"), "--preset", "google-shopping",
        "--accept-review",
    )  # fmt: skip
    assert code == Exit.OK == 0, lines
