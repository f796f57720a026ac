"""The image's torch pin is a known-good row that Cloud Run's L4 driver runs.

The Dockerfile's ``ARG`` defaults and ``infra/cloudbuild.yaml``'s substitutions (which override
them on every Cloud Build) must agree with each other and with a row of
:data:`cutq.worker.runtime.torch_builds.KNOWN_GOOD`. Before issue 26 both asked for torch 2.14.1
from
the cu128 index, a build PyTorch no longer publishes: this test failed on that.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from cutq.worker.runtime import torch_builds
from cutq.worker.runtime.torch_builds import IMAGE_BUILD, KNOWN_GOOD, TorchBuild

ROOT = Path(__file__).resolve().parents[2]


def _dockerfile_args() -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    return dict(re.findall(r"^ARG (TORCH\w*)=(\S*)$", text, flags=re.MULTILINE))


def _cloudbuild_substitutions() -> dict[str, str]:
    config = yaml.safe_load((ROOT / "infra" / "cloudbuild.yaml").read_text(encoding="utf-8"))
    return {k.removeprefix("_"): str(v) for k, v in config["substitutions"].items()}


@pytest.mark.parametrize("source", ["Dockerfile", "cloudbuild"])
def test_image_pin_is_a_known_good_build_for_cloud_run_l4(source: str) -> None:
    pins = _dockerfile_args() if source == "Dockerfile" else _cloudbuild_substitutions()
    chosen = (pins["TORCH_VERSION"], pins["TORCHVISION_VERSION"], pins["TORCH_INDEX_URL"])
    rows = {(b.torch, b.torchvision, b.index_url): b for b in KNOWN_GOOD}
    assert chosen in rows, f"{source} pins {chosen}: not a row of worker/runtime/torch_builds.py"
    build = rows[chosen]
    assert build.runs_on_cloud_run_l4, (
        f"{source} pins a CUDA {build.cuda} build: it needs driver ≥ {build.min_driver}, "
        f"Cloud Run's L4 has {torch_builds.CLOUD_RUN_L4_DRIVER}"
    )
    assert build == IMAGE_BUILD


def test_driver_rules() -> None:
    assert torch_builds.min_driver_for("12.6") == 525
    assert torch_builds.min_driver_for("13.2") == 580
    assert torch_builds.driver_runs("12.2", "12.6")  # minor-version compatibility
    assert not torch_builds.driver_runs("12.2", "13.0")
    assert torch_builds.driver_runs("13.0", "12.6")
    assert TorchBuild("2.14.1", "0.29.1", "12.6").index_url.endswith("/whl/cu126")
    assert [b.runs_on_cloud_run_l4 for b in KNOWN_GOOD] == [True, False, False]
    assert torch_builds.find("2.14.1", "13.0") is KNOWN_GOOD[1]
    assert torch_builds.find("2.14.1", "12.8") is None  # PyTorch dropped 12.8 in 2.12
