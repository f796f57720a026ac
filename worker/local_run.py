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
from cutq.core.manifest import ManifestRow, event_document, read_events, write_manifest
from cutq.core.renditions import Rendition
from cutq.core.storage import to_uri
from cutq.core.tally import Exit, Tally
from cutq.worker.config import WorkerConfig
from cutq.worker.outcome import Ending, Outcome
from cutq.worker.service import Service
from cutq.worker.sinks import JsonlEventSink, TalliedSink
from cutq.worker.sources import StopReason
from cutq.worker.sources.local import LocalSource, expand_paths, names_of
from cutq.worker.task import Task

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
    tally: Tally = field(default_factory=Tally)  # verdicts and flags of the completed jobs
    skipped: Counter = field(default_factory=Counter)  # files not taken, by reason
    manifest_paths: tuple[Path, ...] = ()

    @property
    def unfinished(self) -> int:
        """Images neither done nor given up on: the run was stopped first."""
        return max(0, self.total - self.completed - self.duplicates - self.failed)

    @property
    def images_per_s(self) -> float:
        return (self.completed + self.failed) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def exit_code(self, accept_review: bool = False) -> Exit:
        """The status :class:`~cutq.core.tally.Exit` describes."""
        if not self.total:
            return Exit.NO_INPUT
        if self.failed or self.unfinished:
            return Exit.FAILED
        return self.tally.exit_code(accept_review)

    def render(self) -> str:
        if not self.total:
            return "\n".join(["no image in the inputs: nothing to do", *self._skipped_lines()])
        lines = [
            f"{self.total} image(s): {self.completed} completed, {self.failed} failed, "
            f"{self.duplicates} already done · {self.images_per_s:.2f} images/s · "
            f"mean batch {self.mean_batch:.1f} · {self.elapsed_s:.1f}s "
            f"(+{self.warmup_s:.1f}s model load and warm-up)"
        ]
        if self.tally.render():
            lines.append("  " + self.tally.render())
        if self.unfinished:
            lines.append(f"  stopped ({self.reason.value}): {self.unfinished} not processed")
        for code, count in self.failures.most_common():
            lines.append(f"  failed: {count} × {code}")
        lines.extend(self._skipped_lines())
        lines.append(f"events: {self.events_path}")
        if self.manifest_paths:
            lines.append("manifest: " + ", ".join(str(path) for path in self.manifest_paths))
        return "\n".join(lines)

    def _skipped_lines(self) -> list[str]:
        if not self.skipped:
            return []
        total = sum(self.skipped.values())
        return [f"  skipped {total} file(s)"] + [
            f"  skipped: {count} × {reason}" for reason, count in self.skipped.most_common()
        ]


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
    skipped: Counter[str] = Counter()

    def skip(path: Path, reason: str) -> None:
        skipped[reason] += 1
        log.debug("skipped %s (%s)", path, reason)

    files = list(expand_paths(inputs, skipped=skip))
    for reason, count in skipped.most_common():
        log.warning("skipped %d file(s): %s", count, reason)
    events_path = out / "events.jsonl"
    if not files:
        log.warning("no image in %s: nothing to do", ", ".join(map(str, inputs)))
        return RunSummary(StopReason.DONE, 0, 0, 0, 0, 0.0, 0.0, events_path, skipped=skipped)
    if options and options.resize:
        config = config.replace(resize=options.resize)  # warm up at the shapes the run uses
    events_before = events_path.stat().st_size if events_path.is_file() else 0
    tally = Tally()
    sink = TalliedSink(JsonlEventSink(events_path), tally)
    started = time.monotonic()
    # The bar appears once the model is ready (``delay``: not during a quick warm-up).
    bar = tqdm(total=len(files), unit="img", disable=not progress, dynamic_ncols=True, delay=0.5)
    try:
        service = Service.warmed_up(
            config,
            sink,
            warmup_batch_sizes=[1, min(config.max_batch, max(len(files), 1))],
            observers=[Progress(bar)],
        )
    except BaseException:
        bar.close()
        raise
    warmup_s = time.monotonic() - started
    # A custom model's name goes into the job (and so its id): results of another model
    # over the same files are never mistaken for its own.
    job_model = service.runner.model.name if config.model_spec else None
    source = LocalSource(
        files,
        config.default_output,
        options,
        job_model,
        max_attempts=3,
        renditions=renditions,
        names=names_of(files, inputs),  # SKU-1/front.jpg, not only front.jpg, in the events
    )
    began = time.monotonic()
    try:
        reason = service.run(source)  # SIGINT/SIGTERM: finish or return what runs, then stop
    finally:
        bar.close()
    elapsed = time.monotonic() - began
    stats = service.stats
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
        tally=tally,
        skipped=skipped,
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
