"""The worker pipeline: fetch → decode → batch → infer → encode → upload → event → ack.

Every source (Pub/Sub pull, push, local files) feeds :meth:`Pipeline.submit`. A semaphore of
``max_in_flight`` slots bounds the jobs held in memory across all stages, which gives
back-pressure to the source. Download, decode and preprocessing run in one thread pool,
encoding and uploads in another; a single thread owns the model and forms batches.

Each job is settled exactly once (see :class:`_Settle`): acked after its result objects and its
event are durable, acked after a ``failed`` event for permanent errors, or nacked for
transient ones so Pub/Sub retries it (and eventually dead-letters it).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np

from cutq.submitter.contract import (
    CONTENT_TYPES,
    Event,
    Job,
    OutputInfo,
    parse_job,
    salvage_job_id,
)
from cutq.submitter.errors import (
    CutqError,
    ShuttingDown,
    UnknownModel,
    error_code,
    is_permanent,
)
from cutq.submitter.storage import open_storage
from cutq.worker import imaging
from cutq.worker.access import check_allowed
from cutq.worker.batcher import STOP, get_batch
from cutq.worker.config import WorkerConfig
from cutq.worker.events import EventSink
from cutq.worker.inference import Runner
from cutq.worker.joblog import log_job
from cutq.worker.sources import Delivery

if TYPE_CHECKING:  # a CPU worker running onnxruntime never imports torch
    import torch

log = logging.getLogger(__name__)


@dataclass(eq=False)
class WorkItem:
    """A job on its way through the stages; gathers what each stage produced and its timings."""

    delivery: Delivery
    received: float = field(default_factory=time.monotonic)
    job: Job | None = None
    decoded: imaging.Decoded | None = None
    tensor: torch.Tensor | None = None
    input_size: tuple[int, int] = (0, 0)
    enqueued: float = 0.0
    saliency: torch.Tensor | None = None
    mask: np.ndarray | None = None
    batch_size: int | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    def mark(self, stage: str, since: float) -> float:
        now = time.monotonic()
        self.timings_ms[stage] = (now - since) * 1000.0
        return now


@dataclass
class Stats:
    """Counts since start; read by the CLI summary, health checks and logs."""

    completed: int = 0
    failed: int = 0
    duplicates: int = 0
    retried: int = 0
    batches: int = 0
    batch_items: int = 0
    failures: Counter = field(default_factory=Counter)  # error code → count

    @property
    def settled(self) -> int:
        return self.completed + self.failed + self.duplicates + self.retried


class Pipeline:
    """Runs jobs through one model with dynamic batching. Start, submit, then close."""

    def __init__(self, config: WorkerConfig, runner: Runner, events: EventSink) -> None:
        self.config = config
        self.runner = runner
        self.events = events
        self.stats = Stats()
        self._stats_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(config.max_in_flight)
        self._batches: queue.Queue = queue.Queue()
        self._fetchers = ThreadPoolExecutor(config.io_threads, thread_name_prefix="cutq-fetch")
        self._finishers = ThreadPoolExecutor(config.io_threads, thread_name_prefix="cutq-finish")
        self._model_thread = threading.Thread(
            target=self._model_loop, name="cutq-model", daemon=True
        )
        self._stopping = threading.Event()
        self._in_flight: set[WorkItem] = set()
        self._idle = threading.Condition()
        self.last_activity = time.monotonic()

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._model_thread.start()

    def submit(self, delivery: Delivery) -> None:
        """Take a job; blocks while ``max_in_flight`` jobs are already held (back-pressure)."""
        while not self._slots.acquire(timeout=0.1):
            if self._stopping.is_set():
                delivery.nack()  # not started: straight back to the queue
                return
        item = WorkItem(delivery)
        with self._idle:  # accept-or-refuse is atomic with close() setting the stop flag
            accepted = not self._stopping.is_set()
            if accepted:
                self._in_flight.add(item)
                self.last_activity = time.monotonic()
        if not accepted:
            self._slots.release()
            delivery.nack()
            return
        self._hand_off(self._fetchers, self._fetch, item)

    def _hand_off(self, pool: ThreadPoolExecutor, stage, item: WorkItem) -> None:  # type: ignore[no-untyped-def]
        """Queue ``stage(item)`` on ``pool``; a pool already shut down returns the job."""
        try:
            pool.submit(self._guard, stage, item)
        except RuntimeError:
            self._settle(item, ack=False, error=ShuttingDown("worker stopping"))

    def in_flight(self) -> int:
        with self._idle:
            return len(self._in_flight)

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Wait until no job is in flight; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._in_flight, timeout_s)

    def close(self, grace_s: float | None = None) -> None:
        """Stop taking jobs, finish what is in flight within ``grace_s``, nack the rest."""
        grace_s = self.config.grace_period_s if grace_s is None else grace_s
        with self._idle:
            self._stopping.set()
        finished = self.wait_idle(grace_s)
        self._batches.put(STOP)
        if not finished:
            with self._idle:
                left = list(self._in_flight)
            log.warning("grace period over: returning %d unfinished job(s) to the queue", len(left))
            for item in left:
                self._settle(item, ack=False, error=ShuttingDown("worker stopping"))
        self._model_thread.join(timeout=max(grace_s, 1.0))
        self._fetchers.shutdown(wait=True, cancel_futures=True)
        self._finishers.shutdown(wait=True, cancel_futures=True)
        s = self.stats
        log.info(
            "stopped: %d completed, %d failed, %d duplicates, %d returned to the queue, "
            "%d batches (mean size %.1f)",
            s.completed,
            s.failed,
            s.duplicates,
            s.retried,
            s.batches,
            s.batch_items / max(s.batches, 1),
        )

    # --- stages -----------------------------------------------------------------------------

    def _fetch(self, item: WorkItem) -> None:
        started = time.monotonic()
        delivery = item.delivery
        job = parse_job(
            delivery.data,
            defaults=self.config.default_output,
            attributes=delivery.attributes,
            publish_time=delivery.publish_time,
        )
        item.job = job
        item.timings_ms["queue"] = max(
            0.0, (datetime.now(timezone.utc) - delivery.publish_time).total_seconds() * 1000
        )
        if job.model is not None and job.model != self.runner.model.name:
            raise UnknownModel(
                f"job asks for model {job.model!r}; this worker serves {self.runner.model.name!r}"
            )
        source = check_allowed(job.input, self.config, "input")
        for uri in job.result_uris().values():
            check_allowed(uri, self.config, "output")
        if self._emit_if_done(item):
            return
        data = open_storage(source).read(
            source, max_bytes=self.config.max_input_bytes, generation=job.input_generation
        )
        now = item.mark("download", started)
        decoded = imaging.decode(data, max_pixels=self.config.max_pixels)
        del data
        resize = job.options.resize or self.config.resize
        item.input_size = self.runner.model.input_size(decoded.height, decoded.width, resize)
        item.tensor = self.runner.model.preprocess(decoded.rgb, item.input_size)
        item.decoded = decoded
        item.enqueued = item.mark("decode", now)
        self._batches.put(item)

    def _model_loop(self) -> None:
        max_wait_s = self.config.max_wait_ms / 1000.0
        while True:
            batch = get_batch(self._batches, self.config.max_batch, max_wait_s)
            if batch is None:
                return
            groups: dict[tuple[int, int], list[WorkItem]] = defaultdict(list)
            for item in batch:
                groups[item.input_size].append(item)
            for group in groups.values():
                self._infer(group)

    def _infer(self, group: list[WorkItem]) -> None:
        started = time.monotonic()
        try:
            maps = self.runner.predict([item.tensor for item in group])  # type: ignore[misc]
            if self.runner.cuda:  # upsample on the GPU while we own it
                for item, saliency in zip(group, maps, strict=True):
                    item.mask = self._mask(item, saliency)
            else:  # on CPU the finish pool upsamples in parallel
                for item, saliency in zip(group, maps, strict=True):
                    item.saliency = saliency
        except Exception as error:  # one bad batch fails each of its jobs on its own
            log.exception("batch of %d failed", len(group))
            for item in group:
                self._finish_error(item, error)
            return
        with self._stats_lock:
            self.stats.batches += 1
            self.stats.batch_items += len(group)
        log.debug(
            "batch of %d at %s in %.0fms; %d waiting, %d in flight",
            len(group),
            group[0].input_size,
            (time.monotonic() - started) * 1000,
            self._batches.qsize(),
            len(self._in_flight),
            extra={"batch_size": len(group), "queue_depth": self._batches.qsize()},
        )
        for item in group:
            item.timings_ms["batch_wait"] = (started - item.enqueued) * 1000.0
            item.mark("infer", started)
            item.batch_size = len(group)
            item.tensor = None
            self._hand_off(self._finishers, self._finish, item)

    def _mask(self, item: WorkItem, saliency: torch.Tensor) -> np.ndarray:
        assert item.decoded is not None and item.job is not None
        return self.runner.to_mask(
            saliency, item.decoded.height, item.decoded.width, item.job.options.threshold
        )

    def _finish(self, item: WorkItem) -> None:
        started = time.monotonic()
        job, decoded = item.job, item.decoded
        assert job is not None and decoded is not None
        mask = item.mask if item.mask is not None else self._mask(item, item.saliency)  # type: ignore[arg-type]
        alpha = imaging.combine_alpha(mask, decoded.alpha)
        encoded: dict[str, bytes] = {}
        for kind, uri in job.result_uris().items():
            image = (
                imaging.cutout(decoded.rgb, alpha, job.output.background)
                if kind == "cutout"
                else imaging.mask_image(mask)
            )
            encoded[uri] = imaging.encode(image, job.output.format)
        item.decoded = item.saliency = item.mask = None
        now = item.mark("encode", started)
        outputs = []
        for (kind, uri), data in zip(job.result_uris().items(), encoded.values(), strict=True):
            metadata = {
                "cutq-width": str(decoded.width),
                "cutq-height": str(decoded.height),
                "cutq-job-id": job.job_id,
            }
            info = open_storage(uri).write(
                uri, data, content_type=CONTENT_TYPES[job.output.format], metadata=metadata
            )
            outputs.append(
                OutputInfo(
                    kind=kind, uri=uri, size=info.size, width=decoded.width, height=decoded.height
                )
            )
        item.mark("upload", now)
        self._complete(item, outputs, duplicate=False)

    def _complete(self, item: WorkItem, outputs: list[OutputInfo], duplicate: bool) -> None:
        """Publish the job's ``completed`` event (re-emitted for duplicates), then ack."""
        job = item.job
        assert job is not None
        item.timings_ms["total"] = (time.monotonic() - item.received) * 1000.0
        self._publish_and_ack(
            item,
            Event(
                job_id=job.job_id,
                status="completed",
                input=job.input,
                outputs=tuple(outputs),
                model=self.runner.model.describe(),
                attempt=item.delivery.delivery_attempt,
                batch_size=None if duplicate else item.batch_size,
                timings_ms=item.timings_ms,
                attributes=job.attributes,
                duplicate=duplicate,
            ),
        )

    def _emit_if_done(self, item: WorkItem) -> bool:
        """At-least-once delivery: when every result exists, re-emit the event and ack."""
        job = item.job
        assert job is not None
        infos = []
        for kind, uri in job.result_uris().items():
            info = open_storage(uri).stat(uri)
            if info is None:
                return False
            width, height = info.metadata.get("cutq-width"), info.metadata.get("cutq-height")
            infos.append(
                OutputInfo(
                    kind=kind,
                    uri=uri,
                    size=info.size,
                    width=int(width) if width else None,
                    height=int(height) if height else None,
                )
            )
        self._complete(item, infos, duplicate=True)
        return True

    # --- settling ---------------------------------------------------------------------------

    def _guard(self, stage, item: WorkItem) -> None:  # type: ignore[no-untyped-def]
        """Run a stage; any error settles the job instead of killing a thread."""
        try:
            stage(item)
        except Exception as error:
            self._finish_error(item, error)

    def _finish_error(self, item: WorkItem, error: BaseException) -> None:
        item.timings_ms["total"] = (time.monotonic() - item.received) * 1000.0
        if not is_permanent(error):
            if not isinstance(error, CutqError):
                log.error("unexpected error; the job goes back to the queue", exc_info=error)
            self._settle(item, ack=False, error=error)
            return
        job = item.job
        job_id = job.job_id if job else salvage_job_id(item.delivery.data)
        self._publish_and_ack(
            item,
            Event(
                job_id=job_id or f"message-{item.delivery.message_id}",
                status="failed",
                input=job.input if job else None,
                model=self.runner.model.describe(),
                attempt=item.delivery.delivery_attempt,
                timings_ms=item.timings_ms,
                error_code=error_code(error),
                error_message=str(error)[:1000],
                attributes=job.attributes if job else {},
            ),
        )

    def _publish_and_ack(self, item: WorkItem, event: Event) -> None:
        try:
            self.events.publish(event)
        except Exception as error:
            self._settle(item, ack=False, error=error)
            return
        self._settle(item, ack=True, event=event)

    def _settle(
        self,
        item: WorkItem,
        *,
        ack: bool,
        event: Event | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Ack or nack once, release the slot, count and log one line for the job."""
        with self._idle:
            if item not in self._in_flight:
                return  # already settled (e.g. nacked at the end of the grace period)
            self._in_flight.discard(item)
        try:
            item.delivery.ack() if ack else item.delivery.nack()
        finally:
            self._slots.release()
            with self._stats_lock:
                if not ack:
                    self.stats.retried += 1
                elif event is not None and event.duplicate:
                    self.stats.duplicates += 1
                elif event is not None and event.status == "completed":
                    self.stats.completed += 1
                else:
                    self.stats.failed += 1
                    self.stats.failures[event.error_code if event else "internal"] += 1
            with self._idle:
                self.last_activity = time.monotonic()
                self._idle.notify_all()
            log_job(item, ack, event, error)
