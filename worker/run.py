"""``cutq run``: the worker pipeline over local files, with a progress bar and a summary.

Results go to ``<out>/dt=YYYY-MM-DD/<job_id>.<ext>``, one CloudEvent per job to
``<out>/events.jsonl``. The same decode → batch → infer → encode → write → event path as the
cloud worker, with the local directory as the job source.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from cutq.core.contract import Options, parse_job
from cutq.core.events import Event
from cutq.core.renditions import Rendition
from cutq.core.storage import to_uri
from cutq.worker.config import WorkerConfig
from cutq.worker.events import JsonlEventSink
from cutq.worker.service import Service
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
    renditions: tuple[Rendition, ...] = (),
) -> RunSummary:
    """Process ``inputs`` (files and directories) into ``out_dir``; returns the summary.

    ``renditions``: the named outputs each image gets from its one model run (e.g.
    ``presets("amazon-main", "thumbnail")``); none: the configured output's cutout and/or mask.
    """
    out = Path(out_dir).absolute()
    config = config.replace(output=to_uri(out))
    files = list(expand_paths(inputs))
    if options and options.resize:
        config = config.replace(resize=options.resize)  # warm up at the shapes the run uses
    events_path = out / "events.jsonl"
    sink = JsonlEventSink(events_path)
    started = time.monotonic()
    service = Service.start(
        config,
        sink,
        warmup_batch_sizes=[1, min(config.max_batch, max(len(files), 1))],
        install_signals=False,
    )
    warmup_s = time.monotonic() - started
    model = service.runner.model.describe()
    bar = tqdm(total=len(files), unit="img", disable=not progress, dynamic_ncols=True)

    def settled(delivery: LocalDelivery, acked: bool) -> None:
        bar.update(1)
        if not acked:  # the local dead letter: still one event, while the sink is open
            job = parse_job(delivery.data, defaults=config.default_output)
            sink.publish(
                Event.failed(
                    job.job_id,
                    job.input,
                    "retries_exhausted",
                    f"gave up after {delivery.delivery_attempt} attempts; "
                    "see the log for each attempt's error",
                    attributes=job.attributes,
                    model=model,
                    attempt=delivery.delivery_attempt,
                )
            )

    # A custom model's name goes into the job (and so its id): results of another model
    # over the same files are never mistaken for its own.
    job_model = service.runner.model.name if config.model_spec else None
    source = LocalSource(
        files,
        config.default_output,
        options,
        job_model,
        max_attempts=3,
        on_settled=settled,
        renditions=renditions,
    )
    began = time.monotonic()
    try:
        service.run(source)
    finally:
        bar.close()
    elapsed = time.monotonic() - began
    stats = service.pipeline.stats
    return RunSummary(
        total=len(files),
        completed=stats.completed,
        duplicates=stats.duplicates,
        failed=stats.failed + len(source.exhausted),
        elapsed_s=elapsed,
        warmup_s=warmup_s,
        events_path=events_path,
        failures=stats.failures + Counter({"retries_exhausted": len(source.exhausted)}),
        mean_batch=stats.mean_batch,
    )
