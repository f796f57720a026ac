"""Worker benchmark suite: pipeline efficiency, batching gain, latency under load, cold start,
memory. Prints one JSON object and writes it, with plots, to ``bench/results/<timestamp>/``.

Every figure is a ratio of runs made side by side in one process (or, for cold start and
memory, in fresh child processes), so a shared or noisy machine skews numerators and
denominators alike. Run from the repository root:

    .venv/bin/python -m bench.worker_bench --quick              # CI size, ~1-2 min on 2 CPUs
    .venv/bin/python -m bench.worker_bench                      # full CPU run
    .venv/bin/python -m bench.worker_bench --device cuda --models u2netp,inspyrenet

``inspyrenet`` runs with random weights saved to a temporary checkpoint (mode ``fast`` unless
``--inspyrenet-mode base``) unless ``--checkpoint`` names the real one: its timings are the
real network's, its masks are not.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SUITES = ("efficiency", "sweep", "latency", "coldstart", "memory")


def hardware() -> dict[str, object]:
    """What the numbers were measured on."""
    import os

    import torch

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    info: dict[str, object] = {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_model_suites(settings, suites: set[str], work: Path) -> dict:  # type: ignore[no-untyped-def]
    """The in-process suites for one model: efficiency, sweep, latency."""
    from bench import throughput

    report: dict = {}
    runner = throughput.make_runner(settings)
    if suites & {"efficiency", "latency"}:
        cloud_context = None
        if settings.pubsub:
            from bench.servers import local_cloud

            cloud_context = local_cloud()
        cloud = cloud_context.__enter__() if cloud_context else None
        try:
            report["efficiency"] = throughput.efficiency(settings, runner, work / "eff", cloud)
        finally:
            if cloud_context:
                cloud_context.__exit__(None, None, None)
    if "sweep" in suites:
        report["batch_sweep"] = throughput.batch_sweep(settings, runner, work / "sweep")
    if "latency" in suites:
        rates = report["efficiency"]["images_per_s"]
        report["latency"] = throughput.latency(
            settings, runner, work / "lat", rates["pipeline_local"], rates["bare_model"]
        )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI size (tiny images, 1 round)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--models", default="u2netp", help="comma-separated: u2netp,inspyrenet")
    parser.add_argument("--checkpoint", help="a real inspyrenet checkpoint (else random weights)")
    parser.add_argument("--inspyrenet-mode", default="fast", choices=("fast", "base"))
    parser.add_argument("--suites", default=",".join(SUITES), help="subset of " + ",".join(SUITES))
    parser.add_argument("--images", type=int, help="images per throughput run")
    parser.add_argument("--rounds", type=int, help="alternating rounds for the ratios")
    parser.add_argument("--max-batch", type=int, help="batch size for efficiency and latency")
    parser.add_argument("--streams", type=int, help="images in the model at once (CPU engine)")
    parser.add_argument("--capacity", type=float, help="latency: loads are fractions of this")
    parser.add_argument("--p95-goal-ms", type=float, help="latency: this goal, not the run's")
    parser.add_argument("--io-threads", type=int, help="I/O threads per pool (default: device's)")
    parser.add_argument("--load-duration-s", type=float, help="seconds of arrivals per load")
    parser.add_argument("--no-pubsub", action="store_true", help="skip the GCS + Pub/Sub variant")
    parser.add_argument("--out", type=Path, help="results folder (default bench/results/<ts>)")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    suites = set(args.suites.split(","))
    unknown = suites - set(SUITES)
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(sorted(unknown))}")

    from bench import coldstart, throughput

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or ROOT / "bench" / "results" / stamp
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "command": " ".join(["python -m bench.worker_bench", *(argv or sys.argv[1:])]),
        "started": stamp,
        "quick": args.quick,
        "device": args.device,
        "hardware": hardware(),
        "models": {},
    }
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cutq-bench-") as scratch:
        work = Path(scratch)
        for model in args.models.split(","):
            changes: dict[str, object] = {"device": args.device, "model": model}
            for key in (
                "images",
                "rounds",
                "max_batch",
                "streams",
                "io_threads",
                "load_duration_s",
                "capacity",
                "p95_goal_ms",
            ):
                if getattr(args, key) is not None:
                    changes[key] = getattr(args, key)
            if args.no_pubsub:
                changes["pubsub"] = False
            if model == "inspyrenet":
                changes["model_mode"] = args.inspyrenet_mode
                changes["random_weights"] = not args.checkpoint
                changes["checkpoint"] = args.checkpoint or str(
                    coldstart.random_checkpoint(work / "ckpt", args.inspyrenet_mode)
                )
                if args.inspyrenet_mode == "fast" and args.quick:
                    changes["max_side"] = 128
            settings = (
                throughput.Settings.quick_mode(**changes)
                if args.quick
                else throughput.Settings(quick=False, **changes)  # type: ignore[arg-type]
            )
            section = run_model_suites(settings, suites, work / model)
            if "coldstart" in suites:
                section["cold_start"] = coldstart.cold_start(settings, work / model / "cold")
            if "memory" in suites:
                section["memory"] = coldstart.memory(settings, work / model / "mem")
            report["models"][model] = section
    report["elapsed_s"] = round(time.monotonic() - began, 1)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    if not args.no_plots:
        from bench import plots

        report["plots"] = plots.write_plots(report, out)
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
