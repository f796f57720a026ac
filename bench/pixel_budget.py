"""Peak memory of `cutq run` on many very large inputs: with the pixel budget, and without it.

    python -m bench.pixel_budget                        # 32 inputs of 50 MP, default budget
    python -m bench.pixel_budget --count 8 --megapixels 20 --variants budget,unbounded

Each variant is a fresh `cutq run` process over the same inputs (one JPEG of a smooth scene,
copied under ``count`` names so every copy is its own job), with ``CUTQ_MAX_IN_FLIGHT=32``.
``budget`` keeps the default ``CUTQ_MAX_IN_FLIGHT_PIXELS``; ``unbounded`` sets it to
``count × pixels`` (the job count alone bounds memory, as before the budget existed; at 32 ×
50 MP that wants more memory than a 24 GB machine has, so it is opt-in). Peak
memory is the process's own high-water mark (``VmHWM`` in /proc, which exec resets), read
until it exits. Runs alternate so both see the same machine. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cutq.worker.config import WorkerConfig


def make_inputs(folder: Path, count: int, megapixels: float) -> tuple[int, int]:
    """``count`` copies of one smooth ``megapixels`` JPEG; returns its (width, height)."""
    width = int(math.sqrt(megapixels * 1e6 * 3 / 2))
    height = int(megapixels * 1e6 / width)
    yy, xx = np.mgrid[0:height:8, 0:width:8]
    small = np.dstack([xx % 256, yy % 256, (xx + yy) % 256]).astype(np.uint8)
    image = Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)
    first = folder / "000.jpg"
    image.save(first, quality=85)
    for index in range(1, count):
        shutil.copyfile(first, folder / f"{index:03d}.jpg")
    return width, height


def peak_rss_mb(command: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Run ``command``; (peak RSS in MB, seconds, exit code)."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_kb = 0
    status = Path(f"/proc/{process.pid}/status")
    while process.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb = max(peak_kb, int(line.split()[1]))
        except OSError:
            break
        time.sleep(0.1)
    _, errors = process.communicate()
    if process.returncode not in (0, 1):
        raise RuntimeError(errors.decode()[-2000:])
    return peak_kb / 1024, time.monotonic() - started, process.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=32)
    parser.add_argument("--megapixels", type=float, default=49.9)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--kind", default="mask", help="output kind (mask keeps the disk small)")
    parser.add_argument("--variants", default="budget", help="budget and/or unbounded")
    args = parser.parse_args(argv)
    default_budget = WorkerConfig().max_in_flight_pixels
    with tempfile.TemporaryDirectory(prefix="cutq-pixels-") as work:
        folder = Path(work, "in")
        folder.mkdir()
        width, height = make_inputs(folder, args.count, args.megapixels)
        choices = {
            "budget": default_budget,
            "unbounded": max(default_budget, args.count * width * height),
        }
        variants = {name: choices[name] for name in args.variants.split(",")}
        runs: dict[str, list[dict]] = {name: [] for name in variants}
        for round_index in range(args.rounds):
            order = list(variants) if round_index % 2 == 0 else list(reversed(variants))
            for name in order:
                out = Path(work, f"out-{name}-{round_index}")
                env = {
                    **{k: v for k, v in os.environ.items() if not k.startswith("CUTQ_")},
                    "CUTQ_MAX_IN_FLIGHT": "32",
                    "CUTQ_MAX_IN_FLIGHT_PIXELS": str(variants[name]),
                    "CUTQ_DEVICE": "cpu",
                }
                command = [sys.executable, "-m", "cutq.cli", "run", str(folder)]
                command += ["--out", str(out), "--no-progress", "--kind", args.kind]
                peak, seconds, code = peak_rss_mb(command, env)
                runs[name].append({"peak_rss_mb": round(peak), "seconds": round(seconds, 1)})
                assert code == 0, f"{name}: some images failed"
                shutil.rmtree(out)
    peaks = {name: statistics.median(r["peak_rss_mb"] for r in rs) for name, rs in runs.items()}
    print(
        json.dumps(
            {
                "inputs": args.count,
                "image": f"{width}x{height}",
                "megapixels": round(width * height / 1e6, 1),
                "max_in_flight_pixels": variants,
                "runs": runs,
                "peak_rss_mb": peaks,
                **(
                    {"ratio_budget_over_unbounded": round(peaks["budget"] / peaks["unbounded"], 2)}
                    if len(peaks) == 2
                    else {}
                ),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
