"""The one owner of a worker's life, for every source (Pub/Sub pull, push, local files).

:meth:`Service.start` is the only place that loads the model, warms it up at the configured
shapes and verifies the output: if that fails it raises, so the process exits non-zero and
never reports ready. :meth:`Service.run` serves one source until SIGTERM/SIGINT (or until the
source ends), then :meth:`Service.close` shuts everything down in order, within
``grace_period_s`` in total.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence

from cutq.core import storage
from cutq.worker.config import WorkerConfig
from cutq.worker.events import EventSink, LogEventSink, PubSubEventSink
from cutq.worker.inference import Runner, batch_shapes
from cutq.worker.models import create_model
from cutq.worker.pipeline import Pipeline
from cutq.worker.sources import Source

log = logging.getLogger(__name__)
CLOSE_RESERVE_S = 1.0  # of the grace period, kept for closing the source and the event sink


class Service:
    """A warmed-up pipeline, its event sink, and the event that says when to stop."""

    def __init__(
        self, config: WorkerConfig, runner: Runner, events: EventSink, ready_s: float
    ) -> None:
        self.config = config
        self.runner = runner
        self.events = events
        self.pipeline = Pipeline(config, runner, events)
        self.stop = threading.Event()
        self.ready_s = ready_s

    @classmethod
    def start(
        cls,
        config: WorkerConfig,
        events: EventSink | None = None,
        *,
        warmup_batch_sizes: Sequence[int] | None = None,
        install_signals: bool = True,
    ) -> Service:
        """Load, warm up and verify the model; start the pipeline. Raises on any failure
        (closing ``events``, which the service would otherwise own)."""
        started = time.monotonic()
        try:
            runner = _warmed_up_runner(config, warmup_batch_sizes)
        except BaseException:
            if events is not None:
                events.close()
            raise
        if events is None:
            events = PubSubEventSink(config.events_topic) if config.events_topic else LogEventSink()
        service = cls(config, runner, events, ready_s=time.monotonic() - started)
        service.pipeline.start()
        if install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, service._on_signal)
            signal.signal(signal.SIGINT, service._on_signal)
        log.info(
            "ready in %.1fs (warm-up %.1fs): model %s %s on %s (%s), lanes=%d max_batch=%d "
            "max_wait_ms=%.0f",
            service.ready_s,
            runner.warmup_s,
            runner.model.name,
            runner.model.version,
            runner.device,
            str(runner.dtype).removeprefix("torch."),
            runner.model.lanes,
            config.max_batch,
            config.max_wait_ms,
        )
        return service

    def _on_signal(self, number: int, frame: object) -> None:
        log.info(
            "received %s: draining (grace %.0fs)",
            signal.Signals(number).name,
            self.config.grace_period_s,
        )
        self.stop.set()

    def run(self, source: Source) -> str:
        """Serve ``source`` until told to stop or it ends; close everything; return why."""
        source.start(self.pipeline)
        try:
            return source.wait(self.stop)
        finally:
            self.close(source)

    def close(self, source: Source | None = None, grace_s: float | None = None) -> None:
        """Shut down in order, within ``grace_s`` (default ``grace_period_s``) in total."""
        grace_s = self.config.grace_period_s if grace_s is None else grace_s
        deadline = time.monotonic() + grace_s
        reserve = min(CLOSE_RESERVE_S, grace_s / 4)
        # 1. The platform stops sending (push: not ready); new deliveries wait unstarted.
        if source is not None:
            source.stop_intake()
        # 2. Finish what runs, or return it to the queue; stop the model thread and pools.
        self.pipeline.close(deadline - reserve)
        # 3. Stop the source: each held delivery is nacked once, while nacks still flow.
        if source is not None:
            source.close(self.pipeline, deadline)
        else:
            self.pipeline.release_held()
        # 4. Flush the event sink (bounded: a stuck publisher must not hold the exit).
        _bounded(self.events.close, deadline - time.monotonic(), "closing the event sink")
        stats = self.pipeline.stats
        log.info(
            "stopped: %d completed, %d failed, %d duplicates, %d returned to the queue, "
            "%d batches (mean size %.1f, %d re-run in fp32)",
            stats.completed,
            stats.failed,
            stats.duplicates,
            stats.retried,
            stats.batches,
            stats.mean_batch,
            stats.fp32_reruns,
        )


def _warmed_up_runner(config: WorkerConfig, batch_sizes: Sequence[int] | None) -> Runner:
    """The one place a model is loaded, warmed up at real shapes and its output checked."""
    storage.configure(attempts=config.storage_attempts, deadline_s=config.storage_deadline_s)
    runner = Runner(create_model(config), config.device, config.precision)
    runner.setup()
    if config.warmup:
        # On a GPU every batch size the batcher can close, so cuDNN autotunes each of them
        # here and never on a job; on a CPU one image and the largest batch.
        default = batch_shapes(config.max_batch) if runner.cuda else [1, config.max_batch]
        sizes = sorted(set(batch_sizes or default))
        seconds = runner.warmup(config.resize, sizes)  # type: ignore[arg-type]
        log.info("warm-up passed at batch sizes %s in %.1fs", sizes, seconds)
    return runner


def _bounded(function: Callable[[], None], timeout_s: float, what: str) -> None:
    """Run ``function`` for at most ``timeout_s``; past that, leave it to the process exit."""

    def run() -> None:
        try:
            function()
        except Exception:
            log.exception("%s failed", what)

    thread = threading.Thread(target=run, name="cutq-close", daemon=True)
    thread.start()
    thread.join(max(0.1, timeout_s))
    if thread.is_alive():
        log.warning("%s took longer than the grace period; not waiting for it", what)
