"""The run manifest: one row per job, as JSONL (complete) and CSV (for a spreadsheet).

A row says what an operator needs to trace and triage a result: the input, its ``name`` and
``ref`` (e.g. a SKU), the job's ``verdict`` (the worst of its renditions': ``fail`` over
``review`` over ``pass``) with the reasons, each rendition's URI, verdict, reasons and fill,
the quality flags, the error code of a failed job, and the stage timings. ``cutq run`` writes
``<out>/manifest.jsonl`` and ``manifest.csv``; ``cutq submit --wait --manifest FILE`` writes
one for a queue run; ``cutq report`` reads either back.

A manifest is also a rerun list (:mod:`cutq.core.rerun`): ``cutq submit --from-manifest``
reads its ``input``, ``ref`` and ``name``.

Events are read defensively (``.get``): a field an older worker did not send is empty here.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cutq.core.errors import ConfigError
from cutq.core.events import TIMING_STAGES

log = logging.getLogger(__name__)

VERDICTS = ("pass", "review", "fail")  # in order of severity
LIST_SEPARATOR = "; "  # between reasons and flags in a CSV cell
#: a rendition's columns in the CSV: ``<rendition>.<field>``
OUTPUT_FIELDS = ("uri", "verdict", "reasons", "fill", "purity", "width", "height")


@dataclass(frozen=True)
class ManifestOutput:
    """One rendition of a job as the manifest keeps it."""

    name: str
    uri: str | None = None
    kind: str | None = None
    preset: str | None = None
    verdict: str | None = None  # pass | review | fail; None for a rendition without a preset
    reasons: tuple[str, ...] = ()  # every reason it is not pass
    failed: tuple[str, ...] = ()  # the preset's rules it failed
    fill: float | None = None
    purity: float | None = None
    width: int | None = None
    height: int | None = None
    size: int | None = None


@dataclass(frozen=True)
class ManifestRow:
    """One job: how it ended and what it made."""

    job_id: str
    status: str  # completed | failed | cancelled | pending (no event before a wait ended)
    input: str | None = None
    name: str | None = None  # the source's original name
    ref: str | None = None  # the client's reference, e.g. a SKU
    outputs: tuple[ManifestOutput, ...] = ()
    flags: tuple[str, ...] = ()
    error_code: str | None = None
    error_message: str | None = None
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    quality: Mapping[str, float] = field(default_factory=dict)  # the figures behind the flags
    attempt: int | None = None
    duplicate: bool = False
    time: str | None = None  # the event's time (RFC 3339)

    @property
    def confidence(self) -> float | None:
        """The share of the subject's pixels the mask is sure of (1 − ``uncertain``)."""
        uncertain = self.quality.get("uncertain")
        return None if uncertain is None else round(1.0 - float(uncertain), 4)

    @property
    def verdict(self) -> str | None:
        """The worst verdict of the job's renditions; None when none has one."""
        given = [output.verdict for output in self.outputs if output.verdict in VERDICTS]
        return max(given, key=VERDICTS.index) if given else None

    @property
    def reasons(self) -> tuple[str, ...]:
        """``<rendition>: <reason>`` for each reason a rendition is not pass."""
        return tuple(f"{o.name}: {reason}" for o in self.outputs for reason in o.reasons)

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "status": self.status,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "input": self.input,
            "name": self.name,
            "ref": self.ref,
            "flags": list(self.flags),
            "error_code": self.error_code,
            "error_message": self.error_message,
            "outputs": [_output_json(output) for output in self.outputs],
            "timings_ms": dict(self.timings_ms),
            "confidence": self.confidence,
            "quality": dict(self.quality),
            "attempt": self.attempt,
            "duplicate": self.duplicate,
            "time": self.time,
        }


def row_from_event(data: Mapping[str, Any], time: str | None = None) -> ManifestRow:
    """A row from an event's ``data`` (a CloudEvent's, as JSON)."""
    error = data.get("error") or {}
    attributes = data.get("attributes") or {}
    source = data.get("input")
    return ManifestRow(
        job_id=str(data["job_id"]),
        status=str(data.get("status") or "completed"),
        input=source,
        name=data.get("name") or attributes.get("name") or _base_name(source),
        ref=data.get("ref") or attributes.get("ref"),
        outputs=tuple(_output_from_event(output) for output in data.get("outputs") or ()),
        flags=tuple(data.get("flags") or ()),
        error_code=error.get("code"),
        error_message=error.get("message") or data.get("reason"),
        timings_ms=dict(data.get("timings_ms") or {}),
        quality=dict(data.get("quality") or {}),
        attempt=data.get("attempt"),
        duplicate=bool(data.get("duplicate")),
        time=time,
    )


def read_events(paths: Iterable[str | Path]) -> list[ManifestRow]:
    """The latest event of each job, as rows, from JSONL files of events.

    Lines may be CloudEvents or pulled Pub/Sub messages (``{"body": …}``); a later event of a
    job replaces an earlier one, except that a duplicate never hides a first computation.
    """
    return latest(_event_documents(paths))


def latest(documents: Iterable[Mapping[str, Any]]) -> list[ManifestRow]:
    """One row per job from CloudEvents, in first-seen order (see :func:`read_events`)."""
    return merge(row_from_event(d["data"], d.get("time")) for d in documents)


def merge(rows: Iterable[ManifestRow]) -> list[ManifestRow]:
    """One row per job, in first-seen order: a later row of a job replaces an earlier one,
    except that a duplicate never hides a first computation."""
    jobs: dict[str, ManifestRow] = {}
    for row in rows:
        earlier = jobs.get(row.job_id)
        if earlier is None or not (row.duplicate and not earlier.duplicate):
            jobs[row.job_id] = row
    return list(jobs.values())


def event_document(line: str, where: str) -> dict[str, Any] | None:
    """The CloudEvent in one line of an events file, or None (logged) when it is not one."""
    try:
        document = json.loads(line)
    except ValueError:
        log.warning("%s: not JSON; skipped", where)
        return None
    if isinstance(document, dict) and isinstance(document.get("body"), dict):
        document = document["body"]  # a pulled Pub/Sub message
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict) or "job_id" not in data:
        log.warning("%s: not a cutq event; skipped", where)
        return None
    return document


def _event_documents(paths: Iterable[str | Path]) -> Iterator[dict[str, Any]]:
    for given in paths:
        path = Path(given)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                document = event_document(line, f"{path}:{number}")
                if document is not None:
                    yield document


def write_manifest(rows: Sequence[ManifestRow], path: str | Path) -> tuple[Path, Path]:
    """Write ``path`` as ``.jsonl`` and ``.csv`` (whatever its suffix); returns both paths."""
    base = Path(path)
    jsonl, table = base.with_suffix(".jsonl"), base.with_suffix(".csv")
    base.parent.mkdir(parents=True, exist_ok=True)
    with jsonl.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row.to_json(), ensure_ascii=False) + "\n")
    names = list(dict.fromkeys(o.name for row in rows for o in row.outputs))
    stages = list(dict.fromkeys([*TIMING_STAGES, *(k for r in rows for k in r.timings_ms)]))
    figures = list(dict.fromkeys(k for row in rows for k in row.quality))
    header = [
        *("job_id", "status", "verdict", "reasons", "input", "name", "ref", "flags"),
        *("confidence", "error_code", "error_message", "attempt", "duplicate", "time"),
        *(f"{stage}_ms" for stage in stages),
        *(f"quality.{figure}" for figure in figures),
        *(f"{name}.{key}" for name in names for key in OUTPUT_FIELDS),
    ]
    with table.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, header)
        writer.writeheader()
        writer.writerows(_csv_row(row) for row in rows)
    return jsonl, table


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """The rows of a manifest written by :func:`write_manifest` (its ``.jsonl`` or ``.csv``)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", newline="") as table:
            return [_row_from_csv(record) for record in csv.DictReader(table)]
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(_row_from_json(json.loads(line)))
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                raise ConfigError(f"{path}:{number}: not a manifest row ({error})") from None
    return rows


def is_manifest_line(line: str) -> bool:
    """Whether a JSONL line is a manifest row (not an event): for readers given either."""
    try:
        document = json.loads(line)
    except ValueError:
        return False
    return isinstance(document, dict) and "job_id" in document and "data" not in document


def _base_name(uri: str | None) -> str | None:
    return uri.rstrip("/").rsplit("/", 1)[-1] if uri else None


def _output_from_event(data: Mapping[str, Any]) -> ManifestOutput:
    figures = data.get("figures") or {}
    failed = tuple(data.get("failed") or ())
    verdict = data.get("verdict")
    reasons = tuple(data.get("reasons") or (failed if verdict in ("review", "fail") else ()))
    return ManifestOutput(
        name=str(data.get("name") or data.get("kind") or "output"),
        uri=data.get("uri"),
        kind=data.get("kind"),
        preset=data.get("preset"),
        verdict=verdict,
        reasons=reasons,
        failed=failed,
        fill=figures.get("fill"),
        purity=figures.get("purity"),
        width=data.get("width"),
        height=data.get("height"),
        size=data.get("size"),
    )


def _output_json(output: ManifestOutput) -> dict[str, Any]:
    data = dict(vars(output))
    data["reasons"], data["failed"] = list(output.reasons), list(output.failed)
    return data


def _row_from_json(data: Mapping[str, Any]) -> ManifestRow:
    outputs = tuple(
        ManifestOutput(
            **{
                **output,
                "reasons": tuple(output.get("reasons") or ()),
                "failed": tuple(output.get("failed") or ()),
            }
        )
        for output in data.get("outputs") or ()
    )
    return ManifestRow(
        job_id=str(data["job_id"]),
        status=str(data["status"]),
        input=data.get("input"),
        name=data.get("name"),
        ref=data.get("ref"),
        outputs=outputs,
        flags=tuple(data.get("flags") or ()),
        error_code=data.get("error_code"),
        error_message=data.get("error_message"),
        timings_ms=dict(data.get("timings_ms") or {}),
        quality=dict(data.get("quality") or {}),
        attempt=data.get("attempt"),
        duplicate=bool(data.get("duplicate")),
        time=data.get("time"),
    )


def _csv_row(row: ManifestRow) -> dict[str, Any]:
    record: dict[str, Any] = {
        "job_id": row.job_id,
        "status": row.status,
        "verdict": row.verdict,
        "reasons": LIST_SEPARATOR.join(row.reasons),
        "input": row.input,
        "name": row.name,
        "ref": row.ref,
        "flags": LIST_SEPARATOR.join(row.flags),
        "confidence": row.confidence,
        "error_code": row.error_code,
        "error_message": row.error_message,
        "attempt": row.attempt,
        "duplicate": "yes" if row.duplicate else "",
        "time": row.time,
    }
    record.update({f"{stage}_ms": value for stage, value in row.timings_ms.items()})
    record.update({f"quality.{figure}": value for figure, value in row.quality.items()})
    for output in row.outputs:
        for key in OUTPUT_FIELDS:
            value = getattr(output, key)
            record[f"{output.name}.{key}"] = (
                LIST_SEPARATOR.join(value) if isinstance(value, tuple) else value
            )
    return record


def _row_from_csv(record: Mapping[str, str]) -> ManifestRow:
    def text(key: str) -> str | None:
        return record.get(key) or None

    def words(key: str) -> tuple[str, ...]:
        return tuple(part for part in (record.get(key) or "").split(LIST_SEPARATOR) if part)

    names = [key[: -len(".uri")] for key in record if key.endswith(".uri")]
    outputs = tuple(
        ManifestOutput(
            name=name,
            uri=text(f"{name}.uri"),
            verdict=text(f"{name}.verdict"),
            reasons=words(f"{name}.reasons"),
            fill=_number(text(f"{name}.fill"), float),
            purity=_number(text(f"{name}.purity"), float),
            width=_number(text(f"{name}.width"), int),
            height=_number(text(f"{name}.height"), int),
        )
        for name in names
        if any(text(f"{name}.{key}") for key in OUTPUT_FIELDS)  # this job had that rendition
    )
    timings = {
        key[: -len("_ms")]: float(value)
        for key, value in record.items()
        if key.endswith("_ms") and value
    }
    quality = {
        key[len("quality.") :]: float(value)
        for key, value in record.items()
        if key.startswith("quality.") and value
    }
    return ManifestRow(
        job_id=record["job_id"],
        status=record["status"],
        input=text("input"),
        name=text("name"),
        ref=text("ref"),
        outputs=outputs,
        flags=words("flags"),
        error_code=text("error_code"),
        error_message=text("error_message"),
        timings_ms=timings,
        quality=quality,
        attempt=_number(text("attempt"), int),
        duplicate=record.get("duplicate") == "yes",
        time=text("time"),
    )


def _number(text: str | None, kind: type) -> Any:
    return None if text is None else kind(text)
