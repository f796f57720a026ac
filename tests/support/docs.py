"""Reading the README and docs/: headings and their anchors, fenced blocks, the commands of a
``bash`` block, and the check that a command is one this project really has
(tests/unit/test_docs.py, tests/integration/test_docs_tour.py)."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINKED = [*PAGES, ROOT / "bench" / "README.md", ROOT / "infra" / "README.md"]
README_MAX_LINES = 300

#: Programs the docs show that are not cutq's and cannot run here (a cloud project, a Docker
#: engine) or only set up the shell; each is named, so a new kind of command is a decision.
ELSEWHERE = {
    "gcloud": "needs a Google Cloud project",
    "terraform": "the google provider cannot be fetched here (infra/README.md)",
    "docker": "no Docker engine on the CI machines; the Dockerfile's steps run in CI",
    "export": "sets the environment for the commands after it",
    "source": "reads out/stack.env, written by make stack",
    "sha256sum": "coreutils",
    "ls": "coreutils",
    "cd": "the shell",
    "curl": "talks to a deployed service",
}

FENCE = re.compile(r"^```(\w*)\s*$")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_code = not in_code
        elif not in_code and (match := re.match(r"^#+ (.*)", line)):
            found.add(slug(match.group(1)))
    return found


def blocks(path: Path) -> list[tuple[str, int, str]]:
    """(language, first line number, text) of each fenced block."""
    result, current, start, language = [], None, 0, ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = FENCE.match(line.strip())
        if match and current is None:
            current, start, language = [], number + 1, match.group(1)
        elif line.strip() == "```" and current is not None:
            result.append((language, start, "\n".join(current)))
            current = None
        elif current is not None:
            current.append(line)
    return result


def _words(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split, lexer.commenters = True, ""
    return list(lexer)


def commands(text: str) -> list[list[str]]:
    """The commands of a bash block as words: continuation lines and quotes spanning lines
    joined, prompts and comments dropped, ``&&`` and ``;`` separating commands."""
    result: list[list[str]] = []
    pending = ""
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        line = line.strip()
        if not pending:
            line = line.removeprefix("$ ")
            if not line or line.startswith("#"):
                continue
            line = re.sub(r"\s+#.*$", "", line)  # a trailing comment
        pending = f"{pending}\n{line}" if pending else line
        try:
            words = _words(pending)
        except ValueError:  # a quote still open: the command goes on
            continue
        pending = ""
        command: list[str] = []
        for word in [*words, ";"]:
            if word in (";", "&&", "||", "&"):
                if command:
                    result.append(command)
                command = []
            else:
                command.append(word)
    assert not pending, f"unclosed quote in {pending!r}"
    return result


def every_command() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for language, start, text in blocks(page):
            if language == "bash":
                found += [(f"{page.relative_to(ROOT)}:{start}", c) for c in commands(text)]
    return found


def _makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([\w.-]+):", text, flags=re.M))


def _extras() -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return set(pyproject["project"]["optional-dependencies"])


def check(command: str | list[str]) -> str | None:
    """Why ``command`` is not a real command of this project, or None."""
    from cutq.cli import build_parser

    words = shlex.split(command) if isinstance(command, str) else list(command)
    command = shlex.join(words)
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        words = words[1:]  # VAR=value before the command
    if not words:
        return None
    program, args = words[0], words[1:]
    if program in ("cutq", ".venv/bin/cutq"):
        args = ["x" if a in ("…", "...") else a for a in args]  # a placeholder value
        try:
            build_parser().parse_args(args)
        except SystemExit as stop:
            return f"the CLI refuses it (exit {stop.code})"
        return None
    if program == "make":
        targets = [a for a in args if "=" not in a]
        missing = [t for t in targets if t not in _makefile_targets()]
        return f"no Makefile target {missing}" if missing else None
    if program in ("python", "python3", ".venv/bin/python") and args[:1] == ["-m"]:
        module = args[1]
        if module in ("pip", "venv"):
            return None
        path = ROOT.joinpath(*module.split("."))
        ok = path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()
        return None if ok else f"no module {module} in this repository"
    if program in ("python", "python3", ".venv/bin/python"):
        script = next((a for a in args if a.endswith(".py")), None)
        if args[:1] == ["-c"] or (script and (ROOT / script).is_file()):
            return None
        return f"no script {script}"
    if program in ("pip", ".venv/bin/pip"):
        named = set(re.findall(r"cutq\[([\w,-]+)\]", command))
        extras = {e for group in named for e in group.split(",")}
        unknown = extras - _extras()
        return f"no extra {sorted(unknown)}" if unknown else None
    if program == "sh" or program.startswith(("tools/", "infra/", ".ci/")):
        script = args[0] if program == "sh" else program
        return None if (ROOT / script).is_file() else f"no script {script}"
    if program in ELSEWHERE:
        return None
    return f"an unknown program {program!r}: check it here or add it to ELSEWHERE"
