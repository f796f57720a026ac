"""The worker pipeline: one job's life as named stages.

    submit ─▶ admit ─▶ skip if done ─▶ withdraw? ─▶ load ─▶ withdraw? ─▶ infer ─▶ write ─▶ …
              (loaders pool)                                 (model thread)      (writers pool)
    … ─▶ emit ─▶ settle
                 (ledger)

* **admit**: parse the message, check the model and the allow-lists, fix the input and result
  URIs once (the resolved paths that were checked); then lead the job, or follow a delivery of
  it that is already running (:mod:`cutq.worker.ledger`): one computation per job.
* **skip if done**: at-least-once delivery; when every result exists, re-emit and ack.
* **withdraw?** (at admission, and again when the job's batch would start): a job whose run
  or itself is cancelled (:mod:`cutq.worker.cancellations`), or whose deadline passed, ends
  here with a ``cancelled`` or ``failed`` (``deadline_exceeded``) event: never downloaded at
  admission, never computed at the batch. A job already done stays done (checked first).
* **load**: read, decode (inside the pixel budget) and preprocess into a model input.
* **infer**: the model loop (:mod:`cutq.worker.model_loop`) forms batches of same-sized
  inputs and runs them (one thread per stream of the model: two single-threaded forwards at
  once on a CPU with onnxruntime, one thread everywhere else).
* **write**: from one mask, each of the job's renditions (:mod:`cutq.worker.render.results`:
  framing,
  edge colours, encode, a preset's verdict) and its quality flags; create each result object
  *only if absent*, so of two workers racing on one job exactly one writes each object.
* **emit**: publish the ``completed``, ``failed`` or ``cancelled`` event, as news or as a
  repeat (``duplicate``: :mod:`cutq.worker.ending_marks` decides); **settle**: ack (or
  nack for transient errors) in the ledger, once, by the job's :class:`~cutq.worker.outcome.Outcome`
  (:meth:`Pipeline._end`, the one way a job ends: also for the grace period's end and a last
  attempt's ``retries_exhausted`` event).

Any error settles the job by its class (:mod:`cutq.core.errors`): permanent → ``failed`` event
and ack; anything else → nack, so Pub/Sub retries it and eventually dead-letters it. The model
thread only computes: a job that fails there (its batch raised, its map was not finite, it was
withdrawn) is handed to the writers to end, so no publish or ack holds up the next batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, TypeVar

from cutq.core.contract import Job, parse_job
from cutq.core.control import run_id_of
from cutq.core.errors import (
    CutqError,
    JobCancelled,
    ShuttingDown,
    UnknownModel,
    error_code,
    is_permanent,
)
from cutq.core.events import Event, OutputInfo
from cutq.core.lanes import Lane
from cutq.core.storage import Stores
from cutq.worker import memory
from cutq.worker.access import check_allowed
from cutq.worker.cancellations import CancelWatch, withdrawal
from cutq.worker.config import WorkerConfig
from cutq.worker.ending_marks import EndingMarks
from cutq.worker.lane_policy import LanePolicy
from cutq.worker.ledger import Ledger
from cutq.worker.model_loop import ModelLoop
from cutq.worker.outcome import Ending, Observer, Outcome, Stats
from cutq.worker.priority import started_pool
from cutq.worker.render import imaging, results
from cutq.worker.render.quality import Quality
from cutq.worker.render.results import Result
from cutq.worker.runtime.inference import Prediction, Runner
from cutq.worker.sinks import EventSink
from cutq.worker.sources import Delivery, lane_of_delivery
from cutq.worker.task import Task

if TYPE_CHECKING:  # a CPU worker running onnxruntime never imports torch
    import torch

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Admitted:
    """A parsed, allowed job with its URIs fixed once: read ``source``, write ``results``."""

    task: Task
    job: Job
    source: str
    results: tuple[Result, ...]  # in the job's order: the first one decides who computed it


@dataclass(frozen=True)
class Loaded:
    """A decoded image and its model input, waiting for a batch."""

    admitted: Admitted
    image: imaging.Decoded
    tensor: torch.Tensor
    input_size: tuple[int, int]
    enqueued: float

    @property
    def lane(self) -> Lane:
        """Interactive inputs go first into every batch (the model loop's queue is ranked)."""
        return self.admitted.task.lane


@dataclass(frozen=True)
class Failed:
    """A job to end on the writers by ``error`` (it failed, or was withdrawn, on the model
    thread)."""

    task: Task
    error: BaseException


@dataclass(frozen=True)
class Inferred:
    """A decoded image and its saliency map, ready to be written."""

    admitted: Admitted
    image: imaging.Decoded
    saliency: torch.Tensor


class Pipeline:
    """Runs jobs through one model with dynamic batching. Start, submit, then close.

    ``stats`` is told of every settle first, then each of ``observers`` (the service composes
    them: the job log, a progress bar)."""

    def __init__(
        self,
        config: WorkerConfig,
        runner: Runner,
        events: EventSink,
        storage: Stores | None = None,
        cancellations: CancelWatch | None = None,
        *,
        stats: Stats | None = None,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.config = config
        self._limits = memory.Limits.of(config)
        self.cancellations = cancellations  # None: no cancellation checks (deadlines still)
        self.runner = runner
        self.events = events
        self.storage = storage or stores_for(config)
        self.stats = stats or Stats()
        policy = LanePolicy.of(config)
        self.ledger = Ledger(policy, config.max_in_flight_pixels, (self.stats, *observers))
        self.ending_marks = EndingMarks(self.storage, config.control_uri)
        # Started now: their threads must not inherit a bulk stream's lowered priority.
        self._loaders = started_pool(config.io_threads, "cutq-load")
        self._writers = started_pool(config.io_threads, "cutq-write")
        self.model_loop: ModelLoop[Loaded] = ModelLoop(
            runner,
            policy,
            max_batch=config.max_batch,  # type: ignore[arg-type]
            max_wait_ms=config.max_wait_ms,
            inferred=self._inferred,
            failed=lambda loaded, error: self._fail_on_writers(loaded.admitted.task, error),
            screen=self._screen,
        )
        self._stopping = threading.Event()
        self._released = threading.Event()
        self._held: list[Delivery] = []  # arrived while stopping: nacked by release_held
        self._held_lock = threading.Lock()

    # --- taking jobs ------------------------------------------------------------------------

    def start(self) -> None:
        self.model_loop.start()

    def submit(self, delivery: Delivery) -> None:
        """Take a job; blocks while ``max_in_flight`` jobs are held (back-pressure), or, for a
        bulk job, while bulk jobs hold every slot but the ``interactive_reserve``.

        Once the pipeline is stopping, a new delivery is held here, unstarted and still leased,
        until :meth:`release_held` nacks it, once: returning it at once would free room for
        the source to deliver (and nack) the next one, burning the backlog's delivery attempts.
        """
        lane = lane_of_delivery(delivery)
        while not self._stopping.is_set():
            if self.ledger.take_slot(0.1, lane):
                task = self.ledger.open(delivery, lane)
                if task is not None:
                    self._hand_off(self._loaders, self._start, task, task)
                    return
                break  # closed between the slot and the open
        with self._held_lock:
            released = self._released.is_set()
            if not released:
                self._held.append(delivery)
        if released:
            delivery.nack()
        else:
            self._released.wait()  # the source's callback returns once it has been nacked

    @property
    def healthy(self) -> bool:
        """False once a model thread has died: the worker must stop and report it."""
        return self.model_loop.failure is None

    @property
    def failure(self) -> BaseException | None:
        """Why a model thread died, if one did."""
        return self.model_loop.failure

    def in_flight(self) -> int:
        return self.ledger.in_flight()

    def idle_s(self) -> float | None:
        """Seconds with nothing in flight (None while a job is): drain-on-idle's measure."""
        return self.ledger.idle_s()

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        return self.ledger.wait_idle(timeout_s)

    # --- stages -----------------------------------------------------------------------------

    def _start(self, task: Task) -> None:
        """Loaders pool: admit, skip if done, load, then queue for the model."""
        admitted = self._admit(task)
        if not self.ledger.lead(task, admitted.results[0].target):
            return  # another delivery of this job is running: settled with it
        if self._skip_if_done(admitted):
            return
        reason = withdrawal(admitted.job, task.delivery.attributes, self.cancellations)
        if reason is not None:  # cancelled or expired: never downloaded
            raise reason  # settled by _hand_off
        self.model_loop.put(self._load(admitted))

    def _admit(self, task: Task) -> Admitted:
        delivery = task.delivery
        job = parse_job(
            delivery.data,
            defaults=self.config.default_output,
            attributes=delivery.attributes,
            publish_time=delivery.publish_time,
        )
        task.job = job
        # Queue time runs from publishing; a local file's publish time is its mtime (it dates
        # the results' partition), so the local source also says when the run saw the file.
        since = getattr(delivery, "seen_at", None) or delivery.publish_time
        run_id_of(delivery.attributes)  # checked as `cutq cancel` checks it: cancellable
        task.timings_ms["queue"] = max(
            0.0, (datetime.now(timezone.utc) - since).total_seconds() * 1000
        )
        if job.model is not None and job.model != self.runner.model.name:
            raise UnknownModel(
                f"job asks for model {job.model!r}; this worker serves {self.runner.model.name!r}"
            )
        memory.check_canvases(job, None, self._limits)  # canvases the job alone fixes
        source = check_allowed(job.input, self.config, "input")
        writes = results.plan(job, lambda uri: check_allowed(uri, self.config, "output"))
        return Admitted(task, job, source, writes)

    def _skip_if_done(self, admitted: Admitted) -> bool:
        """At-least-once delivery: when every result exists, re-emit the event and ack."""
        done = results.lookup(admitted.results, self.storage.open, admitted.job.job_id)
        if done is not None:
            self._complete(admitted, done[0], duplicate=True, judged=done[1])
        return done is not None

    def _load(self, admitted: Admitted) -> Loaded:
        task, job = admitted.task, admitted.job
        started = time.monotonic()
        data = self.storage.open(admitted.source).read(
            admitted.source, max_bytes=self.config.max_input_bytes, generation=job.input_generation
        )
        now = task.mark("download", started)
        image = imaging.decode(
            data,
            max_pixels=self.config.max_pixels,
            reserve=lambda width, height: self._reserve(task, job, width, height),
            keep_colour=job.options.colour == "keep",
            keep_metadata=job.options.metadata == "keep",
        )
        del data
        model = self.runner.model
        size = model.input_size(image.height, image.width, job.options.resize or self.config.resize)
        tensor = model.preprocess(image.srgb, size)
        return Loaded(admitted, image, tensor, size, task.mark("decode", now))

    def _reserve(self, task: Task, job: Job, width: int, height: int) -> None:
        """Charge the in-flight budget what ``job`` costs on a ``width``×``height`` input
        (:mod:`cutq.worker.memory`; ``too_large`` when it never could fit), held until the
        task settles."""
        pixels = memory.cost(job, (width, height), self._limits).budget_pixels
        if not self.ledger.pixels.reserve(pixels, cancelled=self._stopping.is_set):
            raise ShuttingDown("worker stopping")
        task.pixels = pixels

    def _screen(self, group: list[Loaded]) -> list[Loaded]:
        """Model loop, as a batch would start: the jobs still to compute; the others end on
        the writers (their event is published there, never on the model thread)."""
        keep = []
        for loaded in group:
            task = loaded.admitted.task
            reason = withdrawal(loaded.admitted.job, task.delivery.attributes, self.cancellations)
            if reason is None:
                keep.append(loaded)
            else:
                self._fail_on_writers(task, reason)
        return keep

    def _fail_on_writers(self, task: Task, error: BaseException) -> None:
        """From the model thread: ``task`` ends by ``error`` on the writers (its event is
        published, and it is settled, there)."""
        self._hand_off(self._writers, self._fail_as, Failed(task, error), task)

    def _fail_as(self, failed: Failed) -> None:
        self._fail(failed.task, failed.error)

    def _inferred(self, group: list[Loaded], prediction: Prediction, started: float) -> None:
        """Model loop: a batch ran; each of its jobs goes on to the writers (or fails on its
        own: its map was not finite, also in fp32 — never a blank result)."""
        self.stats.count_batch(len(group), prediction.fp32_reruns)
        for index, (loaded, saliency) in enumerate(zip(group, prediction.maps, strict=True)):
            task = loaded.admitted.task
            task.timings_ms["batch_wait"] = (started - loaded.enqueued) * 1000.0
            task.mark("infer", started)
            task.batch_size = len(group)
            if prediction.fp32_reruns:  # part of infer: the batch computed again in fp32
                task.timings_ms["fp32_rerun"] = prediction.fp32_rerun_ms
            if index in prediction.failed:
                self._fail_on_writers(task, prediction.failed[index])
                continue
            item = Inferred(loaded.admitted, loaded.image, saliency)
            self._hand_off(self._writers, self._write, item, task)

    def _write(self, inferred: Inferred) -> None:
        """Writers pool: render and encode the pictures, create each result only if absent."""
        admitted, image = inferred.admitted, inferred.image
        task, job = admitted.task, admitted.job
        started = time.monotonic()
        mask = self.runner.to_mask(
            inferred.saliency, image.height, image.width, job.options.threshold
        )
        rendering = results.render(image, mask, job, admitted.results, self._limits.render)
        del mask, inferred
        now = task.mark("encode", started)
        outputs, duplicate = results.store(admitted.results, rendering, job, self.storage.open)
        task.mark("upload", now)
        self._complete(admitted, outputs, duplicate=duplicate, judged=rendering.quality)

    def _complete(
        self,
        admitted: Admitted,
        outputs: tuple[OutputInfo, ...],
        *,
        duplicate: bool,
        judged: Quality | None,
    ) -> None:
        task = admitted.task
        event = Event.completed(
            admitted.job,
            outputs,
            model=self.runner.model.describe(),
            attempt=task.delivery.delivery_attempt,
            batch_size=task.batch_size,
            timings_ms=task.finish(),
            duplicate=duplicate,
            flags=judged.flags if judged else None,
            quality=judged.figures if judged else None,
        )
        self._end(task, Outcome.published(event))

    # --- ending a job -----------------------------------------------------------------------

    def _fail(self, task: Task, error: BaseException) -> None:
        """End ``task`` by the class of ``error``: a ``failed`` (or ``cancelled``) event, or
        back to the queue."""
        job, delivery = task.job, task.delivery
        if isinstance(error, JobCancelled) and job is not None:
            event = Event.cancelled(
                job,
                str(error),
                model=self.runner.model.describe(),
                attempt=delivery.delivery_attempt,
                timings_ms=task.finish(),
            )
            self._end(task, Outcome.published(event))
            return
        if not is_permanent(error):
            if not isinstance(error, CutqError):
                log.error(
                    "unexpected %s; the job goes back to the queue",
                    type(error).__name__,
                    exc_info=error,
                )
            self._end(task, Outcome.returned(error, last_attempt=task.last_attempt))
            return
        event = Event.failed(
            task.label,
            job.input if job else None,
            error_code(error),
            str(error),
            attributes=job.attributes if job else {},
            ref=job.ref if job else None,
            name=job.name if job else None,
            model=self.runner.model.describe(),
            attempt=delivery.delivery_attempt,
            timings_ms=task.finish(),
        )
        self._end(task, Outcome.published(event))

    def _end(self, task: Task, outcome: Outcome, *, unless_emitting: bool = False) -> None:
        """The one way a job ends: publish the outcome's event, if it has one (unless the task
        was nacked meanwhile: grace over), then settle; the deliveries that waited on this job
        end with it, computed once. A job returned on its last attempt first gets a ``failed``
        event, ``retries_exhausted`` (its source has no dead-letter topic to say so).
        ``unless_emitting``: the grace period's end, leaving a job that publishes its event."""
        if outcome.ending is Ending.EXHAUSTED and outcome.event is None:
            outcome = outcome.announced(self._exhausted_event(task))
        if outcome.event is not None:
            if not self.ledger.begin_emit(task):
                return
            claim = None
            try:  # news, or a repeat of an ending already reported (ending_marks)
                claimed = self.ending_marks.claim(outcome.event)
                claim = claimed.claim
                if outcome.ending is Ending.EXHAUSTED:  # told by its event, still nacked
                    outcome = outcome.announced(claimed.event)
                else:
                    outcome = Outcome.published(claimed.event)
                self.events.publish(claimed.event)
            except Exception as error:
                self.ending_marks.release(claim)  # so the redelivery reports it as news
                outcome = Outcome.returned(error, last_attempt=task.last_attempt)
        for follower in self.ledger.settle(task, outcome, unless_emitting=unless_emitting):
            self._end(follower, outcome.for_follower(follower))

    def _exhausted_event(self, task: Task) -> Event:
        job, attempt = task.job, task.delivery.delivery_attempt
        return Event.failed(
            job.job_id if job else task.label,
            job.input if job else None,
            "retries_exhausted",
            f"gave up after {attempt} attempts; see the log for each attempt's error",
            attributes=job.attributes if job else {},
            ref=job.ref if job else None,
            name=job.name if job else None,
            model=self.runner.model.describe(),
            attempt=attempt,
        )

    def _hand_off(
        self, pool: ThreadPoolExecutor, stage: Callable[[T], None], item: T, task: Task
    ) -> None:
        """Run ``stage(item)`` on ``pool``; any error settles ``task`` instead of a thread."""

        def run() -> None:
            try:
                stage(item)
            except Exception as error:
                self._fail(task, error)

        try:
            pool.submit(run)
        except RuntimeError:  # the pool is shut down: the worker is stopping
            self._end(task, Outcome.returned(ShuttingDown("worker stopping")))

    # --- shutdown ---------------------------------------------------------------------------

    def stop_taking(self) -> None:
        """New deliveries are held unstarted from now on (see :meth:`submit`)."""
        self._stopping.set()
        self.ledger.close()

    def held(self) -> int:
        """Deliveries held since :meth:`stop_taking`, waiting for :meth:`release_held`."""
        with self._held_lock:
            return len(self._held)

    def release_held(self) -> None:
        """Nack the deliveries held since :meth:`stop_taking`, once each, in this thread (a
        later one is nacked as it arrives)."""
        with self._held_lock:
            held, self._held = self._held, []
            self._released.set()
        for delivery in held:
            try:
                delivery.nack()
            except Exception:  # the source's transport failed: Pub/Sub redelivers on its own
                log.exception("could not nack held message %s", delivery.message_id)

    def close(self, deadline: float) -> None:
        """Finish what is in flight by ``deadline`` (monotonic), return the rest; stop threads.

        Never waits past ``deadline``: a job stuck in storage is nacked and its thread left to
        the process's exit. A job already publishing its event is not nacked (its ack follows).
        """
        # 1. Take no new work: the source's new deliveries wait, still leased.
        self.stop_taking()
        # 2. Let running jobs finish: their acks and nacks still reach the source.
        if not self.ledger.wait_idle(max(0.0, deadline - time.monotonic())):
            # 3. Grace over: back to the queue, once each, unless publishing their event now.
            left = self.ledger.unsettled()
            log.warning("grace period over: returning %d unfinished job(s) to the queue", len(left))
            stopping = Outcome.returned(ShuttingDown("worker stopping"))
            for task in left:
                self._end(task, stopping, unless_emitting=True)
            self.ledger.wait_idle(max(0.0, deadline - time.monotonic()))
        # 4. Stop the model threads and the pools; never wait on a stuck call.
        self._loaders.shutdown(wait=False, cancel_futures=True)
        self._writers.shutdown(wait=False, cancel_futures=True)
        self.model_loop.stop(deadline)


def stores_for(config: WorkerConfig) -> Stores:
    """The storage backends a worker with ``config`` reads and writes through."""
    return Stores(
        attempts=config.storage_attempts,
        deadline_s=config.storage_deadline_s,
        timeout_s=config.storage_timeout_s,
    )
