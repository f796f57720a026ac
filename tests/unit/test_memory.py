"""The memory model: what admission charges a job, and the canvas ceilings (issue 31's bombs)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from cutq.core.contract import OutputSpec, parse_job
from cutq.core.errors import TooLarge
from cutq.worker import memory
from cutq.worker.config import WorkerConfig

DEFAULTS = OutputSpec("file:///out")
WHEN = datetime(2026, 12, 7, tzinfo=timezone.utc)
LIMITS = memory.Limits.of(WorkerConfig())


def job(**body: object):  # type: ignore[no-untyped-def]
    return parse_job(
        json.dumps({"input": "file:///in/a.jpg", **body}).encode(),
        defaults=DEFAULTS,
        publish_time=WHEN,
    )


def framed(**frame: object):  # type: ignore[no-untyped-def]
    return job(renditions=[{"name": "big", "frame": frame}])


BOMBS = [  # (job, input size): the frame bombs issue 31 found
    (framed(margin_px=9000), (64, 64)),  # 18064² PNG: 326 MP
    (framed(margin_px=16383), (64, 64)),  # 32830²: 1.08 GP
    (framed(margin=0.45), (7000, 7000)),  # 70000²: 4.9 GP on a 49 MP input
    (framed(margin=0.45, crop=False), (7000, 7000)),
    (framed(margin_px=4000, upscale=True), (7000, 7000)),  # 15000²: sides fit, area does not
]


@pytest.mark.parametrize(("bomb", "size"), BOMBS)
def test_every_frame_bomb_is_too_large_from_the_header_alone(bomb, size) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TooLarge, match="canvas"):
        memory.cost(bomb, size, LIMITS)
    assert TooLarge.code == "too_large"


def test_a_fixed_canvas_over_the_ceiling_is_refused_before_the_input_is_read() -> None:
    huge = framed(width=16383, height=16383)  # 268 MP: each side valid on its own
    with pytest.raises(TooLarge, match="16383×16383"):
        memory.check_canvases(huge, None, LIMITS)
    fine = framed(width=2000, height=2000)
    assert memory.check_canvases(fine, None, LIMITS) == 2000 * 2000
    assert memory.check_canvases(framed(margin_px=9000), None, LIMITS) == 0  # needs the size


def test_the_ceilings_are_the_configured_ones_side_and_area() -> None:
    limits = memory.Limits.of(WorkerConfig(max_canvas_side=3000, max_canvas_pixels=4_000_000))
    assert memory.cost(framed(width=2000, height=2000), (5000, 4000), limits).canvas_pixels
    with pytest.raises(TooLarge):  # a side over 3000
        memory.cost(framed(width=3001, height=100), (5000, 4000), limits)
    with pytest.raises(TooLarge):  # 2001² is over 4 MP
        memory.cost(framed(width=2001, height=2001), (5000, 4000), limits)


def test_a_plain_cutout_is_charged_its_pixels_and_other_paths_what_they_cost() -> None:
    size = (4000, 4000)
    plain = memory.cost(job(), size, LIMITS)
    assert plain.budget_pixels == 16_000_000
    preset = memory.cost(job(renditions=[{"preset": "amazon-main"}]), size, LIMITS)
    four = memory.cost(
        job(renditions=[{"preset": p} for p in ("amazon-main", "google-shopping", "thumbnail")]),
        size,
        LIMITS,
    )
    assert preset.canvas_pixels == 2000 * 2000 and four.canvas_pixels == 2000 * 2000
    assert plain.bytes < preset.bytes == four.bytes  # renditions share one work: the largest
    matted = memory.cost(job(options={"matting": True}), size, LIMITS)
    assert matted.bytes > plain.bytes
    ml = memory.cost(job(options={"foreground": "ml"}), size, LIMITS)
    assert ml.bytes > plain.bytes
    mask = memory.cost(job(output={"kind": "mask"}), size, LIMITS)
    assert mask.bytes <= plain.bytes


def test_a_job_that_could_never_fit_the_budget_is_too_large_not_run_alone() -> None:
    config = WorkerConfig(max_pixels=16_000_000, max_in_flight_pixels=16_000_000)
    limits = memory.Limits.of(config)
    assert memory.cost(job(), (4000, 4000), limits).budget_pixels == 16_000_000
    with pytest.raises(TooLarge, match="in-flight budget"):
        memory.cost(job(options={"foreground": "ml"}), (4000, 4000), limits)
