"""The README and docs/ are checked: links resolve, and every command they show is one the
project really has.

- Every relative link (README.md, docs/*.md, bench/ and infra/ READMEs) names a file that
  exists, and its ``#anchor`` a heading of that file (GitHub's slugs).
- Every line of a ``bash`` block is a command of a known kind, checked against the real thing:
  ``cutq …`` is parsed by the real CLI's parser (a renamed or removed flag fails), ``make X``
  names a Makefile target, ``python -m M`` a module of this repository, ``pip install
  'cutq[E]'`` an extra of pyproject.toml; the cloud's own tools (gcloud, terraform, docker)
  are listed in ``ELSEWHERE`` (tests/support/docs.py), since they need a project to run
  against. ``python`` blocks compile.
- The README's tour runs for real in tests/integration/test_docs_tour.py, and its two commands
  in CI (.ci/run).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.docs import (
    LINK,
    LINKED,
    PAGES,
    README_MAX_LINES,
    ROOT,
    anchors,
    blocks,
    check,
    every_command,
)


def test_the_readme_is_a_short_front_door() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES


@pytest.mark.parametrize("page", LINKED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves(page: Path) -> None:
    broken = []
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # links inside code are not links
    text = re.sub(r"`[^`\n]*`", "", text)
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        name, _, anchor = target.partition("#")
        path = (page.parent / name).resolve() if name else page
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no such heading in {path.relative_to(ROOT)}")
    assert broken == []


def test_every_command_in_the_docs_is_a_real_one() -> None:
    found = every_command()
    assert len(found) > 40  # the docs do show commands: the extraction works
    wrong = [f"{where}: {command!r}: {why}" for where, command in found if (why := check(command))]
    assert wrong == []


def test_every_python_block_compiles() -> None:
    for page in PAGES:
        for language, start, text in blocks(page):
            if language == "python":
                compile(text, f"{page.relative_to(ROOT)}:{start}", "exec")


@pytest.mark.parametrize(
    "command",
    [
        "cutq run samples --out x --no-such-flag",
        "cutq rnu samples",
        "make no-such-target",
        "python -m bench.no_such_bench",
        "pip install 'cutq[no-such-extra]'",
        "rembg p -m u2netp in out",
    ],
)
def test_the_check_catches_a_stale_command(command: str) -> None:
    assert check(command) is not None


def test_every_worker_setting_is_in_the_configuration_page() -> None:
    """A field added to WorkerConfig (so to the environment it reads) is documented."""
    import dataclasses

    from cutq.worker.config import ENV_PREFIX, WorkerConfig

    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    fields = [f for f in dataclasses.fields(WorkerConfig) if f.name != "platform"]  # probed
    names = [f"{ENV_PREFIX}{f.name.upper()}" for f in fields]
    assert [name for name in names if f"`{name}`" not in page] == []


def test_every_error_code_a_job_can_end_with_is_in_the_contract_page() -> None:
    from cutq.core import errors

    page = (ROOT / "docs" / "contract.md").read_text(encoding="utf-8")
    classes = [c for c in vars(errors).values() if isinstance(c, type)]
    job_errors = [
        c for c in classes if issubclass(c, (errors.PermanentError, errors.TransientError))
    ]
    codes = {c.code for c in job_errors} - {"permanent", "transient"}
    assert sorted(code for code in codes if f"| `{code}` |" not in page) == []
