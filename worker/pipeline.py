"""The worker pipeline: one job's life as named stages.

    submit ─▶ admit ─▶ skip if done ─▶ load ─▶ infer ─▶ write ─▶ emit ─▶ settle
              (loaders pool)                  (model   (writers pool)   (ledger)
                                               thread)

* **admit**: parse the message, check the model and the allow-lists, fix the input and result
  URIs once (the resolved paths that were checked); then lead the job, or follow a delivery of
  it that is already running (:mod:`cutq.worker.ledger`): one computation per job.
* **skip if done**: at-least-once delivery; when every result exists, re-emit and ack.
* **load**: read, decode (inside the pixel budget) and preprocess into a model input.
* **infer**: the model thread forms batches (:func:`~cutq.worker.batcher.get_batch`) of
  same-sized inputs and runs them (one thread per lane of the model: two single-threaded
  forwards at once on a CPU with onnxruntime, one thread everywhere else).
* **write**: from one mask, each of the job's renditions (:mod:`cutq.worker.results`: framing,
  edge colours, encode, a preset's verdict) and its quality flags; create each result object
  *only if absent*, so of two workers racing on one job exactly one writes each object.
* **emit**: publish the ``completed`` or ``failed`` event; **settle**: ack (or nack for
  transient errors) in the ledger, once.

Any error settles the job by its class (:mod:`cutq.core.errors`): permanent → ``failed`` event
and ack; anything else → nack, so Pub/Sub retries it and eventually dead-letters it.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, TypeVar

from cutq.core.contract import Job, parse_job, salvage_job_id
from cutq.core.errors import (
    CutqError,
    ShuttingDown,
    UnknownModel,
    error_code,
    is_permanent,
)
from cutq.core.events import Event, OutputInfo
from cutq.core.storage import open_storage
from cutq.worker import imaging, results
from cutq.worker.access import check_allowed
from cutq.worker.batcher import STOP, get_batch
from cutq.worker.config import WorkerConfig
from cutq.worker.events import EventSink
from cutq.worker.inference import Runner
from cutq.worker.ledger import Ledger, Task
from cutq.worker.quality import Quality
from cutq.worker.results import Result
from cutq.worker.sources import Delivery

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


@dataclass(frozen=True)
class Inferred:
    """A decoded image and its saliency map, ready to be written."""

    admitted: Admitted
    image: imaging.Decoded
    saliency: torch.Tensor


class Pipeline:
    """Runs jobs through one model with dynamic batching. Start, submit, then close."""

    def __init__(self, config: WorkerConfig, runner: Runner, events: EventSink) -> None:
        self.config = config
        self.runner = runner
        self.events = events
        self.ledger = Ledger(config.max_in_flight, config.max_in_flight_pixels)
        self.stats = self.ledger.stats
        self.failure: BaseException | None = None  # why the model thread died, if it did
        self._batches: queue.Queue = queue.Queue()
        self._loaders = ThreadPoolExecutor(config.io_threads, thread_name_prefix="cutq-load")
        self._writers = ThreadPoolExecutor(config.io_threads, thread_name_prefix="cutq-write")
        self._model_threads = [  # one per lane: the model's predict calls that may overlap
            threading.Thread(target=self._model_loop, name=f"cutq-model-{lane}", daemon=True)
            for lane in range(max(1, runner.model.lanes))
        ]
        self._stopping = threading.Event()
        self._released = threading.Event()

    # --- taking jobs ------------------------------------------------------------------------

    def start(self) -> None:
        for thread in self._model_threads:
            thread.start()

    def submit(self, delivery: Delivery) -> None:
        """Take a job; blocks while ``max_in_flight`` jobs are held (back-pressure).

        Once the pipeline is stopping, a new delivery is held here, unstarted and still leased,
        until :meth:`release_held`, then nacked once: returning it at once would free room for
        the source to deliver (and nack) the next one, burning the backlog's delivery attempts.
        """
        while not self._stopping.is_set():
            if self.ledger.take_slot(0.1):
                task = self.ledger.open(delivery)
                if task is not None:
                    self._hand_off(self._loaders, self._start, task, task)
                    return
                break  # closed between the slot and the open
        self._released.wait()
        delivery.nack()

    @property
    def healthy(self) -> bool:
        """False once a model thread has died: the worker must stop and report it."""
        return self.failure is None

    @property
    def last_activity(self) -> float:
        return self.ledger.last_activity

    def in_flight(self) -> int:
        return self.ledger.in_flight()

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
        self._batches.put(self._load(admitted))

    def _admit(self, task: Task) -> Admitted:
        delivery = task.delivery
        job = parse_job(
            delivery.data,
            defaults=self.config.default_output,
            attributes=delivery.attributes,
            publish_time=delivery.publish_time,
        )
        task.job = job
        task.timings_ms["queue"] = max(
            0.0, (datetime.now(timezone.utc) - delivery.publish_time).total_seconds() * 1000
        )
        if job.model is not None and job.model != self.runner.model.name:
            raise UnknownModel(
                f"job asks for model {job.model!r}; this worker serves {self.runner.model.name!r}"
            )
        source = check_allowed(job.input, self.config, "input")
        writes = results.plan(job, lambda uri: check_allowed(uri, self.config, "output"))
        return Admitted(task, job, source, writes)

    def _skip_if_done(self, admitted: Admitted) -> bool:
        """At-least-once delivery: when every result exists, re-emit the event and ack."""
        done = results.lookup(admitted.results)
        if done is not None:
            self._complete(admitted, done[0], duplicate=True, judged=done[1])
        return done is not None

    def _load(self, admitted: Admitted) -> Loaded:
        task, job = admitted.task, admitted.job
        started = time.monotonic()
        data = open_storage(admitted.source).read(
            admitted.source, max_bytes=self.config.max_input_bytes, generation=job.input_generation
        )
        now = task.mark("download", started)
        image = imaging.decode(
            data, max_pixels=self.config.max_pixels, reserve=lambda n: self._reserve(task, n)
        )
        del data
        model = self.runner.model
        size = model.input_size(image.height, image.width, job.options.resize or self.config.resize)
        tensor = model.preprocess(image.rgb, size)
        return Loaded(admitted, image, tensor, size, task.mark("decode", now))

    def _reserve(self, task: Task, pixels: int) -> None:
        """Hold ``pixels`` of the in-flight pixel budget until the task settles."""
        if not self.ledger.pixels.reserve(pixels, cancelled=self._stopping.is_set):
            raise ShuttingDown("worker stopping")
        task.pixels = pixels

    def _model_loop(self) -> None:
        """The model thread: batches until STOP. An error fails its batch, never the thread."""
        max_wait_s = self.config.max_wait_ms / 1000.0
        try:
            while (
                batch := get_batch(self._batches, self.config.max_batch, max_wait_s)
            ) is not None:
                groups: dict[tuple[int, int], list[Loaded]] = defaultdict(list)
                for loaded in batch:
                    groups[loaded.input_size].append(loaded)
                del batch
                for group in groups.values():
                    self._infer(group)
        except BaseException as error:  # _infer catches every Exception: this is worse
            self.failure = error
            log.critical("the model thread died: the worker is no longer healthy", exc_info=True)

    def _infer(self, group: list[Loaded]) -> None:
        started = time.monotonic()
        try:
            prediction = self.runner.run([loaded.tensor for loaded in group])
            inferred = []
            for index, (loaded, saliency) in enumerate(zip(group, prediction.maps, strict=True)):
                task = loaded.admitted.task
                task.timings_ms["batch_wait"] = (started - loaded.enqueued) * 1000.0
                task.mark("infer", started)
                task.batch_size = len(group)
                if prediction.fp32_reruns:  # part of infer: the batch computed again in fp32
                    task.timings_ms["fp32_rerun"] = prediction.fp32_rerun_ms
                if index in prediction.failed:  # not finite, also in fp32: never a blank result
                    self._fail(task, prediction.failed[index])
                    continue
                inferred.append(Inferred(loaded.admitted, loaded.image, saliency))
            reruns = prediction.fp32_reruns
            del prediction
        except Exception as error:  # one bad batch fails each of its jobs on its own
            log.error("batch of %d failed: %s: %s", len(group), type(error).__name__, error)
            for loaded in group:
                self._fail(loaded.admitted.task, error)
            return
        self.ledger.count_batch(len(group), reruns)
        log.debug(
            "batch of %d at %s in %.0fms; %d waiting",
            len(group),
            group[0].input_size,
            (time.monotonic() - started) * 1000,
            self._batches.qsize(),
            extra={"batch_size": len(group), "queue_depth": self._batches.qsize()},
        )
        for item in inferred:
            self._hand_off(self._writers, self._write, item, item.admitted.task)

    def _write(self, inferred: Inferred) -> None:
        """Writers pool: render and encode the pictures, create each result only if absent."""
        admitted, image = inferred.admitted, inferred.image
        task, job = admitted.task, admitted.job
        started = time.monotonic()
        mask = self.runner.to_mask(
            inferred.saliency, image.height, image.width, job.options.threshold
        )
        rendering = results.render(image, mask, job, admitted.results, self.config)
        del mask, inferred
        now = task.mark("encode", started)
        outputs, duplicate = results.store(admitted.results, rendering, job)
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
        task.timings_ms["total"] = (time.monotonic() - task.received) * 1000.0
        event = Event.completed(
            admitted.job,
            outputs,
            model=self.runner.model.describe(),
            attempt=task.delivery.delivery_attempt,
            batch_size=task.batch_size,
            timings_ms=task.timings_ms,
            duplicate=duplicate,
            flags=judged.flags if judged else None,
            quality=judged.figures if judged else None,
        )
        self._emit(task, event)

    # --- ending a job -----------------------------------------------------------------------

    def _fail(self, task: Task, error: BaseException) -> None:
        """Settle ``task`` by the class of ``error``: a ``failed`` event, or back to the queue."""
        task.timings_ms["total"] = (time.monotonic() - task.received) * 1000.0
        if not is_permanent(error):
            if not isinstance(error, CutqError):
                log.error(
                    "unexpected %s; the job goes back to the queue",
                    type(error).__name__,
                    exc_info=error,
                )
            self._settle(task, ack=False, error=error)
            return
        job, delivery = task.job, task.delivery
        self._emit(
            task,
            Event.failed(
                (job.job_id if job else salvage_job_id(delivery.data)) or task.label,
                job.input if job else None,
                error_code(error),
                str(error),
                attributes=job.attributes if job else {},
                model=self.runner.model.describe(),
                attempt=delivery.delivery_attempt,
                timings_ms=task.timings_ms,
            ),
        )

    def _emit(self, task: Task, event: Event) -> None:
        """Publish ``event``, then ack; unless the task was nacked meanwhile (grace over)."""
        if not self.ledger.begin_emit(task):
            return
        try:
            self.events.publish(event)
        except Exception as error:
            self._settle(task, ack=False, error=error)
            return
        self._settle(task, ack=True, event=event)

    def _settle(
        self,
        task: Task,
        *,
        ack: bool,
        event: Event | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Ack or nack once; then the deliveries that waited on this job share its outcome."""
        for follower in self.ledger.settle(task, ack=ack, event=event, error=error):
            if ack and event is not None and follower.job is not None:
                self._emit(follower, _followed(event, follower))
            else:
                self._settle(follower, ack=False, error=error)

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
            self._settle(task, ack=False, error=ShuttingDown("worker stopping"))

    # --- shutdown ---------------------------------------------------------------------------

    def stop_taking(self) -> None:
        """New deliveries are held unstarted from now on (see :meth:`submit`)."""
        self._stopping.set()
        self.ledger.close()

    def release_held(self) -> None:
        """Nack the deliveries held since :meth:`stop_taking`, once each (and any later one)."""
        self._released.set()

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
            for task in left:
                self.ledger.settle(
                    task, ack=False, error=ShuttingDown("worker stopping"), unless_emitting=True
                )
            self.ledger.wait_idle(max(0.0, deadline - time.monotonic()))
        # 4. Stop the model threads and the pools; never wait on a stuck call.
        self._batches.put(STOP)  # each model thread puts it back for the next
        self._loaders.shutdown(wait=False, cancel_futures=True)
        self._writers.shutdown(wait=False, cancel_futures=True)
        for thread in self._model_threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


def _followed(event: Event, follower: Task) -> Event:
    """The leader's outcome as ``follower``'s own event: computed once, reported for each."""
    assert follower.job is not None
    follower.timings_ms["total"] = (time.monotonic() - follower.received) * 1000.0
    return dataclasses.replace(
        event,
        attempt=follower.delivery.delivery_attempt,
        batch_size=None,
        timings_ms=dict(follower.timings_ms),
        attributes=follower.job.attributes,
        duplicate=event.status == "completed",
        time=datetime.now(timezone.utc),
    )
