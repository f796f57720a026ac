"""Throughput and latency of the worker pipeline, each figure a ratio measured side by side.

* :func:`efficiency`: pipeline images/s ÷ bare-model images/s at the same batch size, device
  and resolution (file:// and, optionally, the local GCS + Pub/Sub servers), plus the
  batching gain: pipeline ÷ one-image-at-a-time loop. Runs alternate within each round so a
  noisy, shared machine slows all of them alike; the medians over rounds are reported.
* :func:`batch_sweep`: bare model and pipeline images/s for each ``max_batch``.
* :func:`latency`: Poisson arrivals at fractions of the measured capacity; submit→event
  percentiles and the batch sizes the batcher chose.
"""

from __future__ import annotations

import heapq
import os
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import harness
from cutq.worker.config import WorkerConfig
from cutq.worker.models import create_model
from cutq.worker.runtime.inference import Runner


@dataclass(frozen=True)
class Settings:
    """What to run; ``quick()`` and ``full()`` give the two standard sizes."""

    quick: bool
    device: str = "cpu"
    model: str = "u2netp"
    checkpoint: str | None = None
    random_weights: bool = False  # the checkpoint holds coldstart.random_checkpoint()'s weights
    model_mode: str | None = None
    images: int = 48
    width: int = 640
    height: int = 480
    resize: str = "static"
    max_side: int | None = None
    max_batch: int | None = None  # None: the worker's default for the device (1 on a CPU)
    max_wait_ms: float = 20.0
    streams: int | None = None  # None: the worker's default (2 on a CPU with ≥ 2 cores)
    io_threads: int | None = None  # None: the worker's default for the device
    rounds: int = 3
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16)
    loads: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9)
    load_duration_s: float = 30.0
    pubsub: bool = True
    # Latency: offer loads as fractions of this rate, and hold p95 to this goal, instead of
    # the run's own (to compare configurations at the same offered rates and goal).
    capacity: float | None = None
    p95_goal_ms: float | None = None

    def __post_init__(self) -> None:
        if self.max_batch is None:  # what the worker would pick on this device
            object.__setattr__(self, "max_batch", WorkerConfig(device=self.device).max_batch)

    @property
    def batch(self) -> int:
        assert self.max_batch is not None
        return self.max_batch

    @classmethod
    def quick_mode(cls, **changes: object) -> Settings:
        """CI size: tiny images at a small model input, so the whole suite takes ~1-2 min."""
        base: dict[str, object] = dict(
            quick=True,
            images=16,
            width=160,
            height=120,
            resize="dynamic",
            max_side=128,
            rounds=1,
            batch_sizes=(1, 4, 8),
            load_duration_s=5.0,
        )
        base.update(changes)
        return cls(**base)  # type: ignore[arg-type]

    def config(self, **changes: object) -> WorkerConfig:
        """The worker configuration every pipeline run of this suite uses."""
        settings: dict[str, object] = dict(
            model=self.model,
            checkpoint=self.checkpoint,
            model_mode=self.model_mode,
            model_max_side=self.max_side,
            device=self.device,
            resize=self.resize,
            max_batch=self.max_batch,
            max_wait_ms=self.max_wait_ms,
            streams=self.streams,
            io_threads=self.io_threads,
            max_in_flight=max(32, 4 * self.batch),
            warmup=False,
            storage_attempts=2,
            grace_period_s=5,
        )
        settings.update(changes)
        if int(settings["max_in_flight"]) < int(settings["max_batch"]):  # type: ignore[call-overload]
            settings["max_in_flight"] = settings["max_batch"]
        return WorkerConfig(**settings)  # type: ignore[arg-type]


def make_runner(settings: Settings) -> Runner:
    """The model set up and warmed at the suite's batch sizes (once per suite)."""
    config = settings.config()
    runner = Runner(create_model(config), config.device, config.precision, platform=config.platform)
    runner.setup()
    if settings.random_weights:
        runner.model.version = "random"  # warm-up then checks shapes and ranges, not the mask
    sizes = sorted({1, settings.batch, *settings.batch_sizes})
    runner.warmup(settings.resize, sizes, image_sizes=((settings.height, settings.width),))  # type: ignore[arg-type]
    return runner


def _ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 4) if denominator > 0 else 0.0


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3) if values else 0.0


def efficiency(settings: Settings, runner: Runner, work: Path, cloud: object | None) -> dict:
    """Pipeline ÷ bare model (local and Pub/Sub) and pipeline ÷ sequential loop, per round."""
    files = harness.make_images(work / "inputs", settings.images, settings.width, settings.height)
    tensors = harness.tensors_for(runner, files, settings.resize)
    uris: list[str] = []
    if cloud is not None:
        from cutq.core.storage import open_storage

        bucket = cloud.bucket  # type: ignore[attr-defined]
        for path in files:
            uri = f"gs://{bucket}/inputs/{path.name}"
            open_storage(uri).write(uri, path.read_bytes(), content_type="image/jpeg")
            uris.append(uri)
    config = settings.config()
    batch = settings.batch
    rounds: list[dict] = []
    for index in range(settings.rounds):
        row: dict = {}
        local_runs: list[harness.RunResult] = []

        def bare(row: dict = row) -> None:
            row["bare"] = harness.bare_rate(runner, tensors, batch)

        def local(index: int = index, runs: list = local_runs) -> None:
            runs.append(harness.run_local(runner, config, files, work / f"local-{index}"))

        def sequential(row: dict = row, index: int = index) -> None:
            row["sequential"] = harness.sequential_rate(
                runner, files, work / f"seq-{index}", settings.resize
            )

        def pubsub(row: dict = row, index: int = index) -> None:
            output = f"gs://{cloud.bucket}/results-{index}"  # type: ignore[union-attr]
            row["pubsub"] = harness.run_pubsub(runner, config, cloud, uris, output).images_per_s

        steps = [bare, local, sequential] + ([pubsub] if cloud is not None else [])
        for step in steps if index % 2 == 0 else reversed(steps):  # alternate the order
            step()
        row["local"] = local_runs[0].images_per_s
        row["batches_local"] = {str(k): v for k, v in sorted(local_runs[0].batch_sizes.items())}
        rounds.append(row)

    def med(key: str) -> float:
        return _median([r[key] for r in rounds if key in r])

    def med_ratio(num: str, den: str) -> float:
        return _median([_ratio(r[num], r[den]) for r in rounds if num in r and den in r])

    result: dict = {
        "batch_size": batch,
        "images_per_run": len(files),
        "image_size": [settings.width, settings.height],
        "model_input": list(
            runner.model.input_size(settings.height, settings.width, settings.resize)
        ),  # type: ignore[arg-type]
        "images_per_s": {
            "bare_model": med("bare"),
            "pipeline_local": med("local"),
            "pipeline_pubsub": med("pubsub") if cloud is not None else None,
            "sequential_batch1": med("sequential"),
        },
        "efficiency": {
            "local": med_ratio("local", "bare"),
            "pubsub": med_ratio("pubsub", "bare") if cloud is not None else None,
            "goal": 0.9 if runner.cuda else 0.8,
        },
        "batching_gain": med_ratio("local", "sequential"),
        "rounds": [
            {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rounds
        ],
    }
    return result


def batch_sweep(settings: Settings, runner: Runner, work: Path) -> dict:
    """Bare-model and pipeline images/s at each batch size (for the plot)."""
    files = harness.make_images(work / "inputs", settings.images, settings.width, settings.height)
    tensors = harness.tensors_for(runner, files, settings.resize)
    rows = []
    for batch in settings.batch_sizes:
        bare = harness.bare_rate(runner, tensors, batch)
        config = settings.config(max_batch=batch)
        local = harness.run_local(runner, config, files, work / f"sweep-{batch}")
        rows.append(
            {
                "batch_size": batch,
                "bare_model_images_per_s": round(bare, 3),
                "pipeline_images_per_s": round(local.images_per_s, 3),
                "efficiency": _ratio(local.images_per_s, bare),
            }
        )
    return {"rows": rows}


def latency(settings: Settings, runner: Runner, work: Path, capacity: float, bare: float) -> dict:
    """Poisson arrivals at each load; p50/p95/p99 submit→event and batch sizes."""
    capacity = settings.capacity or capacity
    rng = np.random.default_rng(7)
    base = harness.make_images(work / "base", 8, settings.width, settings.height)
    counts = [max(8, int(load * capacity * settings.load_duration_s)) for load in settings.loads]
    pool_dir = work / "pool"
    pool_dir.mkdir(parents=True, exist_ok=True)
    pool = []
    for index in range(max(counts)):  # distinct URIs (distinct jobs), shared bytes
        path = pool_dir / f"job-{index:05d}.jpg"
        os.link(base[index % len(base)], path)
        pool.append(path)
    # One batch's time as a job sees it: with streams, each runs ``streams`` times longer than
    # the bare rate (which counts the streams running side by side) suggests.
    batch_ms = settings.batch * max(1, runner.model.streams) / bare * 1000.0
    bound_ms = settings.p95_goal_ms or 2 * (settings.max_wait_ms + batch_ms)
    config = settings.config()
    rows = []
    for load, count in zip(settings.loads, counts, strict=True):
        rate = load * capacity
        arrivals = np.cumsum(rng.exponential(1.0 / rate, count)).tolist()
        result = harness.run_local(runner, config, pool[:count], work / f"load-{load}", arrivals)
        row = {"load": load, "offered_per_s": round(rate, 3), **harness.summary(result)}
        p95 = row["latency_ms"]["p95"]  # type: ignore[index]
        row["p95_goal_met"] = p95 <= bound_ms
        # The same arrivals through an ideal queue of this capacity: what no scheduler beats.
        ideal = ideal_queue_ms(arrivals, max(1, runner.model.streams), batch_ms / settings.batch)
        row["ideal_queue_p95_ms"] = round(harness.percentile(ideal, 95), 1)
        row["p95_over_ideal"] = round(p95 / max(row["ideal_queue_p95_ms"], 1e-9), 3)
        rows.append(row)
    return {
        "capacity_images_per_s": round(capacity, 3),
        "max_wait_ms": settings.max_wait_ms,
        "batch_time_ms": round(batch_ms, 1),
        "p95_goal_ms": round(bound_ms, 1),
        "rows": rows,
    }


def ideal_queue_ms(arrivals_s: list[float], servers: int, service_ms: float) -> list[float]:
    """Submit → done of each arrival in an ideal FIFO queue: ``servers`` identical servers,
    every job exactly ``service_ms`` and nothing else (no decode, encode, I/O or threads
    competing for the cores): M/D/c on the suite's own Poisson arrivals.

    It is the floor under any stream assignment, admission or batch policy with this capacity
    when batching does not add throughput (a CPU): at 75 % load its p95 is several forwards
    long, because that is how long Poisson bursts queue (the latency section of
    bench/README.md)."""
    free = [0.0] * servers
    sojourns = []
    for arrival in arrivals_s:
        start = max(arrival, heapq.heappop(free))
        heapq.heappush(free, start + service_ms / 1000.0)
        sojourns.append((start - arrival) * 1000.0 + service_ms)
    return sojourns


def scratch() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="cutq-bench-")
