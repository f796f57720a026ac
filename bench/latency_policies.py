"""The latency suite for CPU stream policies side by side (issue 25): the default (two streams,
a lone image on every core) against one stream on every core, in one process.

Each configuration's capacity is measured (the efficiency suite's pipeline over ``file://``,
alternating), then each load of the latency suite runs for both, one after the other, with
the same Poisson arrivals, offered as fractions of the *default's* capacity and held to the
default's goal: so the p95s compare at equal offered rates and one goal, and the capacity
ratio says what the other policy costs at saturation.

    python -m bench.latency_policies                     # 30 s per load, 32 images, 2 rounds
    python -m bench.latency_policies --load-duration-s 60 --repeat 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from bench import throughput

POLICIES = {"two streams (default)": None, "one stream": 1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="efficiency rounds per policy")
    parser.add_argument("--load-duration-s", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=1, help="latency passes over the loads")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    base = throughput.Settings(
        quick=False,
        images=args.images,
        rounds=1,
        pubsub=False,
        load_duration_s=args.load_duration_s,
    )
    began = time.monotonic()
    settings = {
        name: dataclasses.replace(base, streams=streams) for name, streams in POLICIES.items()
    }
    runners = {name: throughput.make_runner(s) for name, s in settings.items()}
    rates: dict[str, list[dict]] = {name: [] for name in POLICIES}
    with throughput.scratch() as scratch:
        work = Path(scratch)
        for index in range(args.rounds):
            order = list(POLICIES) if index % 2 == 0 else list(reversed(POLICIES))
            for name in order:
                folder = work / f"eff-{index}-{name.split()[0]}"
                result = throughput.efficiency(settings[name], runners[name], folder, None)
                rates[name].append(result["images_per_s"])
        capacity = {
            n: throughput._median([r["pipeline_local"] for r in v]) for n, v in rates.items()
        }
        bare = {n: throughput._median([r["bare_model"] for r in v]) for n, v in rates.items()}
        default = next(iter(POLICIES))
        rows: dict[str, list[dict]] = {name: [] for name in POLICIES}
        goal_ms = None
        for attempt in range(args.repeat):
            for load in base.loads:
                order = list(POLICIES) if attempt % 2 == 0 else list(reversed(POLICIES))
                for name in order:
                    run = dataclasses.replace(
                        settings[name],
                        loads=(load,),
                        capacity=capacity[default],
                        p95_goal_ms=goal_ms,
                    )
                    folder = work / f"lat-{attempt}-{load}-{name.split()[0]}"
                    result = throughput.latency(
                        run, runners[name], folder, capacity[default], bare[default]
                    )
                    if name == default and goal_ms is None:
                        goal_ms = result["p95_goal_ms"]
                    rows[name].append(result["rows"][0] | {"pass": attempt})
    report = {
        "command": "python -m bench.latency_policies " + " ".join(argv or sys.argv[1:]),
        "capacity_images_per_s": capacity,
        "bare_images_per_s": bare,
        "capacity_ratio_one_lane_over_default": round(
            capacity["one stream"] / capacity[default], 3
        ),
        "p95_goal_ms": goal_ms,
        "loads_are_fractions_of": f"{default}'s capacity, {capacity[default]} images/s",
        "rows": rows,
        "elapsed_s": round(time.monotonic() - began, 1),
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
