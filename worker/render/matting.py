"""Clean edges: foreground colour estimation and mask refinement.

Under a soft alpha the input's pixel is a mix ``I = αF + (1 − α)B`` of the subject's colour
``F`` and the old background's ``B``. A cutout that keeps ``I`` as its colour carries ``B``
onto every new background: a halo. :func:`estimate_foreground` solves for ``F``.

* :func:`estimate_foreground`: the multi-level method of Germer et al. (2020), as pymatting's
  ``estimate_foreground_ml`` implements it (same pyramid, same nearest-neighbour resampling,
  same per-pixel 2×2 solve and smoothness weights), vectorised in numpy (no numba compile, and
  no torch: a CPU worker on onnxruntime never imports it). pymatting sweeps pixels in raster
  order (Gauss-Seidel); this sweeps a checkerboard's two colours in turn (red-black
  Gauss-Seidel), and on large levels only near soft alpha: ``tests/unit/test_matting.py``
  checks it against pymatting on composites.
* :func:`post_process_mask`: rembg's ``post_process_mask``: a 3×3 opening removes specks,
  a Gaussian blur (σ 2) smooths the outline, and a threshold at 127 makes it binary.
* :func:`refine_alpha`: closed-form alpha matting (Levin et al. 2008, pymatting's
  ``estimate_alpha_cf``) on a trimap made from the mask, as rembg's ``alpha_matting`` does.
  It is bounded: run at most at ``max_pixels`` (then upsampled inside the unknown band), and
  abandoned, keeping the mask, after ``timeout_s``. pymatting is imported on first use only
  (its first import compiles numba kernels, ~50 s, then cached on disk).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

# pymatting's defaults for estimate_foreground_ml.
REGULARIZATION = 1e-5
GRADIENT_WEIGHT = 1.0
SMALL_SIZE = 32
SMALL_ITERATIONS = 10
BIG_ITERATIONS = 2
BAND_MARGIN = 4  # px around soft alpha that large levels update (see _sweep_band)
DENSE_MAX_PIXELS = 128 * 128  # smaller levels are swept whole
FOREGROUND_MAX_PIXELS = 16_000_000  # larger images keep their colours (memory, time)

# rembg's defaults for alpha_matting.
TRIMAP_FOREGROUND = 240  # mask above this is surely the subject …
TRIMAP_BACKGROUND = 10  # … below this surely not; both eroded by:
TRIMAP_ERODE_PX = 10


def foreground_colours(rgb: np.ndarray, alpha: np.ndarray, mode: str) -> np.ndarray:
    """The colours a cutout carries: the input's (``none``), or the estimated foreground's
    (``ml``) where any alpha is soft; a hard-edged alpha needs no estimate."""
    if mode == "none" or not has_soft_edges(alpha):
        return rgb
    if mode != "ml":
        raise ValueError(f"unknown foreground mode {mode!r}")
    if alpha.size > FOREGROUND_MAX_PIXELS:  # ~70 B a pixel while it runs: bound the memory
        log.warning(
            "foreground estimation skipped: %d pixels is over %d; the input's colours are kept",
            alpha.size,
            FOREGROUND_MAX_PIXELS,
        )
        return rgb
    return estimate_foreground(rgb, alpha)


def refine_mask(
    rgb: np.ndarray,
    mask: np.ndarray,
    *,
    post_process: bool,
    matting: bool,
    max_pixels: int,
    timeout_s: float,
    label: str = "",
) -> np.ndarray:
    """The mask after the job's optional post-process, then closed-form matting."""
    if post_process:
        mask = post_process_mask(mask)
    if matting:
        refined = refine_alpha(rgb, mask, max_pixels=max_pixels, timeout_s=timeout_s)
        if refined.skipped:
            log.warning("%s: matting skipped, mask kept: %s", label, refined.skipped)
        mask = refined.alpha
    return mask


def has_soft_edges(alpha: np.ndarray) -> bool:
    """Whether any pixel is partly transparent (otherwise colours need no estimating)."""
    return bool(((alpha > 0) & (alpha < 255)).any())


def estimate_foreground(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The subject's own colour at every pixel (H×W×3 uint8), given the image and its alpha.

    Where alpha is 255 the result is the input; where it is soft, the colour the subject
    would have without the background mixed in; where it is 0, a smooth continuation.
    """
    if rgb.shape[:2] != alpha.shape:
        raise ValueError(f"image {rgb.shape} and alpha {alpha.shape} differ in size")
    # In place wherever it can be: at ~3 MP every float32 copy of the image costs 36 MB.
    image = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)
    image /= 255.0
    a = alpha.astype(np.float32)
    a /= 255.0
    foreground = _estimate_fb_ml(image, a)
    del a
    # Opaque pixels show their own colour exactly: keep it (pymatting smooths them a bit).
    np.copyto(foreground, image, where=(alpha >= 255)[None])
    del image
    foreground *= 255.0
    foreground += 0.5
    np.clip(foreground, 0, 255, out=foreground)
    out = np.empty((*alpha.shape, foreground.shape[0]), np.uint8)
    for channel in range(foreground.shape[0]):
        out[:, :, channel] = foreground[channel]
    return out


def _estimate_fb_ml(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """pymatting's ``_estimate_fb_ml`` on 3×H×W / H×W float32 in [0, 1]; returns F (3×H×W)."""
    depth, h0, w0 = image.shape
    fg = _masked_mean(image, alpha > 0.9).reshape(depth, 1, 1)
    bg = _masked_mean(image, alpha < 0.1).reshape(depth, 1, 1)
    n_levels = math.ceil(math.log2(max(w0, h0))) if max(w0, h0) > 1 else 0
    for level in range(n_levels + 1):
        w = round(w0 ** (level / n_levels)) if n_levels else w0
        h = round(h0 ** (level / n_levels)) if n_levels else h0
        if (h, w) == (h0, w0):  # the last level is the image itself: no copy
            img, a = image, alpha
        else:
            rows_img, cols_img = _nearest(h0, h), _nearest(w0, w)
            img = image[:, rows_img[:, None], cols_img[None, :]]  # one gather, one copy
            a = alpha[rows_img[:, None], cols_img[None, :]]
        rows, cols = _nearest(fg.shape[1], h), _nearest(fg.shape[2], w)
        fg = fg[:, rows[:, None], cols[None, :]]
        bg = bg[:, rows[:, None], cols[None, :]]
        iterations = SMALL_ITERATIONS if w <= SMALL_SIZE and h <= SMALL_SIZE else BIG_ITERATIONS
        fg, bg = _sweep_band(img, a, fg, bg, iterations)
    return fg


def _sweep_band(
    image: np.ndarray, alpha: np.ndarray, fg: np.ndarray, bg: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_sweep`, updating only pixels within :data:`BAND_MARGIN` of a soft alpha.

    Elsewhere the answer is known (``F = I`` where opaque, ``B = I`` where clear) or never
    shown; a few pixels of margin keep the band's neighbours what the full sweep gives them.
    On large images the band is a small share of the pixels: this is where the time goes.
    """
    depth, h, w = image.shape
    band = _dilate((alpha > 0) & (alpha < 1), BAND_MARGIN)
    if h * w <= DENSE_MAX_PIXELS or float(band.mean()) > 0.3:
        return _sweep(image, alpha, fg, bg, n)
    fb = np.empty((2 * depth, h, w), np.float32)  # F and B, written in place
    fb[:depth], fb[depth:] = fg, bg
    np.copyto(fb[:depth], image, where=((alpha >= 1) & ~band)[None])
    np.copyto(fb[depth:], image, where=((alpha <= 0) & ~band)[None])
    del fg, bg
    fb = fb.reshape(2 * depth, h * w)
    flat_image, flat_alpha = image.reshape(depth, h * w), alpha.reshape(h * w)
    yy, xx = np.nonzero(band)
    groups = []
    for colour in ((yy + xx) % 2 == 0, (yy + xx) % 2 == 1):  # red, then black
        y, x = yy[colour], xx[colour]
        index = y * w + x
        neighbours = (
            y * w + np.maximum(x - 1, 0),
            y * w + np.minimum(x + 1, w - 1),
            np.maximum(y - 1, 0) * w + x,
            np.minimum(y + 1, h - 1) * w + x,
        )
        a0 = flat_alpha[index]
        a1 = 1.0 - a0
        weights = [
            REGULARIZATION + GRADIENT_WEIGHT * np.abs(a0 - flat_alpha[nb]) for nb in neighbours
        ]
        total = weights[0] + weights[1] + weights[2] + weights[3]
        a00, a11, a01 = a0 * a0 + total, a1 * a1 + total, a0 * a1
        inv_det = 1.0 / (a00 * a11 - a01 * a01)
        own = np.concatenate([a0 * flat_image[:, index], a1 * flat_image[:, index]])
        groups.append(
            (index, neighbours, weights, own, inv_det * a11, -inv_det * a01, inv_det * a00)
        )
    for _ in range(n):
        for index, neighbours, weights, own, keep_f, mix, keep_b in groups:
            b = own + sum(wt * fb[:, nb] for wt, nb in zip(weights, neighbours, strict=True))
            b0, b1 = b[:depth], b[depth:]
            new = np.concatenate([keep_f * b0 + mix * b1, mix * b0 + keep_b * b1])
            fb[:, index] = np.clip(new, 0.0, 1.0)
    fb = fb.reshape(2 * depth, h, w)
    return fb[:depth], fb[depth:]


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a (2·radius + 1)² square, separably."""
    out = mask.copy()
    for axis in (0, 1):
        grown = out.copy()
        for step in range(1, radius + 1):
            forward = [slice(None)] * 2
            backward = [slice(None)] * 2
            forward[axis], backward[axis] = slice(step, None), slice(None, -step)
            grown[tuple(forward)] |= out[tuple(backward)]
            grown[tuple(backward)] |= out[tuple(forward)]
        out = grown
    return out


def _masked_mean(image: np.ndarray, where: np.ndarray) -> np.ndarray:
    count = float(where.sum())
    return ((image * where).sum(axis=(1, 2)) / (count + 1e-5)).astype(np.float32)


def _nearest(size_src: int, size_dst: int) -> np.ndarray:
    """pymatting's nearest-neighbour index map: ``min(src − 1, dst_index · src // dst)``."""
    return np.minimum(np.arange(size_dst) * size_src // size_dst, size_src - 1)


def _neighbours(x: np.ndarray) -> list[np.ndarray]:
    """The left, right, up and down neighbour of every pixel, clamped at the border."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
    return [
        padded[:, 1:-1, :-2],
        padded[:, 1:-1, 2:],
        padded[:, :-2, 1:-1],
        padded[:, 2:, 1:-1],
    ]


def _sweep(
    image: np.ndarray, alpha: np.ndarray, fg: np.ndarray, bg: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` red-black Gauss-Seidel iterations of the per-pixel 2×2 least-squares solve."""
    depth, h, w = image.shape
    weights = [
        REGULARIZATION + GRADIENT_WEIGHT * np.abs(alpha - nb[0]) for nb in _neighbours(alpha[None])
    ]
    total = weights[0] + weights[1] + weights[2] + weights[3]
    a0, a1 = alpha, 1.0 - alpha
    a00 = a0 * a0 + total
    a11 = a1 * a1 + total
    a01 = a0 * a1
    inv_det = 1.0 / (a00 * a11 - a01 * a01)
    # F and B side by side (6 channels): one pass over the neighbours serves both.
    own = np.concatenate([a0 * image, a1 * image])
    # [F; B] = inv_det · [[a11, −a01], [−a01, a00]] · [b0; b1]
    keep_f, mix, keep_b = inv_det * a11, -inv_det * a01, inv_det * a00
    fb = np.concatenate([np.broadcast_to(fg, image.shape), np.broadcast_to(bg, image.shape)])
    red = (np.arange(h)[:, None] + np.arange(w)[None, :]) % 2 == 0
    for _ in range(n):
        for colour in (red, ~red):
            left, right, up, down = _neighbours(fb)
            b = own + weights[0] * left + weights[1] * right + weights[2] * up + weights[3] * down
            b0, b1 = b[:depth], b[depth:]
            new = np.clip(np.concatenate([keep_f * b0 + mix * b1, mix * b0 + keep_b * b1]), 0, 1)
            fb = np.where(colour, new, fb)
    return fb[:depth], fb[depth:]


# --- the mask ---------------------------------------------------------------------------------


def post_process_mask(mask: np.ndarray) -> np.ndarray:
    """rembg's ``post_process_mask``: opening (3×3 cross), Gaussian blur (5×5, σ 2), ≥ 127."""
    m = mask.astype(np.float32)
    m = _cross(m, np.minimum, np.inf)  # erosion, then dilation: an opening
    m = _cross(m, np.maximum, -np.inf)
    taps = np.exp(-((np.arange(5) - 2.0) ** 2) / (2 * 2.0**2))
    taps = (taps / taps.sum()).astype(np.float32)
    padded = np.pad(m, 2, mode="reflect")  # OpenCV's default border (reflect-101)
    rows = sum(taps[k] * padded[:, k : k + m.shape[1]] for k in range(5))
    m = sum(taps[k] * rows[k : k + m.shape[0], :] for k in range(5))
    blurred = np.rint(m)  # 8-bit like OpenCV's, then the same threshold
    return np.where(blurred < 127.0, 0, 255).astype(np.uint8)


def _cross(m: np.ndarray, pick: np.ufunc, outside: float) -> np.ndarray:
    """Min or max over each pixel and its 4 neighbours; out-of-image pixels never win."""
    padded = np.pad(m, 1, constant_values=outside)
    height, width = m.shape
    out = padded[1:-1, 1:-1]
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        out = pick(out, padded[dy : dy + height, dx : dx + width])
    return out


@dataclass(frozen=True)
class Refined:
    """What :func:`refine_alpha` did: the alpha, and why it kept the mask if it did."""

    alpha: np.ndarray
    skipped: str | None = None  # None: refined
    scale: float = 1.0  # the working resolution, relative to the image


class _Deadline(Exception):
    """The solver ran past its time budget."""


def trimap(mask: np.ndarray, erode_px: int = TRIMAP_ERODE_PX) -> np.ndarray:
    """rembg's trimap: 255 surely subject, 0 surely not, 128 unknown (eroded confident parts)."""
    from scipy.ndimage import binary_erosion

    sure_fg = mask > TRIMAP_FOREGROUND
    sure_bg = mask < TRIMAP_BACKGROUND
    if erode_px > 0:
        structure = np.ones((erode_px, erode_px), dtype=bool)
        sure_fg = binary_erosion(sure_fg, structure=structure)
        sure_bg = binary_erosion(sure_bg, structure=structure, border_value=1)
    out = np.full(mask.shape, 128, dtype=np.uint8)
    out[sure_fg] = 255
    out[sure_bg] = 0
    return out


@functools.lru_cache(maxsize=1)
def _compile_pymatting() -> None:
    """Run pymatting once on a tiny image so its numba kernels are compiled (~50 s on a machine
    without their disk cache; the worker image has it) before any job's deadline starts;
    no job's deadline is charged for it."""
    from pymatting import estimate_alpha_cf

    started = time.monotonic()  # the import (and its compile) came first: see refine_alpha
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (8, 8, 3))
    small_trimap = np.full((8, 8), 0.5)
    small_trimap[:2], small_trimap[-2:] = 0.0, 1.0
    estimate_alpha_cf(image, small_trimap)
    log.info("pymatting's kernels ready in %.1fs (once per process)", time.monotonic() - started)


def refine_alpha(
    rgb: np.ndarray, mask: np.ndarray, *, max_pixels: int, timeout_s: float
) -> Refined:
    """Closed-form alpha matting on the mask's trimap, within ``max_pixels`` and ``timeout_s``.

    Larger images are matted at a scale that fits ``max_pixels`` and the result upsampled; the
    full-size trimap's sure regions stay exact. Past ``timeout_s`` (the solver's iterations)
    the mask is kept and the reason returned, so a hard image never stalls a worker.
    """
    from PIL import Image

    started = time.monotonic()
    height, width = mask.shape
    full_trimap = trimap(mask)
    if not (full_trimap == 128).any():
        return Refined(mask, skipped="no unknown pixels in the trimap")
    scale = min(1.0, math.sqrt(max_pixels / (height * width)))
    small_rgb, small_mask = rgb, mask
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small_rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR, reducing_gap=2))
        small_mask = np.asarray(Image.fromarray(mask).resize(size, Image.BILINEAR))
    small_trimap = trimap(small_mask, max(1, round(TRIMAP_ERODE_PX * scale)))
    if not (small_trimap == 128).any():
        return Refined(mask, skipped="no unknown pixels at the working scale", scale=scale)
    before = time.monotonic()
    try:  # the first import compiles numba kernels: once per process, not charged to the job
        from pymatting import estimate_alpha_cf

        _compile_pymatting()
    except ImportError:  # pragma: no cover - the worker image installs it
        return Refined(mask, skipped="pymatting is not installed (pip install 'cutq[matting]')")
    started += time.monotonic() - before
    deadline = time.monotonic() + max(0.0, timeout_s - (time.monotonic() - started))

    def check_deadline(*_: object) -> None:
        if time.monotonic() > deadline:
            raise _Deadline

    try:
        alpha = estimate_alpha_cf(
            small_rgb.astype(np.float64) / 255.0,
            small_trimap.astype(np.float64) / 255.0,
            cg_kwargs={"maxiter": 2000, "callback": check_deadline},
        )
    except _Deadline:
        return Refined(mask, skipped=f"matting ran past {timeout_s:g} s", scale=scale)
    out = np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if scale < 1.0:
        out = np.asarray(Image.fromarray(out).resize((width, height), Image.BILINEAR))
        out = np.where(full_trimap == 255, 255, np.where(full_trimap == 0, 0, out))
    return Refined(np.ascontiguousarray(out, dtype=np.uint8), scale=scale)
