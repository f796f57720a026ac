"""``cutq run``: the worker pipeline over local files, with a progress bar and a summary.

Results go to ``<out>/dt=YYYY-MM-DD/<job_id>.<ext>``, one CloudEvent per job to
``<out>/events.jsonl``, and the run's manifest (one row per job of this run,
:mod:`cutq.core.manifest`) to ``<out>/manifest.jsonl`` and ``<out>/manifest.csv``. The same
decode → batch → infer → encode → write → event path as the cloud worker, with the local
directory as the job source.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from cutq.core.contract import Options
from cutq.core.events import Event
from cutq.core.manifest import ManifestRow, event_document, read_events, write_manifest
from cutq.core.renditions import Rendition
from cutq.core.storage import to_uri
from cutq.worker.config import WorkerConfig
from cutq.worker.ledger import Task
from cutq.worker.outcome import Ending, Outcome
from cutq.worker.service import Service
from cutq.worker.sinks import EventSink, JsonlEventSink
from cutq.worker.sources import StopReason
from cutq.worker.sources.local import LocalSource, expand_paths

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a local run did."""

    reason: StopReason
    total: int
    completed: int
    duplicates: int
    failed: int
    elapsed_s: float
    warmup_s: float
    events_path: Path
    failures: Counter = field(default_factory=Counter)
    mean_batch: float = 0.0
    manifest_paths: tuple[Path, ...] = ()

    @property
    def unfinished(self) -> int:
        """Images neither done nor given up on: the run was stopped first."""
        return max(0, self.total - self.completed - self.duplicates - self.failed)

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
        if self.unfinished:
            lines.append(f"  stopped ({self.reason.value}): {self.unfinished} not processed")
        for code, count in self.failures.most_common():
            lines.append(f"  failed: {count} × {code}")
        lines.append(f"events: {self.events_path}")
        if self.manifest_paths:
            lines.append("manifest: " + ", ".join(str(path) for path in self.manifest_paths))
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
    events_before = events_path.stat().st_size if events_path.is_file() else 0
    sink = JsonlEventSink(events_path)
    started = time.monotonic()
    service = Service.warmed_up(
        config, sink, warmup_batch_sizes=[1, min(config.max_batch, max(len(files), 1))]
    )
    warmup_s = time.monotonic() - started
    bar = tqdm(total=len(files), unit="img", disable=not progress, dynamic_ncols=True)

    service.pipeline.ledger.observe(Progress(bar))
    service.pipeline.ledger.observe(LocalDeadLetters(sink, service.runner.model.describe()))
    # A custom model's name goes into the job (and so its id): results of another model
    # over the same files are never mistaken for its own.
    job_model = service.runner.model.name if config.model_spec else None
    source = LocalSource(
        files, config.default_output, options, job_model, max_attempts=3, renditions=renditions
    )
    began = time.monotonic()
    try:
        reason = service.run(source)  # SIGINT/SIGTERM: finish or return what runs, then stop
    finally:
        bar.close()
    elapsed = time.monotonic() - began
    stats = service.pipeline.stats
    manifest = write_manifest(run_rows(events_path, events_before), out / "manifest.jsonl")
    return RunSummary(
        reason=reason,
        total=len(files),
        completed=stats.completed,
        duplicates=stats.duplicates,
        failed=stats.failed + stats.expired + stats.exhausted,
        elapsed_s=elapsed,
        warmup_s=warmup_s,
        events_path=events_path,
        failures=stats.failures,
        mean_batch=stats.mean_batch,
        manifest_paths=manifest,
    )


def run_rows(events_path: Path, since_byte: int) -> list[ManifestRow]:
    """One manifest row per job with an event past ``since_byte`` (this run's), each from the
    whole file: a job this run found already done keeps its first computation's row."""
    if not events_path.is_file():
        return []
    with events_path.open("rb") as events:
        events.seek(since_byte)
        fresh = events.read().decode("utf-8", "replace").splitlines()
    documents = (event_document(line, str(events_path)) for line in fresh if line.strip())
    ran = {document["data"]["job_id"] for document in documents if document is not None}
    return [row for row in read_events([events_path]) if row.job_id in ran]


class Progress:
    """The progress bar moves once per image that has ended (not when it goes back to retry)."""

    def __init__(self, bar: tqdm) -> None:
        self.bar = bar

    def settled(self, task: Task, outcome: Outcome) -> None:
        if outcome.ending is not Ending.RETURNED:
            self.bar.update(1)


class LocalDeadLetters:
    """The local dead letter: an ``exhausted`` job still gets one event, a ``failed`` one with
    code ``retries_exhausted`` (published while the sink is open: the job is still in flight)."""

    def __init__(self, sink: EventSink, model: dict[str, str]) -> None:
        self.sink = sink
        self.model = model

    def settled(self, task: Task, outcome: Outcome) -> None:
        if outcome.ending is not Ending.EXHAUSTED:
            return
        job, attempt = task.job, task.delivery.delivery_attempt
        self.sink.publish(
            Event.failed(
                job.job_id if job else task.label,
                job.input if job else None,
                "retries_exhausted",
                f"gave up after {attempt} attempts; see the log for each attempt's error",
                attributes=job.attributes if job else {},
                model=self.model,
                attempt=attempt,
            )
        )
