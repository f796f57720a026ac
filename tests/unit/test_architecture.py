"""The import contracts in pyproject.toml bite: a tree that breaks each one fails lint-imports.

`make lint` runs the same contracts over the real package; here they run over small stand-in
trees with the package's names, so each contract is shown to catch the mistake it is for.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
CONTRACTS = PYPROJECT["tool"]["importlinter"]["contracts"]
#: The engine's modules, as the wing contracts list them (cutq.worker.<name>).
ENGINE = sorted(
    name.rsplit(".", 1)[1]
    for name in next(c for c in CONTRACTS if "never imports the review" in c["name"])[
        "source_modules"
    ]
    if name.count(".") == 2 and name != "cutq.worker.sources"
)

CLEAN = {
    "cutq/core/__init__.py": "",
    "cutq/core/contract.py": "import json\n",
    "cutq/submitter/__init__.py": "",
    "cutq/submitter/client.py": "from cutq.core import contract\n",
    "cutq/worker/__init__.py": "",
    "cutq/worker/pipeline.py": "import torch\nfrom cutq.core import contract\n",
    "cutq/cli/__init__.py": "import cutq.worker.pipeline\nimport cutq.submitter.client\n",
    # the worker's wings: the engine on top imports render, runtime and models; review imports
    # render
    "cutq/worker/render/__init__.py": "",
    "cutq/worker/render/results.py": "import numpy\n",
    "cutq/worker/runtime/__init__.py": "",
    "cutq/worker/runtime/inference.py": "from cutq.worker.models import base\n",
    "cutq/worker/models/__init__.py": "",
    "cutq/worker/models/base.py": "",
    "cutq/worker/review/__init__.py": "",
    "cutq/worker/review/report.py": "from cutq.worker.render import results\n",
    "cutq/worker/sources/__init__.py": "",
    "cutq/worker/commands/__init__.py": "import cutq.worker.review.report\n",
    "cutq/worker/service.py": "import cutq.worker.pipeline\n",
    "cutq/worker/config.py": "",
    **{
        f"cutq/worker/{name}.py": ""
        for name in ENGINE
        if name not in ("pipeline", "service", "config")
    },
}
CLEAN["cutq/worker/pipeline.py"] += (
    "from cutq.worker.render import results\nfrom cutq.worker.runtime import inference\n"
)


def lint(tmp_path: Path, files: dict[str, str]) -> subprocess.CompletedProcess[str]:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for stub in ("torch", "numpy", "PIL", "torchvision", "scipy"):  # the external names
        (tmp_path / stub).mkdir(exist_ok=True)
        (tmp_path / stub / "__init__.py").write_text("")
    return subprocess.run(
        [str(LINT_IMPORTS), str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_clean_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = lint(tmp_path, CLEAN)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(CONTRACTS)} kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("change", "broken"),
    [
        # the first version's shape: the job contract in the client package, imported by the worker
        (
            {"cutq/worker/access.py": "from cutq.submitter import client\n"},
            "never import each other",
        ),
        # the first version's CLI: submitter/cli.py importing the worker's commands
        ({"cutq/submitter/cli.py": "import cutq.worker.pipeline\n"}, "never import each other"),
        ({"cutq/core/storage.py": "import cutq.worker.pipeline\n"}, "sit above the core"),
        ({"cutq/worker/local_run.py": "import cutq.cli\n"}, "sit above the core"),
        ({"cutq/core/imaging.py": "import numpy\n"}, "needs no torch"),
        ({"cutq/submitter/bulk.py": "import torch\n"}, "needs no torch"),
        # the wings: what a job writes reaching back into the engine (results read the config)
        ({"cutq/worker/render/results.py": "from cutq.worker import config\n"}, "Render (what"),
        ({"cutq/worker/render/results.py": "import cutq.worker.runtime.inference\n"}, "is a leaf"),
        # a model learning a forward's urgency from the scheduler, as a thread-local once did
        ({"cutq/worker/models/base.py": "from cutq.worker import priority\n"}, "The models and"),
        ({"cutq/worker/runtime/inference.py": "import cutq.worker.ledger\n"}, "The models and"),
        (
            {"cutq/worker/pipeline.py": "import cutq.worker.review.report\n"},
            "never imports the review",
        ),
    ],
)
def test_each_contract_catches_its_mistake(tmp_path: Path, change: dict, broken: str) -> None:
    result = lint(tmp_path, {**CLEAN, **change})
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    broken_lines = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(broken in line for line in broken_lines), result.stdout


def test_every_module_at_the_worker_top_level_is_named_in_the_wing_contracts() -> None:
    """The engine is what stays at worker/'s top level: a new module there is listed in the
    contracts (as engine), or moved into its wing, never left out of both."""
    top = sorted(p.stem for p in (ROOT / "worker").glob("*.py") if p.stem != "__init__")
    assert top == ENGINE
