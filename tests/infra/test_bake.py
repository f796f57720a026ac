"""Baking an ONNX model into the image at build time, through the Dockerfile's own step
(``build-steps.sh model``, run here outside Docker as CI runs the build steps): a graph from a
``file://`` URL or the build context with its SHA-256, a wrong hash failing the build in one
line, and no model baking nothing so the worker serves the bundled u2netp."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cutq.worker.config import WorkerConfig
from cutq.worker.models import create_model
from cutq.worker.models.onnx_custom import CustomOnnx
from cutq.worker.runtime.inference import Runner
from tests.infra.tfconfig import ROOT
from tests.support import onnx_graphs

STEPS = ROOT / "infra" / "docker" / "build-steps.sh"
SPEC = {
    "name": "baked",
    "version": "v1",
    "mean": [0.5, 0.5, 0.5],
    "sigmoid": True,
    "license": "MIT",
    "commercial_use": True,
}


def build_step(step: str, **env: str) -> subprocess.CompletedProcess[str]:
    """One build step as the Dockerfile runs it (``python3``/``python`` of this venv)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(
        ["bash", str(STEPS), step],
        env={**os.environ, "PATH": path, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def context(tmp_path: Path) -> Path:
    """The build context's models folder, holding the spec (the graph is elsewhere)."""
    folder = tmp_path / "context"
    folder.mkdir()
    (folder / "baked.json").write_text(json.dumps(SPEC))
    return folder


def graph(tmp_path: Path) -> tuple[Path, str]:
    path = onnx_graphs.nchw_graph(tmp_path / "published.onnx", shape=(1, 3, 64, 64), gain=2.0)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_graph_from_a_url_is_baked_with_its_spec_and_served(
    tmp_path: Path, context: Path
) -> None:
    source, digest = graph(tmp_path)
    out = tmp_path / "opt-cutq-models"
    done = build_step(
        "model",
        MODEL_URL=source.as_uri(),
        MODEL_SHA256=digest.upper(),  # as sha256sum users may paste it
        MODEL_SPEC="baked.json",
        MODEL_SOURCE_DIR=str(context),
        MODEL_DIR=str(out),
    )
    assert done.returncode == 0, done.stderr
    assert f"baked model baked (0.0 MB, sha256 {digest[:12]})" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.onnx"]
    assert (out / "model.onnx").read_bytes() == source.read_bytes()
    baked = json.loads((out / "model.json").read_text())
    assert baked == {**SPEC, "file": "model.onnx", "sha256": digest}
    # The image's app step checks the baked spec with cutq's own parser.
    parsed = subprocess.run(
        [sys.executable, "-m", "cutq.worker.models.onnx_spec", str(out / "model.json")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "licence MIT, commercial use yes" in parsed.stdout
    # The image sets CUTQ_MODEL_SPEC to it: the worker serves the baked graph, pinned.
    config = WorkerConfig.from_env({"CUTQ_MODEL_SPEC": str(out / "model.json")})
    runner = Runner(create_model(config), config.device)
    runner.setup()
    model = runner.model
    assert isinstance(model, CustomOnnx) and model.name == "baked" and model.version == "v1"
    assert model.path == out / "model.onnx" and model.spec.sha256 == digest
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[16:48, 16:48, 0] = 255  # red square: 2·(1 − 0.5) → sigmoid(1); elsewhere sigmoid(−1)
    saliency = runner.predict([model.preprocess(rgb, (64, 64))])[0][0]
    assert saliency[32, 32] == pytest.approx(1 / (1 + np.exp(-1.0)), abs=1e-5)
    assert saliency[2, 2] == pytest.approx(1 / (1 + np.exp(1.0)), abs=1e-5)


def test_a_graph_in_the_build_context_is_baked(tmp_path: Path, context: Path) -> None:
    source, digest = graph(tmp_path)
    (context / "published.onnx").write_bytes(source.read_bytes())
    out = tmp_path / "out"
    done = build_step(
        "model",
        MODEL_URL="published.onnx",
        MODEL_SHA256=digest,
        MODEL_SPEC="baked.json",
        MODEL_SOURCE_DIR=str(context),
        MODEL_DIR=str(out),
    )
    assert done.returncode == 0, done.stderr
    assert (out / "model.onnx").read_bytes() == source.read_bytes()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"MODEL_SHA256": "0" * 64}, "sha256 of file://"),
        ({"MODEL_SHA256": ""}, "MODEL_SHA256 must be the graph's 64-hex-digit SHA-256"),
        ({"MODEL_SPEC": ""}, "MODEL_SPEC must name the model's spec"),
        ({"MODEL_SPEC": "missing.json"}, "missing.json: No such file"),
        ({"MODEL_URL": "gs://bucket/model.onnx"}, "use a file in the build context, https://"),
        ({"MODEL_URL": "file:///nowhere/model.onnx"}, "cannot fetch file:///nowhere/model.onnx"),
    ],
)
def test_a_wrong_or_missing_pin_fails_the_build_in_one_line(
    tmp_path: Path, context: Path, change: dict[str, str], message: str
) -> None:
    source, digest = graph(tmp_path)
    out = tmp_path / "out"
    settings = {
        "MODEL_URL": source.as_uri(),
        "MODEL_SHA256": digest,
        "MODEL_SPEC": "baked.json",
        "MODEL_SOURCE_DIR": str(context),
        "MODEL_DIR": str(out),
    }
    done = build_step("model", **{**settings, **change})
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("build-steps: model: "), done.stderr
    assert message in lines[0]
    assert not list(out.glob("model.*")) and not list(out.glob("tmp*"))  # nothing half baked


def test_a_spec_pinning_another_hash_fails_the_build(tmp_path: Path, context: Path) -> None:
    source, digest = graph(tmp_path)
    (context / "baked.json").write_text(json.dumps({**SPEC, "sha256": "1" * 64}))
    done = build_step(
        "model",
        MODEL_URL=source.as_uri(),
        MODEL_SHA256=digest,
        MODEL_SPEC="baked.json",
        MODEL_SOURCE_DIR=str(context),
        MODEL_DIR=str(tmp_path / "out"),
    )
    assert done.returncode == 1 and "pins sha256 1111" in done.stderr


def test_no_model_bakes_nothing_and_the_worker_serves_u2netp(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = build_step("model", MODEL_URL="", MODEL_DIR=str(out))
    assert done.returncode == 0, done.stderr
    assert "no model baked" in done.stdout and list(out.iterdir()) == []
    # The image's ENV: CUTQ_MODEL_SPEC=${MODEL_URL:+/opt/cutq/models/model.json} is empty.
    env_line = next(
        line
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if "CUTQ_MODEL_SPEC=" in line
    )
    assert "CUTQ_MODEL_SPEC=${MODEL_URL:+/opt/cutq/models/model.json}" in env_line
    config = WorkerConfig.from_env({"CUTQ_MODEL_SPEC": ""})
    assert config.model_spec is None and create_model(config).name == "u2netp"
