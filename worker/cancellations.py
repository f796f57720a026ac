"""The worker's view of cancelled runs and jobs, refreshed in the background.

A :class:`CancelWatch` lists the control prefix's ``cancel/`` records (see
:mod:`cutq.core.control`) once at start and then every ``refresh_s`` seconds, one list request
each time, and answers :meth:`CancelWatch.covers` from memory: the pipeline asks when it admits
a job and again when the job's batch would start, so no job is computed once its
cancellation is in this view (at most ``refresh_s`` plus one listing after it was recorded).

**Fail-open.** A listing that fails keeps the last view and is logged (once per run of
failures, and counted); the worker goes on computing. Cancellation saves compute; it is not a
safety control, and failing closed (returning every job to the queue while storage misbehaves)
would burn delivery attempts and dead-letter jobs nobody cancelled. A job missed this way
completes, which is what it would have done without cancellation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from cutq.core.contract import Job
from cutq.core.control import Cancellations, list_cancellations, run_id_of
from cutq.core.errors import CutqError, DeadlineExceeded, JobCancelled
from cutq.core.storage import Stores

log = logging.getLogger(__name__)
MAX_RECORDS = 100_000  # ~10 MB of names at most; past it, the rest are ignored (logged)
FIRST_LISTING_S = 1.0  # how long a starting worker waits for its first listing


class CancelWatch:
    """Cancelled runs and jobs as the last successful listing saw them."""

    def __init__(
        self,
        storage: Stores,
        control: str,
        refresh_s: float,
        *,
        max_records: int = MAX_RECORDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.control = control
        self.refresh_s = refresh_s
        self.max_records = max_records
        self.failures = 0  # listings that failed since start
        self.refreshed_at: float | None = None  # clock() when the view was last replaced
        self.seen_at: dict[str, float] = {}  # "run X"/"job Y" → clock() when first in view
        self._storage = storage
        self._clock = clock
        self._view = Cancellations()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self._first = threading.Event()  # the first listing ended (either way)

    def covers(self, job_id: str, run_id: str | None) -> bool:
        """Whether the job, or its run, is cancelled as far as this worker knows."""
        with self._lock:
            view = self._view
        return view.covers(job_id, run_id)

    def refresh(self) -> bool:
        """One listing; False (the view kept) when it failed."""
        try:
            storage = self._storage.open(self.control)
            view = list_cancellations(storage, self.control, self.max_records)
        except Exception as error:  # fail-open: see the module docstring
            self.failures += 1
            if not self._failing:
                log.warning(
                    "could not list cancellations under %s (keeping the last view of %d): %s",
                    self.control,
                    len(self._view),
                    error,
                )
            self._failing = True
            return False
        if self._failing:
            log.info("listing cancellations works again (%d record(s))", len(view))
        self._failing = False
        now = self._clock()
        new = [f"run {r}" for r in view.runs] + [f"job {j}" for j in view.jobs]
        with self._lock:
            self._view = view
            self.refreshed_at = now
            for what in new:
                self.seen_at.setdefault(what, now)
        if len(view) >= self.max_records:
            log.warning("%d cancellation records or more: the rest are ignored", len(view))
        return True

    def start(self, first_within_s: float = FIRST_LISTING_S) -> None:
        """List now, then every ``refresh_s``, on a daemon thread; wait at most
        ``first_within_s`` for the first listing (a worker scaled up from zero should know
        the cancellations before its first job, but storage retrying for a minute must not
        hold its start: fail-open)."""
        self._thread = threading.Thread(target=self._run, name="cutq-cancel-watch", daemon=True)
        self._thread.start()
        if not self._first.wait(first_within_s):
            log.warning(
                "no listing of cancellations within %.0fs; serving without it for now",
                first_within_s,
            )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        self.refresh()
        self._first.set()
        while not self._stop.wait(self.refresh_s):
            self.refresh()


def withdrawal(
    job: Job, attributes: Mapping[str, str], watch: CancelWatch | None
) -> CutqError | None:
    """Why ``job`` must not be computed now, if it must not: it (or its run) is cancelled,
    or its deadline passed. A cancellation wins: the caller asked for it."""
    run_id = run_id_of(attributes)
    if watch is not None and watch.covers(job.job_id, run_id):
        return JobCancelled(f"run {run_id} was cancelled" if run_id else "job was cancelled")
    if job.expiry is not None:
        try:
            job.expiry.check(job.publish_time)
        except DeadlineExceeded as error:
            return error
    return None
