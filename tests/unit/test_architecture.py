"""The import contracts in pyproject.toml bite: a tree that breaks each one fails lint-imports.

`make lint` runs the same contracts over the real package; here they run over small stand-in
trees with the package's names, so each contract is shown to catch the mistake it is for.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

CLEAN = {
    "cutq/core/__init__.py": "",
    "cutq/core/contract.py": "import json\n",
    "cutq/submitter/__init__.py": "",
    "cutq/submitter/client.py": "from cutq.core import contract\n",
    "cutq/worker/__init__.py": "",
    "cutq/worker/pipeline.py": "import torch\nfrom cutq.core import contract\n",
    "cutq/cli/__init__.py": "import cutq.worker.pipeline\nimport cutq.submitter.client\n",
}


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
    assert "3 kept, 0 broken" in result.stdout


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
    ],
)
def test_each_contract_catches_its_mistake(tmp_path: Path, change: dict, broken: str) -> None:
    result = lint(tmp_path, {**CLEAN, **change})
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    broken_lines = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(broken in line for line in broken_lines), result.stdout
