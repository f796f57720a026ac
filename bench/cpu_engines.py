"""CPU engine candidates for u2netp, side by side in one run: speed and masks against fp32.

Every candidate runs the same fixed 1×320² graph cutq serves on a CPU (exported from the
bundled weights into the cache on first use), the way the worker runs it under a backlog: as
many streams as cores, one model thread each, and also as one forward on every core at once.
Rounds interleave the candidates, so a shared machine slows them alike; the figure to read is
each candidate's ratio to onnxruntime's default (the baseline row).

Candidates: onnxruntime (the baseline), OpenVINO's runtime (the ``openvino`` wheel) on the
same fp32 graph, an int8 graph (static QDQ, convolutions only, calibrated on evaluation
images of another seed than the ones scored) in onnxruntime and in OpenVINO. For each, the
masks of evaluation and peer photographs (upsampled to the image and cut at 0.5, as a job's
are) are compared with the fp32 baseline's: the minimum IoU is what the bar (≥ 0.99) reads.
PNG encoding of the same photos' cutouts is timed beside it (Pillow at cutq's level 1, and
OpenCV's encoder at the same level when it is installed), with the bytes written.

    python -m bench.cpu_engines                         # 24 forwards × 3 rounds per candidate
    python -m bench.cpu_engines --photos DIR --rounds 5 # score masks on DIR's photos too
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cutq.worker.models import onnx_engine
from cutq.worker.models.u2netp_onnx import FIXED_SHAPE, U2NetPOnnx
from cutq.worker.models.u2netp_spec import preprocess_array
from cutq.worker.runtime.inference import mask_from_array

SIDE = FIXED_SHAPE[2]
Forward = Callable[[np.ndarray], np.ndarray]


def photos(folder: Path | None, eval_count: int, seed: int) -> Iterator[tuple[str, np.ndarray]]:
    """Evaluation images of ``seed`` (``cutq eval``'s set), then the photographs in ``folder``."""
    from cutq.worker.evaluation.dataset import generate

    for sample in generate(eval_count, seed):
        yield f"eval-{seed}/{sample.name}", sample.image
    for path in sorted(folder.iterdir()) if folder else []:
        yield path.name, np.asarray(Image.open(path).convert("RGB"))


def quantize(
    fp32: Path,
    target: Path,
    calibration: list[np.ndarray],
    exclude: tuple[str, ...] = (),
    method: str = "MinMax",
) -> Path:
    """Static int8 QDQ of the convolutions (per channel) but those named in ``exclude``,
    calibrated on ``calibration`` with onnxruntime's ``method`` (MinMax, Percentile, Entropy)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.items = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self.items, None)
            return None if item is None else {onnx_engine.INPUT_NAME: item[None]}

    prepared = target.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared),
        str(target),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["Conv"],
        nodes_to_exclude=list(exclude),
        calibrate_method=CalibrationMethod[method],
    )
    return target


def ort_streams(path: Path, streams: int, threads: int) -> list[Forward]:
    sessions = [onnx_engine.load_session(path, threads) for _ in range(streams)]
    return [lambda x, s=s: onnx_engine.run(s, x) for s in sessions]


def openvino_streams(
    path: Path, streams: int, threads: int, precision: str = "f32"
) -> list[Forward]:
    """One compiled model, ``streams`` streams of ``threads`` each, an infer request per stream;
    ``precision`` "bf16" lets OpenVINO run in bfloat16 on CPUs with AVX-512 BF16."""
    import openvino as ov

    core = ov.Core()
    config = {
        "PERFORMANCE_HINT": "THROUGHPUT" if streams > 1 else "LATENCY",
        "NUM_STREAMS": str(streams),
        "INFERENCE_NUM_THREADS": str(streams * threads),
        "INFERENCE_PRECISION_HINT": precision,
    }
    compiled = core.compile_model(str(path), "CPU", config)
    requests = [compiled.create_infer_request() for _ in range(streams)]

    def forward(request: Any, x: np.ndarray) -> np.ndarray:
        return np.asarray(request.infer({0: x})[compiled.output(0)])

    return [lambda x, r=r: forward(r, x) for r in requests]


def rate(streams: list[Forward], image: np.ndarray, forwards: int) -> float:
    """Images/s with one thread per stream, ``forwards`` images in all."""
    each = max(1, forwards // len(streams))

    def stream(forward: Forward) -> None:
        for _ in range(each):
            forward(image)

    started = time.perf_counter()
    with ThreadPoolExecutor(len(streams)) as pool:
        list(pool.map(stream, streams))
    return each * len(streams) / (time.perf_counter() - started)


def masks(forward: Forward, images: list[tuple[str, np.ndarray]]) -> list[np.ndarray]:
    out = []
    for _, image in images:
        saliency = forward(preprocess_array(image, (SIDE, SIDE))[None])[0, 0]
        out.append(mask_from_array(saliency, image.shape[0], image.shape[1]) >= 128)
    return out


def iou_floor(ours: list[np.ndarray], base: list[np.ndarray], names: list[str]) -> dict:
    scores = []
    for a, b in zip(ours, base, strict=True):
        union = np.logical_or(a, b).sum()
        scores.append(1.0 if union == 0 else float(np.logical_and(a, b).sum() / union))
    worst = int(np.argmin(scores))
    return {
        "min": round(scores[worst], 4),
        "min_at": names[worst],
        "mean": round(float(np.mean(scores)), 4),
        "below_0.99": sum(s < 0.99 for s in scores),
    }


def png_encoders(images: list[tuple[str, np.ndarray]], rounds: int) -> dict[str, Any]:
    """Cutout-sized RGBA PNGs at zlib level 1: Pillow (cutq's) beside OpenCV when present."""
    rgba = [np.dstack([im, np.full(im.shape[:2], 200, np.uint8)]) for _, im in images]

    def pillow(array: np.ndarray) -> int:
        buffer = io.BytesIO()
        Image.fromarray(array, "RGBA").save(buffer, format="PNG", compress_level=1)
        return buffer.tell()

    def pillow_rle(array: np.ndarray) -> int:  # zlib's run-length strategy, same level
        buffer = io.BytesIO()
        Image.fromarray(array, "RGBA").save(
            buffer, format="PNG", compress_level=1, compress_type=zlib.Z_RLE
        )
        return buffer.tell()

    encoders: dict[str, Callable[[np.ndarray], int]] = {
        "pillow level 1 (cutq now)": pillow,
        "pillow level 1, Z_RLE": pillow_rle,
    }
    try:
        import cv2

        def opencv(array: np.ndarray) -> int:
            _, data = cv2.imencode(
                ".png", array[:, :, [2, 1, 0, 3]], [cv2.IMWRITE_PNG_COMPRESSION, 1]
            )
            return len(data)

        encoders["opencv level 1"] = opencv
    except ImportError:
        pass
    times: dict[str, list[float]] = {name: [] for name in encoders}
    sizes: dict[str, int] = {}
    for _ in range(rounds):
        for name, encode in encoders.items():
            started = time.perf_counter()
            sizes[name] = sum(encode(array) for array in rgba)
            times[name].append((time.perf_counter() - started) * 1000 / len(rgba))
    return {
        name: {"ms_per_image": round(statistics.median(times[name]), 2), "bytes": sizes[name]}
        for name in encoders
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--forwards", type=int, default=24, help="images per candidate and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--eval-images", type=int, default=40, help="evaluation images scored")
    parser.add_argument("--photos", type=Path, help="a folder of photographs scored too")
    parser.add_argument("--cache-dir", help="export cache (default ~/.cache/cutq/onnx)")
    args = parser.parse_args(argv)
    model = U2NetPOnnx(cache_dir=args.cache_dir)
    model.setup("cpu")
    cores = onnx_engine.cpu_count()
    scratch = Path(tempfile.mkdtemp(prefix="cutq-engines-"))
    calibration = [preprocess_array(s[1], (SIDE, SIDE)) for s in photos(None, 24, seed=1)]
    int8 = quantize(model.fixed_path, scratch / "u2netp-int8-qdq.onnx", calibration)

    candidates: dict[str, Callable[[], list[Forward]]] = {
        f"onnxruntime fp32, {cores} streams × 1 thread (baseline)": lambda: ort_streams(
            model.fixed_path, cores, 1
        ),
        f"onnxruntime fp32, 1 × {cores} threads": lambda: ort_streams(model.fixed_path, 1, cores),
        f"onnxruntime int8 QDQ, {cores} streams": lambda: ort_streams(int8, cores, 1),
    }
    try:
        import openvino  # noqa: F401

        candidates[f"openvino fp32, {cores} streams"] = lambda: openvino_streams(
            model.fixed_path, cores, 1
        )
        candidates[f"openvino fp32, 1 × {cores} threads"] = lambda: openvino_streams(
            model.fixed_path, 1, cores
        )
        candidates[f"openvino bf16, {cores} streams"] = lambda: openvino_streams(
            model.fixed_path, cores, 1, "bf16"
        )
        candidates[f"openvino int8 QDQ, {cores} streams"] = lambda: openvino_streams(int8, cores, 1)
    except ImportError:
        print("openvino not installed: its rows are left out", file=sys.stderr)
    loaded = {name: make() for name, make in candidates.items()}

    scored = list(photos(args.photos, args.eval_images, seed=0))
    names = [name for name, _ in scored]
    base_masks = masks(next(iter(loaded.values()))[0], scored)
    agreement = {
        name: iou_floor(masks(streams[0], scored), base_masks, names)
        for name, streams in loaded.items()
    }

    image = preprocess_array(scored[0][1], (SIDE, SIDE))[None]
    for streams in loaded.values():
        rate(streams, image, len(streams) * 2)  # warm
    rounds: dict[str, list[float]] = {name: [] for name in loaded}
    for index in range(args.rounds):
        order = list(loaded.items())
        order = order if index % 2 == 0 else order[::-1]
        for name, streams in order:
            rounds[name].append(round(rate(streams, image, args.forwards), 3))
    base = statistics.median(next(iter(rounds.values())))
    report = {
        "command": "python -m bench.cpu_engines " + " ".join(argv or sys.argv[1:]),
        "cores": cores,
        "loadavg_at_end": os.getloadavg(),
        "images_scored": len(scored),
        "images_per_s": {name: statistics.median(values) for name, values in rounds.items()},
        "ratio_to_baseline": {
            name: round(statistics.median(values) / base, 3) for name, values in rounds.items()
        },
        "mask_iou_vs_fp32": agreement,
        "rounds": rounds,
        "png_encode": png_encoders(scored[:24], args.rounds),
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
