"""One job with 4 renditions vs 4 single-output jobs of the same images, on the CPU: time and
peak memory, each side in a fresh child process, side by side in one run. Run from the
repository root:

    .venv/bin/python -m bench.renditions_bench --json bench/reports/renditions.json

The images are the bundled samples enlarged to product-photo size (longer side 1600 px).
Each side's time is ``cutq run``'s own elapsed time (model load and warm-up excluded); the
single-output side is four runs, one per preset, so it downloads, decodes and runs the model
four times per image. Peak memory is each child's maximum resident set size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRESETS = ("amazon-main", "google-shopping", "square-2048", "thumbnail")
LONG_SIDE = 1600


def make_images(folder: Path) -> list[Path]:
    from PIL import Image, ImageOps

    paths = []
    for sample in sorted((ROOT / "samples").iterdir()):
        with Image.open(sample) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
        scale = LONG_SIDE / max(image.size)
        image = image.resize(
            (round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS
        )
        path = folder / f"{sample.stem}.jpg"
        image.save(path, quality=92)
        paths.append(path)
    return paths


def child(side: str, inputs: str, out: str) -> None:
    """One side, in this (fresh) process: prints elapsed seconds and peak RSS."""
    from cutq.core.renditions import presets
    from cutq.worker.config import WorkerConfig
    from cutq.worker.local_run import run_local

    config = WorkerConfig.from_env({})
    runs = [presets(*PRESETS)] if side == "renditions" else [presets(name) for name in PRESETS]
    elapsed, completed = 0.0, 0
    for index, renditions in enumerate(runs):
        summary = run_local(
            [inputs], Path(out) / str(index), config, progress=False, renditions=renditions
        )
        elapsed += summary.elapsed_s
        completed += summary.completed
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"elapsed_s": elapsed, "jobs": completed, "peak_rss_mib": peak_kib / 1024}))


def run_side(side: str, inputs: Path, work: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "bench.renditions_bench", "--child", side, str(inputs),
         str(work / side)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the report here too")
    parser.add_argument(
        "--child", nargs=3, metavar=("SIDE", "INPUTS", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    with tempfile.TemporaryDirectory(prefix="cutq-bench-") as tmp:
        work = Path(tmp)
        inputs = work / "in"
        inputs.mkdir()
        images = make_images(inputs)
        renditions = run_side("renditions", inputs, work)
        singles = run_side("single", inputs, work)
    report = {
        "what": "1 job × 4 renditions vs 4 single-output jobs per image (u2netp, CPU)",
        "presets": PRESETS,
        "images": len(images),
        "long_side_px": LONG_SIDE,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "renditions": renditions,
        "single_output_jobs": singles,
        "time_ratio": round(renditions["elapsed_s"] / singles["elapsed_s"], 3),
        "peak_memory_ratio": round(renditions["peak_rss_mib"] / singles["peak_rss_mib"], 3),
    }
    from bench.harness import publish  # the pipeline's modules: only after the children ran

    publish(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
