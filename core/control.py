"""Deadlines and cancellation: the parts of the job contract that say when to stop.

**Deadline.** A v1 job may carry ``"deadline"`` (an RFC 3339 time with its offset, e.g.
``"2026-12-02T10:00:30Z"``) and/or ``"ttl_s"`` (seconds after the message's publish time); it
expires at the earlier of the two (:class:`Expiry`). A job past it when a worker admits it, or
when its batch would start, ends with a ``failed`` event, code ``deadline_exceeded``, without
its image being downloaded or the model run. Neither field is part of a derived job id: the
same image with the same options is the same job, however long it may wait.

**Cancellation.** One small object per cancelled run or job under a control prefix
(:func:`control_uri`: ``gs://<results bucket>/_cutq``, or ``<output>/_cutq`` for a local
output, unless ``CUTQ_CONTROL`` says otherwise)::

    <control>/cancel/runs/<run_id>      every job whose message has cutq.run_id = <run_id>
    <control>/cancel/jobs/<job_id>      one job

created create-only, so cancelling twice is seen as such. Bulk submissions register their run
at ``<control>/runs/<run_id>``, so cancelling a run nobody started is seen as such too. Workers
list ``<control>/cancel/`` every few seconds (one list request) and read nothing else.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from cutq.core.errors import AlreadyExists, CutqError, DeadlineExceeded, InvalidJob
from cutq.core.storage import Storage

RUN_ID_ATTRIBUTE = "cutq.run_id"  # the message attribute naming a job's bulk run
RUN_ID_RE = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.=-]{0,127}\Z")  # a job id's alphabet
MAX_TTL_S = 31 * 24 * 3600  # Pub/Sub keeps a message at most 31 days
CONTROL_DIR = "_cutq"
CANCEL_THREADS = 16  # records written at once by one cancel call (a list of 1,000 jobs)
Target = Literal["runs", "jobs"]


# --- deadlines -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expiry:
    """When a job stops being worth computing: ``deadline``, ``ttl_s`` after publish, or both."""

    deadline: datetime | None = None
    ttl_s: float | None = None

    def at(self, publish_time: datetime) -> datetime | None:
        """The earlier of the two, for a message published at ``publish_time``."""
        times = [t for t in (self.deadline,) if t is not None]
        if self.ttl_s is not None:
            times.append(publish_time + timedelta(seconds=self.ttl_s))
        return min(times) if times else None

    def check(self, publish_time: datetime, now: datetime | None = None) -> None:
        """Raise :class:`DeadlineExceeded` when the job expired by ``now``."""
        expires = self.at(publish_time)
        now = now or datetime.now(timezone.utc)
        if expires is not None and now >= expires:
            late = (now - expires).total_seconds()
            raise DeadlineExceeded(f"deadline {_rfc3339(expires)} passed {late:.1f} s ago")

    def body(self) -> dict[str, Any]:
        """The job-body fields that say this (none when unset)."""
        fields: dict[str, Any] = {}
        if self.deadline is not None:
            fields["deadline"] = _rfc3339(self.deadline)
        if self.ttl_s is not None:
            fields["ttl_s"] = self.ttl_s
        return fields


def parse_expiry(body: Mapping[str, Any]) -> Expiry | None:
    """``deadline`` and ``ttl_s`` of a job body; None when it has neither. Raises InvalidJob."""
    deadline, ttl_s = body.get("deadline"), body.get("ttl_s")
    if deadline is None and ttl_s is None:
        return None
    return Expiry(_parse_deadline(deadline), _parse_ttl(ttl_s))


# RFC 3339 section 5.6 ``date-time``, nothing more: ``datetime.fromisoformat`` alone would also
# take ISO 8601's week dates, basic format, ``+0100`` offsets and times with no offset. With
# this grammar checked first, building the datetime needs no parser library; a leap second
# (``:60``) is refused (``datetime`` cannot hold one).
_RFC3339 = re.compile(
    r"\A(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z",
    re.ASCII,
)


def parse_rfc3339(value: Any, what: str = "deadline") -> datetime:
    """An RFC 3339 ``date-time`` with its offset (``Z`` or ``±hh:mm``), in UTC.

    Raises :class:`InvalidJob` naming ``what`` for anything else: another ISO 8601 form, a
    time without an offset, an impossible date or offset, or one outside years 1-9999 once
    moved to UTC (``9999-12-31T23:59:59-01:00``).
    """
    if not isinstance(value, str):
        raise InvalidJob(f"{what}: expected an RFC 3339 time string, got {value!r:.80}")
    match = _RFC3339.match(value)
    if match is None:
        raise InvalidJob(
            f"{what}: expected an RFC 3339 time with an offset, e.g. "
            f"'2026-12-02T10:00:30Z' or '2026-12-02T11:00:30+01:00', got {value[:60]!r}"
        )
    year, month, day, hour, minute, second, fraction, _, sign, off_h, off_m = match.groups()
    try:
        if int(off_h or 0) > 23 or int(off_m or 0) > 59:
            raise ValueError(f"offset {sign}{off_h}:{off_m} out of range")
        offset = timedelta(hours=int(off_h or 0), minutes=int(off_m or 0))
        local = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=timezone(-offset if sign == "-" else offset),
        )
    except ValueError as error:
        raise InvalidJob(f"{what}: {value[:60]!r} is not a valid time: {error}") from None
    try:
        return local.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise InvalidJob(
            f"{what}: {value[:60]!r} is outside the years 0001-9999 once moved to UTC"
        ) from None


def _parse_deadline(value: Any) -> datetime | None:
    return None if value is None else parse_rfc3339(value, "deadline")


def _parse_ttl(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidJob(f"ttl_s: expected a number of seconds, got {value!r}")
    if not 0 < value <= MAX_TTL_S:
        raise InvalidJob(f"ttl_s: must be more than 0 and at most {MAX_TTL_S} (31 days)")
    return float(value)


def _rfc3339(time: datetime) -> str:
    return time.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


# --- cancellation records --------------------------------------------------------------------


def control_uri(output: str, control: str | None = None) -> str:
    """The control prefix: ``control`` if set; else ``gs://<output's bucket>/_cutq`` (outside
    any results prefix, shared by every output in the bucket), or ``<output>/_cutq`` for a
    ``file://`` output."""
    if control:
        return control.rstrip("/")
    if output.startswith("gs://"):
        return f"gs://{output[len('gs://') :].split('/', 1)[0]}/{CONTROL_DIR}"
    return f"{output.rstrip('/')}/{CONTROL_DIR}"


def run_id_of(attributes: Mapping[str, str]) -> str | None:
    """The bulk run a message belongs to (its ``cutq.run_id`` attribute), if any; checked as
    ``cutq cancel`` checks a run id (:func:`check_id`), so a run a worker accepts can always be
    cancelled. Raises :class:`InvalidJob` for a malformed one."""
    value = attributes.get(RUN_ID_ATTRIBUTE)
    return None if value is None else check_id(value, f"attributes[{RUN_ID_ATTRIBUTE!r}]")


def new_run_id(now: datetime | None = None) -> str:
    """``run-20261202T002530Z-1a2b3c``: sortable by start, unique enough to type."""
    now = now or datetime.now(timezone.utc)
    return f"run-{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def check_id(value: str, what: str) -> str:
    """``value`` when it is a well-formed run or job id; :class:`InvalidJob` naming ``what``."""
    if not isinstance(value, str) or not RUN_ID_RE.match(value):
        raise InvalidJob(
            f"{what}: must be 1-128 characters of A-Z a-z 0-9 _ . = -, not starting with "
            f"'.' or '-'; got {value!r:.80}"
        )
    return value


def record_uri(control: str, target: Target, name: str) -> str:
    return f"{control}/cancel/{target}/{name}"


def run_uri(control: str, run_id: str) -> str:
    return f"{control}/runs/{run_id}"


@dataclass(frozen=True)
class Cancellations:
    """Every cancelled run and job, as one listing saw them."""

    runs: frozenset[str] = frozenset()
    jobs: frozenset[str] = frozenset()

    def covers(self, job_id: str, run_id: str | None) -> bool:
        return job_id in self.jobs or (run_id is not None and run_id in self.runs)

    def __len__(self) -> int:
        return len(self.runs) + len(self.jobs)


def list_cancellations(storage: Storage, control: str, limit: int) -> Cancellations:
    """One listing of ``<control>/cancel/``; at most ``limit`` records are kept (the rest are
    ignored, oldest names last: see docs/lanes.md on expiring records)."""
    prefix = f"{control}/cancel/"
    runs: set[str] = set()
    jobs: set[str] = set()
    for info in storage.list(prefix):
        # Names hold no "/": the last "/cancel/" starts the record's own part (a file://
        # listing may spell the prefix differently, percent-encoded).
        target, _, name = info.uri.rsplit("/cancel/", 1)[-1].partition("/")
        if target == "runs" and name:
            runs.add(name)
        elif target == "jobs" and name:
            jobs.add(name)
        if len(runs) + len(jobs) >= limit:
            break
    return Cancellations(frozenset(runs), frozenset(jobs))


@dataclass
class CancelReport:
    """What one cancel call did: records created now, and those that already existed."""

    cancelled: list[str] = field(default_factory=list)  # "run X" / "job Y", created now
    already: dict[str, str] = field(default_factory=dict)  # same, → when it was cancelled
    unknown_runs: list[str] = field(default_factory=list)  # no bulk run with that id

    @property
    def ok(self) -> bool:
        return not self.unknown_runs

    def lines(self) -> Iterator[str]:
        for what in self.cancelled:
            yield f"cancelled {what}"
        for what, when in self.already.items():
            yield f"{what} was already cancelled{f' at {when}' if when else ''}"
        for run_id in self.unknown_runs:
            yield f"no run {run_id}: nothing cancelled (no bulk submission registered that id)"


def register_run(storage: Storage, control: str, run_id: str, details: Mapping[str, Any]) -> None:
    """Record that bulk run ``run_id`` started (idempotent: a resumed run writes it again)."""
    body = {"v": 1, "run_id": run_id, "started": _rfc3339(datetime.now(timezone.utc))}
    body.update(details)
    storage.write(
        run_uri(control, run_id), json.dumps(body).encode(), content_type="application/json"
    )


def cancel(
    storage: Storage,
    control: str,
    *,
    run_ids: Iterable[str] = (),
    job_ids: Iterable[str] = (),
    reason: str | None = None,
) -> CancelReport:
    """Record the cancellation of runs and jobs, durably, each once; see :class:`CancelReport`.

    A run must have been registered by its bulk submission; a job id needs no registration
    (a job not yet published, or never, is harmless to cancel).
    """
    report = CancelReport()
    now = _rfc3339(datetime.now(timezone.utc))
    body = json.dumps({"v": 1, "cancelled_at": now, "reason": reason or ""}).encode()
    targets: list[tuple[Target, str]] = []
    for run_id in run_ids:
        check_id(run_id, "run id")
        if storage.stat(run_uri(control, run_id)) is None:
            report.unknown_runs.append(run_id)
        else:
            targets.append(("runs", run_id))
    targets += [("jobs", check_id(job_id, "job id")) for job_id in job_ids]

    def record(target: Target, name: str) -> None:
        what = f"{target[:-1]} {name}"
        uri = record_uri(control, target, name)
        try:
            storage.write(
                uri,
                body,
                content_type="application/json",
                if_absent=True,
            )
            report.cancelled.append(what)
        except AlreadyExists:
            report.already[what] = _cancelled_at(storage, uri)

    with ThreadPoolExecutor(CANCEL_THREADS, thread_name_prefix="cutq-cancel") as pool:
        for done in [pool.submit(record, target, name) for target, name in targets]:
            done.result()  # a storage error raises here, after the others were tried
    return report


def _cancelled_at(storage: Storage, uri: str) -> str:
    """When an existing record says it was made ('' when it cannot say)."""
    try:
        record = json.loads(storage.read(uri, max_bytes=64 * 1024))
        return str(record.get("cancelled_at", "")) if isinstance(record, dict) else ""
    except (ValueError, CutqError):
        return ""
