"""The completion event: what a worker publishes once a job ended (CloudEvents 1.0, JSON).

Its other half, the job, is :mod:`cutq.core.contract`. An event is published only once what
it reports is durable; ``duplicate`` says an earlier delivery did the work.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from cutq.core.contract import Job

EVENT_TYPE_PREFIX = "dev.cutq.job."
EVENT_SOURCE = "//cutq/worker"

Status = Literal["completed", "failed", "cancelled"]
#: Attributes the event sets itself; a job's echoed attributes of these names are dropped.
RESERVED_ATTRIBUTES = ("job_id", "status", "error_code", "ref", "name")
TIMING_STAGES = ("queue", "download", "decode", "batch_wait", "infer", "encode", "upload", "total")


@dataclass(frozen=True)
class OutputInfo:
    """One written result object."""

    kind: str  # cutout | mask
    uri: str
    size: int
    width: int | None = None
    height: int | None = None
    name: str | None = None  # the rendition's name (``cutout``/``mask`` for jobs without any)
    preset: str | None = None
    verdict: str | None = None  # pass | review | fail, for a preset's rendition
    failed: tuple[str, ...] = ()  # the preset's rules it failed, in words
    figures: Mapping[str, Any] | None = None  # fill, purity, width, height, source size
    reasons: tuple[str, ...] = ()  # every reason it is not ``pass``: failed rules, then flags'

    def to_json(self) -> dict[str, Any]:
        data = _drop_none(vars(self))
        if self.verdict is None:
            data.pop("failed")
            data.pop("reasons")
        else:
            data["failed"] = list(self.failed)
            data["reasons"] = list(self.reasons)
        return data


@dataclass(frozen=True)
class Event:
    """How a job ended: completed (published once the result is durable), failed, or
    cancelled (never computed: the job or its bulk run was cancelled)."""

    job_id: str
    status: Status
    input: str | None
    outputs: tuple[OutputInfo, ...] = ()
    model: Mapping[str, str] | None = None
    attempt: int | None = None
    batch_size: int | None = None
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    error_code: str | None = None
    error_message: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    duplicate: bool = False
    flags: tuple[str, ...] | None = None  # quality flags of a completed job (None: unknown)
    quality: Mapping[str, float] | None = None  # the figures behind the flags
    ref: str | None = None  # the job's client reference (e.g. a SKU), when it has one
    name: str | None = None  # the source's original name, when the job carries it
    time: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @classmethod
    def completed(
        cls,
        job: Job,
        outputs: tuple[OutputInfo, ...],
        *,
        model: Mapping[str, str] | None = None,
        attempt: int | None = None,
        batch_size: int | None = None,
        timings_ms: Mapping[str, float] | None = None,
        duplicate: bool = False,
        flags: tuple[str, ...] | None = None,
        quality: Mapping[str, float] | None = None,
    ) -> Event:
        """``job`` done: ``outputs`` are durable. ``duplicate``: computed by an earlier delivery."""
        return cls(
            job_id=job.job_id,
            status="completed",
            input=job.input,
            outputs=outputs,
            model=model,
            attempt=attempt,
            batch_size=None if duplicate else batch_size,
            timings_ms=dict(timings_ms or {}),
            attributes=job.attributes,
            duplicate=duplicate,
            flags=flags,
            quality=dict(quality) if quality is not None else None,
            ref=job.ref,
            name=job.name,
        )

    @classmethod
    def failed(
        cls,
        job_id: str,
        input: str | None,
        code: str,
        message: str,
        *,
        attributes: Mapping[str, str] | None = None,
        model: Mapping[str, str] | None = None,
        attempt: int | None = None,
        timings_ms: Mapping[str, float] | None = None,
        ref: str | None = None,
        name: str | None = None,
    ) -> Event:
        """The job can never succeed as sent: ``code`` is a stable error code."""
        return cls(
            job_id=job_id,
            status="failed",
            input=input,
            model=model,
            attempt=attempt,
            timings_ms=dict(timings_ms or {}),
            error_code=code,
            error_message=message[:1000],
            attributes=dict(attributes or {}),
            ref=ref,
            name=name,
        )

    @classmethod
    def cancelled(
        cls,
        job: Job,
        message: str,
        *,
        model: Mapping[str, str] | None = None,
        attempt: int | None = None,
        timings_ms: Mapping[str, float] | None = None,
    ) -> Event:
        """``job`` was cancelled before it was computed: nothing was written."""
        return cls(
            job_id=job.job_id,
            status="cancelled",
            input=job.input,
            model=model,
            attempt=attempt,
            timings_ms=dict(timings_ms or {}),
            error_message=message[:1000],
            attributes=job.attributes,
            ref=job.ref,
            name=job.name,
        )

    def as_duplicate(self) -> Event:
        """This ending as a later delivery reports it: an earlier one already did."""
        return replace(self, duplicate=True, batch_size=None)

    def with_time(self, time: datetime) -> Event:
        return replace(self, time=time)

    def to_cloudevent(self) -> dict[str, Any]:
        """A CloudEvents 1.0 structured-mode JSON document."""
        data: dict[str, Any] = {
            "job_id": self.job_id,
            "status": self.status,
            "input": self.input,
            "outputs": [output.to_json() for output in self.outputs],
            "model": dict(self.model) if self.model else None,
            "attempt": self.attempt,
            "batch_size": self.batch_size,
            "timings_ms": {key: round(value, 2) for key, value in self.timings_ms.items()},
            "attributes": dict(self.attributes),
            "duplicate": self.duplicate,
        }
        data.update(_drop_none({"ref": self.ref, "name": self.name}))
        if self.flags is not None:
            data["flags"] = list(self.flags)
            data["quality"] = dict(self.quality or {})
        if self.status == "failed":
            data["error"] = {"code": self.error_code, "message": self.error_message}
        elif self.status == "cancelled":
            data["reason"] = self.error_message
        return {
            "specversion": "1.0",
            "id": f"{self.job_id}:{self.status}",
            "source": EVENT_SOURCE,
            "type": EVENT_TYPE_PREFIX + self.status,
            "subject": self.job_id,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            "data": data,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_cloudevent(), separators=(",", ":")).encode()

    def message_attributes(self) -> dict[str, str]:
        """Pub/Sub attributes so subscribers can filter without parsing the body."""
        attributes = {
            key: value for key, value in self.attributes.items() if key not in RESERVED_ATTRIBUTES
        }
        attributes.update(job_id=self.job_id, status=self.status)
        # Both fit: the contract caps a ref at 256 and a name at 1024 bytes (Pub/Sub's limit).
        attributes.update(_drop_none({"ref": self.ref, "name": self.name}))
        if self.error_code:
            attributes["error_code"] = self.error_code
        if self.flags is not None:  # route on them: attributes.flags, or hasPrefix/flag_<name>
            attributes["flags"] = ",".join(self.flags)
            for flag in self.flags:
                attributes[f"flag_{flag}"] = "1"
        return attributes


def event_from_cloudevent(document: Mapping[str, Any]) -> Event:
    """Inverse of :meth:`Event.to_cloudevent`, for clients waiting on results."""
    data = document["data"]
    error = data.get("error") or {}
    return Event(
        job_id=data["job_id"],
        status=data["status"],
        input=data.get("input"),
        outputs=tuple(_output(output) for output in data.get("outputs", ())),
        model=data.get("model"),
        attempt=data.get("attempt"),
        batch_size=data.get("batch_size"),
        timings_ms=data.get("timings_ms", {}),
        error_code=error.get("code"),
        error_message=error.get("message", data.get("reason")),
        attributes=data.get("attributes", {}),
        duplicate=data.get("duplicate", False),
        flags=tuple(data["flags"]) if "flags" in data else None,
        quality=data.get("quality"),
        ref=data.get("ref"),
        name=data.get("name"),
        time=datetime.fromisoformat(document["time"].replace("Z", "+00:00")),
    )


def _output(fields: Mapping[str, Any]) -> OutputInfo:
    return OutputInfo(
        **{
            **fields,
            "failed": tuple(fields.get("failed", ())),
            "reasons": tuple(fields.get("reasons", ())),
        }
    )


def _drop_none(mapping: dict[str, Any]) -> dict[str, Any]:
    return {key: item for key, item in mapping.items() if item is not None}
