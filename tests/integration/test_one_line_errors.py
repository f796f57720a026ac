"""A new user's mistakes get one line that says what to do, and the documented exit code
(configuration errors exit 2; docs/errors.md): each run as the real `cutq` process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES


def cutq(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cutq.cli", *args],
        cwd=cwd,
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        timeout=100,
    )


def one_line(done: subprocess.CompletedProcess, code: int, *words: str) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == code, done.stdout + done.stderr
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_run_refuses_a_gs_out_instead_of_making_a_folder_named_gs(tmp_path: Path) -> None:
    done = cutq("run", str(SAMPLES), "--out", "gs://shop-results/cutouts", cwd=tmp_path)
    one_line(done, 2, "--out gs://shop-results/cutouts", "cutq submit")
    assert list(tmp_path.iterdir()) == []  # no folder named "gs:"


def test_run_refuses_a_gs_input_in_one_line(tmp_path: Path) -> None:
    done = cutq("run", "gs://shop-inputs/a.jpg", "--out", str(tmp_path / "out"), cwd=tmp_path)
    one_line(done, 2, "gs://shop-inputs/a.jpg", "reads local files", "cutq submit")


def test_an_out_that_is_a_file_or_cannot_be_written_exits_2(tmp_path: Path) -> None:
    afile = tmp_path / "results.png"
    afile.write_bytes(b"x")
    done = cutq("run", str(SAMPLES), "--out", str(afile), cwd=tmp_path)
    one_line(done, 2, "is a file, not a folder")
    under = afile / "out"  # a folder under a file: no one can create it, root included
    done = cutq("run", str(SAMPLES), "--out", str(under), cwd=tmp_path)
    one_line(done, 2, "cannot write there (Not a directory)")


def test_submit_without_credentials_names_adc_and_the_stack_env(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_EMULATOR_HOST") and not k.startswith(("GOOGLE_", "CLOUDSDK_", "CUTQ_"))
    }
    env.update(HOME=str(tmp_path), NO_GCE_CHECK="True", CLOUDSDK_CONFIG=str(tmp_path / "gcloud"))
    done = cutq(
        "submit", str(SAMPLES), "--topic", "projects/shop/topics/cutq-jobs",
        "--staging", "gs://shop-inputs/staging", "--output", "gs://shop-results/cutouts",
        "--no-progress", cwd=tmp_path, env=env,
    )  # fmt: skip
    one_line(done, 2, "application-default login", "source out/stack.env")


def test_local_queue_time_runs_from_when_the_run_saw_the_file(tmp_path: Path) -> None:
    photo = tmp_path / "in" / "red-ball.jpg"
    photo.parent.mkdir()
    shutil.copy(SAMPLES / "red-ball.jpg", photo)
    week_ago = time.time() - 7 * 86400
    os.utime(photo, (week_ago, week_ago))
    out = tmp_path / "out"
    done = cutq("run", str(photo.parent), "--out", str(out), "--no-progress", cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = (out / "events.jsonl").read_text().splitlines()
    (event,) = [json.loads(line)["data"] for line in lines]
    assert event["status"] == "completed"
    assert 0 <= event["timings_ms"]["queue"] < 60_000, event["timings_ms"]  # not a week


@pytest.mark.parametrize("flag", ["--colour", "--metadata"])
def test_a_bad_choice_is_one_line_from_argparse(tmp_path: Path, flag: str) -> None:
    done = cutq("run", str(SAMPLES), "--out", str(tmp_path), flag, "adobe", cwd=tmp_path)
    assert done.returncode == 2 and "invalid choice: 'adobe'" in done.stderr
