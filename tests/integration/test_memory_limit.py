"""A worker under a real memory limit (RLIMIT_AS, 2 GiB) fed 50 MP photos, presets, renditions
and every frame bomb of issue 31: each job ends as a result or ``too_large``, and the worker
process stays up through all of them (issues 31 and 34).

The worker's in-flight budget is sized from the memory model for 2 GiB
(docs/big-photos.md, "Sizing a worker"): what a Cloud Run worker with 2 GiB would be given.
Plausible mistakes this catches: a frame that plans its canvas without a ceiling (the process
dies allocating 18064² or 70000²: no alive line, or MemoryError → retries_exhausted), a budget
that charges a preset only its decoded pixels (under the limit, two would not fit).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import SAMPLES

LIMIT_BYTES = 2 * 1024**3
#: 2 GiB less the worker's own ~310 MiB and ~600 MiB of address space that RLIMIT_AS counts but
#: RSS does not (thread stacks, mappings), over the plain cut-out's 14 B a pixel (worker/memory.py)
BUDGET_PIXELS = 80_000_000
PRESETS = ("amazon-main", "google-shopping", "square-2048", "thumbnail")


def _big_photo(path: Path, side: int) -> Path:
    """A real photograph (samples/red-ball.jpg) enlarged to ``side``² (49 MP at 7000)."""
    with Image.open(SAMPLES / "red-ball.jpg") as photo:
        photo.convert("RGB").resize((side, side), Image.Resampling.BILINEAR).save(path, quality=85)
    return path


def _limit() -> None:  # in the child, before exec
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))


def _run(tmp_path: Path, cases: list[dict]) -> list[dict]:
    spec = tmp_path / "cases.json"
    spec.write_text(json.dumps(cases))
    env = {
        **os.environ,
        "CUTQ_MAX_IN_FLIGHT_PIXELS": str(BUDGET_PIXELS),
        "MALLOC_ARENA_MAX": "2",  # glibc's per-thread arenas reserve address space, not memory
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.memory_limited", str(tmp_path / "out"), str(spec)],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        preexec_fn=_limit,
        capture_output=True,
        text=True,
        timeout=500,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and lines and lines[-1] == {"alive": True}, (
        f"worker exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    )
    return lines[:-1]


@pytest.mark.timeout(600)
def test_a_2_gib_worker_ends_every_big_photo_and_bomb_as_a_result_or_too_large(
    tmp_path: Path,
) -> None:
    big = _big_photo(tmp_path / "big-49mp.jpg", 7000)
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(tiny)
    cases = [
        {"name": "plain", "inputs": [str(big)], "renditions": None},
        {"name": "presets", "inputs": [str(big)], "renditions": [{"preset": p} for p in PRESETS]},
        {
            "name": "bombs-margin-px",
            "inputs": [str(tiny)],
            "renditions": [{"name": "a", "frame": {"margin_px": 9000}}],
        },
        {
            "name": "bombs-margin-px-max",
            "inputs": [str(tiny)],
            "renditions": [{"name": "a", "frame": {"margin_px": 16383}}],
        },
        {
            "name": "bombs-margin",
            "inputs": [str(big)],
            "renditions": [{"preset": "thumbnail"}, {"name": "a", "frame": {"margin": 0.45}}],
        },
        {
            "name": "bombs-canvas",
            "inputs": [str(tiny)],
            "renditions": [{"name": "a", "frame": {"width": 16383, "height": 16383}}],
        },
    ]
    endings = _run(tmp_path, cases)
    by_case = {line["case"]: (line["status"], line["code"]) for line in endings}
    assert set(by_case) == {case["name"] for case in cases}  # one event per job, none lost
    assert len(endings) == len(cases)
    for name, ending in by_case.items():
        assert ending in (("completed", None), ("failed", "too_large")), (name, ending)
    for name in ("bombs-margin-px", "bombs-margin-px-max", "bombs-margin", "bombs-canvas"):
        assert by_case[name] == ("failed", "too_large"), name
    assert by_case["plain"] == ("completed", None)  # 49 MP fits 2 GiB: a result, not a refusal
