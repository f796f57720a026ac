"""Bare u2netp forwards in onnxruntime on a CPU, engine variants side by side in one run.

The general graph and the graph fixed at one 320² image (from the export cache, exported on
first use), on every core at once, as two single-threaded streams, with busy-waiting threads and
at batch 2; interleaved rounds, medians, and each variant's ratio to the general graph.

    python -m bench.onnx_variants                # 16 forwards per variant, 3 rounds
    python -m bench.onnx_variants --forwards 32 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from cutq.worker.models import onnx_engine
from cutq.worker.models.u2netp_onnx import U2NetPOnnx, probe_batches


def rate(sessions: list, batch: np.ndarray, forwards: int) -> float:
    """Images/s with one thread per session, ``forwards`` images in all."""
    calls = max(1, forwards // len(batch))

    def lane(session: object) -> None:
        for _ in range(calls // len(sessions)):
            onnx_engine.run(session, batch)  # type: ignore[arg-type]

    started = time.perf_counter()
    with ThreadPoolExecutor(len(sessions)) as pool:
        list(pool.map(lane, sessions))
    return (calls // len(sessions)) * len(sessions) * len(batch) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--forwards", type=int, default=16, help="images per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache-dir", help="export cache (default ~/.cache/cutq/onnx)")
    args = parser.parse_args(argv)
    model = U2NetPOnnx(cache_dir=args.cache_dir)
    model.setup("cpu")
    cores = onnx_engine.cpu_count()
    one = probe_batches()[0][:1]
    two = np.concatenate([one, one])

    load = onnx_engine.load_session
    general, fixed = model.onnx_path, model.fixed_path
    variants: dict[str, Callable[[], float]] = {}
    for name, sessions, batch in (
        (f"general graph, {cores} threads", [load(general, cores)], one),
        (f"fixed graph, {cores} threads", [load(fixed, cores)], one),
        ("fixed graph, 2 streams × 1 thread", [load(fixed, 1), load(fixed, 1)], one),
        (f"fixed graph, {cores} threads, spinning", [load(fixed, cores, True)], one),
        (f"general graph, {cores} threads, batch 2", [load(general, cores)], two),
    ):
        variants[name] = lambda s=sessions, b=batch: rate(s, b, args.forwards)
    for measure in variants.values():
        measure()  # warm
    rounds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, measure in variants.items():
            rounds[name].append(round(measure(), 3))
    base = statistics.median(next(iter(rounds.values())))
    report = {
        "command": "python -m bench.onnx_variants " + " ".join(argv or sys.argv[1:]),
        "cores": cores,
        "images_per_s": {name: statistics.median(values) for name, values in rounds.items()},
        "ratio_to_general_graph": {
            name: round(statistics.median(values) / base, 3) for name, values in rounds.items()
        },
        "rounds": rounds,
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
