"""Saliency maps to 8-bit masks in numpy: the torch-free twin of :meth:`Runner.to_mask`.

Bilinear upsampling computed the way ``torch.nn.functional.interpolate(mode="bilinear",
align_corners=False)`` does, in row chunks, so a CPU worker on onnxruntime never imports torch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

#: Output rows upsampled at a time (bounds the scratch memory).
_ROWS_PER_CHUNK = 256


def _taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of bilinear resampling along one axis, the way
    ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` computes them:
    half-pixel centres, clamped at 0, no antialiasing when shrinking."""
    scale = np.float32(size_in / size_out)
    source = (np.arange(size_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    source = np.maximum(source, np.float32(0.0))
    lower = np.minimum(source.astype(np.int64), size_in - 1)
    upper = np.minimum(lower + 1, size_in - 1)
    weight = (source - lower).astype(np.float32)
    return lower, upper, weight


def resize_bilinear(saliency: np.ndarray, height: int, width: int) -> Iterator[np.ndarray]:
    """``saliency`` (h×w float32) resized to ``height`` × ``width``, yielded in row chunks
    of at most ``_ROWS_PER_CHUNK`` rows (so a 50 MP mask never needs 50 MP of floats)."""
    rows0, rows1, row_w = _taps(saliency.shape[0], height)
    cols0, cols1, col_w = _taps(saliency.shape[1], width)
    for start in range(0, height, _ROWS_PER_CHUNK):
        stop = min(start + _ROWS_PER_CHUNK, height)
        w = row_w[start:stop, None]
        rows = saliency[rows0[start:stop]] * (1 - w) + saliency[rows1[start:stop]] * w
        yield rows[:, cols0] * (1 - col_w) + rows[:, cols1] * col_w


def mask_from_array(
    saliency: np.ndarray, height: int, width: int, threshold: float | None = None
) -> np.ndarray:
    """The numpy twin of :meth:`Runner.to_mask`'s torch path: resize, clamp, threshold, 8-bit."""
    saliency = np.asarray(saliency, dtype=np.float32)
    chunks = (
        resize_bilinear(saliency, height, width)
        if saliency.shape != (height, width)
        else iter([saliency])
    )
    mask = np.empty((height, width), dtype=np.uint8)
    row = 0
    for chunk in chunks:
        values = np.clip(chunk, 0.0, 1.0)
        if threshold is not None:
            values = (values >= threshold).astype(np.float32)
        values = values * np.float32(255.0) + np.float32(0.5)
        mask[row : row + len(values)] = values.astype(np.uint8)
        row += len(values)
    return mask
