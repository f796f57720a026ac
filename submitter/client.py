"""The library way in: upload (when needed), publish a job, wait for its completion event.

``Submitter`` is configured from arguments or ``CUTQ_*`` variables (:class:`SubmitterConfig`,
:mod:`cutq.submitter.config`). What a job asks for is a :class:`~cutq.core.request.JobRequest`
(or its fields as keywords); sources and their staging are :mod:`cutq.submitter.staging`;
what a publish returns is a :class:`JobHandle` (:mod:`cutq.submitter.handle`), which
:mod:`cutq.submitter.watch` waits on. No torch, no Pillow: this is what application servers
import.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Literal

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1 import types as pstypes

from cutq.core.contract import Job, OutputSpec
from cutq.core.control import (
    RUN_ID_ATTRIBUTE,
    CancelReport,
    cancel,
    check_id,
    control_uri,
    new_run_id,
    register_run,
)
from cutq.core.errors import ConfigError, CutqError, PublishFailed
from cutq.core.lanes import Lane, lane_attributes
from cutq.core.request import JobRequest
from cutq.core.storage import ObjectInfo, open_storage
from cutq.submitter.config import SubmitterConfig
from cutq.submitter.handle import JobHandle
from cutq.submitter.staging import NamedSource, Source, label, sniff, stage
from cutq.submitter.watch import JobsFailed, Result, Watcher, poll_objects, raise_for_failures

log = logging.getLogger(__name__)

SkipCheck = Callable[[Job], "Mapping[str, str] | None"]
_sniff = sniff  # the name older callers import


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
        self, source: Source | NamedSource, request: JobRequest | None = None, **settings: Any
    ) -> Job:
        """Stage ``source`` if needed and build its job, without publishing it.

        ``request`` (:class:`~cutq.core.request.JobRequest`) and/or its fields as keywords
        (``output``, ``options``, ``attributes``, ``model``, ``renditions``, ``ttl_s``,
        ``deadline``, ``ref``, ``name``, ``job_id``; keywords win). ``renditions``: the named
        outputs to make from one model run (e.g. ``presets("amazon-main", "thumbnail")``);
        none: ``output``'s cutout and/or mask. A :class:`NamedSource` sets its own ref and name.
        """
        request = JobRequest.of(request, **settings)
        if isinstance(source, NamedSource):
            request = JobRequest.of(request, ref=source.ref, name=source.name)
            source = source.source
        staged = stage(source, self.config.staging)
        return request.job(staged.uri, self._output(request.output), staged.generation)

    def submit(
        self, source: Source | NamedSource, request: JobRequest | None = None, **settings: Any
    ) -> JobHandle:
        """Upload when needed, publish one job and wait for Pub/Sub to accept it. One job is
        interactive unless the request's ``lane`` says otherwise (docs/lanes.md)."""
        request = JobRequest.of(request, **settings)
        job = self.prepare(source, request)
        pending = _Pending(label(source), job, submitted_at=_now())
        pending.future = self._publish(job, request.lane or Lane.INTERACTIVE)
        return self._handle(pending)

    def submit_many(
        self,
        sources: Iterable[Source | NamedSource],
        request: JobRequest | None = None,
        *,
        skip: SkipCheck | None = None,
        before_publish: Callable[[], None] | None = None,
        on_error: Callable[[str, BaseException], None] | None = None,
        run_id: str | None = None,
        **settings: Any,
    ) -> Iterator[JobHandle]:
        """Publish a job per source, lazily; yields handles in the order of ``sources``.
        Many jobs are bulk unless the request's ``lane`` says otherwise (docs/lanes.md);
        a :class:`NamedSource` gives its job its own ``ref`` and ``name``.

        Staging runs in ``prepare_threads`` threads a bounded distance ahead; publishes are
        batched, and Pub/Sub flow control blocks once ``max_in_flight`` are unconfirmed.
        ``skip(job)`` returns the result URIs of a job already done (it is then not published);
        ``before_publish`` runs before each publish (a rate limiter); ``on_error(source, error)``
        is called, in order, for a source that could not be submitted (else the error raises).
        ``run_id`` (see :meth:`start_run`) goes into each message's ``cutq.run_id`` attribute,
        so :meth:`cancel` can stop the whole run.
        """
        request = JobRequest.of(request, **settings)
        request = JobRequest.of(request, output=self._output(request.output))
        lane = request.lane or Lane.BULK
        lookahead = self.config.prepare_threads * 4
        staged: deque[tuple[str, Future[Job]]] = deque()
        published: deque[_Pending] = deque()
        pool = ThreadPoolExecutor(self.config.prepare_threads, thread_name_prefix="cutq-stage")

        def build(source: Source | NamedSource) -> Job:
            return self.prepare(source, request)

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
                inner = source.source if isinstance(source, NamedSource) else source
                if isinstance(inner, ObjectInfo) and inner.generation is not None:
                    staged.append((inner.uri, _done_future(lambda s=source: build(s))))
                else:
                    staged.append((label(source), pool.submit(build, source)))
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

    def output_spec(self, output: str | OutputSpec | None) -> OutputSpec:
        """``output`` as a spec (a URI: the default format and kind); None: the configured
        default output."""
        return self._output(output)

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
                job.output, None, skipped=True, renditions=job.renditions, ref=job.ref,
                name=job.name,
            )  # fmt: skip
        try:
            message_id = pending.future.result(timeout=600)
        except (gexc.GoogleAPICallError, gexc.RetryError, TimeoutError) as error:
            raise PublishFailed(f"{pending.source}: publish failed: {error}") from error
        uris = replace(job, publish_time=_now()).result_uris()
        return JobHandle(
            job.job_id, job.input, uris, message_id, pending.source, job.output,
            pending.submitted_at, renditions=job.renditions, ref=job.ref, name=job.name,
        )  # fmt: skip


def _done_future(function: Callable[[], Job]) -> Future[Job]:
    future: Future[Job] = Future()
    try:
        future.set_result(function())
    except CutqError as error:
        future.set_exception(error)
    return future


def _now() -> datetime:
    return datetime.now(timezone.utc)


__all__ = [
    "JobHandle",
    "JobRequest",
    "JobsFailed",
    "NamedSource",
    "Result",
    "Submitter",
    "SubmitterConfig",
    "Watcher",
    "raise_for_failures",
]
