"""What both U²-Net-p engines share, without torch: sizes, preprocessing and the weights file.

:mod:`cutq.worker.models.u2netp` runs the network in torch (CUDA, or a CPU without
onnxruntime); :mod:`cutq.worker.models.u2netp_onnx` runs the same weights through onnxruntime
on a CPU. Both take the same inputs from here, so a job gets the same mask from either.

Preprocessing follows rembg, which the weights were exported for: Lanczos resize, divide by the
image's maximum, ImageNet mean/std.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from cutq.core.contract import RESIZES, Resize
from cutq.worker.models.base import round_to_multiple

#: Every side of the network input is a multiple of this (five 2× poolings).
STRIDE = 32
#: Input side in "static" mode: the resolution the weights were trained and exported at.
STATIC_SIDE = 320
#: Default cap on the longer side in "dynamic" mode.
DEFAULT_MAX_SIDE = 640
#: ImageNet statistics, applied after dividing by the image's maximum (as rembg does).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

WEIGHTS_FILE = "u2netp.pt"


def bundled_weights_path() -> Path:
    """Where the packaged state dict lives (``cutq/worker/models/weights/u2netp.pt``)."""
    return Path(str(resources.files("cutq.worker.models") / "weights" / WEIGHTS_FILE))


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_max_side(max_side: int) -> int:
    if max_side <= 0 or max_side % STRIDE:
        raise ValueError(f"max_side must be a positive multiple of {STRIDE}, got {max_side}")
    return max_side


def input_size(height: int, width: int, resize: Resize, max_side: int) -> tuple[int, int]:
    """320² when "static"; "dynamic" keeps the aspect ratio, longer side ≤ ``max_side``.

    Images smaller than ``max_side`` keep their size (rounded to multiples of 32, at least 32);
    larger ones are scaled down. Both sides are bounded by ``max_side``.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}×{width}")
    if resize == "static":
        return (STATIC_SIDE, STATIC_SIDE)
    if resize != "dynamic":
        raise ValueError(f"unknown resize mode {resize!r}; expected one of {RESIZES}")
    scale = min(1.0, max_side / max(height, width))
    return (
        min(max_side, round_to_multiple(height * scale, STRIDE)),
        min(max_side, round_to_multiple(width * scale, STRIDE)),
    )


_MEAN = np.asarray(MEAN, np.float32)
_STD = np.asarray(STD, np.float32)


def preprocess_array(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Lanczos resize to ``size``, divide by the image's maximum, ImageNet mean/std → 3×h×w."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"expected an H×W×3 uint8 RGB image, got shape {image.shape} {image.dtype}"
        )
    height, width = size
    resized = Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS)
    array = np.asarray(resized, dtype=np.float32)
    array = array / max(float(array.max()), 1.0)
    array = (array - _MEAN) / _STD
    return np.ascontiguousarray(array.transpose(2, 0, 1))
