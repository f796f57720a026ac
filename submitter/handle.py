"""A published job as its client holds it: :class:`JobHandle`, what waiting needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from cutq.core.contract import Job, OutputSpec
from cutq.core.renditions import Rendition


@dataclass(frozen=True)
class JobHandle:
    """A published (or skipped, already done) job; pass it to :meth:`Submitter.wait`."""

    job_id: str
    input: str
    result_uris: Mapping[str, str]  # dated by the publish confirmation time
    message_id: str | None  # None when skipped
    source: str = ""  # what the caller passed, for messages and checkpoints
    output: OutputSpec | None = None
    submitted_at: datetime | None = None  # just before publishing: the earliest possible date
    skipped: bool = False
    renditions: tuple[Rendition, ...] = ()
    ref: str | None = None  # the job's client reference (docs/identity.md)
    name: str | None = None  # its source's original name

    def candidate_result_uris(self) -> list[Mapping[str, str]]:
        """Result URIs for every date the worker might have used (publish may cross midnight)."""
        candidates = [self.result_uris]
        if self.output is not None and self.submitted_at is not None:
            job = Job(
                self.job_id,
                self.input,
                self.output,
                publish_time=self.submitted_at,
                renditions=self.renditions,
                ref=self.ref,
                name=self.name,
            )
            if job.result_uris() != self.result_uris:
                candidates.append(job.result_uris())
        return candidates
