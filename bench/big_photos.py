"""Big photos: memory and time per megapixel, cutq beside rembg, and the memory model's figures.

Photos are real photographs (scikit-image's, as in :mod:`bench.peer`) enlarged with Lanczos to
12, 24 and 48 MP and saved as JPEG (quality 92). Every run is a whole process (``cutq run`` or
rembg's ``rembg p`` loop, :mod:`bench.rembg_loop`) timed from start to exit, its peak RSS from
``wait4``; rounds alternate which tool goes first and ratios are taken within a round.

Two commands:

    python -m bench.big_photos compare --sizes 12 24 48 --rounds 1    # cutq vs rembg, presets
    python -m bench.big_photos paths --sizes 4 16                     # the memory model's figures

``compare``: per size, one photo, plain cut-out in both tools; cutq also with one preset
(``amazon-main``) and with the four presets as renditions of one job. ``paths``: per job path
(:data:`cutq.worker.memory.PATHS`) the peak RSS at two sizes; the slope between them is the
path's bytes per source pixel and the rest, over the canvas, its bytes per canvas pixel: the
figures :mod:`cutq.worker.memory` holds (written there by hand, checked by this run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from bench.peer import ROOT, Run, cutq_command, rembg_command, rembg_home, timed

PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png")
PRESETS = ("amazon-main", "google-shopping", "square-2048", "thumbnail")
#: `cutq run`'s exits for a run that processed every image (docs/verdicts.md, "Exit codes"):
#: 0, or 3/4 when a preset's verdict failed or needs review.
VERDICT_EXITS = (0, 3, 4)
#: cutq run flags per job path (the keys of cutq.worker.memory.PATHS, plus the four presets).
PATH_FLAGS: dict[str, list[str]] = {
    "cutout": [],
    "mask": ["--kind", "mask"],
    "cutout-ml": ["--foreground", "ml"],
    "matting": ["--matting"],
    **{f"preset:{name}": ["--preset", name] for name in PRESETS},
    "four-presets": [arg for name in PRESETS for arg in ("--preset", name)],
}


def prepare(directory: Path, megapixels: float, index: int = 0) -> Path:
    """One real photograph enlarged to about ``megapixels`` MP, as a JPEG (run in a child, so
    that the timing process never holds numpy or the photo: see :func:`bench.peer.timed`)."""
    from PIL import Image

    from bench.peer import skimage_dir

    source = Image.open(skimage_dir() / PHOTOS[index % len(PHOTOS)]).convert("RGB")
    aspect = source.width / source.height
    height = round((megapixels * 1e6 / aspect) ** 0.5)
    width = round(height * aspect)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{Path(PHOTOS[index % len(PHOTOS)]).stem}-{megapixels:g}mp.jpg"
    source.resize((width, height), Image.Resampling.LANCZOS).save(path, quality=92)
    return path


def _prepare_in_child(directory: Path, megapixels: float, index: int = 0) -> Path:
    command = [sys.executable, "-m", "bench.big_photos", "prepare", str(directory)]
    out = subprocess.run(
        [*command, str(megapixels), str(index)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


def _cutq(photo: Path, out: Path, flags: list[str], env: dict[str, str]) -> Run:
    inputs = out.parent / f"in-{photo.stem}"
    inputs.mkdir(exist_ok=True)
    if not (inputs / photo.name).exists():
        os.link(photo, inputs / photo.name)
    return timed("cutq", cutq_command(inputs, out, flags), 1, env, ok=VERDICT_EXITS)


def compare(args: argparse.Namespace, work: Path, env: dict[str, str]) -> dict:
    rembg_home(args.cache)
    sizes: dict[str, dict] = {}
    for size in args.sizes:
        photo = _prepare_in_child(work / "photos", size)
        runs: dict[str, list[Run]] = {"rembg": [], "cutq": [], "preset": [], "four": []}
        for index in range(args.rounds):
            tag = f"{size:g}-{index}"
            steps = [
                ("cutq", lambda t, p=photo: _cutq(p, work / f"cutq-{t}", [], env)),
                ("rembg", lambda t, p=photo: _rembg(args, p, work / f"rembg-{t}", env)),
            ]
            for name, step in steps if index % 2 == 0 else steps[::-1]:
                runs[name].append(step(tag))
            runs["preset"].append(
                _cutq(photo, work / f"preset-{tag}", PATH_FLAGS["preset:amazon-main"], env)
            )
            runs["four"].append(_cutq(photo, work / f"four-{tag}", PATH_FLAGS["four-presets"], env))
        rounds = [
            {
                "throughput_cutq_over_rembg": round(r.wall_s / c.wall_s, 3),
                "peak_memory_cutq_over_rembg": round(c.peak_rss_mb / r.peak_rss_mb, 3),
                "preset_over_plain_memory": round(p.peak_rss_mb / c.peak_rss_mb, 3),
                "preset_over_plain_time": round(p.wall_s / c.wall_s, 3),
                "four_over_one_preset_memory": round(f.peak_rss_mb / p.peak_rss_mb, 3),
                "four_over_one_preset_time": round(f.wall_s / p.wall_s, 3),
            }
            for c, r, p, f in zip(
                runs["cutq"], runs["rembg"], runs["preset"], runs["four"], strict=True
            )
        ]
        sizes[f"{size:g}"] = {
            "photo": photo.name,
            "runs": {key: [asdict(run) for run in value] for key, value in runs.items()},
            "rounds": rounds,
        }
    return {"sizes": sizes}


def _rembg(args: argparse.Namespace, photo: Path, out: Path, env: dict[str, str]) -> Run:
    inputs = out.parent / f"in-{photo.stem}"
    inputs.mkdir(exist_ok=True)
    if not (inputs / photo.name).exists():
        os.link(photo, inputs / photo.name)
    return timed("rembg", rembg_command(args.rembg_python, inputs, out), 1, env)


def paths(args: argparse.Namespace, work: Path, env: dict[str, str]) -> dict:
    """Peak RSS per path at each size; slope = bytes per source pixel."""
    low, high = args.sizes[0], args.sizes[-1]
    photos = {size: _prepare_in_child(work / "photos", size) for size in (low, high)}
    figures: dict[str, dict] = {}
    for name in args.paths or list(PATH_FLAGS):
        flags = PATH_FLAGS[name]
        peaks = {}
        for size, photo in photos.items():
            run = _cutq(photo, work / f"{name}-{size:g}".replace(":", "-"), flags, env)
            peaks[f"{size:g}"] = {"peak_rss_mb": run.peak_rss_mb, "wall_s": run.wall_s}
        slope = (peaks[f"{high:g}"]["peak_rss_mb"] - peaks[f"{low:g}"]["peak_rss_mb"]) / (
            high - low
        )
        base = peaks[f"{low:g}"]["peak_rss_mb"] - slope * low
        figures[name] = {
            "peaks": peaks,
            "bytes_per_source_pixel": round(slope * 1024 * 1024 / 1e6, 1),
            "intercept_mb": round(base, 1),
        }
        print(name, json.dumps(figures[name]), flush=True)
    return {"paths": figures}


def plot(report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(report["sizes"])
    series = {"rembg": "tab:grey", "cutq": "tab:blue", "preset": "tab:orange", "four": "tab:red"}
    labels = {
        "rembg": "rembg p (plain)",
        "cutq": "cutq run (plain)",
        "preset": "cutq amazon-main",
        "four": "cutq 4 presets",
    }
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for key, colour in series.items():
        for ax, field in zip(axes, ("peak_rss_mb", "wall_s"), strict=True):
            values = [min(run[field] for run in report["sizes"][s]["runs"][key]) for s in sizes]
            ax.plot([float(s) for s in sizes], values, "o-", color=colour, label=labels[key])
    axes[0].set_ylabel("peak RSS, MB (whole process)")
    axes[1].set_ylabel("wall time, s (one photo, whole process)")
    for ax in axes:
        ax.set_xlabel("photo, megapixels (JPEG)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"Big photos on this machine's CPU, u2netp, {report['rounds']} round(s)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("compare", "paths", "prepare"))
    parser.add_argument("rest", nargs="*", help="prepare: DIR MEGAPIXELS [INDEX]")
    parser.add_argument("--sizes", type=float, nargs="+", default=[12.0, 24.0, 48.0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--paths", nargs="*", choices=list(PATH_FLAGS))
    parser.add_argument("--rembg-python", default=sys.executable, help="interpreter with rembg")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "cutq-peer")
    parser.add_argument("--out", type=Path, help="JSON report (default: print only)")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        index = int(args.rest[2]) if len(args.rest) > 2 else 0
        print(prepare(Path(args.rest[0]), float(args.rest[1]), index))
        return 0
    env = dict(os.environ, U2NET_HOME=str(args.cache / "u2net"), PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory(prefix="cutq-big-") as tmp:
        work = Path(tmp)
        body = compare(args, work, env) if args.command == "compare" else paths(args, work, env)
    report = {
        "bench": f"big_photos {args.command}",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "rounds": args.rounds,
        "command": "python -m bench.big_photos " + " ".join(argv or sys.argv[1:]),
        **body,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        if args.command == "compare":
            plot(report, args.out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
