"""Framed renditions at the resolution they need: one shared crop, one foreground, and
compositing only where the subject lands.

A framed rendition shows the source's region (the subject's box, or the whole image) at its
plan's scale, mostly far below the source's (a 16 MP photo in a 2000 px square). So the work
runs on the region, scaled once: :func:`prepare` resamples the region's colours and alpha to
the largest scale any framed rendition of the job needs (never above the source's) and
estimates the foreground colours there, once; :func:`draw` then resamples that shared work to
each rendition's canvas, composites only the rectangle the subject lands in, and pastes it on
a canvas made in its final mode, filled with the background. Nothing is ever computed at the
source's full resolution over the whole image, and a huge margin costs a canvas fill, not a
composite. Pure functions of arrays and plans: no job, no config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from cutq.worker.render import framing, imaging
from cutq.worker.render.subject import ALPHA_FLOOR

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Work:
    """A region of the source, scaled once: its alpha, and its colours (foreground-estimated
    when the mode asks). ``scale``: work pixels per source pixel (≤ 1)."""

    region: Box
    scale: float
    alpha: np.ndarray  # h×w uint8, haze under the floor cleared when cropped
    rgb: np.ndarray | None  # h×w×3 uint8; None: only masks use this work


def work_scale(plans: list[framing.Plan]) -> float:
    """The scale the shared work needs: the largest any plan shows, never above the source's."""
    return min(1.0, max(plan.scale for plan in plans))


def prepare(
    rgb: np.ndarray,
    alpha: np.ndarray,
    region: Box,
    scale: float,
    *,
    crop: bool,
    colours: Callable[[np.ndarray, np.ndarray], np.ndarray] | None,
    found: bool = True,
) -> Work:
    """The region of ``rgb``/``alpha`` at ``scale``; ``colours(rgb, alpha)``: the edge colours
    (e.g. the foreground estimate) computed on the scaled region (None: no colours needed).
    With ``crop`` the region is the subject's box: faint haze inside it becomes background;
    when no subject was ``found``, a cropped frame shows none (everything is background)."""
    x0, y0, x1, y1 = region
    alpha_region = alpha[y0:y1, x0:x1]
    if crop:
        alpha_region = np.where(alpha_region >= ALPHA_FLOOR, alpha_region, 0).astype(np.uint8)
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
    scaled_alpha = _resize(alpha_region, size)
    scaled_alpha[scaled_alpha < ALPHA_FLOOR] = 0  # the filter's ripples beside an edge
    if crop and not found:  # only specks: nothing to frame
        scaled_alpha[:] = 0
    scaled_rgb = None
    if colours is not None:
        scaled_rgb = colours(_resize(rgb[y0:y1, x0:x1], size), scaled_alpha)
    return Work(region, scale, scaled_alpha, scaled_rgb)


def _resize(channels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A contiguous uint8 copy of ``channels`` resampled to ``size`` (w, h) with Lanczos."""
    height, width = channels.shape[:2]
    if (width, height) == size:
        return np.array(channels, dtype=np.uint8)
    picture = Image.fromarray(np.ascontiguousarray(channels))
    return np.array(picture.resize(size, Image.Resampling.LANCZOS), dtype=np.uint8)


def on_work(planned: framing.Plan, work: Work) -> framing.Plan:
    """``planned`` (in source pixels) restated on the scaled work's pixels."""
    x0, y0, x1, y1 = work.region
    height, width = work.alpha.shape
    # The work's own ratio per axis (its sides were rounded): the mean of both.
    ratio = (width / max(1, x1 - x0) + height / max(1, y1 - y0)) / 2
    return replace(planned, region=(0, 0, width, height), scale=planned.scale / ratio)


def draw(planned: framing.Plan, work: Work, kind: str, background: str | None) -> Image.Image:
    """One rendition's picture: the work resampled onto ``planned``'s canvas; ``kind``
    ``cutout`` (composited on ``background``, or straight alpha) or ``mask``."""
    local = on_work(planned, work)
    dest, alpha = framing.resample(local, work.alpha)
    if alpha is not None:
        alpha[alpha < ALPHA_FLOOR] = 0
    size = (planned.width, planned.height)
    if kind == "mask":
        canvas = Image.new("L", size, 0)
        if alpha is not None:
            canvas.paste(Image.fromarray(alpha, "L"), dest[:2])
        return canvas
    assert work.rgb is not None
    fill = imaging.parse_color(background) if background is not None else (0, 0, 0, 0)
    mode = "RGB" if background is not None and fill[3] == 255 else "RGBA"
    canvas = Image.new(mode, size, fill if mode == "RGBA" else fill[:3])
    if alpha is None:
        return canvas
    _, rgb = framing.resample(local, work.rgb)
    assert rgb is not None
    canvas.paste(imaging.cutout(rgb, alpha, background), dest[:2])
    return canvas
