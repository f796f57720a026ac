"""Waiting for jobs: completion events from a temporary subscription, or result objects.

A :class:`Watcher` creates its own subscription on the events topic when it is opened, so it
must be opened *before* the jobs are published to be sure to see every event (Pub/Sub only
delivers messages published after a subscription exists). It pulls, acks, matches events to
job ids client-side and deletes the subscription on close. The subscription also expires by
itself a day after last use, in case the process dies first.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1

from cutq.core.errors import CutqError
from cutq.core.events import Event, event_from_cloudevent
from cutq.core.storage import open_storage

if TYPE_CHECKING:
    from cutq.submitter.handle import JobHandle

log = logging.getLogger(__name__)

PULL_MAX_MESSAGES = 1000
PULL_TIMEOUT_S = 10.0
MAX_STRAY_EVENTS = 100_000  # events for jobs no wait() has asked about yet
SUBSCRIPTION_TTL_S = 24 * 3600  # Pub/Sub's minimum expiration
RETENTION_S = 600  # Pub/Sub's minimum retention
STAT_THREADS = 16


@dataclass(frozen=True)
class Result:
    """How one job ended. Failures are results, not exceptions (see :func:`raise_for_failures`):
    ``failed`` (with ``error_code``; ``deadline_exceeded`` when it expired in the queue) or
    ``cancelled`` (it or its run was cancelled; ``error_message`` says which)."""

    job_id: str
    status: Literal["completed", "failed", "cancelled"]
    outputs: Mapping[str, str]  # rendition name (cutout, mask without renditions) → URI
    error_code: str | None = None
    error_message: str | None = None
    event: Event | None = None  # None when the result was found by looking at the objects

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    @property
    def ending(self) -> str:
        """One word: completed, failed, deadline_exceeded or cancelled (for counting)."""
        if self.status == "failed" and self.error_code == "deadline_exceeded":
            return "deadline_exceeded"
        return self.status

    @classmethod
    def from_event(cls, event: Event) -> Result:
        return cls(
            job_id=event.job_id,
            status=event.status,
            outputs={output.name or output.kind: output.uri for output in event.outputs},
            error_code=event.error_code,
            error_message=event.error_message,
            event=event,
        )


class JobsFailed(CutqError):
    """Raised by :func:`raise_for_failures` when any waited-for job failed."""

    code = "jobs_failed"

    def __init__(self, failed: Sequence[Result]) -> None:
        self.failed = list(failed)
        examples = ", ".join(f"{r.job_id}: {r.error_code or r.status}" for r in self.failed[:5])
        super().__init__(f"{len(self.failed)} job(s) failed ({examples})")


class WaitTimeout(TimeoutError):
    """Some jobs had no result in time; ``results`` holds those that did, in order."""

    def __init__(self, message: str, results: list[Result], pending: list[str]) -> None:
        super().__init__(message)
        self.results = results
        self.pending = pending


def raise_for_failures(results: Iterable[Result]) -> None:
    """Raise :class:`JobsFailed` listing the results that did not complete (failed, cancelled),
    if there are any."""
    failed = [result for result in results if not result.ok]
    if failed:
        raise JobsFailed(failed)


class Watcher:
    """A temporary subscription on the events topic; use as a context manager."""

    def __init__(self, subscriber: pubsub_v1.SubscriberClient, subscription: str) -> None:
        self.subscription = subscription
        self._subscriber = subscriber
        self._results: dict[str, Result] = {}
        self._stray: dict[str, Result] = {}

    @classmethod
    def create(cls, events_topic: str, *, job_id: str | None = None) -> Watcher:
        """Subscribe now; with ``job_id`` the subscription filters on that job's attribute."""
        project = events_topic.split("/")[1]
        name = f"projects/{project}/subscriptions/cutq-watch-{uuid.uuid4().hex[:16]}"
        request: dict[str, Any] = {
            "name": name,
            "topic": events_topic,
            "ack_deadline_seconds": 60,
            "expiration_policy": {"ttl": {"seconds": SUBSCRIPTION_TTL_S}},
            "message_retention_duration": {"seconds": RETENTION_S},
        }
        if job_id is not None:
            request["filter"] = f'attributes.job_id = "{job_id}"'
        subscriber = pubsub_v1.SubscriberClient()
        try:
            subscriber.create_subscription(request=request)
        except BaseException:
            subscriber.close()
            raise
        return cls(subscriber, name)

    def wait(
        self,
        handles: Iterable[JobHandle],
        timeout_s: float = 600.0,
        *,
        check_objects: bool = False,
        on_result: Callable[[Result], None] | None = None,
    ) -> list[Result]:
        """A :class:`Result` per handle, in order, once every job has an event.

        ``check_objects`` first looks for result objects, for jobs that may have finished
        before this watcher existed. ``on_result`` is told of each job's result once, as it
        arrives (progress). Raises ``TimeoutError`` naming how many are pending.
        """
        handles = list(handles)
        deadline = time.monotonic() + timeout_s
        for handle in handles:
            if handle.skipped:
                self._results[handle.job_id] = Result(
                    handle.job_id, "completed", handle.result_uris
                )
            elif handle.job_id in self._stray:
                self._results[handle.job_id] = self._stray.pop(handle.job_id)
        wanted = {handle.job_id for handle in handles}
        pending = {h.job_id: h for h in handles if h.job_id not in self._results}
        if check_objects and pending:
            self._results.update(check_results(list(pending.values())))
        told: set[str] = set()

        def tell() -> None:
            if on_result is None:
                return
            for job_id in wanted:
                if job_id in self._results and job_id not in told:
                    told.add(job_id)
                    on_result(self._results[job_id])

        tell()
        while any(job_id not in self._results for job_id in pending):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = [job_id for job_id in pending if job_id not in self._results]
                raise WaitTimeout(
                    f"{len(missing)} of {len(handles)} job(s) still pending after "
                    f"{timeout_s:g} s (first: {', '.join(missing[:3])}); events published "
                    "before the watcher was opened are not seen",
                    [self._results[h.job_id] for h in handles if h.job_id in self._results],
                    missing,
                )
            self._pull(min(remaining, PULL_TIMEOUT_S), wanted)
            tell()
        return [self._results[handle.job_id] for handle in handles]

    def _pull(self, timeout_s: float, wanted: set[str]) -> None:
        try:
            response = self._subscriber.pull(
                request={"subscription": self.subscription, "max_messages": PULL_MAX_MESSAGES},
                timeout=max(timeout_s, 0.5),
            )
        except (gexc.DeadlineExceeded, gexc.RetryError):
            return
        ack_ids = []
        for received in response.received_messages:
            ack_ids.append(received.ack_id)
            try:
                event = event_from_cloudevent(json.loads(received.message.data))
            except (ValueError, KeyError, TypeError) as error:
                log.warning(
                    "ignoring an unreadable event %s: %s", received.message.message_id, error
                )
                continue
            result = Result.from_event(event)
            if event.job_id in wanted or event.job_id in self._results:
                self._results.setdefault(event.job_id, result)
            else:
                self._stray.setdefault(event.job_id, result)
                if len(self._stray) > MAX_STRAY_EVENTS:
                    self._stray.pop(next(iter(self._stray)))
        if ack_ids:
            self._subscriber.acknowledge(
                request={"subscription": self.subscription, "ack_ids": ack_ids}
            )

    def close(self) -> None:
        """Delete the subscription and close the client."""
        try:
            self._subscriber.delete_subscription(request={"subscription": self.subscription})
        except gexc.NotFound:
            pass
        except gexc.GoogleAPICallError as error:  # it expires on its own; do not mask an error
            log.warning("could not delete %s: %s", self.subscription, error)
        finally:
            self._subscriber.close()

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_results(handles: Sequence[JobHandle]) -> dict[str, Result]:
    """One look at the result objects: ``{job_id: Result}`` for jobs whose results all exist."""

    def look(handle: JobHandle) -> Result | None:
        for uris in handle.candidate_result_uris():
            if uris and all(open_storage(uri).stat(uri) is not None for uri in uris.values()):
                return Result(handle.job_id, "completed", dict(uris))
        return None

    with ThreadPoolExecutor(STAT_THREADS, thread_name_prefix="cutq-stat") as pool:
        found = pool.map(look, handles)
        return {result.job_id: result for result in found if result is not None}


def poll_objects(
    handles: Sequence[JobHandle], timeout_s: float, *, interval_s: float = 1.0
) -> list[Result]:
    """Wait by polling result objects (no events topic needed; failures are never seen)."""
    deadline = time.monotonic() + timeout_s
    results = {h.job_id: Result(h.job_id, "completed", h.result_uris) for h in handles if h.skipped}
    pause = 0.0
    while True:
        pending = [handle for handle in handles if handle.job_id not in results]
        if pending:
            results.update(check_results(pending))
            pending = [handle for handle in pending if handle.job_id not in results]
        if not pending:
            return [results[handle.job_id] for handle in handles]
        pause = min(max(pause * 1.5, interval_s), 10.0)
        if time.monotonic() + pause > deadline:
            raise WaitTimeout(
                f"{len(pending)} of {len(handles)} job(s) still pending after {timeout_s:g} s "
                f"(no result objects for {', '.join(h.job_id for h in pending[:3])})",
                [results[h.job_id] for h in handles if h.job_id in results],
                [h.job_id for h in pending],
            )
        time.sleep(pause)
