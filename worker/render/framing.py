"""Subject framing: crop to the subject, keep a margin, fit a canvas, place the subject.

:func:`plan` is pure arithmetic on sizes (what a :class:`~cutq.core.renditions.Frame` means);
:func:`apply` resamples the pixels once, straight from the source region onto the canvas.
Outside the subject's box everything is background (alpha 0): a stray speck or a faint haze in
the margin would break a marketplace's "pure white" rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from cutq.core.renditions import Frame
from cutq.worker.render.subject import ALPHA_FLOOR

#: A subject that would need enlarging by at most this share to fill its canvas keeps the
#: exact canvas asked for, at its own scale, with the margin a little wider (never upscaled):
#: a grid of 400² thumbnails gets 400², not 399², from a 400 px source. 2 % keeps every
#: preset's fill inside its rules (Amazon: 87.5 % nominal → 85.75 %, its minimum is 85 %).
SNAP_SHARE = 0.02


@dataclass(frozen=True)
class Plan:
    """The canvas, and where the framed region lands on it: region pixel (u, v) goes to
    canvas (left + (u - region x0)·scale, top + (v - region y0)·scale)."""

    width: int
    height: int
    region: tuple[int, int, int, int]  # x0, y0, x1, y1 in source pixels
    scale: float
    left: float
    top: float


def plan(image_size: tuple[int, int], box: tuple[int, int, int, int] | None, frame: Frame) -> Plan:
    """The canvas and placement ``frame`` asks for; ``box``: the subject's (None: none found)."""
    image_w, image_h = image_size
    region = box if frame.crop and box is not None else (0, 0, image_w, image_h)
    region_w, region_h = region[2] - region[0], region[3] - region[1]
    if frame.width is not None and frame.height is not None:
        width, height = float(frame.width), float(frame.height)
        pad = _pad(frame, min(width, height))
        inner_w, inner_h = width - 2 * pad, height - 2 * pad
        fits = (inner_w / region_w, inner_h / region_h)
        scale = min(fits) if frame.fit == "contain" else max(fits)
        if scale > 1 and not frame.upscale:
            if scale * (1 - SNAP_SHARE) > 1:  # shrink the whole canvas instead
                width, height, pad = width / scale, height / scale, pad / scale
            scale = 1.0
    else:
        longer = max(region_w, region_h)
        share = 1 - 2 * (frame.margin or 0.0)
        if frame.longest is None:
            scale = 1.0
        elif frame.margin_px is not None:
            scale = (frame.longest - 2 * frame.margin_px) / longer
        else:
            scale = frame.longest * share / longer
        snap = False
        if scale > 1 and not frame.upscale:
            snap = frame.longest is not None and scale * (1 - SNAP_SHARE) <= 1
            scale = 1.0
        if snap:  # the longest side asked for, the margin a little wider
            assert frame.longest is not None
            pad = (frame.longest - longer) / 2
        elif frame.margin_px is not None:
            pad = float(frame.margin_px)
        else:
            pad = longer * scale * (1 / share - 1) / 2
        width, height = region_w * scale + 2 * pad, region_h * scale + 2 * pad
    width_px, height_px = max(1, round(width)), max(1, round(height))
    placed_w, placed_h = region_w * scale, region_h * scale
    left = (width_px - placed_w) / 2
    top = (height_px - placed_h) / 2 if frame.position == "center" else height_px - pad - placed_h
    return Plan(width_px, height_px, region, scale, left, top)


def _pad(frame: Frame, side: float) -> float:
    if frame.margin_px is not None:
        return float(frame.margin_px)
    return (frame.margin or 0.0) * side


def clear_outside(alpha: np.ndarray, box: tuple[int, int, int, int] | None) -> np.ndarray:
    """``alpha`` with everything outside ``box``, and every faint haze, made background."""
    cleared = np.zeros_like(alpha)
    if box is not None:
        x0, y0, x1, y1 = box
        inside = alpha[y0:y1, x0:x1]
        cleared[y0:y1, x0:x1] = np.where(inside >= ALPHA_FLOOR, inside, 0)
    return cleared


def apply(planned: Plan, channels: np.ndarray, floor: int = 0) -> np.ndarray:
    """Resample ``channels`` (H×W or H×W×C uint8) onto the planned canvas; outside the source
    the canvas is 0 (for alpha: transparent). Values under ``floor`` become 0 (for alpha: the
    resampling filter's faint ripples beside an edge are background, not haze)."""
    shape = (planned.height, planned.width, *channels.shape[2:])
    canvas = np.zeros(shape, np.uint8)
    dest, resized = resample(planned, channels)
    if resized is None:
        return canvas
    canvas[dest[1] : dest[3], dest[0] : dest[2]] = resized
    if floor:
        canvas[canvas < floor] = 0
    return canvas


def resample(
    planned: Plan, channels: np.ndarray
) -> tuple[tuple[int, int, int, int], np.ndarray | None]:
    """The rectangle of the canvas that the source covers (x0, y0, x1, y1), and ``channels``
    resampled to fill it (None when the source lands outside the canvas): the canvas's only
    pixels that are not background."""
    image_h, image_w = channels.shape[:2]
    x0, y0 = planned.region[0], planned.region[1]
    scale = planned.scale
    # The source rectangle the whole canvas covers, then the part of it inside the image.
    src_left, src_top = x0 - planned.left / scale, y0 - planned.top / scale
    src = (
        max(0.0, src_left),
        max(0.0, src_top),
        min(float(image_w), src_left + planned.width / scale),
        min(float(image_h), src_top + planned.height / scale),
    )
    dest = [
        round((src[0] - src_left) * scale),
        round((src[1] - src_top) * scale),
        round((src[2] - src_left) * scale),
        round((src[3] - src_top) * scale),
    ]
    dest[2], dest[3] = min(dest[2], planned.width), min(dest[3], planned.height)
    box = (dest[0], dest[1], dest[2], dest[3])
    if dest[2] <= dest[0] or dest[3] <= dest[1]:
        return box, None
    picture = Image.fromarray(np.ascontiguousarray(channels))
    resized = picture.resize(
        (dest[2] - dest[0], dest[3] - dest[1]), Image.Resampling.LANCZOS, box=src
    )
    return box, np.array(resized, dtype=np.uint8)
