"""The onnxruntime-gpu pin is the newest CUDA 12 build in worker/runtime/onnx_builds.py's table,
and the ``gpu-onnx`` extra asks for it with the CUDA 12 libraries it links.

Before issue 35 the extra said ``onnxruntime-gpu[cuda,cudnn]>=1.19``, which resolves to
1.31.1, a CUDA 13 build that Cloud Run's L4 (driver 535) cannot run: this test failed on it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from cutq.worker.runtime import onnx_builds
from cutq.worker.runtime.onnx_builds import CHECKED, IMAGE_BUILD, OrtBuild

ROOT = Path(__file__).resolve().parents[2]


def _gpu_onnx_extra() -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return list(pyproject["project"]["optional-dependencies"]["gpu-onnx"])


def test_the_extra_pins_the_newest_cuda12_build_with_its_cuda_libraries() -> None:
    pins = [r for r in _gpu_onnx_extra() if r.startswith("onnxruntime-gpu")]
    assert len(pins) == 1, f"one onnxruntime-gpu requirement, got {pins}"
    match = re.fullmatch(r"onnxruntime-gpu\[(?P<extras>[\w,]+)\]==(?P<version>[\d.]+)", pins[0])
    assert match, f"{pins[0]} must be an exact pin (==) with the cuda and cudnn extras"
    assert set(match["extras"].split(",")) == {"cuda", "cudnn"}  # the nvidia-*-cu12 libraries
    build = onnx_builds.find(match["version"])
    assert build is not None, f"{pins[0]}: not a row of worker/runtime/onnx_builds.py"
    assert build == IMAGE_BUILD and build.runs_on_cloud_run_l4
    assert build.cudart == "12" and build.runtime_wheel.endswith("-cu12")
    newer = CHECKED[CHECKED.index(build) + 1 :]
    assert newer and not any(b.runs_on_cloud_run_l4 for b in newer)  # it is the newest


def test_which_builds_run_on_which_driver() -> None:
    on_535 = [b.version for b in CHECKED if b.runs_on("12.2")]
    assert on_535 == ["1.23.2", "1.24.4", "1.25.1", "1.26.0"]
    assert all(b.runs_on("13.0") for b in CHECKED)  # a CUDA 13 driver runs both majors
    assert [b.min_driver for b in CHECKED] == [525] * 4 + [580] * 5
    assert all(b.cudart == b.cuda.split(".")[0] for b in CHECKED)  # the table is coherent
    assert OrtBuild("9.9.9", "13.0", "13", "x").runs_on_cloud_run_l4 is False
    assert onnx_builds.find("1.19.0") is None
    table = onnx_builds.table()
    assert "| 1.26.0 (the pin) | 12.8 | .so.12 | yes | yes |" in table
    assert "| 1.31.1 | 13.0 | .so.13 | no | yes |" in table


def test_the_gpu_onnx_extra_brings_no_cpu_wheel_and_no_torch() -> None:
    names = [re.split(r"[\[<>=~ ]", r, maxsplit=1)[0] for r in _gpu_onnx_extra()]
    assert "onnxruntime" not in names and "torch" not in names
