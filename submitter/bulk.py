"""Bulk submission: :func:`submit_bulk` (what ``cutq submit`` runs for folders and prefixes)
and its building blocks: lazy inputs, a rate limiter, a checkpoint, a done-index.

Everything here streams: a bucket prefix is listed page by page and each object becomes a job
as it is listed, so memory does not grow with the number of inputs.

**Skip-done design.** A result lives at ``<output>/dt=<publish date>/<job_id>.<ext>``, and the
date is that of the run that produced it, so a job id alone does not name its result object.
:class:`DoneIndex` lists ``<output>/dt=`` once, lazily, and keeps the result file names it finds
(``<job_id>.<ext>``, ``<job_id>.mask.<ext>``) with their date; a job is done when every
result its ``kind`` needs is there, under any date. Derived job ids hash the input URI, its
generation and the options, so an overwritten input or changed options is a new job and is
submitted again. Cost: one list request per 1,000 results (instead of one stat per input) and
about 100 bytes of memory per result; no change to the worker is needed. Point ``--output`` at
a prefix dedicated to the batch, since the whole ``dt=`` tree under it is listed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from cutq.core.contract import Job, OutputSpec
from cutq.core.errors import ConfigError, CutqError
from cutq.core.naming import RefRule
from cutq.core.request import JobRequest
from cutq.core.storage import ObjectInfo, file_path, open_storage
from cutq.submitter.staging import NamedSource

if TYPE_CHECKING:
    from cutq.submitter.client import Submitter
    from cutq.submitter.handle import JobHandle

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff", "heic", "heif")
CHECKPOINT_VERSION = 1
_RESULT_RE = re.compile(r"(?:^|/)dt=(\d{4}-\d{2}-\d{2})/([^/]+)$")


# --- the run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BulkSettings:
    """How a bulk submission runs (``cutq submit``'s flags of the same names).

    ``skip_done``: jobs whose results exist are not published (:class:`DoneIndex`);
    ``rate_per_s``: at most that many publishes a second; ``resume_file``: a
    :class:`Checkpoint` a restarted run continues after; ``run_id``: each job's
    ``cutq.run_id`` attribute (register it with ``Submitter.start_run``); ``ref``: how each
    job's ref derives from its source's name (docs/identity.md).
    """

    extensions: Sequence[str] = IMAGE_EXTENSIONS
    skip_done: bool = False
    rate_per_s: float | None = None
    resume_file: str | None = None
    run_id: str | None = None
    ref: RefRule | None = None


@dataclass(frozen=True)
class SubmitError:
    """A source that could not be submitted, and why."""

    source: str
    error: BaseException


@dataclass
class BulkProgress:
    """What a bulk submission did so far (updated as it runs)."""

    published: int = 0
    skipped: int = 0  # done already (skip-done)
    errors: list[SubmitError] = field(default_factory=list)


def submit_bulk(
    submitter: Submitter,
    inputs: Sequence[str],
    request: JobRequest | None = None,
    settings: BulkSettings | None = None,
    *,
    progress: BulkProgress | None = None,
    on_error: Callable[[SubmitError], None] | None = None,
) -> Iterator[JobHandle]:
    """Publish one job per image under ``inputs`` (files, folders, ``gs://``/``file://``
    prefixes), lazily, yielding each handle in listing order. Each job carries its source's
    ``name`` (relative to the input it was listed from) and, with ``settings.ref``, its ref.
    A source that cannot be submitted is recorded in ``progress.errors`` (and passed to
    ``on_error``), never raised; the checkpoint never moves past it."""
    settings = settings or BulkSettings()
    progress = progress if progress is not None else BulkProgress()
    request = JobRequest.of(request)
    spec = submitter.output_spec(request.output)
    checkpoint = Checkpoint(settings.resume_file) if settings.resume_file else None
    limiter = TokenBucket(settings.rate_per_s) if settings.rate_per_s else None
    done = DoneIndex.build(spec) if settings.skip_done else None
    if done is not None:
        log.info("skip-done: %d result files under %s", len(done), spec.uri)
    order: deque[InputItem] = deque()  # each source handed over, until its handle or error
    stuck: set[str] = set()  # origins whose checkpoint must not move past an error

    def failed(source: str, error: BaseException, origin: str | None = None) -> None:
        stuck.add(origin if origin is not None else order.popleft().origin)
        progress.errors.append(SubmitError(source, error))
        log.warning("could not submit %s: %s", source, error)
        if on_error is not None:
            on_error(progress.errors[-1])

    def sources() -> Iterator[NamedSource]:
        items = iter_inputs(
            inputs,
            extensions=[e for e in settings.extensions if e],
            exclude=[spec.uri.rstrip("/") + "/"],
            resume_after=checkpoint.positions if checkpoint else None,
        )
        for item in items:
            try:
                ref = settings.ref.ref_for(item.name, item.uri) if settings.ref else None
            except CutqError as error:
                failed(item.uri, error, item.origin)
                continue
            order.append(item)
            yield NamedSource(item.source, name=item.name, ref=ref)

    try:
        for handle in submitter.submit_many(
            sources(),
            JobRequest.of(request, output=spec),
            skip=done.lookup if done is not None else None,
            before_publish=limiter.acquire if limiter is not None else None,
            on_error=failed,
            run_id=settings.run_id,
        ):
            item = order.popleft()
            if checkpoint is not None and item.origin not in stuck:
                checkpoint.advance(item.origin, item.uri)
            progress.skipped += handle.skipped
            progress.published += not handle.skipped
            yield handle
        if checkpoint is not None:
            for origin in inputs:
                if origin not in stuck:
                    checkpoint.finish(origin)
    finally:
        if checkpoint is not None:
            checkpoint.save()


# --- inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputItem:
    """One object to submit. ``origin`` is the command-line input it was listed from."""

    origin: str
    source: ObjectInfo | str  # a listed object (published as is) or a local path (staged)
    uri: str
    name: str = ""  # its path relative to the origin (a file given itself: its file name)


def iter_inputs(
    origins: Sequence[str],
    *,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    exclude: Sequence[str] = (),
    resume_after: Mapping[str, str] | None = None,
) -> Iterator[InputItem]:
    """Lazily list each origin: ``gs://bucket/prefix``, ``file:///dir`` (published as is) or
    local files and directories (staged). ``resume_after[origin]`` skips what sorts before it
    in listing order; URIs under ``exclude`` (the output) are skipped to avoid loops."""
    suffixes = tuple("." + ext.lower().lstrip(".") for ext in extensions)
    resume_after = resume_after or {}
    for origin in origins:
        after = resume_after.get(origin)
        if after == "*":
            continue
        after_key = listing_key(after) if after else None
        listed = "://" in origin
        prefix = origin if listed else file_path(origin).as_uri()
        base = _base_of(origin)
        for info in open_storage(prefix).list(prefix):
            uri = plain_uri(info.uri)
            if not uri.lower().endswith(suffixes) or uri.startswith(tuple(exclude)):
                continue
            if after_key is not None and listing_key(uri) <= after_key:
                continue
            source = replace(info, uri=uri) if listed else str(file_path(uri))
            yield InputItem(origin, source, uri, _relative(uri, base))


def _base_of(origin: str) -> str:
    """The folder an origin's names are relative to: the origin itself when it is a folder
    (``photos``, ``gs://b/shop/``), else its parent (a file; ``gs://b/shop`` also lists
    ``gs://b/shopping/…``)."""
    if "://" not in origin:
        path = file_path(origin).resolve()
        return (path if path.is_dir() else path.parent).as_posix().rstrip("/") + "/"
    uri = plain_uri(origin)
    return uri if uri.endswith("/") else uri.rsplit("/", 1)[0] + "/"


def _relative(uri: str, base: str) -> str:
    where = file_path(uri).as_posix() if uri.startswith("file://") else uri
    if base.startswith("file://"):
        base = file_path(base).as_posix().rstrip("/") + "/"
    return where[len(base) :] if where.startswith(base) else where.rsplit("/", 1)[-1]


def plain_uri(uri: str) -> str:
    """``file://`` URIs from a local listing are percent-encoded (``Path.as_uri``), while
    :func:`file_path` reads them literally: decode, so both agree (``dt=``, spaces)."""
    return unquote(uri) if uri.startswith("file://") else uri


def listing_key(uri: str) -> Any:
    """A key that increases along a listing: object names for ``gs://``; for a local walk
    (files of a directory first, then its subdirectories, each sorted) a tuple of parts."""
    if uri.startswith("gs://"):
        return uri
    parts = file_path(uri).parts
    return (*((1, part) for part in parts[:-1]), (0, parts[-1]))


# --- rate limit --------------------------------------------------------------------------------


class TokenBucket:
    """At most ``rate_per_s`` acquisitions per second on average, bursts up to ``burst``."""

    def __init__(
        self,
        rate_per_s: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        if rate_per_s <= 0:
            raise ConfigError(f"rate must be positive, got {rate_per_s}")
        self.rate_per_s = rate_per_s
        self.burst = burst if burst is not None else max(1.0, rate_per_s / 10)
        self._clock = clock
        self._sleep = sleep or threading.Event().wait
        self._tokens = self.burst
        self._last = clock()

    def acquire(self) -> None:
        """Take one token, waiting for it if the bucket is empty."""
        while True:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate_per_s)
            self._last = now
            if self._tokens >= 1.0 - 1e-9:  # float rounding must not spin
                self._tokens -= 1.0
                return
            self._sleep((1.0 - self._tokens) / self.rate_per_s)


def parse_rate(text: str) -> float:
    """``"50"``, ``"50/s"``, ``"3000/min"`` → jobs per second."""
    number, _, unit = text.partition("/")
    scale = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 1 / 60, "min": 1 / 60, "h": 1 / 3600}
    try:
        return float(number) * scale[unit.strip().lower()]
    except (ValueError, KeyError):
        raise ConfigError(f"--rate: expected N, N/s, N/min or N/h, got {text!r}") from None


# --- checkpoint --------------------------------------------------------------------------------


class Checkpoint:
    """Per origin, the last input whose publish was confirmed, with every earlier one.

    Saved atomically (temporary file + rename) at most every ``every_s`` seconds and on
    :meth:`close`; a restarted run skips what is at or before the saved position. A job
    published twice is harmless (same job id), so a position that lags behind is safe.
    """

    def __init__(self, path: str | os.PathLike[str], *, every_s: float = 2.0) -> None:
        self.path = Path(path)
        self.every_s = every_s
        self.positions: dict[str, str] = {}
        self._saved_at = time.monotonic()
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                if data.get("v") != CHECKPOINT_VERSION:
                    raise ValueError(f"version {data.get('v')!r}")
                self.positions = {str(k): str(v) for k, v in data["positions"].items()}
            except (ValueError, KeyError, AttributeError) as error:
                raise ConfigError(f"{self.path}: not a cutq checkpoint ({error})") from None

    def advance(self, origin: str, uri: str) -> None:
        self.positions[origin] = uri
        if time.monotonic() - self._saved_at >= self.every_s:
            self.save()

    def finish(self, origin: str) -> None:
        """Mark ``origin`` as fully submitted: a restart skips it without listing."""
        self.positions[origin] = "*"

    def save(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps({"v": CHECKPOINT_VERSION, "positions": self.positions}))
        os.replace(tmp, self.path)
        self._saved_at = time.monotonic()


# --- skip done ---------------------------------------------------------------------------------


class DoneIndex:
    """Result files already under an output prefix, in any ``dt=`` partition."""

    def __init__(self, base: str, names: Mapping[str, str]) -> None:
        self.base = base.rstrip("/")
        self._dates = dict(names)  # file name → date

    @classmethod
    def build(cls, output: OutputSpec) -> DoneIndex:
        """List ``<output>/dt=`` once (lazily, page by page)."""
        base = output.uri.rstrip("/")
        prefix = f"{base}/dt="
        names: dict[str, str] = {}
        dates: dict[str, str] = {}
        for info in open_storage(prefix).list(prefix):
            match = _RESULT_RE.search(plain_uri(info.uri))
            if match:
                day = dates.setdefault(match.group(1), match.group(1))
                names[match.group(2)] = day
        return cls(base, names)

    def __len__(self) -> int:
        return len(self._dates)

    def lookup(self, job: Job) -> dict[str, str] | None:
        """The job's result URIs when all of them exist, else None."""
        found = {}
        for name, uri in job.result_uris().items():
            file = uri.rsplit("/", 1)[-1]
            day = self._dates.get(file)
            if day is None:
                return None
            found[name] = f"{self.base}/dt={day}/{file}"
        return found
