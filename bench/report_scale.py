"""``cutq report`` at scale: a run of N synthetic jobs (default 10,000) with two renditions
each; how long the page takes to write, how big it is, and how fast headless Chromium opens it.

    .venv/bin/python -m bench.report_scale --jobs 10000 --json bench/reports/report-scale.json

Each synthetic job has its own small input (a PNG) and two results (a JPEG on white, a WebP on
transparency) and an event like a worker's: verdicts (about 5 % fail), flags (about 3 % each),
timings. The load time is the page's own ``performance.now()`` once its first rows are in the
DOM (``data-ready-ms`` on ``<body>``), and the whole Chromium process's wall time.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import publish  # noqa: E402
from cutq.worker.report import read_events, write_report  # noqa: E402


def synthetic_run(folder: Path, jobs: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    day = folder / "dt=2026-12-01"
    day.mkdir(parents=True)
    inputs = folder / "in"
    inputs.mkdir()
    lines = []
    for index in range(jobs):
        job_id = f"job{index:06d}"
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        picture = Image.new("RGB", (96, 72), (240, 240, 240))
        picture.paste(colour, (30, 18, 66, 54))
        source = inputs / f"{job_id}.png"
        picture.save(source)
        amazon, thumb = day / f"{job_id}.amazon-main.jpg", day / f"{job_id}.thumbnail.webp"
        square = Image.new("RGB", (80, 80), (255, 255, 255))
        square.paste(colour, (5, 5, 75, 75))
        square.save(amazon, quality=85)
        clear = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
        clear.paste((*colour, 255), (4, 4, 60, 60))
        clear.save(thumb, quality=80)
        fail = rng.random() < 0.05
        flags = [flag for flag in ("empty", "edge", "multiple", "uncertain") if rng.random() < 0.03]
        outputs = [
            {"kind": "cutout", "uri": amazon.as_uri(), "size": amazon.stat().st_size,
             "width": 80, "height": 80, "name": "amazon-main", "preset": "amazon-main",
             "verdict": "fail" if fail else "pass",
             "failed": ["source only 96 px: output 80×80 px is under the 1000 px zoom minimum"]
             if fail else [], "figures": {"fill": 0.875, "purity": 1.0}},
            {"kind": "cutout", "uri": thumb.as_uri(), "size": thumb.stat().st_size,
             "width": 64, "height": 64, "name": "thumbnail", "preset": "thumbnail",
             "verdict": "pass", "failed": [], "figures": {"fill": 0.875, "purity": 1.0}},
        ]  # fmt: skip
        data = {
            "job_id": job_id,
            "status": "completed",
            "input": source.as_uri(),
            "outputs": outputs,
            "timings_ms": {"total": float(rng.uniform(200, 900)), "infer": 120.0},
            "duplicate": False,
            "flags": flags,
            "quality": {},
        }
        lines.append(json.dumps({"data": data}))
    events = folder / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    return events


def open_in_chromium(page: Path) -> tuple[float, float, list[str]]:
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("chromium not installed: tools/install-chromium.sh")
    with tempfile.TemporaryDirectory() as profile:
        started = time.monotonic()
        done = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--no-first-run",
             f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--dump-dom",
             page.as_uri()],
            capture_output=True, text=True, timeout=300, check=True,
        )  # fmt: skip
        wall_s = time.monotonic() - started
    ready = re.search(r'data-ready-ms="(\d+)"', done.stdout)
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return float(ready.group(1)) if ready else float("nan"), wall_s, console


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--json", help="write the report here too")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cutq-report-") as tmp:
        folder = Path(tmp)
        events = synthetic_run(folder, args.jobs)
        started = time.monotonic()
        summary = write_report(read_events([events]), folder / "report.html")
        write_s = time.monotonic() - started
        files = folder / "report.html.files"
        thumbs = sum(path.stat().st_size for path in files.iterdir())
        ready_ms, wall_s, console = open_in_chromium(summary.path)
        report = {
            "jobs": summary.jobs,
            "thumbnails": summary.thumbnails,
            "write_s": round(write_s, 1),
            "page_bytes": summary.path.stat().st_size,
            "thumbnail_bytes": thumbs,
            "chromium_ready_ms": ready_ms,
            "chromium_process_s": round(wall_s, 2),
            "console_messages": console,
        }
    publish(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
