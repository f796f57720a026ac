"""The GPU check's onnxruntime steps: u2netp's shipped graphs and a custom graph built here,
served from a model spec, on CUDA's execution provider through the worker's own placement,
each against the same model on the CPU's provider (issue 25, "bring your own ONNX model");
and graphs as they are published (issue 35): fixed at batch 1 × 1024², in float32 and
float16, with throughput through I/O binding and through a plain ``run``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tools.gpu_checks import Ctx, Outcome, Skip


def cuda_ep(ctx: Ctx) -> Outcome:
    """onnxruntime models on CUDA's execution provider, through the worker's own placement
    (``CUTQ_DEVICE=cuda``: required, so a silent CPU fallback fails the step): u2netp's
    shipped graphs (``CUTQ_ENGINE=onnxruntime``) and a custom graph built here and served
    from a model spec, each against the same model on the CPU's provider. A dry run (no GPU)
    runs the same code with the CPU on both sides."""
    import numpy as np
    import onnxruntime as ort

    from cutq.worker.config import WorkerConfig
    from cutq.worker.models import create_model, onnx_engine
    from cutq.worker.runtime.hardware import Platform
    from cutq.worker.runtime.inference import Runner

    if ctx.gpu:  # the image's torch (CUDA 13) loads the CUDA and cuDNN libraries onnxruntime
        import torch  # noqa: F401  # -gpu 1.31 (CUDA 13) needs, as its preload_dlls says
    providers = ort.get_available_providers()
    if ctx.gpu and onnx_engine.CUDA_PROVIDER not in providers:
        raise Skip(
            f"onnxruntime {ort.__version__} here has no CUDA EP ({', '.join(providers)}): "
            "carry onnxruntime-gpu (`python -m tools.gpu_check prepare --onnxruntime-gpu`)"
        )
    platform = Platform.detect()
    spec = _custom_spec(ctx.work)
    cases = {
        "u2netp": dict(engine="onnxruntime", max_batch=8),
        "custom spec": dict(model_spec=str(spec), max_batch=8),
    }
    rng = np.random.default_rng(3)
    data: dict[str, Any] = {"onnxruntime": ort.__version__, "providers": providers}
    ok = True
    for label, settings in cases.items():
        runners = {  # two models, also in a dry run (then both on the CPU)
            role: Runner(
                create_model(WorkerConfig(device=where, platform=platform, **settings)), where
            )
            for role, where in (("device", ctx.device), ("cpu", "cpu"))
        }
        for runner in runners.values():
            runner.setup()
        side = 320 if label == "u2netp" else 256
        row: dict[str, Any] = {"device": str(runners["device"].device)}
        for batch in (1, 8):  # u2netp: the fixed graph, then the general one
            arrays = list(rng.random((batch, 3, side, side), dtype=np.float32))
            maps = {}
            for where, runner in runners.items():
                runner.run(arrays)  # warm: CUDA's first run picks its kernels
                started = time.perf_counter()
                maps[where] = np.stack(runner.run(arrays).maps)
                row[f"{where}_batch{batch}_ms"] = round((time.perf_counter() - started) * 1e3, 1)
            row[f"max_abs_diff_batch{batch}"] = float(np.abs(maps["device"] - maps["cpu"]).max())
        on_cuda = row["device"].startswith("cuda") or not ctx.gpu
        close = all(row[f"max_abs_diff_batch{b}"] < 1e-3 for b in (1, 8))
        ok = ok and on_cuda and close
        data[label] = row
    rows = {k: v for k, v in data.items() if isinstance(v, dict)}
    summary = "; ".join(
        f"{k} on {v['device']}: max diff "
        f"{max(v['max_abs_diff_batch1'], v['max_abs_diff_batch8']):.1e}"
        for k, v in rows.items()
    )
    return ok, data, summary


def _custom_spec(work: Path) -> Path:
    """A small saliency graph of the kind users bring (convolutions, a resize back to the
    input size, logits) and its model spec, written into ``work``."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    weights = {
        "w1": rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32),
        "w2": rng.normal(0, 0.3, (8, 8, 3, 3)).astype(np.float32),
        "w3": rng.normal(0, 0.3, (1, 8, 1, 1)).astype(np.float32),
        "scales": np.asarray([1, 1, 2, 2], np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["image", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3"], ["c3"]),
        helper.make_node("Resize", ["c3", "", "scales"], ["logits"], mode="linear"),
    ]
    graph = helper.make_graph(
        nodes,
        "custom-saliency",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, 256, 256])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 1, 256, 256])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    work.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(work / "custom.onnx"))
    spec = work / "custom.json"
    spec.write_text(
        json.dumps(
            {
                "name": "gpucheck",
                "file": "custom.onnx",
                "mean": [0.485, 0.456, 0.406],
                "std": [0.229, 0.224, 0.225],
                "output": "logits",
                "sigmoid": True,
            }
        )
    )
    return spec


#: The published shape: BiRefNet's and most GPU exports' batch 1 × 3 × 1024 × 1024.
SIDE = 1024


def published_graphs(ctx: Ctx) -> Outcome:
    """A 1024² graph fixed at batch 1, float32 and float16 (weights, activations, input and
    output), served from a model spec on ``ctx.device`` (CUDA's provider, required) and on
    the CPU: agreement, and the device's images/s through I/O binding against a plain
    ``run`` (the worker binds on CUDA). A dry run does the same on the CPU."""
    import numpy as np
    import onnxruntime as ort

    from cutq.worker.config import WorkerConfig
    from cutq.worker.models import create_model, onnx_engine
    from cutq.worker.runtime.hardware import Platform
    from cutq.worker.runtime.inference import Runner

    if ctx.gpu and onnx_engine.CUDA_PROVIDER not in ort.get_available_providers():
        raise Skip(
            f"onnxruntime {ort.__version__} here has no CUDA EP: carry onnxruntime-gpu "
            "(`python -m tools.gpu_check prepare --onnxruntime-gpu`)"
        )
    platform = Platform.detect()
    rng = np.random.default_rng(11)
    images = [rng.random((3, SIDE, SIDE), dtype=np.float32) for _ in range(2 if ctx.quick else 4)]
    rounds = 1 if ctx.quick else 5
    data: dict[str, Any] = {"side": SIDE, "images": len(images), "rounds": rounds}
    ok = True
    for precision, tolerance in (("fp32", 1e-3), ("fp16", 2e-2)):
        spec = _published_spec(ctx.work, precision)
        runners = {
            where: Runner(create_model(WorkerConfig(model_spec=str(spec), device=where,
                                                    platform=platform)), where)
            for where in (ctx.device, "cpu")
        }  # fmt: skip
        for runner in runners.values():
            runner.setup()
        device = runners[ctx.device]
        maps = {where: np.stack(r.predict(images)) for where, r in runners.items()}
        row: dict[str, Any] = {
            "device": str(device.device),
            "max_abs_diff_vs_cpu": float(np.abs(maps[ctx.device] - maps["cpu"]).max()),
        }
        graph = device.model._graph  # type: ignore[attr-defined]
        for binding in (True, False):
            graph.binding = binding
            device.predict(images[:1])  # warm: CUDA's first run picks its kernels
            started = time.perf_counter()
            for _ in range(rounds):
                device.predict(images)
            seconds = time.perf_counter() - started
            row["binding" if binding else "run"] = round(len(images) * rounds / seconds, 2)
        row["binding_gain"] = round(row["binding"] / row["run"], 3)
        graph.binding = str(device.device).startswith("cuda")
        on_device = row["device"].startswith("cuda") or not ctx.gpu
        ok = ok and on_device and row["max_abs_diff_vs_cpu"] <= tolerance
        data[precision] = row
    summary = "; ".join(
        f"{p} on {data[p]['device']}: {data[p]['binding']} images/s bound, "
        f"{data[p]['run']} plain ({data[p]['binding_gain']}×), max diff vs CPU "
        f"{data[p]['max_abs_diff_vs_cpu']:.1e}"
        for p in ("fp32", "fp16")
    )
    return ok, data, summary


def _published_spec(work: Path, precision: str) -> Path:
    """A saliency graph shaped like a published export (batch 1 × 3 × 1024², one map out)
    with its spec (licence recorded), in float32 or float16 throughout."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    dtype, kind = (
        (np.float16, TensorProto.FLOAT16)
        if precision == "fp16"
        else (np.float32, TensorProto.FLOAT)
    )
    rng = np.random.default_rng(7)
    weights = {
        "w1": rng.normal(0, 0.3, (16, 3, 3, 3)).astype(dtype),
        "w2": rng.normal(0, 0.1, (16, 16, 3, 3)).astype(dtype),
        "w3": rng.normal(0, 0.3, (1, 16, 1, 1)).astype(dtype),
        "scales": np.asarray([1, 1, 2, 2], np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["image", "w1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3"], ["c3"]),
        helper.make_node("Resize", ["c3", "", "scales"], ["logits"], mode="linear"),
    ]
    graph = helper.make_graph(
        nodes,
        f"published-{precision}",
        [helper.make_tensor_value_info("image", kind, [1, 3, SIDE, SIDE])],
        [helper.make_tensor_value_info("logits", kind, [1, 1, SIDE, SIDE])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    work.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(work / f"published-{precision}.onnx"))
    spec = work / f"published-{precision}.json"
    spec.write_text(
        json.dumps(
            {
                "name": f"published-{precision}",
                "file": f"published-{precision}.onnx",
                "mean": [0.485, 0.456, 0.406],
                "std": [0.229, 0.224, 0.225],
                "sigmoid": True,
                "license": "MIT",
                "commercial_use": True,
            }
        )
    )
    return spec
