"""Every install the README lists, each in a fresh virtualenv with only its own extra, doing
the job it exists for. CI runs this (``.ci/run``) beside the README's two commands, because
``make test`` installs the dev extra, which brings everything, and so hides a missing one.

Profiles (``--only NAME`` runs some of them):

* ``demo``: the README's first command, ``make demo``, into a fresh venv: 8 RGBA results and
  a summary, and no torch or ``nvidia-*`` package in that venv;
* ``light``: ``pip install cutq``: no numpy, Pillow, torch or onnxruntime; ``cutq submit``
  publishes the samples' jobs to Google's Pub/Sub emulator and they arrive;
* ``cpu``: ``cutq[cpu]``: ``cutq run samples`` writes 8 results, ``cutq worker --help`` and
  ``cutq serve --help`` start; no torch, no onnx;
* ``gpu``: the pinned torch, then ``cutq[gpu]`` (no GPU here): ``cutq worker --help``, and
  ``cutq run`` on the torch engine writes 8 results;
* ``gpu-onnx``: ``cutq[gpu-onnx]`` (onnxruntime-gpu, no torch, no CPU onnxruntime; no GPU
  here): ``cutq run`` on its CPU provider writes 8 results, and ``--device cuda`` stops at
  start naming CUDA's provider instead of running on the CPU;
* ``stack``: ``cutq[stack]``, what ``make stack`` installs: no torch, no CUDA libraries, no
  dev extra; the stack's create-only local GCS starts and ``tools.stack`` loads;
* ``heic``: ``cutq[cpu,heic]``: ``cutq run`` turns a HEIC that pillow-heif writes into a result;
* ``function``: ``cutq[function]``: functions-framework loads the upload trigger;
* ``docker``: the Dockerfile's build steps (``infra/docker/build-steps.sh``) in a fresh venv,
  torch from the package index instead of the CUDA one (only PyPI is reachable here).

Standard library only: it runs with the machine's ``python3`` before any venv exists. Prints
one line per check and a JSON summary (seconds and venv size per profile); exits 1 when a
check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.support.emulators import GoogleEmulator

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
#: The torch the README pins for the GPU worker and the image (x86-64; aarch64 in the Makefile).
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]
CUDA_DISTS = ("torch", "nvidia-", "triton", "cuda-")


class CheckFailed(RuntimeError):
    """A profile did not do its job."""


def fresh_environment(work: Path) -> dict[str, str]:
    """This process's environment with an empty cache home (``XDG_CACHE_HOME``): nothing an
    earlier run left in ``~/.cache/cutq`` (an exported graph, a checkpoint) can make a profile
    pass. pip keeps its own cache (it is only a download cache)."""
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.setdefault("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))
    env["XDG_CACHE_HOME"] = str(work / "empty-cache-home")
    env.pop("PYTHONPATH", None)
    return env


class Venv:
    """A fresh virtualenv under ``folder`` and the commands run in it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        if not (folder / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        self.env = dict(fresh_environment(folder.parent), VIRTUAL_ENV=str(folder))
        self.env["PATH"] = f"{folder / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"

    def run(self, *command: str | Path, cwd: Path | None = None, **env: str) -> str:
        done = subprocess.run(
            [str(part) for part in command],
            cwd=cwd or self.folder,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise CheckFailed(
                f"{' '.join(map(str, command))} exited {done.returncode}:\n"
                f"{done.stdout[-1500:]}{done.stderr[-3000:]}"
            )
        return done.stdout + done.stderr

    def pip(self, *arguments: str) -> None:
        self.run("pip", "install", "-q", *arguments, cwd=ROOT)

    def python(self, code: str, **env: str) -> str:
        return self.run("python", "-c", code, cwd=self.folder, **env)

    def distributions(self) -> list[str]:
        code = (
            "import importlib.metadata as m\n"
            "print('\\n'.join(d.metadata['Name'] for d in m.distributions()))"
        )
        return [name.lower() for name in self.python(code).split()]

    def size_mb(self) -> float:
        total = sum(f.stat().st_size for f in self.folder.rglob("*") if f.is_file())
        return round(total / 1e6, 1)


def refuse(venv: Venv, prefixes: Sequence[str], names: Sequence[str] = ()) -> None:
    """None of the venv's distributions starts with one of ``prefixes`` or is in ``names``."""
    found = [d for d in venv.distributions() if d.startswith(tuple(prefixes)) or d in names]
    if found:
        raise CheckFailed(f"{venv.folder.name} holds {found}, which it must not")


def results_in(out: Path, count: int = 8) -> None:
    """``count`` RGBA PNG results under ``out/dt=…/`` (read by their PNG header)."""
    pngs = sorted(out.glob("dt=*/*.png"))
    if len(pngs) != count:
        raise CheckFailed(f"{out}: {len(pngs)} results, expected {count}")
    for png in pngs:
        header = png.read_bytes()[:26]
        if header[:8] != b"\x89PNG\r\n\x1a\n" or header[25] != 6:  # colour type 6: RGBA
            raise CheckFailed(f"{png} is not an RGBA PNG")


def check_demo(work: Path) -> Venv:
    venv_dir, out = work / "demo-venv", work / "demo-out"
    done = subprocess.run(
        ["make", "demo", f"VENV={venv_dir}", f"OUT={out}"],
        cwd=ROOT,
        env=fresh_environment(work),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise CheckFailed(f"make demo exited {done.returncode}:\n{done.stderr[-3000:]}")
    if "completed" not in done.stdout + done.stderr:
        raise CheckFailed(f"make demo printed no summary:\n{done.stdout[-2000:]}")
    results_in(out)
    venv = Venv(venv_dir)
    refuse(venv, CUDA_DISTS)
    return venv


def check_light(work: Path) -> Venv:
    venv = Venv(work / "light-venv")
    venv.pip(".")
    refuse(venv, ("numpy", "pillow", "torch", "onnxruntime", "nvidia-"))
    venv.run("cutq", "--help")
    venv.run("cutq", "submit", "--help")
    with GoogleEmulator() as emulator:
        pubsub = {"PUBSUB_EMULATOR_HOST": emulator.host}
        topic, sub = "projects/local/topics/jobs", "projects/local/subscriptions/jobs"
        venv.python(
            "from google.cloud import pubsub_v1\n"
            f"pubsub_v1.PublisherClient().create_topic(name={topic!r})\n"
            f"pubsub_v1.SubscriberClient().create_subscription(name={sub!r}, topic={topic!r})\n",
            **pubsub,
        )
        out = (work / "light-out").as_uri()
        venv.run(
            "cutq", "submit", SAMPLES.as_uri(), "--topic", topic, "--output", out,
            "--no-progress", **pubsub,
        )  # fmt: skip
        got = venv.python(
            "import json\n"
            "from google.cloud import pubsub_v1\n"
            "client = pubsub_v1.SubscriberClient()\n"
            "jobs = []\n"
            "for _ in range(20):\n"
            f"    reply = client.pull(subscription={sub!r}, max_messages=50, timeout=10)\n"
            "    jobs += [json.loads(m.message.data) for m in reply.received_messages]\n"
            "    if len(jobs) >= 8: break\n"
            "print(len(jobs), sorted({j['input'].split('://')[0] for j in jobs}))\n",
            **pubsub,
        )
    if got.split()[0] != "8" or "'file'" not in got:
        raise CheckFailed(f"the emulator received {got.strip()!r}, expected 8 file:// jobs")
    return venv


def check_cpu(work: Path) -> Venv:
    venv = Venv(work / "cpu-venv")
    venv.pip(".[cpu]")
    refuse(venv, CUDA_DISTS, names=("onnx",))
    venv.run("cutq", "run", SAMPLES, "--out", work / "cpu-out", "--no-progress")
    results_in(work / "cpu-out")
    venv.run("cutq", "worker", "--help")
    venv.run("cutq", "serve", "--help")
    return venv


def check_gpu(work: Path) -> Venv:
    venv = Venv(work / "gpu-venv")
    venv.pip(*TORCH)
    venv.pip(".[gpu]")
    venv.run("cutq", "worker", "--help")
    out = work / "gpu-out"
    venv.run("cutq", "run", SAMPLES, "--out", out, "--no-progress", CUTQ_ENGINE="torch")
    results_in(out)
    return venv


def check_gpu_onnx(work: Path) -> Venv:
    """``cutq[gpu-onnx]``: onnxruntime-gpu and its CUDA libraries instead of the CPU wheel, no
    torch. The wheel installed is the pin of ``worker/runtime/onnx_builds.py`` (a CUDA 12 build)
    with
    CUDA 12's nvidia-*-cu12 libraries and no CUDA 13 ones. With no GPU here, ``auto`` runs
    u2netp on its CPU provider; ``--device cuda`` (its CUDA provider listed, but no GPU to
    start it on: onnxruntime puts the session on the CPU with only a log line) must stop at
    start, never run on the CPU."""
    venv = Venv(work / "gpu-onnx-venv")
    venv.pip(".[gpu-onnx]")
    refuse(venv, ("torch",), names=("onnxruntime",))
    built = venv.python(
        "import importlib.metadata as m\n"
        "from onnxruntime.capi import build_and_package_info as b\n"
        "from cutq.worker.runtime.onnx_builds import IMAGE_BUILD as pin\n"
        "print(m.version('onnxruntime-gpu'), b.cuda_version, pin.version, pin.cuda)\n"
    ).split()
    if built[:2] != built[2:]:
        raise CheckFailed(
            f"onnxruntime-gpu {built[0]} (CUDA {built[1]}) is not the pin {built[2:]}"
        )
    dists = venv.distributions()
    if not any(d.startswith("nvidia-cuda-runtime-cu12") for d in dists) or any(
        d.startswith("nvidia-") and "cu13" in d for d in dists
    ):
        raise CheckFailed(f"gpu-onnx's CUDA libraries are not CUDA 12's: {sorted(dists)}")
    out = work / "gpu-onnx-out"
    venv.run("cutq", "run", SAMPLES, "--out", out, "--no-progress", CUTQ_ENGINE="onnxruntime")
    results_in(out)
    try:
        venv.run(
            "cutq", "run", SAMPLES, "--out", work / "gpu-onnx-cuda", "--no-progress",
            "--device", "cuda", CUTQ_ENGINE="onnxruntime",
        )  # fmt: skip
    except CheckFailed as stopped:
        if "could not start its CUDAExecutionProvider" not in str(stopped):  # onnx_engine's
            message = f"--device cuda stopped, but not over the provider:\n{stopped}"
            raise CheckFailed(message) from None
    else:
        raise CheckFailed("--device cuda ran without a GPU: onnxruntime fell back to the CPU")
    return venv


def check_stack(work: Path) -> Venv:
    venv = Venv(work / "stack-venv")
    venv.pip(".[stack]")
    refuse(venv, CUDA_DISTS, names=("pytest", "onnx", "scipy", "matplotlib"))
    venv.run("python", "-m", "tools.stack", "--help", cwd=ROOT)
    code = "from tests.support.servers import local_gcs_server; local_gcs_server('127.0.0.1', 0)"
    venv.run("python", "-c", code, cwd=ROOT)
    return venv


def check_heic(work: Path) -> Venv:
    venv = Venv(work / "heic-venv")
    venv.pip(".[cpu,heic]")
    folder = work / "heic-in"
    folder.mkdir(exist_ok=True)
    venv.python(
        "import pillow_heif\n"
        "from PIL import Image\n"
        "image = Image.new('RGB', (96, 64), (40, 160, 60))\n"
        "image.paste((220, 30, 40), (28, 12, 68, 52))\n"
        f"pillow_heif.from_pillow(image).save({str(folder / 'photo.heic')!r}, quality=90)\n"
    )
    venv.run("cutq", "run", folder, "--out", work / "heic-out", "--no-progress")
    if len(list((work / "heic-out").glob("dt=*/*.png"))) != 1:
        raise CheckFailed("cutq run wrote no result for the HEIC")
    return venv


def check_function(work: Path) -> Venv:
    venv = Venv(work / "function-venv")
    venv.pip(".[function]")
    refuse(venv, ("torch", "numpy", "pillow", "nvidia-"))
    (work / "function-src").mkdir(exist_ok=True)
    main = work / "function-src" / "main.py"
    main.write_text("from cutq.submitter.function import on_upload  # noqa: F401\n")
    venv.python(
        "import functions_framework\n"
        f"app = functions_framework.create_app(target='on_upload', source={str(main)!r})\n"
        "assert app is not None\n",
        CUTQ_JOBS_TOPIC="projects/local/topics/jobs",
    )
    return venv


def check_docker(work: Path) -> Venv:
    """The Dockerfile's RUN steps, in its order, from the same script."""
    venv = Venv(work / "docker-venv")
    steps = ROOT / "infra" / "docker" / "build-steps.sh"
    torch, vision = (pin.split("==")[1] for pin in TORCH)
    build_args = {"TORCH_VERSION": torch, "TORCHVISION_VERSION": vision, "TORCH_INDEX_URL": ""}
    venv.run("bash", steps, "torch", **build_args)
    deps = work / "docker-deps"  # the deps stage sees pyproject.toml and nothing else
    deps.mkdir(exist_ok=True)
    shutil.copy(ROOT / "pyproject.toml", deps)
    venv.run("bash", steps, "deps", cwd=deps)
    models = work / "docker-models"  # no MODEL_URL: nothing baked (tests/infra/test_bake.py)
    venv.run("bash", steps, "model", MODEL_URL="", MODEL_DIR=str(models))
    venv.run("bash", steps, "warm", NUMBA_CACHE_DIR=str(work / "numba-cache"))
    app = work / "docker-app"  # the runtime stage copies these
    shutil.rmtree(app, ignore_errors=True)
    app.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, app / name)
    for name in ("core", "cli", "submitter", "worker"):
        shutil.copytree(ROOT / name, app / name, ignore=shutil.ignore_patterns("__pycache__"))
    venv.run("bash", steps, "app", cwd=app, MODEL_DIR=str(models))
    venv.run("cutq", "worker", "--help")
    return venv


PROFILES: dict[str, Callable[[Path], Venv]] = {
    "demo": check_demo,
    "light": check_light,
    "cpu": check_cpu,
    "gpu": check_gpu,
    "gpu-onnx": check_gpu_onnx,
    "stack": check_stack,
    "heic": check_heic,
    "function": check_function,
    "docker": check_docker,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", action="append", choices=sorted(PROFILES), help="repeatable")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="cutq-installs-"))
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, dict[str, object]] = {}
    for name in args.only or list(PROFILES):
        started = time.monotonic()
        try:
            venv = PROFILES[name](work)
        except (CheckFailed, OSError, subprocess.SubprocessError, RuntimeError) as error:
            report[name] = {"ok": False, "seconds": round(time.monotonic() - started, 1)}
            print(f"install profile {name}: FAILED\n{error}", flush=True)
        else:
            seconds = round(time.monotonic() - started, 1)
            report[name] = {"ok": True, "seconds": seconds, "venv_mb": venv.size_mb()}
            print(f"install profile {name}: ok in {seconds:.0f} s ({report[name]['venv_mb']} MB)")
        finally:  # GBs for the torch ones, passed or not: the next profile needs the disk
            shutil.rmtree(work / f"{name}-venv", ignore_errors=True)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0 if all(entry["ok"] for entry in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
