"""A named job request: what a client asks of one job, apart from its source.

The one list of a job's settings that :class:`~cutq.submitter.client.Submitter`
(``prepare``/``submit``/``submit_many``), ``cutq submit``, the upload-triggered function and
:func:`JobRequest.job` share; :func:`~cutq.core.contract.new_job` builds and validates the job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from cutq.core.contract import Job, Options, OutputSpec, new_job
from cutq.core.control import Expiry
from cutq.core.errors import ConfigError
from cutq.core.lanes import Lane
from cutq.core.naming import Identity
from cutq.core.renditions import Rendition


@dataclass(frozen=True)
class JobRequest:
    """One job's settings. ``output`` None: the submitter's default; ``lane`` None:
    interactive for one job, bulk for many (docs/lanes.md); ``ttl_s`` (from publish) and/or
    ``deadline``: past it the job is not computed but ends ``failed`` with
    ``deadline_exceeded``; ``ref`` and ``name`` (docs/identity.md) travel into the events,
    the results' metadata and the worker's log lines."""

    output: str | OutputSpec | None = None
    options: Options | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    model: str | None = None
    renditions: tuple[Rendition, ...] = ()
    ttl_s: float | None = None
    deadline: datetime | None = None
    lane: Lane | None = None
    ref: str | None = None
    name: str | None = None
    job_id: str | None = None

    @classmethod
    def of(cls, request: JobRequest | None = None, **changes: Any) -> JobRequest:
        """``request`` (or the defaults) with ``changes``; a change of None keeps the value.
        An unknown keyword is a :class:`ConfigError` naming the known ones."""
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"unknown job setting(s) {unknown}; known: {sorted(known)}")
        given = {key: value for key, value in changes.items() if value is not None}
        if "renditions" in given:
            given["renditions"] = tuple(given["renditions"])
        return replace(request or cls(), **given)

    @property
    def expiry(self) -> Expiry | None:
        if self.ttl_s is None and self.deadline is None:
            return None
        return Expiry(self.deadline, self.ttl_s)

    @property
    def identity(self) -> Identity:
        return Identity(self.ref, self.name)

    def job(self, input_uri: str, output: OutputSpec, generation: int | None = None) -> Job:
        """The validated job for ``input_uri`` (``output``: the resolved :attr:`output`)."""
        return new_job(
            input_uri,
            output,
            input_generation=generation,
            model=self.model,
            options=self.options,
            attributes=self.attributes,
            job_id=self.job_id,
            renditions=self.renditions,
            expiry=self.expiry,
            identity=self.identity,
        )
