"""``cutq run``: the worker pipeline over local files, with a progress bar and a summary.

Results go to ``<out>/dt=YYYY-MM-DD/<job_id>.<ext>``, one CloudEvent per job to
``<out>/events.jsonl``. The same decode → batch → infer → encode → write → event path as the
cloud worker, with the local directory as the job source.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from cutq.submitter.contract import Event, Options, parse_job
from cutq.submitter.storage import to_uri
from cutq.worker.config import WorkerConfig
from cutq.worker.events import JsonlEventSink
from cutq.worker.inference import Runner
from cutq.worker.models import create_model
from cutq.worker.pipeline import Pipeline
from cutq.worker.sources.local import LocalDelivery, LocalSource, expand_paths

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a local run did."""

    total: int
    completed: int
    duplicates: int
    failed: int
    elapsed_s: float
    warmup_s: float
    events_path: Path
    failures: Counter = field(default_factory=Counter)
    mean_batch: float = 0.0

    @property
    def images_per_s(self) -> float:
        return (self.completed + self.failed) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def render(self) -> str:
        lines = [
            f"{self.total} image(s): {self.completed} completed, {self.failed} failed, "
            f"{self.duplicates} already done · {self.images_per_s:.2f} images/s · "
            f"mean batch {self.mean_batch:.1f} · {self.elapsed_s:.1f}s "
            f"(+{self.warmup_s:.1f}s model load and warm-up)"
        ]
        for code, count in self.failures.most_common():
            lines.append(f"  failed: {count} × {code}")
        lines.append(f"events: {self.events_path}")
        return "\n".join(lines)


def run_local(
    inputs: Sequence[str],
    out_dir: str | Path,
    config: WorkerConfig,
    options: Options | None = None,
    progress: bool = True,
) -> RunSummary:
    """Process ``inputs`` (files and directories) into ``out_dir``; returns the summary."""
    out = Path(out_dir).absolute()
    config = config.replace(output=to_uri(out))
    files = list(expand_paths(inputs))
    started = time.monotonic()
    runner = Runner(create_model(config), config.device, config.precision)
    runner.setup()
    if config.warmup:
        runner.warmup(
            options.resize if options and options.resize else config.resize,  # type: ignore[arg-type]
            batch_sizes=sorted({1, min(config.max_batch, max(len(files), 1))}),
        )
    warmup_s = time.monotonic() - started

    events_path = out / "events.jsonl"
    sink = JsonlEventSink(events_path)
    source = LocalSource(files, config.default_output, options, max_attempts=3)
    pipeline = Pipeline(config, runner, sink)
    done = threading.Event()
    bar = tqdm(total=len(files), unit="img", disable=not progress, dynamic_ncols=True)
    counted = 0
    lock = threading.Lock()

    def settled(delivery: LocalDelivery, acked: bool) -> None:
        nonlocal counted
        with lock:
            counted += 1
            bar.update(1)
            if counted == len(files):
                done.set()

    source.retry = pipeline.submit
    source.settled = settled
    pipeline.start()
    began = time.monotonic()
    try:
        for delivery in source.deliveries():
            pipeline.submit(delivery)
        if files:
            done.wait()
        pipeline.wait_idle()
    finally:
        pipeline.close(grace_s=0)
        bar.close()
    elapsed = time.monotonic() - began
    for delivery in source.exhausted:  # the local dead letters: still one event each
        job = parse_job(delivery.data, defaults=config.default_output)
        sink.publish(
            Event(
                job_id=job.job_id,
                status="failed",
                input=job.input,
                model=runner.model.describe(),
                attempt=delivery.delivery_attempt,
                error_code="retries_exhausted",
                error_message=f"gave up after {delivery.delivery_attempt} attempts; "
                "see the log for each attempt's error",
            )
        )
    sink.close()
    stats = pipeline.stats
    failures = stats.failures + Counter({"retries_exhausted": len(source.exhausted)})
    return RunSummary(
        total=len(files),
        completed=stats.completed,
        duplicates=stats.duplicates,
        failed=stats.failed + len(source.exhausted),
        elapsed_s=elapsed,
        warmup_s=warmup_s,
        events_path=events_path,
        failures=failures,
        mean_batch=stats.batch_items / max(stats.batches, 1),
    )
