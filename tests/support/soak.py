"""A soak run: many jobs through real `cutq worker` processes while faults keep coming.

Every ``fault_every_s`` seconds the next fault in rotation strikes: one worker is SIGKILLed and
a fresh one started in its place; storage answers 503 for a burst; one worker is scaled in with
SIGTERM (it must exit 0 within its grace period plus 1 s) and a fresh one started; the Pub/Sub
server restarts under every stream (skipped when it is an external emulator). Every worker's
job lines are read: a job that ended (completed or duplicate) more than once after running the
model was computed twice (a transient failure's retry is not counted: it had to recompute).
With ``cancel_every`` set, every that-many-th job is published in a bulk run
(``cutq.run_id``) that is cancelled ``cancel_at_s`` into the run: each of its jobs must end
exactly once, completed (before the cancellation reached it) or cancelled. Meanwhile the
resident memory of
each worker process is sampled from ``/proc/<pid>/status``. The result says how every job
ended (see :mod:`tests.support.ledger`), the throughput, the faults and the memory drift.
Used by ``tests/integration/test_soak.py`` (small) and ``bench/soak.py`` (any size).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cutq.core.control import RUN_ID_ATTRIBUTE, cancel, register_run
from cutq.core.storage import open_storage
from tests.support.cloud import Cloud, tiny_image, worker_process
from tests.support.emulators import PubSubEmulator
from tests.support.faulty_proxy import Fault, FaultyProxy
from tests.support.ledger import collect

FAULTS = ("kill_worker", "storage_503_burst", "sigterm_scale_in", "pubsub_restart")


@dataclass(frozen=True)
class SoakSettings:
    """How big and how hostile a soak run is."""

    jobs: int = 300
    workers: int = 2
    fault_every_s: float = 15.0
    faults: tuple[str, ...] = FAULTS  # in rotation, from the first
    timeout_s: float = 600.0
    storage_burst_s: float = 3.0
    max_batch: int = 8
    max_in_flight: int = 16
    image_sizes: tuple[tuple[int, int], ...] = ((48, 40), (64, 48), (40, 56))
    cancel_every: int = 0  # every N-th job belongs to a run cancelled midway; 0: none
    cancel_at_s: float = 0.0  # … this long after publishing
    lanes: bool = False  # mixed lanes: every job but each 4th is bulk (both subscriptions)


def rss_mb(pid: int) -> float | None:
    """Resident set size of ``pid`` in MiB, or None once it has gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


@dataclass
class _Worker:
    """One `cutq worker` process, its log tail and its memory samples."""

    process: subprocess.Popen
    started: float
    computed: collections.Counter  # job id → deliveries that ran the model, shared by workers
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=50))
    errors: int = 0
    samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds alive, MiB)

    def __post_init__(self) -> None:
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def close(self) -> None:
        """After the process has exited: finish reading its log and close the pipe."""
        self._reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def _drain(self) -> None:
        """Read the log as it comes: an unread pipe would block the worker once it fills."""
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.tail.append(line)
            if '"severity": "ERROR"' in line or '"severity":"ERROR"' in line:
                self.errors += 1
            if line.startswith("{") and '"cutq.worker.joblog"' in line:
                entry = json.loads(line)
                ended = entry.get("status") in ("completed", "duplicate")
                if ended and "infer" in (entry.get("timings_ms") or {}):
                    self.computed[entry["job_id"]] += 1

    def sample(self) -> None:
        value = rss_mb(self.process.pid)
        if value is not None and self.process.poll() is None:
            self.samples.append((time.monotonic() - self.started, value))

    def memory(self) -> dict[str, float] | None:
        """First sample after warm-up (a quarter into its life), last and peak, in MiB."""
        if len(self.samples) < 4:
            return None
        settled = self.samples[len(self.samples) // 4][1]
        last = self.samples[-1][1]
        return {
            "alive_s": round(self.samples[-1][0], 1),
            "rss_settled_mb": round(settled, 1),
            "rss_last_mb": round(last, 1),
            "rss_peak_mb": round(max(v for _, v in self.samples), 1),
            "drift_mb": round(last - settled, 1),
        }


class _Burst:
    """A FaultyProxy rule: 503 for every request until ``until``."""

    def __init__(self) -> None:
        self.until = 0.0

    def __call__(self, method: str, path: str) -> Fault | None:
        return Fault(503) if time.monotonic() < self.until else None


def _upload(cloud: Cloud, count: int, sizes: tuple[tuple[int, int], ...]) -> list[str]:
    storage = open_storage(f"gs://{cloud.bucket}")
    uris = [f"gs://{cloud.bucket}/soak/{i:06d}.png" for i in range(count)]

    def put(index: int) -> None:
        image = tiny_image(index, sizes[index % len(sizes)])
        storage.write(uris[index], image, content_type="image/png")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(count)))
    return uris


class _Cancellation:
    """A bulk run among the soak's jobs, cancelled midway (nothing when ``cancel_every`` is 0)."""

    RUN_ID = "soak-cancelled"

    def __init__(self, cloud: Cloud, control: str, settings: SoakSettings) -> None:
        self.cloud = cloud
        self.control = control
        self.settings = settings
        self.run_ids: list[str] = []  # the jobs in the run
        self.at_s: float | None = None

    def publish(self, uris: list[str], bulk: Callable[[int], bool] | None = None) -> list[str]:
        """Publish every job (the run's with its ``cutq.run_id``; ``bulk(i)``: the i-th in the
        bulk lane); returns their ids in order."""
        every = self.settings.cancel_every
        if not every:
            return self.cloud.publish_jobs(uris, bulk=bulk)
        register_run(open_storage(self.control), self.control, self.RUN_ID, {"soak": True})

        def in_run(index: int) -> bool:
            return index % every == 0

        ids = self.cloud.publish_jobs(
            uris, bulk=bulk, extra=lambda i: {RUN_ID_ATTRIBUTE: self.RUN_ID} if in_run(i) else {}
        )
        self.run_ids.extend(job_id for index, job_id in enumerate(ids) if in_run(index))
        return ids

    def tick(self, elapsed_s: float) -> None:
        if not self.run_ids or self.at_s is not None or elapsed_s < self.settings.cancel_at_s:
            return
        report = cancel(open_storage(self.control), self.control, run_ids=[self.RUN_ID])
        assert report.cancelled == [f"run {self.RUN_ID}"], report
        self.at_s = round(elapsed_s, 1)

    def report(self, computed: collections.Counter, cancelled: list[str]) -> dict[str, Any]:
        if not self.run_ids:
            return {}
        return {
            "cancel_at_s": self.at_s,
            "cancel_run_jobs": len(self.run_ids),
            "cancel_run_computed": sum(computed[job_id] > 0 for job_id in self.run_ids),
            "cancelled_outside_run": len(set(cancelled) - set(self.run_ids)),
        }


def run_soak(
    emulator: PubSubEmulator, gcs_url: str, bucket: str, settings: SoakSettings
) -> dict[str, Any]:
    """Run one soak and return its report (JSON-ready); workers are stopped on return."""
    cloud = Cloud(emulator, bucket, max_delivery_attempts=20, lanes=settings.lanes)
    uris = _upload(cloud, settings.jobs, settings.image_sizes)
    burst = _Burst()
    workers: list[_Worker] = []
    finished: list[_Worker] = []
    faults: list[dict[str, Any]] = []
    with FaultyProxy(gcs_url, rule=burst) as proxy:
        config = cloud.worker_config(
            max_batch=settings.max_batch,
            max_in_flight=settings.max_in_flight,
            max_wait_ms=20,
            lease_extension_s=10,
            storage_attempts=3,
            storage_deadline_s=5,
            grace_period_s=5,
        )
        env = {"STORAGE_EMULATOR_HOST": proxy.url}

        computed: collections.Counter = collections.Counter()  # updated by reader threads

        def spawn() -> _Worker:
            return _Worker(worker_process(config, env_overrides=env), time.monotonic(), computed)

        workers.extend(spawn() for _ in range(settings.workers))
        started = time.monotonic()
        cancellation = _Cancellation(cloud, config.control_uri, settings)
        ids = cancellation.publish(uris, bulk=(lambda i: i % 4 != 0) if settings.lanes else None)
        published_s = time.monotonic() - started
        next_fault = started + settings.fault_every_s
        next_sample = 0.0
        scale_in_problems: list[str] = []

        def tick() -> None:
            nonlocal next_fault, next_sample
            now = time.monotonic()
            if now >= next_sample:
                for worker in workers:
                    worker.sample()
                next_sample = now + 1.0
            cancellation.tick(now - started)
            if now < next_fault:
                return
            kind = settings.faults[len(faults) % len(settings.faults)]
            at = round(now - started, 1)
            if kind == "kill_worker":
                victim = workers.pop(0)
                victim.process.kill()
                victim.process.wait(30)
                finished.append(victim)
                workers.append(spawn())
            elif kind == "storage_503_burst":
                burst.until = now + settings.storage_burst_s
            elif kind == "sigterm_scale_in":
                victim = workers.pop(0)
                victim.process.send_signal(signal.SIGTERM)
                try:
                    code = victim.process.wait(config.grace_period_s + 30)
                except subprocess.TimeoutExpired:
                    victim.process.kill()
                    code = victim.process.wait(30)
                took = time.monotonic() - now
                finished.append(victim)
                workers.append(spawn())
                kind += f" (exit {code} in {took:.1f}s)"
                if code != 0 or took > config.grace_period_s + 1.0:
                    scale_in_problems.append(kind)
            elif emulator.server is not None:
                emulator.server.restart()
            else:
                kind += " (skipped: external emulator)"
            faults.append({"at_s": at, "fault": kind})
            next_fault = now + settings.fault_every_s

        try:
            result = collect(cloud, ids, timeout_s=settings.timeout_s, on_tick=tick, settle_s=2.0)
            elapsed = time.monotonic() - started
        finally:
            for worker in workers:
                worker.process.send_signal(signal.SIGTERM)
            for worker in workers:
                try:
                    worker.process.wait(30)
                except subprocess.TimeoutExpired:
                    worker.process.kill()
                    worker.process.wait(30)
            finished.extend(workers)
            for worker in finished:
                worker.close()
            cloud.close()
        ended = result.completed + result.failed + result.cancelled + result.dead_lettered
    memory = [m for m in (w.memory() for w in finished) if m is not None]
    return {
        "jobs": settings.jobs,
        "workers": settings.workers,
        "fault_every_s": settings.fault_every_s,
        "lanes": "interactive + bulk (3 of 4 jobs)" if settings.lanes else "one",
        **result.as_dict(),
        "computed_twice": sum(count > 1 for count in computed.values()),
        **cancellation.report(computed, result.cancelled_ids),
        "scale_in_problems": scale_in_problems,
        "elapsed_s": round(elapsed, 1),
        "publish_s": round(published_s, 1),
        "throughput_jobs_per_s": round(ended / elapsed, 2) if elapsed else None,
        "faults": faults,
        "storage_faults_served": proxy.faults_served,
        "worker_processes": len(finished),
        "worker_error_lines": sum(w.errors for w in finished),
        "memory": memory,
        "max_drift_mb": max((m["drift_mb"] for m in memory), default=None),
        "cpu_count": os.cpu_count(),
        "last_log_lines": [line[:300] for line in list(finished[-1].tail)[-3:]] if finished else [],
    }
