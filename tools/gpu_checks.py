"""The steps of ``tools/gpu_check.py``: GPU tests and GPU benchmark rows, each one function.

Each step takes a :class:`Ctx` and returns ``(passed, data, summary)``; a step that needs a
GPU says so (``gpu_only``) and is skipped on a CPU with the reason. On a CPU (``quick``) the
others run at small sizes, so a dry run exercises the same code. Each step has an estimate of
its GPU time; one that no longer fits in what is left of the budget is skipped, not started.
InSPyReNet runs with random weights (no checkpoint can be fetched on the device machine).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
Outcome = tuple[bool, dict[str, Any], str]


class Skip(Exception):
    """Raised by a step that cannot run here; its message is the reason."""


@dataclass(frozen=True)
class Ctx:
    gpu: bool
    quick: bool
    work: Path

    @property
    def device(self) -> str:
        return "cuda" if self.gpu else "cpu"


@dataclass(frozen=True)
class Step:
    name: str
    kind: str  # "test" or "bench"
    run: Callable[[Ctx], Outcome]
    estimate_s: float  # on the GPU, set-up excluded
    gpu_only: str | None = None  # why a CPU cannot run it


def usable_gpu() -> bool:
    from cutq.worker.runtime.hardware import Platform

    return Platform.detect().has_gpu


def run_step(step: Step, *, gpu: bool, quick: bool, left_s: float, work: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"name": step.name, "kind": step.kind, "seconds": 0.0}
    if step.gpu_only and not gpu:
        from cutq.worker.runtime.hardware import Platform

        why = Platform.detect().problem() or "no CUDA device"
        return result | {"status": "skipped", "reason": f"needs a GPU ({step.gpu_only}); {why}"}
    if gpu and step.estimate_s > left_s:
        return result | {
            "status": "skipped",
            "reason": f"~{step.estimate_s:.0f}s > {left_s:.0f}s left",
        }
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        passed, data, summary = step.run(Ctx(gpu, quick, work))
        status = "passed" if passed else "failed"
    except Skip as why:
        result["seconds"] = round(time.perf_counter() - started, 1)
        return result | {"status": "skipped", "reason": str(why)}
    except Exception as error:  # a step's failure is a finding, not the end of the check
        status, data = "failed", {"error": f"{type(error).__name__}: {error}"}
        summary = data["error"]
        data["traceback"] = traceback.format_exc(limit=6)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result | {"status": status, "summary": summary, "data": data}


# --- helpers ------------------------------------------------------------------------------


def _model(name: str, mode: str = "base") -> Any:
    if name == "u2netp":
        from cutq.worker.models.u2netp import U2NetP

        return U2NetP()
    from cutq.worker.models.inspyrenet import InSPyReNet

    return InSPyReNet(None, mode=mode, random_init=True)  # type: ignore[arg-type]


def _runner(ctx: Ctx, name: str, mode: str = "base", precision: str = "auto") -> Any:
    from cutq.worker.runtime.inference import Runner

    runner = Runner(_model(name, mode), ctx.device, precision)
    runner.setup()
    return runner


def _models(ctx: Ctx) -> list[tuple[str, str]]:
    """(model, mode) pairs at production size on a GPU; the small ones on a CPU."""
    return [("u2netp", "-"), ("inspyrenet", "fast")] + (
        [] if ctx.quick else [("inspyrenet", "base")]
    )


def _gpu_facts() -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        return {}
    props = torch.cuda.get_device_properties(0)
    return {
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "memory_gib": round(props.total_memory / 2**30, 1),
        "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
    }


# --- tests --------------------------------------------------------------------------------


def environment(ctx: Ctx) -> Outcome:
    import torch

    from cutq.worker.runtime import torch_builds
    from cutq.worker.runtime.hardware import GpuStatus, Platform

    status = Platform.detect().gpu or GpuStatus(present=False, usable=False)
    base = torch.__version__.split("+")[0]
    row = torch_builds.find(base, torch.version.cuda or "")
    data = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        "driver": status.driver,
        "driver_cuda": status.driver_cuda,
        "gpu": _gpu_facts(),
        "gpu_problem": status.problem(),
        "known_good_build": row is not None,
        "image_build": vars(torch_builds.IMAGE_BUILD),
    }
    note = "" if row else f"; torch {base}+CUDA {torch.version.cuda} is not the image's pin"
    return True, data, f"torch {torch.__version__}, {data['gpu'] or 'no GPU'}{note}"


def warmup_real_shapes(ctx: Ctx) -> Outcome:
    """Warm-up at every batch size up to max_batch (8), auto precision; then a warmed shape
    vs a new one (no autotune stall: the new one should not be much slower)."""
    import numpy as np
    import torch

    from cutq.worker.runtime.inference import batch_shapes

    data: dict[str, Any] = {}
    for name, mode in _models(ctx):
        precision = "auto" if ctx.gpu else _model(name, mode).gpu_precision  # CPU autocast
        runner = _runner(ctx, name, mode, precision)
        sizes, images = (batch_shapes(2), ((64, 64),)) if ctx.quick else (batch_shapes(8), None)
        resize = "dynamic" if ctx.quick else "static"
        seconds = runner.warmup(resize, sizes, image_sizes=images)
        probe = np.zeros((64, 64, 3), np.uint8)
        photo = (64, 64) if ctx.quick else (480, 640)
        tensor = runner.model.preprocess(probe, runner.model.input_size(*photo, resize))
        timed = {}
        for label, batch in (("warmed", [tensor] * sizes[-1]), ("new_shape", [tensor[:, :-32]])):
            started = time.perf_counter()
            runner.run(batch)
            timed[label] = round(time.perf_counter() - started, 3)
        data[f"{name}/{mode}"] = {
            "precision": str(runner.dtype).removeprefix("torch."),
            "batch_sizes": sizes,
            "warmup_s": round(seconds, 2),
            "fp32_reruns": runner.fp32_reruns,
            **timed,
        }
        del runner
        if ctx.gpu:
            torch.cuda.empty_cache()
    ok = all(v["fp32_reruns"] == 0 for v in data.values())
    summary = ", ".join(f"{k} {v['precision']} {v['warmup_s']}s" for k, v in data.items())
    return ok, data, summary


def precision_agreement(ctx: Ctx) -> Outcome:
    """fp16 and bf16 masks against fp32 on the eval set and the peer photographs."""
    from cutq.worker.evaluation.dataset import generate
    from cutq.worker.evaluation.precision import compare
    from tools.precision_agreement import photographs

    count, photos = (3, 2) if ctx.quick else (40, 12)
    images = [s.image for s in generate(count)] + photographs(photos)
    rows = []
    models = [("u2netp", "-")] + ([] if ctx.quick else [("inspyrenet", "base")])
    for name, mode in models:
        chosen = images if name == "u2netp" else images[:8] + images[-4:]
        rows += compare(lambda n=name, m=mode: _model(n, m), chosen, device=ctx.device)
    data = {f"{r.model}/{r.precision}": vars(r) for r in rows}
    ok = all(r.not_finite == 0 for r in rows)
    summary = "; ".join(
        f"{r.model} {r.precision}: IoU ≥ {r.min_iou:.4f}, max {r.max_diff}/255" for r in rows
    )
    return ok, data, summary


def oom_split(ctx: Ctx) -> Outcome:
    """InSPyReNet base, batch 32, with the process capped to 6 GiB: the runner must split."""
    import torch

    counter = _Counter()
    logging.getLogger("cutq.worker.runtime.inference").addHandler(counter)
    total = torch.cuda.get_device_properties(0).total_memory
    runner = _runner(ctx, "inspyrenet", "base")
    tensor = torch.zeros(3, 1024, 1024)
    torch.cuda.set_per_process_memory_fraction(min(1.0, 6 * 2**30 / total))
    try:
        torch.cuda.reset_peak_memory_stats()
        prediction = runner.run([tensor] * 32)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    data = {"maps": len(prediction.maps), "splits": counter.count, "gpu": _gpu_facts()}
    return len(prediction.maps) == 32 and counter.count > 0, data, f"{counter.count} splits"


def nan_guard(ctx: Ctx) -> Outcome:
    """InSPyReNet with its attention left in fp16 (as before issue 26): the NaN maps must be
    computed again in fp32 and come back finite. Then, as shipped, no re-run at all."""
    import torch

    from cutq.worker.models import inspyrenet

    mode, side = ("fast", 64) if ctx.quick else ("base", 1024)
    original = inspyrenet.keep_attention_in_fp32
    inspyrenet.keep_attention_in_fp32 = lambda net: None  # type: ignore[assignment]
    try:
        unguarded = _runner(ctx, "inspyrenet", mode, "fp16")
    finally:
        inspyrenet.keep_attention_in_fp32 = original  # type: ignore[assignment]
    batch = [torch.randn(3, side, side)] * 2
    before = unguarded.run(batch)
    after = _runner(ctx, "inspyrenet", mode, "fp16").run(batch)
    data = {
        "unguarded_fp32_reruns": before.fp32_reruns,
        "unguarded_failed": len(before.failed),
        "shipped_fp32_reruns": after.fp32_reruns,
        "rerun_ms": round(before.fp32_rerun_ms, 1),
    }
    ok = before.fp32_reruns == 1 and not before.failed and after.fp32_reruns == 0
    return ok, data, f"fp16 attention: {before.fp32_reruns} re-run; fp32 attention: none"


def cuda_ep(ctx: Ctx) -> Outcome:
    """onnxruntime models on CUDA's execution provider (``tools/gpu_checks_onnx.py``)."""
    from tools import gpu_checks_onnx

    return gpu_checks_onnx.cuda_ep(ctx)


def published_graphs(ctx: Ctx) -> Outcome:
    """A 1024² fixed-batch graph, fp32 and fp16, on the CUDA EP (``tools/gpu_checks_onnx.py``)."""
    from tools import gpu_checks_onnx

    return gpu_checks_onnx.published_graphs(ctx)


# --- benchmark rows -----------------------------------------------------------------------


def forward_rates(ctx: Ctx) -> Outcome:
    """Bare forward images/s at batch 1/8/32 (auto precision) and the batching gain."""
    import torch

    from bench import harness

    data: dict[str, Any] = {}
    for name, mode in _models(ctx):
        runner = _runner(ctx, name, mode)
        side = 64 if ctx.quick else runner.model.input_size(480, 640, "static")[0]
        sizes = (1, 2) if ctx.quick else (1, 8, 32)
        tensors = [torch.rand(3, side, side)] * (2 if ctx.quick else 64)
        runner.warmup("dynamic" if ctx.quick else "static", sizes, image_sizes=((side, side),))
        rates = {b: round(harness.bare_rate(runner, tensors, b), 2) for b in sizes}
        data[f"{name}/{mode}"] = {
            "input": side,
            "precision": str(runner.dtype).removeprefix("torch."),
            "images_per_s": rates,
            "batching_gain": {b: round(rates[b] / rates[1], 2) for b in sizes[1:]},
        }
        del runner
        if ctx.gpu:
            torch.cuda.empty_cache()
    summary = "; ".join(f"{k}: {v['images_per_s']}" for k, v in data.items())
    return True, data, summary


def pipeline_ratio(ctx: Ctx) -> Outcome:
    """The whole pipeline (file:// in and out) ÷ the bare forward at the same batch size."""
    from bench import harness
    from cutq.worker.config import WorkerConfig

    data: dict[str, Any] = {}
    for name, mode in [("u2netp", "-")] + ([] if ctx.quick else [("inspyrenet", "fast")]):
        batch, count = (1, 6) if ctx.quick else (8, 96 if name == "u2netp" else 48)
        runner = _runner(ctx, name, mode)
        files = harness.make_images(ctx.work / f"in-{name}", count, 640, 480)
        tensors = harness.tensors_for(runner, files, "static")
        runner.warmup("static", sorted({1, batch}))
        bare = harness.bare_rate(runner, tensors, batch)
        config = WorkerConfig(device=ctx.device, max_batch=batch, warmup=False, max_wait_ms=20)
        result = harness.run_local(runner, config, files, ctx.work / f"out-{name}")
        rate = result.images_per_s
        data[f"{name}/{mode}"] = {
            "batch": batch,
            "bare": round(bare, 2),
            "pipeline": round(rate, 2),
            "ratio": round(rate / bare, 3),
            "statuses": dict(result.statuses),
        }
    summary = "; ".join(f"{k}: {v['ratio']}" for k, v in data.items())
    ok = all(set(v["statuses"]) == {"completed"} for v in data.values())
    return ok, data, summary


def start_to_ready(ctx: Ctx) -> Outcome:
    """A fresh process: start → the service's 'ready' (load, warm-up at real shapes)."""
    code = (
        "import logging,time,sys;t=time.monotonic();logging.basicConfig(level=logging.INFO);"
        "from cutq.worker.service import Service;from cutq.worker.config import WorkerConfig;"
        "from cutq.worker.runtime.hardware import Platform;"
        f"s=Service.warmed_up(WorkerConfig(device='{ctx.device}',"
        f"max_batch={2 if ctx.quick else 8},platform=Platform.detect()));"
        "print('READY',time.monotonic()-t,s.ready_s,s.runner.warmup_s,flush=True);"
        "s.close(grace_s=1)"
    )
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - started
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("READY")), None)
    if line is None:
        return False, {"stderr": done.stderr[-2000:]}, "no ready line"
    _, in_process, ready, warm = line.split()
    data = {
        "model": "u2netp",
        "process_start_to_ready_s": round(wall, 2),
        "import_to_ready_s": round(float(in_process), 2),
        "ready_s": round(float(ready), 2),
        "warmup_s": round(float(warm), 2),
    }
    return True, data, f"u2netp start → ready {wall:.1f}s (warm-up {float(warm):.1f}s)"


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += "splitting" in record.getMessage()


STEPS = (
    Step("environment", "test", environment, 5),
    Step("warm-up at real shapes", "test", warmup_real_shapes, 60),
    Step("fp16/bf16 vs fp32 masks", "test", precision_agreement, 60),
    Step("NaN guard (fp32 re-run)", "test", nan_guard, 30),
    Step("OOM split", "test", oom_split, 40, gpu_only="caps CUDA memory"),
    Step("onnxruntime's CUDA EP: u2netp and a custom graph", "test", cuda_ep, 30),
    Step("custom graph 1024² batch 1, fp32/fp16, CUDA EP", "bench", published_graphs, 40),
    Step("forward batch 1/8/32", "bench", forward_rates, 90),
    Step("pipeline ÷ bare forward", "bench", pipeline_ratio, 60),
    Step("start → ready", "bench", start_to_ready, 40),
)
