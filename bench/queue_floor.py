"""What any CPU scheduling policy can reach at 25/50/75/90 % load: measured service times
through a queue simulation (issue 25, "latency under load").

It measures u2netp's fixed-graph forward (one 320² image, onnxruntime) three ways, interleaved
in rounds: one forward alone on every core (``wide``), one forward alone on one thread
(``narrow``), and two one-thread forwards side by side (``pair``: what two streams do under a
backlog). From these samples it derives each policy's capacity, then feeds the same Poisson
arrivals, at fractions of the two-stream capacity (the default's), through an ideal FIFO queue
per policy, drawing each job's service time from that policy's measured samples:

* ``two streams``: 2 servers, each job one ``pair`` sample (the default under a backlog);
* ``one wide stream``: 1 server, each job one ``wide`` sample (``CUTQ_LANES=1``);
* ``wide when alone``: 2 servers; a job that starts while the other server is idle takes a
  ``wide`` sample, else a ``pair`` sample (the default engine's switch, ignoring that a wide
  forward already running is slowed by a second one: a lower bound on it);
* ``one wide stream, deadline-aware``: as ``one wide stream``, but the oldest job that can still
  meet the goal goes first (late jobs wait for a gap): what reordering alone can buy p95, and
  what it costs p99 and the maximum.

Nothing else competes for the cores in the simulation (no decode, encode or I/O), so every
p95 here is a floor under the real worker's. The goal is the latency suite's for the default
configuration: 2 × (``max_wait_ms`` + one stream's forward).

    python -m bench.queue_floor                       # 40 forwards per variant, 3 rounds
    python -m bench.queue_floor --forwards 60 --rounds 3 --jobs 200000
"""

from __future__ import annotations

import argparse
import collections
import heapq
import itertools
import json
import statistics
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from cutq.worker.models import onnx_engine
from cutq.worker.models.u2netp_onnx import FIXED_SHAPE, U2NetPOnnx, probe_batches

LOADS = (0.25, 0.5, 0.75, 0.9)
MAX_WAIT_MS = 20.0
HELD = 8  # a CPU worker's max_in_flight: the jobs it holds, the only ones it can reorder


def timed(session: object, batch: np.ndarray, count: int) -> list[float]:
    """Seconds of each of ``count`` forwards, one after another."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        onnx_engine.run(session, batch)  # type: ignore[arg-type]
        times.append(time.perf_counter() - started)
    return times


def timed_pair(sessions: Sequence[object], batch: np.ndarray, count: int) -> list[float]:
    """Seconds of each forward, ``count`` per session, the sessions on threads side by side."""
    results: list[list[float]] = [[] for _ in sessions]
    threads = [
        threading.Thread(target=lambda i=i, s=s: results[i].extend(timed(s, batch, count)))
        for i, s in enumerate(sessions)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [t for stream in results for t in stream]


def simulate(
    arrivals: np.ndarray,
    servers: int,
    draw: Iterator[float],
    wide: np.ndarray | None = None,
    goal_s: float | None = None,
) -> np.ndarray:
    """Sojourn (s) of each arrival through ``servers`` servers. Service times come from
    ``draw`` (an iterator of samples), or from ``wide`` when a job starts with every other
    server idle (the wide-when-alone policy). Jobs start oldest first; with ``goal_s``, the
    oldest that can still finish within it goes first, and the oldest overall only when none
    can, among the first :data:`HELD` waiting (a deadline-aware order: it trades the late
    jobs' tail for the others')."""
    free = [0.0] * servers
    sojourns = np.empty(len(arrivals))
    waiting: collections.deque[int] = collections.deque()
    rng = np.random.default_rng(11)
    mean = float(np.mean([next(draw) for _ in range(256)])) if goal_s else 0.0
    nxt, done = 0, 0
    while done < len(arrivals):
        now = heapq.heappop(free)
        while nxt < len(arrivals) and arrivals[nxt] <= now:
            waiting.append(nxt)
            nxt += 1
        if not waiting:  # idle until the next arrival
            now = float(arrivals[nxt])
            waiting.append(nxt)
            nxt += 1
        job = waiting[0]
        if goal_s is not None and now - arrivals[job] + mean > goal_s:
            held = itertools.islice(waiting, HELD)  # only what the worker holds can be reordered
            job = next((j for j in held if now - arrivals[j] + mean <= goal_s), job)
        waiting.remove(job)
        alone = wide is not None and all(f <= now for f in free)
        service = float(rng.choice(wide)) if alone else next(draw)  # type: ignore[arg-type]
        heapq.heappush(free, now + service)
        sojourns[job] = now - arrivals[job] + service
        done += 1
    return sojourns


def sampler(samples: Sequence[float], seed: int) -> Iterator[float]:
    rng = np.random.default_rng(seed)
    values = np.asarray(samples)
    while True:
        yield from rng.choice(values, 4096)


def measure(forwards: int, rounds: int) -> tuple[dict[str, list[float]], float, int]:
    """Seconds of each forward, per variant (wide, narrow, pair), interleaved in rounds."""
    cores = onnx_engine.cpu_count()
    model = U2NetPOnnx()
    model.setup("cpu")
    batch = np.ascontiguousarray(probe_batches()[0][:1])
    assert batch.shape == FIXED_SHAPE
    load = onnx_engine.load_session
    wide = load(model.fixed_path, cores)
    narrow = [load(model.fixed_path, 1), load(model.fixed_path, 1)]
    samples: dict[str, list[float]] = {"wide": [], "narrow": [], "pair": []}
    timed(wide, batch, 3), timed(narrow[0], batch, 3)  # warm both
    began = time.monotonic()
    for index in range(rounds):
        steps = [
            ("wide", lambda: timed(wide, batch, forwards)),
            ("narrow", lambda: timed(narrow[0], batch, forwards)),
            ("pair", lambda: timed_pair(narrow, batch, forwards // 2)),
        ]
        for name, step in steps if index % 2 == 0 else reversed(steps):
            samples[name].extend(step())
    measured_s = time.monotonic() - began
    return samples, round(measured_s, 1), cores


def unit_table(jobs: int, goal_units: float) -> list[dict[str, object]]:
    """p95 (and the deadline-aware order's p99 and max) in units of 1/capacity, for exact
    service times: M/D/1 (one stream on every core), M/D/2 (two streams, each job two units) and
    M/D/1 deadline-aware, at each load. Hardware-free: any CPU's figures are these times its
    1/capacity. ``goal_units``: the suite's goal in the same units, 2 × (2 + max wait)."""
    rng = np.random.default_rng(7)
    rows: list[dict[str, object]] = []
    for load in (0.25, 0.5, 0.6, 0.65, 0.68, 0.7, 0.75, 0.9):
        arrivals = np.cumsum(rng.exponential(1 / load, jobs))
        one = simulate(arrivals, 1, itertools.repeat(1.0))
        two = simulate(arrivals, 2, itertools.repeat(2.0))
        late = simulate(arrivals, 1, itertools.repeat(1.0), goal_s=goal_units)
        rows.append(
            {
                "load": load,
                "M/D/1 p95": round(float(np.percentile(one, 95)), 2),
                "M/D/2 p95": round(float(np.percentile(two, 95)), 2),
                "M/D/1 p99": round(float(np.percentile(one, 99)), 2),
                "deadline-aware p95": round(float(np.percentile(late, 95)), 2),
                "deadline-aware p99": round(float(np.percentile(late, 99)), 2),
                "deadline-aware max": round(float(late.max()), 1),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--forwards", type=int, default=40, help="forwards per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=200_000, help="simulated arrivals per load")
    parser.add_argument("--samples", type=Path, help="service times: read if there, else write")
    parser.add_argument(
        "--units",
        type=float,
        metavar="S_CAP_MS",
        help="only the hardware-free table, in units of 1/capacity (this many ms: the goal's "
        "max wait in those units)",
    )
    args = parser.parse_args(argv)
    if args.units:
        goal_units = 2 * (2 + MAX_WAIT_MS / args.units)
        table = {"goal_units": round(goal_units, 2), "rows": unit_table(args.jobs, goal_units)}
        print(json.dumps(table, indent=1))
        return 0
    if args.samples and args.samples.exists():
        recorded = json.loads(args.samples.read_text())
        samples, measured_s, cores = recorded["samples"], recorded["measured_s"], recorded["cores"]
    else:
        samples, measured_s, cores = measure(args.forwards, args.rounds)
        if args.samples:
            record = {"samples": samples, "measured_s": measured_s, "cores": cores}
            args.samples.write_text(json.dumps(record))

    def ms(values: list[float], q: float) -> float:
        return round(float(np.percentile(values, q)) * 1000, 1)

    service = {
        name: {
            "n": len(v),
            "mean_ms": round(statistics.fmean(v) * 1000, 1),
            "p50_ms": ms(v, 50),
            "p95_ms": ms(v, 95),
            "cv": round(statistics.pstdev(v) / statistics.fmean(v), 3),
        }
        for name, v in samples.items()
    }
    capacity = {
        "two streams": 2 / statistics.fmean(samples["pair"]),
        "one wide stream": 1 / statistics.fmean(samples["wide"]),
    }
    reference = capacity["two streams"]
    lane_ms = 2 / reference * 1000  # one stream's forward under a backlog, as the suite counts it
    goal_ms = 2 * (MAX_WAIT_MS + lane_ms)
    rng = np.random.default_rng(7)
    rows = []
    for fraction in LOADS:
        arrivals = np.cumsum(rng.exponential(1 / (fraction * reference), args.jobs))
        policies = {
            "two streams": simulate(arrivals, 2, sampler(samples["pair"], 1)),
            "one wide stream": simulate(arrivals, 1, sampler(samples["wide"], 2)),
            "wide when alone": simulate(
                arrivals, 2, sampler(samples["pair"], 3), np.asarray(samples["wide"])
            ),
            "one wide stream, deadline-aware": simulate(
                arrivals, 1, sampler(samples["wide"], 4), goal_s=goal_ms / 1000
            ),
        }
        row: dict[str, object] = {"load": fraction, "offered_per_s": round(fraction * reference, 3)}
        for name, sojourns in policies.items():
            own = capacity["one wide stream" if name.startswith("one") else "two streams"]
            utilisation = fraction * reference / own
            row[name] = {
                "utilisation": round(utilisation, 3) if utilisation < 1 else "≥ 1 (unstable)",
                "p50_ms": round(float(np.percentile(sojourns, 50)) * 1000, 1),
                "p95_ms": round(float(np.percentile(sojourns, 95)) * 1000, 1),
                "p99_ms": round(float(np.percentile(sojourns, 99)) * 1000, 1),
                "max_ms": round(float(sojourns.max()) * 1000, 1),
                "goal_met": bool(np.percentile(sojourns, 95) * 1000 <= goal_ms),
            }
        rows.append(row)
    report = {
        "command": "python -m bench.queue_floor " + " ".join(argv or sys.argv[1:]),
        "cores": cores,
        "measured_s": round(measured_s, 1),
        "service": service,
        "speedup_wide_over_narrow": round(
            statistics.fmean(samples["narrow"]) / statistics.fmean(samples["wide"]), 3
        ),
        "capacity_images_per_s": {k: round(v, 3) for k, v in capacity.items()},
        "capacity_one_wide_over_two_streams": round(
            capacity["one wide stream"] / capacity["two streams"], 3
        ),
        "goal_ms": round(goal_ms, 1),
        "rows": rows,
    }
    print(json.dumps(report, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
