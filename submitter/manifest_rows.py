"""The rows of ``cutq submit --wait --manifest FILE``: one per job waited for.

A job's row comes from its completion event when the watcher saw one (verdicts, flags,
timings); a job found done by looking at its result objects has its outputs only; a job with
no result when the wait ended is ``pending``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from cutq.core.manifest import ManifestOutput, ManifestRow, row_from_event

if TYPE_CHECKING:
    from cutq.submitter.client import JobHandle
    from cutq.submitter.watch import Result


def manifest_rows(
    handles: Sequence[JobHandle],
    results: Iterable[Result],
    attributes: Mapping[str, Mapping[str, str]] | None = None,
) -> list[ManifestRow]:
    """A row per handle, in order. ``attributes``: per job id, the ``ref``/``name`` it was
    submitted with, for rows that have no event to say so."""
    by_id = {result.job_id: result for result in results}
    rows = []
    for handle in handles:
        result = by_id.get(handle.job_id)
        given = (attributes or {}).get(handle.job_id, {})
        submitted_name = given.get("name") or (handle.source or handle.input).rsplit("/", 1)[-1]
        if result is not None and result.event is not None:
            document = result.event.to_cloudevent()
            row = row_from_event(document["data"], document["time"])
            data = document["data"]
            if not (data.get("name") or data["attributes"].get("name")):  # a staged file
                row = replace(row, name=submitted_name)  # its name as given, not its hash
            rows.append(row)
            continue
        rows.append(
            ManifestRow(
                job_id=handle.job_id,
                status="completed" if result is not None else "pending",
                input=handle.input,
                name=submitted_name,
                ref=given.get("ref"),
                outputs=tuple(
                    ManifestOutput(name=name, uri=uri)
                    for name, uri in (result.outputs if result is not None else {}).items()
                ),
            )
        )
    return rows
