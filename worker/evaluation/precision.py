"""How far a lower precision moves a model's masks from fp32's, image by image.

The same images go through the worker's :class:`~cutq.worker.runtime.inference.Runner` once per
precision (fp16/bf16 as autocast, on a CPU too), and each 8-bit mask is compared with the fp32
one: the largest and the mean per-pixel difference (in 1/255 steps) and the IoU of the two
masks cut at 50 %. What ``precision="auto"`` means for each model on a GPU is chosen from
these figures (docs/performance.md, "GPU"); ``tools/precision_agreement.py`` and
``tools/gpu_check.py``
print them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cutq.core.contract import Resize
from cutq.worker.models.base import Model
from cutq.worker.runtime.inference import Runner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Agreement:
    """One precision against fp32 over a set of images."""

    model: str
    precision: str
    device: str
    images: int
    max_diff: int  # largest per-pixel difference, 0..255, over every image
    worst_mean_diff: float  # the largest per-image mean difference, in 1/255 steps
    mean_diff: float  # mean over images of the per-image mean difference
    min_iou: float  # smallest IoU of the two masks cut at 128
    not_finite: int  # images whose low-precision map was not finite (re-run in fp32)
    seconds: float

    def row(self) -> str:
        return (
            f"| {self.model} | {self.precision} | {self.images} | {self.max_diff} | "
            f"{self.worst_mean_diff:.2f} | {self.mean_diff:.3f} | {self.min_iou:.4f} | "
            f"{self.not_finite} |"
        )


HEADER = (
    "| model | precision | images | max diff (/255) | worst image mean diff | mean diff "
    "| min IoU | non-finite |\n| --- | --- | --- | --- | --- | --- | --- | --- |"
)


def masks_for(
    runner: Runner, images: Sequence[np.ndarray], resize: Resize
) -> tuple[list[np.ndarray], int]:
    """One 8-bit mask per image (one image per batch), and how many needed an fp32 re-run."""
    model = runner.model
    masks, reruns = [], 0
    for image in images:
        height, width = image.shape[:2]
        tensor = model.preprocess(image, model.input_size(height, width, resize))
        prediction = runner.run([tensor])
        reruns += prediction.fp32_reruns
        masks.append(runner.to_mask(prediction.maps[0], height, width))
    return masks, reruns


def compare(
    make_model: Callable[[], Model],
    images: Sequence[np.ndarray],
    precisions: Sequence[str] = ("fp16", "bf16"),
    *,
    device: str = "cpu",
    resize: Resize = "static",
) -> list[Agreement]:
    """Each of ``precisions`` against fp32 on ``images``, through the worker's runner."""
    reference = _runner(make_model, device, "fp32")
    baseline, _ = masks_for(reference, images, resize)
    rows = []
    for precision in precisions:
        runner = _runner(make_model, device, precision)
        started = time.perf_counter()
        masks, reruns = masks_for(runner, images, resize)
        seconds = time.perf_counter() - started
        diffs = [np.abs(a.astype(np.int16) - b) for a, b in zip(masks, baseline, strict=True)]
        ious = [_iou(a >= 128, b >= 128) for a, b in zip(masks, baseline, strict=True)]
        means = [float(d.mean()) for d in diffs]
        rows.append(
            Agreement(
                model=runner.model.name,
                precision=precision,
                device=str(runner.device),
                images=len(images),
                max_diff=int(max(int(d.max()) for d in diffs)),
                worst_mean_diff=max(means),
                mean_diff=float(np.mean(means)),
                min_iou=min(ious),
                not_finite=reruns,
                seconds=seconds,
            )
        )
        log.info("%s", rows[-1].row())
    return rows


def _runner(make_model: Callable[[], Model], device: str, precision: str) -> Runner:
    runner = Runner(make_model(), device, precision)
    runner.setup()
    return runner


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int(np.logical_or(a, b).sum())
    return 1.0 if union == 0 else int(np.logical_and(a, b).sum()) / union
