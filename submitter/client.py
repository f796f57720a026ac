"""The library way in: upload (when needed), publish a job, wait for its completion event.

``Submitter`` is configured from arguments or ``CUTQ_*`` variables (:class:`SubmitterConfig`).
A source is a local path, ``bytes``, a binary file object, a ``gs://``/``file://`` URI or an
:class:`ObjectInfo` from a listing. Local bytes are staged under a content-addressed name,
``<staging>/<sha256>.<ext>``, so submitting the same bytes twice is the same job (the upload is
skipped when the object exists). No torch, no Pillow: this is what application servers import.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import os
import shutil
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Literal, Union

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1 import types as pstypes

from cutq.core.contract import Job, Options, OutputSpec, new_job
from cutq.core.control import (
    RUN_ID_ATTRIBUTE,
    CancelReport,
    Expiry,
    cancel,
    check_id,
    control_uri,
    new_run_id,
    register_run,
)
from cutq.core.errors import ConfigError, CutqError, InputNotFound, PublishFailed
from cutq.core.lanes import Lane, lane_attributes
from cutq.core.renditions import Rendition
from cutq.core.storage import ObjectInfo, file_path, open_storage, scheme_of, to_uri
from cutq.submitter.watch import JobsFailed, Result, Watcher, poll_objects, raise_for_failures

log = logging.getLogger(__name__)

Source = Union[str, "os.PathLike[str]", bytes, BinaryIO, ObjectInfo]
SkipCheck = Callable[[Job], "Mapping[str, str] | None"]
SINGLE_REQUEST_MAX_BYTES = 8 * 1024 * 1024  # larger sources go through a resumable upload
_MAGIC = ((b"\x89PNG", "png"), (b"\xff\xd8\xff", "jpg"), (b"GIF8", "gif"), (b"BM", "bmp"))
_ENV_NAMES = {
    "CUTQ_JOBS_TOPIC": "jobs_topic",
    "CUTQ_BULK_TOPIC": "bulk_topic",
    "CUTQ_EVENTS_TOPIC": "events_topic",
    "CUTQ_SUBMITTER_OUTPUT": "output",
    "CUTQ_SUBMITTER_STAGING": "staging",
    "CUTQ_CONTROL": "control",  # the same variable as the worker's
}


@dataclass(frozen=True)
class SubmitterConfig:
    """Where jobs go. Read from the environment once, by :meth:`from_env`."""

    jobs_topic: str  # projects/P/topics/T: the interactive lane's (or the only) jobs topic
    bulk_topic: str | None = None  # the bulk lane's; None: bulk jobs go to jobs_topic too
    output: str | None = None  # default output base URI for jobs that name none
    staging: str | None = None  # where local files and bytes are uploaded (gs:// or file://)
    events_topic: str | None = None  # completion events, for wait()/watch()
    control: str | None = None  # runs and cancellations; None: control_uri(output)
    max_in_flight: int = 1000  # unconfirmed publishes before publish() blocks
    prepare_threads: int = 8  # hashing/uploading/stat threads in submit_many
    batch_max_messages: int = 500
    batch_max_latency_ms: float = 10.0

    def __post_init__(self) -> None:
        for name in ("jobs_topic", "bulk_topic", "events_topic"):
            value = getattr(self, name)
            if value is not None and not _is_topic(value):
                raise ConfigError(f"{name}: expected projects/P/topics/T, got {value!r}")
        for name in ("output", "staging", "control"):
            value = getattr(self, name)
            if value is not None:
                scheme_of(value)  # rejects unknown schemes
        if self.max_in_flight < 1 or self.prepare_threads < 1:
            raise ConfigError("max_in_flight and prepare_threads must be at least 1")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> SubmitterConfig:
        """``CUTQ_JOBS_TOPIC``, ``CUTQ_BULK_TOPIC``, ``CUTQ_EVENTS_TOPIC``,
        ``CUTQ_SUBMITTER_OUTPUT``/``_STAGING``;
        non-None ``overrides`` win. An unknown ``CUTQ_SUBMITTER_*`` variable is an error."""
        values: dict[str, Any] = cls.read_env(env)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if not values.get("jobs_topic"):
            raise ConfigError("no jobs topic: pass --topic or set CUTQ_JOBS_TOPIC")
        return cls(**values)

    @staticmethod
    def read_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
        """The submitter's settings the environment sets, by field name (the one place they
        are read: also for ``cutq cancel``, which needs no topic). An unknown
        ``CUTQ_SUBMITTER_*`` variable is an error."""
        env = os.environ if env is None else env
        unknown = sorted(k for k in env if k.startswith("CUTQ_SUBMITTER_") and k not in _ENV_NAMES)
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; known: {_ENV_NAMES}")
        return {f: env[k] for k, f in _ENV_NAMES.items() if env.get(k)}

    def topic_for(self, lane: Lane) -> str:
        """Where a job in ``lane`` is published."""
        return self.bulk_topic if lane is Lane.BULK and self.bulk_topic else self.jobs_topic


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
            )
            if job.result_uris() != self.result_uris:
                candidates.append(job.result_uris())
        return candidates


@dataclass
class _Pending:
    source: str
    job: Job | None = None
    future: Future[str] | None = None
    submitted_at: datetime | None = None
    done_uris: Mapping[str, str] | None = None
    error: BaseException | None = field(default=None)

    def ready(self) -> bool:
        return self.future is None or self.future.done()


class Submitter:
    """Publishes jobs; a context manager that closes its Pub/Sub clients."""

    def __init__(
        self,
        config: SubmitterConfig | None = None,
        *,
        publisher: pubsub_v1.PublisherClient | None = None,
    ) -> None:
        self.config = config or SubmitterConfig.from_env()
        self._publisher = publisher
        self._own_publisher = publisher is None
        self._unconfirmed: set[Future[str]] = set()  # publishes Pub/Sub has not answered yet
        self._unconfirmed_lock = threading.Lock()

    @property
    def publisher(self) -> pubsub_v1.PublisherClient:
        if self._publisher is None:
            self._publisher = pubsub_v1.PublisherClient(
                batch_settings=pstypes.BatchSettings(
                    max_messages=self.config.batch_max_messages,
                    max_bytes=1 << 20,
                    max_latency=self.config.batch_max_latency_ms / 1000.0,
                ),
                publisher_options=pstypes.PublisherOptions(
                    flow_control=pstypes.PublishFlowControl(
                        message_limit=self.config.max_in_flight,
                        byte_limit=64 << 20,
                        limit_exceeded_behavior=pstypes.LimitExceededBehavior.BLOCK,
                    )
                ),
            )
        return self._publisher

    # --- submitting -------------------------------------------------------------------------

    def prepare(
        self,
        source: Source,
        *,
        output: str | OutputSpec | None = None,
        options: Options | None = None,
        attributes: Mapping[str, str] | None = None,
        job_id: str | None = None,
        model: str | None = None,
        renditions: Sequence[Rendition] = (),
        ttl_s: float | None = None,
        deadline: datetime | None = None,
    ) -> Job:
        """Stage ``source`` if needed and build its job, without publishing it.

        ``renditions``: the named outputs to make from one model run (e.g.
        ``presets("amazon-main", "thumbnail")``); none: ``output``'s cutout and/or mask.
        ``ttl_s`` (from publish) and/or ``deadline``: past it, the job is not computed but
        ends ``failed`` with ``deadline_exceeded``.
        """
        uri, generation = self._stage(source)
        return new_job(
            uri,
            self._output(output),
            input_generation=generation,
            model=model,
            options=options,
            attributes=attributes,
            job_id=job_id,
            renditions=tuple(renditions),
            expiry=Expiry(deadline, ttl_s) if ttl_s is not None or deadline else None,
        )

    def submit(
        self,
        source: Source,
        *,
        output: str | OutputSpec | None = None,
        options: Options | None = None,
        attributes: Mapping[str, str] | None = None,
        job_id: str | None = None,
        model: str | None = None,
        renditions: Sequence[Rendition] = (),
        ttl_s: float | None = None,
        deadline: datetime | None = None,
        lane: Lane = Lane.INTERACTIVE,
    ) -> JobHandle:
        """Upload when needed, publish one job and wait for Pub/Sub to accept it. One job is
        interactive unless ``lane`` says otherwise (README, "Lanes")."""
        job = self.prepare(
            source,
            output=output,
            options=options,
            attributes=attributes,
            job_id=job_id,
            model=model,
            renditions=renditions,
            ttl_s=ttl_s,
            deadline=deadline,
        )
        pending = _Pending(_label(source), job, submitted_at=_now())
        pending.future = self._publish(job, lane)
        return self._handle(pending)

    def submit_many(
        self,
        sources: Iterable[Source],
        *,
        output: str | OutputSpec | None = None,
        options: Options | None = None,
        attributes: Mapping[str, str] | None = None,
        model: str | None = None,
        renditions: Sequence[Rendition] = (),
        skip: SkipCheck | None = None,
        before_publish: Callable[[], None] | None = None,
        on_error: Callable[[str, BaseException], None] | None = None,
        run_id: str | None = None,
        ttl_s: float | None = None,
        deadline: datetime | None = None,
        lane: Lane = Lane.BULK,
    ) -> Iterator[JobHandle]:
        """Publish a job per source, lazily; yields handles in the order of ``sources``.
        Many jobs are bulk unless ``lane`` says otherwise (README, "Lanes").

        Staging runs in ``prepare_threads`` threads a bounded distance ahead; publishes are
        batched, and Pub/Sub flow control blocks once ``max_in_flight`` are unconfirmed.
        ``skip(job)`` returns the result URIs of a job already done (it is then not published);
        ``before_publish`` runs before each publish (a rate limiter); ``on_error(source, error)``
        is called, in order, for a source that could not be submitted (else the error raises).
        ``run_id`` (see :meth:`start_run`) goes into each message's ``cutq.run_id`` attribute,
        so :meth:`cancel` can stop the whole run.
        """
        spec = self._output(output)
        lookahead = self.config.prepare_threads * 4
        staged: deque[tuple[str, Future[Job]]] = deque()
        published: deque[_Pending] = deque()
        pool = ThreadPoolExecutor(self.config.prepare_threads, thread_name_prefix="cutq-stage")

        def build(source: Source) -> Job:
            return self.prepare(
                source,
                output=spec,
                options=options,
                attributes=attributes,
                model=model,
                renditions=renditions,
                ttl_s=ttl_s,
                deadline=deadline,
            )

        def advance(source: str, future: Future[Job]) -> Iterator[JobHandle]:
            pending = _Pending(source)
            try:
                pending.job = future.result()
                pending.done_uris = skip(pending.job) if skip else None
                if pending.done_uris is None:
                    if before_publish:
                        before_publish()
                    pending.submitted_at = _now()
                    pending.future = self._publish(pending.job, lane, run_id)
            except CutqError as error:
                pending.error = error
            published.append(pending)
            while published and (
                published[0].ready() or len(published) > 2 * self.config.max_in_flight
            ):
                yield from self._finish(published.popleft(), on_error)

        try:
            for source in sources:
                if isinstance(source, ObjectInfo) and source.generation is not None:
                    staged.append((source.uri, _done_future(lambda s=source: build(s))))
                else:
                    staged.append((_label(source), pool.submit(build, source)))
                while len(staged) > lookahead:
                    yield from advance(*staged.popleft())
            while staged:
                yield from advance(*staged.popleft())
            while published:
                yield from self._finish(published.popleft(), on_error)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    # --- runs and cancelling ------------------------------------------------------------------

    def start_run(
        self,
        run_id: str | None = None,
        *,
        output: str | OutputSpec | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> str:
        """Register a bulk run (an id is generated when none is given) and return its id:
        pass it to :meth:`submit_many` as ``run_id``, and to :meth:`cancel` to stop it."""
        run_id = check_id(run_id, "run id") if run_id is not None else new_run_id()
        control = self.control_uri(output)
        register_run(open_storage(control), control, run_id, dict(details or {}))
        return run_id

    def cancel(
        self,
        *,
        run_ids: Iterable[str] = (),
        job_ids: Iterable[str] = (),
        reason: str | None = None,
        output: str | OutputSpec | None = None,
    ) -> CancelReport:
        """Record the cancellation of bulk runs and/or jobs, durably; workers see it within
        their ``control_refresh_s`` and end those jobs ``cancelled`` without computing them
        (jobs already done stay done). Cancelling twice, or a run never started, is reported
        in the :class:`CancelReport`, not raised."""
        control = self.control_uri(output)
        return cancel(
            open_storage(control), control, run_ids=run_ids, job_ids=job_ids, reason=reason
        )

    def control_uri(self, output: str | OutputSpec | None = None) -> str:
        """Where runs and cancellations are recorded: ``CUTQ_CONTROL``, else derived from the
        output (:func:`~cutq.core.control.control_uri`; workers derive it from theirs)."""
        if self.config.control:
            return control_uri("", self.config.control)
        return control_uri(self._output(output).uri)

    # --- waiting ----------------------------------------------------------------------------

    def watch(self, job_id: str | None = None) -> Watcher:
        """Subscribe to the events topic now (before submitting), filtered to one job if given."""
        if not self.config.events_topic:
            raise ConfigError("no events topic: set CUTQ_EVENTS_TOPIC or pass events_topic")
        return Watcher.create(self.config.events_topic, job_id=job_id)

    def wait(
        self,
        handles: Iterable[JobHandle],
        timeout_s: float = 600.0,
        *,
        via: Literal["events", "objects"] = "events",
    ) -> list[Result]:
        """Results for ``handles``, in order. Without a :meth:`watch` opened before submitting,
        events published before this call are missed: result objects are checked first, so a
        completed job is still found, but a job that already failed is only seen by a watcher.
        ``via="objects"`` polls result objects only (no events topic needed; never sees failures).
        Raises ``TimeoutError`` naming how many jobs are still pending.
        """
        handles = list(handles)
        if via == "objects" or not self.config.events_topic:
            return poll_objects(handles, timeout_s)
        job_id = handles[0].job_id if len(handles) == 1 else None
        with self.watch(job_id) as watcher:
            return watcher.wait(handles, timeout_s, check_objects=True)

    def close(self, timeout_s: float = 60.0) -> None:
        """Send pending publishes, wait up to ``timeout_s`` for Pub/Sub to answer each (even
        after Ctrl-C in ``submit_many``: a job handed to the publisher is published or fails,
        never cut off by its channel closing), then close the publisher if this object made it.
        """
        if self._publisher is not None and self._own_publisher:
            self._publisher.stop()  # sends every batch; does not wait for the answers
            with self._unconfirmed_lock:
                unconfirmed = list(self._unconfirmed)
            _, late = wait_for(unconfirmed, timeout=timeout_s)
            if late:
                log.warning(
                    "%d publish(es) unanswered after %.0fs; closing the channel anyway",
                    len(late),
                    timeout_s,
                )
            self._publisher.transport.close()
        self._publisher = None

    def __enter__(self) -> Submitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- helpers ----------------------------------------------------------------------------

    def _output(self, output: str | OutputSpec | None) -> OutputSpec:
        if isinstance(output, OutputSpec):
            return output
        uri = output or self.config.output
        if not uri:
            raise ConfigError("no output: pass output= or set CUTQ_SUBMITTER_OUTPUT")
        return OutputSpec(uri=uri)

    def _publish(
        self, job: Job, lane: Lane = Lane.INTERACTIVE, run_id: str | None = None
    ) -> Future[str]:
        attributes = {"job_id": job.job_id, **lane_attributes(lane)}
        if run_id is not None:
            attributes[RUN_ID_ATTRIBUTE] = run_id
        future: Future[str] = self.publisher.publish(
            self.config.topic_for(lane), job.to_message(), **attributes
        )
        with self._unconfirmed_lock:
            self._unconfirmed.add(future)
        future.add_done_callback(self._confirmed)
        return future

    def _confirmed(self, future: Future[str]) -> None:
        with self._unconfirmed_lock:
            self._unconfirmed.discard(future)

    def _finish(
        self, pending: _Pending, on_error: Callable[[str, BaseException], None] | None
    ) -> Iterator[JobHandle]:
        try:
            if pending.error is not None:
                raise pending.error
            yield self._handle(pending)
        except CutqError as error:
            if on_error is None:
                raise
            on_error(pending.source, error)

    def _handle(self, pending: _Pending) -> JobHandle:
        job = pending.job
        assert job is not None
        if pending.future is None:  # skipped: already done
            return JobHandle(
                job.job_id, job.input, dict(pending.done_uris or {}), None, pending.source,
                job.output, None, skipped=True, renditions=job.renditions,
            )  # fmt: skip
        try:
            message_id = pending.future.result(timeout=600)
        except (gexc.GoogleAPICallError, gexc.RetryError, TimeoutError) as error:
            raise PublishFailed(f"{pending.source}: publish failed: {error}") from error
        uris = replace(job, publish_time=_now()).result_uris()
        return JobHandle(
            job.job_id, job.input, uris, message_id, pending.source, job.output,
            pending.submitted_at, renditions=job.renditions,
        )  # fmt: skip

    def _stage(self, source: Source) -> tuple[str, int | None]:
        """(input URI, generation) for ``source``, uploading local bytes to staging."""
        if isinstance(source, ObjectInfo):
            if source.generation is not None:
                return source.uri, source.generation
            source = source.uri
        if isinstance(source, str) and "://" in source:
            info = open_storage(source).stat(source)
            if info is None:
                raise InputNotFound(f"{source}: no such object")
            return to_uri(source), info.generation
        if not self.config.staging:
            raise ConfigError(
                "local sources need a staging URI (staging= or CUTQ_SUBMITTER_STAGING); "
                "pass file:// URIs to publish local paths as they are"
            )
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.is_file():
                raise InputNotFound(f"{path}: no such file")
            with path.open("rb") as handle:
                return self._upload(handle, path.suffix.lower().lstrip(".") or "bin")
        return self._upload(source)

    def _upload(self, data: bytes | BinaryIO, fallback_ext: str = "bin") -> tuple[str, int | None]:
        """Stage under ``<staging>/<sha256>.<ext>`` (the extension from the bytes themselves,
        so the same bytes under any file name are the same object and the same job)."""
        spool: BinaryIO | None = None
        if not isinstance(data, bytes) and not data.seekable():
            spool = tempfile.SpooledTemporaryFile(SINGLE_REQUEST_MAX_BYTES)  # noqa: SIM115
            shutil.copyfileobj(data, spool, 1 << 20)
            spool.seek(0)
            data = spool
        try:
            if isinstance(data, bytes):
                head = data[:16]
            else:
                start = data.tell()
                head = data.read(16)
                data.seek(start)
            ext = _sniff(head, fallback_ext)
            digest, size = _sha256(data)
            assert self.config.staging is not None
            uri = f"{self.config.staging.rstrip('/')}/{digest}.{ext}"
            if "://" not in uri:
                uri = file_path(uri).as_uri()
            storage = open_storage(uri)
            info = storage.stat(uri)
            if info is None:
                content_type = mimetypes.guess_type(f"x.{ext}")[0] or "application/octet-stream"
                if isinstance(data, bytes) or size <= SINGLE_REQUEST_MAX_BYTES:
                    body = data if isinstance(data, bytes) else data.read()
                    info = storage.write(uri, body, content_type=content_type)
                else:
                    info = storage.upload(uri, data, content_type=content_type)  # resumable
            return uri, info.generation
        finally:
            if spool is not None:
                spool.close()


def _sha256(data: bytes | BinaryIO) -> tuple[str, int]:
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest(), len(data)
    start, digest = data.tell(), hashlib.sha256()
    while chunk := data.read(1 << 20):
        digest.update(chunk)
    size = data.tell() - start
    data.seek(start)
    return digest.hexdigest(), size


def _sniff(head: bytes, default: str = "bin") -> str:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return next((ext for magic, ext in _MAGIC if head.startswith(magic)), default)


def _label(source: Source) -> str:
    if isinstance(source, ObjectInfo):
        return source.uri
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, bytes):
        return f"<{len(source)} bytes>"
    return getattr(source, "name", None) or "<file object>"


def _done_future(function: Callable[[], Job]) -> Future[Job]:
    future: Future[Job] = Future()
    try:
        future.set_result(function())
    except CutqError as error:
        future.set_exception(error)
    return future


def _is_topic(value: str) -> bool:
    parts = value.split("/")
    return len(parts) == 4 and parts[0] == "projects" and parts[2] == "topics" and all(parts)


def _now() -> datetime:
    return datetime.now(timezone.utc)


__all__ = [
    "JobHandle",
    "JobsFailed",
    "Result",
    "Submitter",
    "SubmitterConfig",
    "Watcher",
    "raise_for_failures",
]
