"""What every worker benchmark shares: inputs, a recording event sink, and three ways to run
the same images through the same warmed-up :class:`Runner`:

* :func:`bare_rate`: ``Runner.predict`` on pre-made tensors (the model alone),
* :func:`run_local` / :func:`run_pubsub`: the whole worker pipeline (file:// or the local
  GCS + Pub/Sub servers), optionally with a schedule of arrival times,
* :func:`sequential_rate`: one image at a time, decode → infer → encode → write, batch 1
  (how the replaced service and ``Remover.process`` work).
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from cutq.core.contract import Options, OutputSpec, new_job
from cutq.core.events import Event
from cutq.core.storage import open_storage, to_uri
from cutq.worker.config import WorkerConfig
from cutq.worker.joblog import JobLog
from cutq.worker.pipeline import Pipeline
from cutq.worker.render import imaging
from cutq.worker.runtime.inference import Runner
from cutq.worker.sinks import EventSink, JsonlEventSink
from cutq.worker.sources.local import LocalDelivery

if TYPE_CHECKING:
    import torch


def photo_like(seed: int, width: int, height: int) -> np.ndarray:
    """A cheap, photo-ish RGB image: a gradient backdrop, noise, and a bright subject."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.empty((height, width, 3), np.float32)
    image[..., 0] = 40 + 60 * xx / width
    image[..., 1] = 50 + 40 * yy / height
    image[..., 2] = 90 + 30 * rng.random()
    cy, cx = height * (0.4 + 0.2 * rng.random()), width * (0.4 + 0.2 * rng.random())
    inside = ((yy - cy) / (0.3 * height)) ** 2 + ((xx - cx) / (0.25 * width)) ** 2 <= 1
    image[inside] = (230, 190 - 40 * rng.random(), 70)
    image += rng.normal(0, 6, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_images(directory: Path, count: int, width: int, height: int) -> list[Path]:
    """``count`` distinct JPEGs (quality 90) of ``width`` × ``height`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = directory / f"img-{index:05d}.jpg"
        Image.fromarray(photo_like(index, width, height)).save(path, quality=90)
        paths.append(path)
    return paths


def jpeg_bytes(seed: int, width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(photo_like(seed, width, height)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else 0.0


def sync(runner: Runner) -> None:
    if runner.cuda:
        import torch

        torch.cuda.synchronize(runner.device)


class RecordingSink:
    """Passes events on and notes, per job id, when its event was durable and its batch size."""

    def __init__(self, inner: EventSink) -> None:
        self.inner = inner
        self.done_at: dict[str, float] = {}
        self.batch_sizes: dict[str, int | None] = {}
        self.timings_ms: dict[str, dict[str, float]] = {}  # per job: the event's stage timings
        self.statuses: Counter = Counter()
        self._lock = threading.Lock()

    def publish(self, event: Event) -> None:
        self.inner.publish(event)
        now = time.monotonic()
        with self._lock:
            self.done_at[event.job_id] = now
            self.batch_sizes[event.job_id] = event.batch_size
            self.timings_ms[event.job_id] = dict(event.timings_ms)
            self.statuses[event.status] += 1

    def close(self) -> None:
        self.inner.close()


@dataclass
class RunResult:
    """One pass of N jobs through the pipeline."""

    jobs: int
    elapsed_s: float
    latencies_s: list[float] = field(default_factory=list)
    batch_sizes: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)

    @property
    def images_per_s(self) -> float:
        return self.jobs / self.elapsed_s if self.elapsed_s > 0 else 0.0


def _collect(sink: RecordingSink, submitted: dict[str, float], elapsed: float) -> RunResult:
    latencies = [sink.done_at[j] - t for j, t in submitted.items() if j in sink.done_at]
    sizes = Counter(size for size in sink.batch_sizes.values() if size)
    return RunResult(len(submitted), elapsed, latencies, sizes, Counter(sink.statuses))


def run_local(
    runner: Runner,
    config: WorkerConfig,
    files: Sequence[Path],
    out_dir: Path,
    arrivals_s: Sequence[float] | None = None,
) -> RunResult:
    """Jobs for ``files`` (file:// in and out, events to JSONL) through a fresh Pipeline.

    Without ``arrivals_s`` every job is offered at once (throughput); with it, job i is
    submitted at ``arrivals_s[i]`` seconds after the start (latency under load).
    """
    output = OutputSpec(uri=to_uri(out_dir), format=config.output_format)  # type: ignore[arg-type]
    jobs = [new_job(p.as_uri(), output, options=Options(resize=config.resize)) for p in files]  # type: ignore[arg-type]
    sink = RecordingSink(JsonlEventSink(out_dir / "events.jsonl"))
    # The job log as the worker's Service composes it: the measured path is the worker's.
    pipeline = Pipeline(config.replace(output=output.uri), runner, sink, observers=[JobLog()])
    settled = threading.Semaphore(0)
    submitted: dict[str, float] = {}
    pipeline.start()
    started = time.monotonic()
    try:
        for index, job in enumerate(jobs):
            if arrivals_s is not None:
                delay = started + arrivals_s[index] - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            submitted[job.job_id] = time.monotonic()
            pipeline.submit(
                LocalDelivery(job.to_message(), str(index), lambda d, ok: settled.release())
            )
        for _ in jobs:
            settled.acquire()
        elapsed = time.monotonic() - started
    finally:
        pipeline.close(deadline=time.monotonic())
        sink.close()
    return _collect(sink, submitted, elapsed)


def run_pubsub(
    runner: Runner,
    config: WorkerConfig,
    cloud,  # type: ignore[no-untyped-def]
    uris: Sequence[str],
    output: str,
) -> RunResult:
    """Publish one job per ``gs://`` input (results under ``output``), then pull them with
    the Pub/Sub source until each has its event on the events topic. Timed from the
    subscriber's start, with the whole backlog waiting."""
    from cutq.worker.service import Service
    from cutq.worker.sinks import PubSubEventSink
    from cutq.worker.sources.pubsub import PubSubSource

    spec = OutputSpec(uri=output, format=config.output_format)  # type: ignore[arg-type]
    jobs = [new_job(uri, spec, options=Options(resize=config.resize)) for uri in uris]  # type: ignore[arg-type]
    futures = [cloud.publisher.publish(cloud.jobs_topic, job.to_message()) for job in jobs]
    for future in futures:
        future.result(timeout=60)
    ids = [job.job_id for job in jobs]
    published = time.monotonic()
    sink = RecordingSink(PubSubEventSink(cloud.events_topic))
    service = Service(config.replace(output=output, grace_period_s=5.0), runner, sink, ready_s=0)
    service.pipeline.start()
    started = time.monotonic()
    source = PubSubSource.from_config(service.config.replace(subscription=cloud.jobs_sub))
    thread = threading.Thread(target=service.run, args=(source,))
    thread.start()
    deadline = started + 600
    while len(sink.done_at) < len(ids) and time.monotonic() < deadline:
        time.sleep(0.01)
    elapsed = time.monotonic() - started
    service.stop()
    thread.join(60)
    return _collect(sink, dict.fromkeys(ids, published), elapsed)


def tensors_for(runner: Runner, files: Sequence[Path], resize: str) -> list[torch.Tensor | Any]:
    """The model inputs the pipeline would make from ``files``."""
    out = []
    for path in files:
        decoded = imaging.decode(path.read_bytes(), max_pixels=10**9)
        size = runner.model.input_size(decoded.height, decoded.width, resize)  # type: ignore[arg-type]
        out.append(runner.model.preprocess(decoded.rgb, size))
    return out


def bare_rate(runner: Runner, tensors: Sequence[torch.Tensor | Any], batch: int) -> float:
    """Images/s of ``Runner.predict`` alone over ``tensors`` in batches of ``batch``, with as
    many calls at once as the model has streams (as the pipeline runs it)."""
    batches = [tensors[start : start + batch] for start in range(0, len(tensors), batch)]
    sync(runner)
    started = time.perf_counter()
    with ThreadPoolExecutor(max(1, runner.model.streams)) as streams:
        for _ in streams.map(runner.predict, batches):
            pass
    sync(runner)
    return len(tensors) / (time.perf_counter() - started)


def sequential_rate(runner: Runner, files: Sequence[Path], out_dir: Path, resize: str) -> float:
    """Images/s one at a time, synchronously: read, decode, infer (batch 1), encode, write."""
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for path in files:
        decoded = imaging.decode(path.read_bytes(), max_pixels=10**9)
        size = runner.model.input_size(decoded.height, decoded.width, resize)  # type: ignore[arg-type]
        (saliency,) = runner.predict([runner.model.preprocess(decoded.rgb, size)])
        mask = runner.to_mask(saliency, decoded.height, decoded.width)
        alpha = imaging.combine_alpha(mask, decoded.alpha)
        data = imaging.encode(imaging.cutout(decoded.rgb, alpha), "png")
        target = (out_dir / path.name).with_suffix(".png")
        open_storage(target.as_uri()).write(target.as_uri(), data, content_type="image/png")
    return len(files) / (time.perf_counter() - started)


def summary(result: RunResult) -> dict[str, object]:
    """Latency percentiles (ms) and the batch-size distribution of a run."""
    lat = [s * 1000 for s in result.latencies_s]
    return {
        "jobs": result.jobs,
        "images_per_s": round(result.images_per_s, 3),
        "latency_ms": {f"p{q}": round(percentile(lat, q), 1) for q in (50, 95, 99)},
        "batch_sizes": {str(k): v for k, v in sorted(result.batch_sizes.items())},
        "statuses": dict(result.statuses),
    }


def dump(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def publish(report: object, path: str | None) -> None:
    """Print a report as JSON, and write it to ``path`` too when one is given."""
    document = json.dumps(report, indent=2)
    print(document)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(document + "\n")
