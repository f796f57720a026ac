"""The one owner of a worker's life, for every source (Pub/Sub pull, push, local files).

:meth:`Service.warmed_up` is the only place that loads the model, warms it up at the
configured shapes and verifies the output: if that fails it raises, so the process exits
non-zero and never reports ready. :meth:`Service.run` starts a source (which only delivers)
and owns the rest: the wait loop, health, drain-on-idle and the :class:`StopReason`; then
:meth:`Service.close` shuts everything down in order, within ``grace_period_s`` in total,
nacking the deliveries the pipeline held. :func:`exit_code` turns the reason into the
process's exit status.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from cutq.core.storage import Stores
from cutq.worker.cancellations import CancelWatch
from cutq.worker.config import WorkerConfig
from cutq.worker.joblog import JobLog
from cutq.worker.models import create_model
from cutq.worker.outcome import Observer, Stats
from cutq.worker.pipeline import Pipeline, stores_for
from cutq.worker.runtime.inference import Runner, batch_shapes
from cutq.worker.sinks import EventSink, LogEventSink, PubSubEventSink
from cutq.worker.sources import Intake, Source, StopReason

log = logging.getLogger(__name__)
CLOSE_RESERVE_S = 1.0  # of the grace period, kept for closing the source and the event sink
POLL_S = 0.25  # how often the wait loop looks at health, the source and idleness


class Service:
    """A warmed-up pipeline, its storage and event sink, and the loop that serves a source.

    It composes the observers of every settle: :attr:`stats` first, then the job log, then
    ``observers`` (``cutq run``'s progress bar)."""

    def __init__(
        self,
        config: WorkerConfig,
        runner: Runner,
        events: EventSink,
        ready_s: float,
        storage: Stores | None = None,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.config = config
        self.runner = runner
        self.events = events
        self.storage = storage or stores_for(config)
        self.cancellations = (
            CancelWatch(self.storage, config.control_uri, config.control_refresh_s)
            if config.control_refresh_s > 0
            else None
        )
        self.stats = Stats()
        self.pipeline = Pipeline(
            config,
            runner,
            events,
            self.storage,
            self.cancellations,
            stats=self.stats,
            observers=(JobLog(config.trace_project), *observers),
        )
        self.ready_s = ready_s
        self._stopping = threading.Event()
        self._closing = threading.Lock()
        self._closed = False

    @classmethod
    def warmed_up(
        cls,
        config: WorkerConfig,
        events: EventSink | None = None,
        *,
        warmup_batch_sizes: Sequence[int] | None = None,
        observers: Sequence[Observer] = (),
    ) -> Service:
        """Load, warm up and verify the model; start the pipeline. Raises on any failure
        (closing ``events``, which the service would otherwise own)."""
        started = time.monotonic()
        storage = stores_for(config)  # the model's weights come through it too
        try:
            runner = _warmed_up_runner(config, warmup_batch_sizes, storage)
        except BaseException:
            if events is not None:
                events.close()
            raise
        if events is None:
            events = PubSubEventSink(config.events_topic) if config.events_topic else LogEventSink()
        service = cls(
            config,
            runner,
            events,
            ready_s=time.monotonic() - started,
            storage=storage,
            observers=observers,
        )
        service.pipeline.start()
        log.info(
            "ready in %.1fs (warm-up %.1fs): model %s %s on %s (%s), streams=%d max_batch=%d "
            "max_wait_ms=%.0f",
            service.ready_s,
            runner.warmup_s,
            runner.model.name,
            runner.model.version,
            runner.device,
            str(runner.dtype).removeprefix("torch."),
            runner.model.streams,
            config.max_batch,
            config.max_wait_ms,
        )
        return service

    # --- serving ----------------------------------------------------------------------------

    def ready(self) -> bool:
        """Warmed up, the model threads alive, and not stopping: what /readyz reports."""
        return not self._stopping.is_set() and self.pipeline.healthy

    def stop(self) -> None:
        """Stop serving (as SIGTERM does): :meth:`run` closes everything and returns."""
        self._stopping.set()

    def run(self, source: Source, *, handle_signals: bool = True) -> StopReason:
        """Serve ``source`` until a signal, :meth:`stop`, a dead model thread, the source's
        end, or (the config's ``drain_idle_s``) that long with nothing in flight; close; say
        why."""
        intake = Intake(self.pipeline.submit, self.ready, self.pipeline.in_flight)
        with self._signals(handle_signals):
            try:
                if self.cancellations is not None:  # a first listing before the first job
                    self.cancellations.start()
                source.start(intake)
                reason = self._serve(source, self.config.drain_idle_s)
                log.info("stopping: %s", reason.value)
            finally:
                self.close(source)
        return reason

    def _serve(self, source: Source, drain_idle_s: float | None) -> StopReason:
        while not self._stopping.wait(POLL_S):
            if not self.pipeline.healthy:
                return StopReason.MODEL_FAILED
            ended = source.ended()
            if ended is not None:
                return ended
            idle_s = self.pipeline.idle_s()
            if drain_idle_s is not None and idle_s is not None and idle_s >= drain_idle_s:
                log.info("idle for %.0fs with nothing in flight: draining done", drain_idle_s)
                return StopReason.IDLE
        return StopReason.SIGNAL

    @contextlib.contextmanager
    def _signals(self, wanted: bool) -> Iterator[None]:
        """SIGTERM and SIGINT stop the service while it runs (main thread only)."""
        if not wanted or threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_signal(number: int, frame: object) -> None:
            log.info(
                "received %s: draining (grace %.0fs)",
                signal.Signals(number).name,
                self.config.grace_period_s,
            )
            self.stop()

        previous = {number: signal.signal(number, on_signal) for number in _SIGNALS}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    # --- shutdown ---------------------------------------------------------------------------

    def close(self, source: Source | None = None, grace_s: float | None = None) -> None:
        """Shut down in order, within ``grace_s`` (default ``grace_period_s``) in total.
        Idempotent: a second call returns at once."""
        with self._closing:
            if self._closed:
                return
            self._closed = True
        grace_s = self.config.grace_period_s if grace_s is None else grace_s
        deadline = time.monotonic() + grace_s
        reserve = min(CLOSE_RESERVE_S, grace_s / 4)
        # 1. Not ready from now on (push: the platform stops routing here); new deliveries are
        #    held by the pipeline, unstarted and still leased.
        self._stopping.set()
        # 2. Finish what runs, or return it to the queue, while acks and nacks still reach the
        #    source; stop the model threads and pools.
        self.pipeline.close(deadline - reserve)
        # 3. The source asks for nothing more (Pub/Sub: the stream is cancelled) ...
        if source is not None:
            source.stop_intake()
        # 4. ... and only then is each held delivery nacked, once: a nack can no longer make
        #    room for another message (which would burn its delivery attempt).
        self.pipeline.release_held()
        # 5. The source lets those nacks through and releases its transport.
        if source is not None:
            _bounded(lambda: source.close(deadline), deadline - time.monotonic(), "the source")
        # 6. Flush the event sink (bounded: a stuck publisher must not hold the exit).
        _bounded(self.events.close, deadline - time.monotonic(), "closing the event sink")
        # 7. Stop listing cancellations (it only reads).
        if self.cancellations is not None:
            self.cancellations.stop()
        log.info("stopped: %s", self.pipeline.stats.summary())


_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def exit_code(reason: StopReason) -> int:
    """The process's exit status for ``reason`` — and the exit itself, now, when a thread is
    still stuck in a storage or publish call past the grace period (the platform would
    otherwise SIGKILL the process)."""
    code = reason.exit_code
    stuck = [
        t.name
        for t in threading.enumerate()
        if t.is_alive() and not t.daemon and t is not threading.main_thread()
    ]
    if not stuck:
        return code
    log.warning("exiting with %d thread(s) still busy: %s", len(stuck), ", ".join(stuck))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _warmed_up_runner(
    config: WorkerConfig, batch_sizes: Sequence[int] | None, storage: Stores
) -> Runner:
    """The one place a model is loaded, warmed up at real shapes and its output checked."""
    model = create_model(config, storage)
    runner = Runner(model, config.device, config.precision, platform=config.platform)
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
