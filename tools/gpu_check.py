"""The one-shot GPU check (issue 25 item 4, issue 26): set up on a bare GPU machine, then run
the GPU tests and the GPU benchmark rows in one go, within a time budget, into one JSON report
and a markdown table for the README.

    python -m tools.gpu_check prepare            # here, with pip's index: the device's wheels
    python3 -m tools.gpu_check run --wheels out/gpu-check-wheels --out DIR   # on the device
    make gpu-check                               # a dry run on this machine's CPU

On the device machine, in one call: ``run`` with ``carry=["out/gpu-check-wheels"]`` and
``PYTHONUNBUFFERED=1 python3 -m tools.gpu_check run --wheels out/gpu-check-wheels --out $OUT``
(about 8 minutes of steps, ``--budget-s``; the set-up before them is timed in the report).

onnxruntime's CUDA execution provider needs the onnxruntime-gpu wheel (256 MB; the image has
the CPU onnxruntime), over the 64 MiB one call carries: ``prepare --onnxruntime-gpu`` cuts it
into 40 MiB parts, ``out/gpu-check-ort/part0`` … ``part6``. Carry one per call (command
``true``) back to back while the machine stays warm, then make the ``run`` call above: it
joins them (sha256-checked against ``out/gpu-check-wheels/onnxruntime-gpu-parts.json``) and
installs the wheel with the others, ahead of the image's onnxruntime. Without every part the
CUDA EP step skips and says which are missing.

``prepare`` downloads, for the device machine's Python (3.12, x86-64), the few wheels its image
lacks (transparent-background and what it imports, tenacity; torch, numpy, OpenCV, timm and
onnxruntime are there already) and times a trial install of them. ``run`` first installs them
and cutq itself into a scratch folder when ``cutq`` is not importable (a bare machine; no
network needed), timing it, then re-runs itself on top of them. Without a usable GPU it runs
what a CPU can, at small sizes, and lists what it skipped and why. Steps: ``tools/gpu_checks.py``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SITE = Path(tempfile.gettempdir()) / "cutq-gpu-check-site"
#: The device machine's interpreter (its image: Python 3.12 on x86-64).
DEVICE_PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
#: What cutq's GPU path imports that the device image lacks, at the versions tested here.
#: (Its image has torch, torchvision, numpy, Pillow, OpenCV, timm, PyYAML, scipy, tqdm,
#: onnx and onnxruntime; the Pub/Sub and Storage clients are not needed with file:// jobs.)
DEVICE_WHEELS = (
    "transparent-background==1.3.4",
    "albumentations==2.0.8",
    "albucore==0.0.24",
    "pydantic==2.14.4",
    "pydantic-core==2.50.5",
    "annotated-types==0.8.0",
    "typing-inspection==0.4.5",
    "stringzilla==5.3.2",
    "simsimd==6.5.16",
    "easydict==1.14",
    "kornia==0.9.0",
    "kornia-rs==0.2.0",
    "tenacity==9.2.1",
)


#: onnxruntime with CUDA's execution provider (built for CUDA 13.0, as the device image's
#: torch is; its CUDA and cuDNN libraries come from that torch's nvidia-* wheels). 256 MB:
#: over what one device call carries, so ``prepare --onnxruntime-gpu`` cuts it into parts
#: that successive calls carry while the machine stays warm (:func:`join_parts`).
ORT_GPU_WHEEL = "onnxruntime-gpu==1.31.1"
PART_BYTES = 40 * 2**20  # with the tree (~18 MB) under the 64 MiB one call carries
PARTS_MANIFEST = "onnxruntime-gpu-parts.json"


def split_wheel(wheel: Path, parts: Path, manifest_dir: Path) -> dict[str, object]:
    """Cut ``wheel`` into :data:`PART_BYTES` pieces in ``parts``; record its name, size,
    sha256 and the pieces in ``manifest_dir`` (which travels with the small wheels)."""
    import hashlib

    shutil.rmtree(parts, ignore_errors=True)
    parts.mkdir(parents=True)
    data = wheel.read_bytes()
    names = []
    for index, offset in enumerate(range(0, len(data), PART_BYTES)):
        name = f"part{index}"
        (parts / name).mkdir()
        (parts / name / "piece").write_bytes(data[offset : offset + PART_BYTES])
        names.append(name)
    record = {
        "wheel": wheel.name,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "parts": names,
    }
    (manifest_dir / PARTS_MANIFEST).write_text(json.dumps(record, indent=1) + "\n")
    return record


def join_parts(parts: Path, manifest_dir: Path, target: Path) -> Path:
    """The wheel put back together from ``parts`` (checked against its manifest), or a
    SystemExit naming the parts the machine does not have yet."""
    import hashlib

    record = json.loads((manifest_dir / PARTS_MANIFEST).read_text())
    missing = [n for n in record["parts"] if not (parts / n / "piece").is_file()]
    if missing:
        raise SystemExit(f"onnxruntime-gpu: parts {', '.join(missing)} of {parts} are not here")
    data = b"".join((parts / n / "piece").read_bytes() for n in record["parts"])
    if hashlib.sha256(data).hexdigest() != record["sha256"]:
        raise SystemExit(f"onnxruntime-gpu: the parts in {parts} do not make {record['wheel']}")
    target.mkdir(parents=True, exist_ok=True)
    wheel = target / record["wheel"]
    wheel.write_bytes(data)
    return wheel


def prepare(wheels: Path, onnxruntime_gpu: bool = False) -> dict[str, float]:
    """Download :data:`DEVICE_WHEELS` for the device's Python; time a trial install."""
    wheels.mkdir(parents=True, exist_ok=True)
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    started = time.perf_counter()
    _pip(
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        DEVICE_PYTHON,
        "--implementation",
        "cp",
        *platforms,
        "-d",
        str(wheels),
        *DEVICE_WHEELS,
    )
    downloaded = time.perf_counter() - started
    size_mb = sum(f.stat().st_size for f in wheels.glob("*.whl")) / 1e6
    with tempfile.TemporaryDirectory() as target:
        started = time.perf_counter()
        _pip(
            "install",
            "--no-index",
            "--no-deps",
            "--no-compile",
            "--only-binary=:all:",
            "--python-version",
            DEVICE_PYTHON,
            *platforms,
            "--target",
            target,
            *map(str, sorted(wheels.glob("*.whl"))),
        )
        installed = time.perf_counter() - started
    result: dict[str, Any] = {
        "download_s": round(downloaded, 1),
        "wheels_mb": round(size_mb, 1),
        "install_s": round(installed, 1),
        "wheels": len(list(wheels.glob("*.whl"))),
    }
    if onnxruntime_gpu:
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            _pip(
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                DEVICE_PYTHON,
                "--implementation",
                "cp",
                *platforms,
                "-d",
                scratch,
                ORT_GPU_WHEEL,
            )
            result["onnxruntime_gpu_download_s"] = round(time.perf_counter() - started, 1)
            wheel = next(Path(scratch).glob("onnxruntime_gpu-*.whl"))
            record = split_wheel(wheel, wheels.parent / "gpu-check-ort", wheels)
            started = time.perf_counter()
            joined = join_parts(wheels.parent / "gpu-check-ort", wheels, Path(scratch) / "j")
            _pip(
                "install",
                "--no-index",
                "--no-deps",
                "--no-compile",
                "--only-binary=:all:",
                "--python-version",
                DEVICE_PYTHON,
                *platforms,
                "--target",
                str(Path(scratch) / "site"),
                str(joined),
            )
            result["onnxruntime_gpu_join_install_s"] = round(time.perf_counter() - started, 1)
            result["onnxruntime_gpu_mb"] = round(int(record["bytes"]) / 1e6, 1)  # type: ignore[call-overload]
            result["onnxruntime_gpu_parts"] = len(record["parts"])  # type: ignore[arg-type]
    print(json.dumps(result))
    return result


def set_up(wheels: Path | None) -> dict[str, object]:
    """Make ``cutq`` importable: nothing to do in a dev venv; on a bare machine install the
    carried wheels and this tree into :data:`SITE` (offline) and say how long it took."""
    if importlib.util.find_spec("cutq") is not None:
        return {"status": "skipped", "reason": "cutq is already installed (a dev venv)"}
    if wheels is None or not wheels.is_dir():
        raise SystemExit("cutq is not installed: pass --wheels DIR (see `prepare`)")
    started = time.perf_counter()
    shutil.rmtree(SITE, ignore_errors=True)
    extra: list[Path] = []
    parts = wheels.parent / "gpu-check-ort"
    ort_note = "not carried (the CUDA EP step skips)"
    if (wheels / PARTS_MANIFEST).is_file():
        try:
            scratch = Path(tempfile.mkdtemp(prefix="cutq-ort-"))
            extra.append(join_parts(parts, wheels, scratch))
            ort_note = f"{extra[0].name}, from {len(list(parts.iterdir()))} parts"
        except SystemExit as why:
            ort_note = str(why)
    _pip(
        "install",
        "--no-index",
        "--no-deps",
        "--no-compile",
        "--target",
        str(SITE),
        *map(str, sorted(wheels.glob("*.whl"))),
        *map(str, extra),
    )
    _pip(
        "install",
        "--no-index",
        "--no-deps",
        "--no-build-isolation",
        "--no-compile",
        "--target",
        str(SITE),
        str(ROOT),
    )
    return {
        "status": "passed",
        "seconds": round(time.perf_counter() - started, 1),
        "cuda_libraries": _share_cuda_libraries() if extra else None,
        "installed": [*sorted(p.name for p in wheels.glob("*.whl")), "cutq (this tree)"],
        "onnxruntime_gpu": ort_note,
    }


def _share_cuda_libraries() -> str | None:
    """Point the scratch site's ``nvidia`` folder at the image's (its torch's CUDA 13 and
    cuDNN 9 wheels), where onnxruntime-gpu's ``preload_dlls`` looks for them: beside itself."""
    import importlib.util

    spec = importlib.util.find_spec("nvidia")
    folders = list(spec.submodule_search_locations or []) if spec else []
    if not folders or (SITE / "nvidia").exists():
        return None
    (SITE / "nvidia").symlink_to(folders[0], target_is_directory=True)
    return folders[0]


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check", *args], check=True
    )


def run(
    out: Path, budget_s: float, setup: dict[str, object], quick: bool | None, only: str = ""
) -> int:
    from tools import gpu_checks

    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    gpu = gpu_checks.usable_gpu()
    quick = not gpu if quick is None else quick
    report: dict[str, object] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(),
        "mode": "gpu" if gpu else "dry run (no usable GPU)",
        "quick": quick,
        "budget_s": budget_s,
        "setup": setup,
        "steps": [],
    }
    steps: list[dict[str, object]] = report["steps"]  # type: ignore[assignment]
    print(f"set-up: {setup}; {report['mode']}, budget {budget_s:.0f}s", flush=True)
    for step in gpu_checks.STEPS:
        if only and only.lower() not in step.name.lower():
            continue
        left = budget_s - (time.monotonic() - started)
        result = gpu_checks.run_step(step, gpu=gpu, quick=quick, left_s=left, work=out / "work")
        steps.append(result)
        print(_line(result), flush=True)
        _write(out, report)
    report["total_s"] = round(time.monotonic() - started, 1)
    _write(out, report)
    shutil.rmtree(out / "work", ignore_errors=True)
    failed = [s["name"] for s in steps if s["status"] == "failed"]
    print(
        f"report: {out / 'gpu-check.json'}, table: {out / 'gpu-check.md'}; "
        f"{len(steps)} steps, failed: {failed or 'none'}, {report['total_s']}s"
    )
    return 1 if failed else 0


def _line(result: dict[str, object]) -> str:
    text = f"[{result['status']:>7}] {result['name']} ({result['seconds']}s)"
    if result.get("reason"):
        text += f": {result['reason']}"
    if result.get("summary"):
        text += f"\n          {result['summary']}"
    return text


def _write(out: Path, report: dict[str, object]) -> None:
    (out / "gpu-check.json").write_text(json.dumps(report, indent=1, default=str), "utf-8")
    (out / "gpu-check.md").write_text(markdown(report), "utf-8")


def markdown(report: Any) -> str:
    """The report as tables: every step's status, then the benchmark rows (docs/performance.md,
    "GPU")."""
    lines = [
        f"GPU check {report['started']} ({report['mode']})",
        "",
        "| step | status | s | result |",
        "| --- | --- | --- | --- |",
    ]
    for step in report["steps"]:
        text = step.get("summary") or step.get("reason") or ""
        lines.append(f"| {step['name']} | {step['status']} | {step['seconds']} | {text} |")
    forward = next((s for s in report["steps"] if s["name"].startswith("forward")), None)
    if forward and forward.get("data") and "error" not in forward["data"]:
        sizes = " / ".join(str(b) for b in next(iter(forward["data"].values()))["images_per_s"])
        lines += [
            "",
            f"| model | input | precision | images/s at batch {sizes} | batching gain |",
            "| --- | --- | --- | --- | --- |",
        ]
        for key, row in forward["data"].items():
            rates = " / ".join(str(v) for v in row["images_per_s"].values())
            gain = " / ".join(f"{v}×" for v in row["batching_gain"].values())
            lines.append(f"| {key} | {row['input']}² | {row['precision']} | {rates} | {gain} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="download the device machine's missing wheels")
    prep.add_argument("--wheels", type=Path, default=ROOT / "out" / "gpu-check-wheels")
    prep.add_argument(
        "--onnxruntime-gpu",
        action="store_true",
        help=f"also {ORT_GPU_WHEEL}, cut into parts under out/gpu-check-ort (one per call)",
    )
    go = sub.add_parser("run", help="set up if needed, then run every step")
    go.add_argument("--wheels", type=Path)
    go.add_argument("--out", type=Path, default=ROOT / "out" / "gpu-check")
    go.add_argument("--budget-s", type=float, default=480.0)
    go.add_argument(
        "--quick",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="small sizes (default: when there is no usable GPU)",
    )
    go.add_argument("--only", default="", help="run only the steps whose name contains this")
    go.add_argument("--setup-json", help=argparse.SUPPRESS)  # from the re-run after set-up
    args = parser.parse_args(argv)
    # albumentations (imported by transparent-background) asks PyPI for updates on import:
    # the device machine has no network.
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    if args.command == "prepare":
        prepare(args.wheels, args.onnxruntime_gpu)
        return 0
    if args.setup_json:
        setup = json.loads(args.setup_json)
    else:
        setup = set_up(args.wheels)
        if setup["status"] == "passed":  # re-run on top of what was installed
            env = dict(os.environ, PYTHONPATH=f"{SITE}{os.pathsep}{ROOT}")
            forwarded = list(argv if argv is not None else sys.argv[1:])
            command = [sys.executable, "-m", "tools.gpu_check", *forwarded]
            command += ["--setup-json", json.dumps(setup)]
            return subprocess.run(command, env=env, check=False).returncode
    return run(args.out, args.budget_s, setup, args.quick, args.only)


if __name__ == "__main__":
    sys.exit(main())
