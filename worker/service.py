"""Start-up and shutdown shared by ``cutq worker`` and ``cutq serve``.

Start-up loads the model, warms it up at the configured shapes and verifies the output: if that
fails the process exits non-zero and never reports ready. SIGTERM and SIGINT set one stop event;
the caller then drains the pipeline within ``grace_period_s``.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass

from cutq.submitter import storage
from cutq.worker.config import WorkerConfig
from cutq.worker.events import EventSink, LogEventSink, PubSubEventSink
from cutq.worker.inference import Runner, batch_shapes
from cutq.worker.models import create_model
from cutq.worker.pipeline import Pipeline

log = logging.getLogger(__name__)


@dataclass
class Service:
    """A warmed-up pipeline plus the event that says when to stop."""

    config: WorkerConfig
    runner: Runner
    events: EventSink
    pipeline: Pipeline
    stop: threading.Event
    ready_s: float

    def shutdown(self) -> None:
        """Finish or return in-flight jobs within the grace period, then release clients."""
        self.pipeline.close(self.config.grace_period_s)
        self.events.close()


def start_service(config: WorkerConfig, *, install_signals: bool = True) -> Service:
    """Load, warm up and verify the model; start the pipeline. Raises on any failure."""
    started = time.monotonic()
    storage.configure(attempts=config.storage_attempts, deadline_s=config.storage_deadline_s)
    runner = Runner(create_model(config), config.device, config.precision)
    runner.setup()
    if config.warmup:
        sizes = batch_shapes(config.max_batch) if runner.cuda else [1, config.max_batch]
        seconds = runner.warmup(config.resize, sorted(set(sizes)))  # type: ignore[arg-type]
        log.info("warm-up passed at batch sizes %s in %.1fs", sorted(set(sizes)), seconds)
    events: EventSink = (
        PubSubEventSink(config.events_topic) if config.events_topic else LogEventSink()
    )
    pipeline = Pipeline(config, runner, events)
    pipeline.start()
    stop = threading.Event()
    if install_signals and threading.current_thread() is threading.main_thread():

        def on_signal(number: int, frame: object) -> None:
            log.info(
                "received %s: draining (grace %.0fs)",
                signal.Signals(number).name,
                config.grace_period_s,
            )
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    ready_s = time.monotonic() - started
    log.info(
        "ready in %.1fs: model %s %s on %s, max_batch=%d max_wait_ms=%.0f",
        ready_s,
        runner.model.name,
        runner.model.version,
        runner.device,
        config.max_batch,
        config.max_wait_ms,
    )
    return Service(config, runner, events, pipeline, stop, ready_s)
