"""The rerun list: what ``cutq submit --from-manifest FILE`` submits again.

A CSV with ``input``, ``ref``, ``name`` (and, for the reader, ``verdict`` and ``reasons``):
every manifest row whose verdict is ``review`` or ``fail``, and every failed job. The review
page exports one; any manifest (:mod:`cutq.core.manifest`, CSV or JSONL) is one too, other
columns ignored, so a list can be cut down in a spreadsheet first.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cutq.core.errors import ConfigError
from cutq.core.manifest import LIST_SEPARATOR, ManifestRow

RERUN_FIELDS = ("input", "ref", "name", "verdict", "reasons")


@dataclass(frozen=True)
class RerunEntry:
    """One line of a rerun list: what ``cutq submit --from-manifest`` submits again."""

    input: str
    ref: str | None = None
    name: str | None = None


def needs_rerun(row: ManifestRow) -> bool:
    """Whether a row goes on the rerun list: a ``review`` or ``fail`` verdict, or a failed job."""
    return bool(row.input) and (row.verdict in ("review", "fail") or row.status == "failed")


def write_rerun_list(rows: Iterable[ManifestRow], path: str | Path) -> int:
    """Write the rerun list of ``rows`` as CSV (with each row's verdict and reasons, for the
    reader); returns how many lines it holds."""
    rows = [row for row in rows if needs_rerun(row)]
    with Path(path).open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, RERUN_FIELDS)
        writer.writeheader()
        for row in rows:
            verdict = row.verdict if row.status == "completed" else row.status
            reasons = row.reasons or ((row.error_code or "",) if row.status != "completed" else ())
            writer.writerow(
                {"input": row.input, "ref": row.ref or "", "name": row.name or "",
                 "verdict": verdict or "", "reasons": LIST_SEPARATOR.join(reasons)}
            )  # fmt: skip
    return len(rows)


def read_rerun_list(path: str | Path) -> list[RerunEntry]:
    """The entries of a rerun list or a manifest (CSV or JSONL): ``input``, ``ref``, ``name``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", newline="") as table:
            records: list[Mapping[str, Any]] = list(csv.DictReader(table))
        if records and "input" not in records[0]:
            raise ConfigError(f"{path}: no `input` column")
    else:
        records = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                record = json.loads(line) if line.strip() else None
            except ValueError:
                raise ConfigError(f"{path}:{number}: not JSON") from None
            if record is not None:
                if not isinstance(record, dict):
                    raise ConfigError(f"{path}:{number}: expected an object with `input`")
                records.append(record)
    entries = []
    for number, record in enumerate(records, 1):
        source = str(record.get("input") or "").strip()
        if not source:
            raise ConfigError(f"{path}: entry {number} has no input")
        entries.append(RerunEntry(source, record.get("ref") or None, record.get("name") or None))
    return entries
