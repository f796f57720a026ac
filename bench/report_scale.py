"""``cutq report`` at scale: a run of N synthetic jobs (default 10,000) with two renditions
each; how long the page takes to write, how big it is, and how fast headless Chromium opens it.

    .venv/bin/python -m bench.report_scale --jobs 10000 --json bench/reports/report-scale.json

Each synthetic job has its own small input (a PNG), a name and a ref (``SKU-<n>``), two results
(a JPEG on white, a WebP on transparency) and an event like a worker's: verdicts (about 5 %
fail, 10 % review), flags (about 3 % each), failed jobs (about 1 %), timings. The page is opened
twice: on its default view, and on ``#review&q=sku-000&sort=fill`` (a view, a search and a sort
over every job). The load time is the page's own ``performance.now()`` once its first rows are
in the DOM (``data-ready-ms`` on ``<body>``), and the whole Chromium process's wall time.
``--screenshot PNG`` saves the second view as headless Chromium draws it.
"""

from __future__ import annotations

import argparse
import json
import os
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
from cutq.core.manifest import read_events  # noqa: E402
from cutq.core.storage import Stores  # noqa: E402
from cutq.worker.review.report import write_report  # noqa: E402

SEARCHED = "#review&q=sku-000&sort=fill"


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
        draw = rng.random()
        verdict = "fail" if draw < 0.05 else "review" if draw < 0.15 else "pass"
        failed = ["source only 96 px: output 80×80 px is under the 1000 px zoom minimum"]
        reasons = {"fail": failed, "review": ["subject may be cut off by the photo's edge"]}
        flags = [flag for flag in ("empty", "edge", "multiple", "uncertain") if rng.random() < 0.03]
        fill = float(rng.uniform(0.6, 0.95))
        outputs = [
            {"kind": "cutout", "uri": amazon.as_uri(), "size": amazon.stat().st_size,
             "width": 80, "height": 80, "name": "amazon-main", "preset": "amazon-main",
             "verdict": verdict, "failed": failed if verdict == "fail" else [],
             "reasons": reasons.get(verdict, []), "figures": {"fill": fill, "purity": 1.0}},
            {"kind": "cutout", "uri": thumb.as_uri(), "size": thumb.stat().st_size,
             "width": 64, "height": 64, "name": "thumbnail", "preset": "thumbnail",
             "verdict": "pass", "failed": [], "reasons": [],
             "figures": {"fill": 0.875, "purity": 1.0}},
        ]  # fmt: skip
        data = {
            "job_id": job_id,
            "status": "completed",
            "input": source.as_uri(),
            "name": f"front-{index % 7}.png",
            "ref": f"SKU-{index // 3:05d}",
            "outputs": outputs,
            "timings_ms": {"total": float(rng.uniform(200, 900)), "infer": 120.0},
            "duplicate": False,
            "flags": flags,
            "quality": {"uncertain": float(rng.uniform(0, 0.4))},
        }
        if rng.random() < 0.01:
            data.update(status="failed", outputs=[], flags=None, quality=None,
                        error={"code": "image_undecodable", "message": "not an image"})  # fmt: skip
        time = f"2026-12-01T10:{index // 600 % 60:02d}:{index // 10 % 60:02d}Z"
        lines.append(json.dumps({"time": time, "data": data}))
    events = folder / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    return events


def open_in_chromium(page: str, screenshot: str | None = None) -> tuple[float, float, list[str]]:
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("chromium not installed: tools/install-chromium.sh")
    with tempfile.TemporaryDirectory() as profile:
        started = time.monotonic()
        done = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--no-first-run",
             f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--dump-dom",
             page],
            capture_output=True, text=True, timeout=300, check=True,
        )  # fmt: skip
        wall_s = time.monotonic() - started
    ready = re.search(r'data-ready-ms="(\d+)"', done.stdout)
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    if screenshot:
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--hide-scrollbars", "--window-size=1400,1000", f"--user-data-dir={profile}",
                 f"--screenshot={Path(screenshot).absolute()}", page],
                capture_output=True, timeout=300, check=True,
            )  # fmt: skip
    return float(ready.group(1)) if ready else float("nan"), wall_s, console


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--json", help="write the report here too")
    parser.add_argument("--screenshot", help="save the searched view as a PNG here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cutq-report-") as tmp:
        folder = Path(tmp)
        events = synthetic_run(folder, args.jobs)
        started = time.monotonic()
        summary = write_report(read_events([events]), folder / "report.html", stores=Stores())
        write_s = time.monotonic() - started
        files = folder / "report.html.files"
        thumbs = sum(path.stat().st_size for path in files.iterdir())
        ready_ms, wall_s, console = open_in_chromium(summary.path.as_uri())
        searched_ms, searched_s, searched_console = open_in_chromium(
            summary.path.as_uri() + SEARCHED, args.screenshot
        )
        report = {
            "command": "python -m bench.report_scale " + " ".join(argv or sys.argv[1:]),
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
            "jobs": summary.jobs,
            "verdicts": summary.verdicts,
            "failed_jobs": summary.failed_jobs,
            "rerun_lines": summary.rerun,
            "thumbnails": summary.thumbnails,
            "write_s": round(write_s, 1),
            "page_bytes": summary.path.stat().st_size,
            "thumbnail_bytes": thumbs,
            "chromium_ready_ms": ready_ms,
            "chromium_process_s": round(wall_s, 2),
            "searched_view": SEARCHED,
            "searched_ready_ms": searched_ms,
            "searched_process_s": round(searched_s, 2),
            "console_messages": console + searched_console,
        }
    publish(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
