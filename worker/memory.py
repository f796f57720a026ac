"""What a job costs in memory, by path: the one place the in-flight budget's charges come from.

A job's peak memory (beyond the worker's own: the runtime, the model) is modelled as

    source pixels × the path's bytes per source pixel
    + the largest planned canvas × bytes per canvas pixel        (framed renditions)
    + the matting working size × bytes per matting pixel         (``options.matting``)

on top of the worker's own ~310 MiB (runtime and model)

with the figures below measured by ``python -m bench.big_photos paths`` (peak RSS of whole
``cutq run`` processes at 4 and 16 MP; the slope is the source figure, the rest over the
canvas the canvas figure; docs/big-photos.md has the run). The in-flight budget
(``max_in_flight_pixels``) counts plain cut-out pixels, so a job is charged its cost divided
by the plain cut-out's bytes per pixel: a plain cut-out is charged its pixels, as before.

Every rendition's planned canvas also has a ceiling (``max_canvas_side``, ``max_canvas_pixels``):
:func:`check_canvases` refuses a job over it, or one that could never fit the whole budget,
with :class:`~cutq.core.errors.TooLarge` (``too_large``) before any pixel is decoded: once at
admission for canvases known from the job alone (``width``×``height``), and again once the
header gives the input's size. The canvas a frame plans is bounded by the one it plans on the
whole image (the subject's box is inside it), so the check needs no pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cutq.core.contract import Job
from cutq.core.errors import TooLarge
from cutq.core.renditions import Rendition
from cutq.worker.config import WorkerConfig
from cutq.worker.render import framing
from cutq.worker.render.matting import FOREGROUND_MAX_PIXELS
from cutq.worker.render.results import RenderSettings, foreground_mode


@dataclass(frozen=True)
class PathCost:
    """Bytes a path holds at its peak, per pixel of what it works on."""

    source: float  # per source pixel (decode, mask, alpha, subject, quality, full-size output)
    canvas: float = 0.0  # per pixel of the largest planned canvas (shared crop, foreground, …)


#: Measured on this machine's CPU (bench/reports/2026-12-07-cpu/memory-model.json: peak RSS
#: of whole runs at 4 and 16 MP, one photo; the worker itself, model loaded, held ~310 MiB).
PATHS: dict[str, PathCost] = {
    "cutout": PathCost(source=14.0),  # RGBA PNG at the source's size (measured 13.4)
    "mask": PathCost(source=14.0),  # (13.7)
    "cutout-ml": PathCost(source=110.0),  # foreground estimated at the source's size (106)
    # Any preset or frame: the shared scaled crop and its foreground are at most the largest
    # canvas (measured 68-78 B per canvas pixel over the four presets; their source slope 9-13)
    "framed": PathCost(source=14.0, canvas=80.0),
}
#: Closed-form matting at its working size (≤ matting_max_pixels): 680 MiB at 1 MP measured;
#: its source slope (8.9) is the plain cut-out's.
MATTING_BYTES_PER_PIXEL = 720.0
PLAIN_BYTES_PER_PIXEL = PATHS["cutout"].source  # the in-flight budget's unit


@dataclass(frozen=True)
class Cost:
    """A job's modelled peak memory and its largest planned canvas."""

    bytes: int
    canvas_pixels: int

    @property
    def budget_pixels(self) -> int:
        """What the in-flight budget (plain cut-out pixels) is charged."""
        return math.ceil(self.bytes / PLAIN_BYTES_PER_PIXEL)


@dataclass(frozen=True)
class Limits:
    """The ceilings a job is held to (from the worker's config)."""

    max_canvas_side: int
    max_canvas_pixels: int
    budget_pixels: int  # max_in_flight_pixels
    render: RenderSettings  # what rendering is told (edge mode, matting bound): one projection

    @classmethod
    def of(cls, config: WorkerConfig) -> Limits:
        return cls(
            max_canvas_side=config.max_canvas_side,
            max_canvas_pixels=config.max_canvas_pixels,
            budget_pixels=config.max_in_flight_pixels,
            render=RenderSettings(
                default_foreground=config.default_foreground,
                matting_max_pixels=config.matting_max_pixels,
                matting_timeout_s=config.matting_timeout_s,
            ),
        )


def planned_canvas(rendition: Rendition, size: tuple[int, int] | None) -> tuple[int, int] | None:
    """The largest canvas ``rendition`` can plan for an input of ``size`` (w, h), or for any
    input when ``size`` is None (known only for a ``width``×``height`` frame; else None).
    The header's orientation will do: EXIF may swap the sides, which swaps a margin's or a
    ``longest`` frame's canvas sides too (same area, same longer side) and never grows a
    fixed canvas."""
    frame = rendition.frame
    if frame is None:  # the source's own size: the source's term covers it
        return None
    if size is None:
        if frame.width is None or frame.height is None:
            return None
        return frame.width, frame.height
    planned = framing.plan(size, None, frame)
    return planned.width, planned.height


def check_canvases(job: Job, size: tuple[int, int] | None, limits: Limits) -> int:
    """The largest planned canvas's pixels; :class:`TooLarge` naming the first rendition over
    a ceiling."""
    largest = 0
    for rendition in job.planned():
        canvas = planned_canvas(rendition, size)
        if canvas is None:
            continue
        width, height = canvas
        if rendition.frame is not None and (
            max(width, height) > limits.max_canvas_side or width * height > limits.max_canvas_pixels
        ):
            raise TooLarge(
                f"rendition {rendition.name!r} plans a {width}×{height} canvas "
                f"({width * height:,} pixels); the limits are {limits.max_canvas_side} px a "
                f"side and {limits.max_canvas_pixels:,} pixels"
            )
        if rendition.frame is not None:
            largest = max(largest, width * height)
    return largest


def cost(job: Job, size: tuple[int, int], limits: Limits) -> Cost:
    """What ``job`` costs on an input of ``size``; :class:`TooLarge` when a canvas is over the
    ceilings or the cost is over the whole in-flight budget."""
    canvas_pixels = check_canvases(job, size, limits)
    pixels = size[0] * size[1]
    per_source = 0.0
    framed = False
    for rendition in job.planned():
        mode = foreground_mode(rendition, job.options, limits.render)
        if rendition.frame is not None:
            framed = True
            path = "framed"
        elif rendition.kind == "mask":
            path = "mask"
        elif mode == "ml" and pixels <= FOREGROUND_MAX_PIXELS:
            path = "cutout-ml"
        else:
            path = "cutout"
        per_source = max(per_source, PATHS[path].source)
    total = pixels * per_source
    if framed:
        total += canvas_pixels * PATHS["framed"].canvas
    if job.options.matting:
        total += min(pixels, limits.render.matting_max_pixels) * MATTING_BYTES_PER_PIXEL
    charged = Cost(math.ceil(total), canvas_pixels)
    if charged.budget_pixels > limits.budget_pixels:
        raise TooLarge(
            f"this job needs about {charged.bytes / 2**20:,.0f} MiB on a {size[0]}×{size[1]} "
            f"input; the worker's whole in-flight budget is "
            f"{limits.budget_pixels * PLAIN_BYTES_PER_PIXEL / 2**20:,.0f} MiB "
            "(max_in_flight_pixels)"
        )
    return charged
