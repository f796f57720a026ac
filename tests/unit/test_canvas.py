"""Framed renditions drawn from one shared, scaled work (worker/render/canvas.py) match the
picture made
at the source's resolution, and a large margin is pure background."""

from __future__ import annotations

import numpy as np

from cutq.core.renditions import Frame
from cutq.worker.render import canvas, framing, imaging
from cutq.worker.render.subject import ALPHA_FLOOR, find_subject


def _scene(size: int = 800) -> tuple[np.ndarray, np.ndarray]:
    """A red disc with a soft edge on a noisy green ground, and its alpha."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:size, 0:size]
    r = np.hypot(yy - size * 0.55, xx - size * 0.45)
    alpha = np.clip((size * 0.3 - r) * 8, 0, 255).astype(np.uint8)
    rgb = np.empty((size, size, 3), np.uint8)
    rgb[..., 0] = np.where(alpha > 0, 200, 20)
    rgb[..., 1] = np.where(alpha > 0, 30, 180) + rng.integers(0, 20, (size, size))
    rgb[..., 2] = 40
    return rgb, alpha


def _full_resolution(rgb, alpha, frame, background):  # type: ignore[no-untyped-def]
    """The old way: frame the source-sized colours and alpha, then composite on the canvas."""
    box = find_subject(alpha).box
    planned = framing.plan((rgb.shape[1], rgb.shape[0]), box, frame)
    cleared = framing.clear_outside(alpha, box)
    a = framing.apply(planned, cleared, floor=ALPHA_FLOOR)
    return planned, imaging.cutout(framing.apply(planned, rgb), a, background)


def _draw(rgb, alpha, frames, background):  # type: ignore[no-untyped-def]
    box = find_subject(alpha).box
    plans = [framing.plan((rgb.shape[1], rgb.shape[0]), box, frame) for frame in frames]
    work = canvas.prepare(
        rgb, alpha, plans[0].region, canvas.work_scale(plans), crop=True, colours=lambda c, a: c
    )
    return [canvas.draw(planned, work, "cutout", background) for planned in plans]


def test_a_shared_scaled_work_draws_what_the_source_resolution_would() -> None:
    rgb, alpha = _scene()
    frames = [Frame(width=300, height=300, margin=0.05), Frame(width=120, height=120, margin=0.1)]
    drawn = _draw(rgb, alpha, frames, "#ffffff")
    for frame, picture in zip(frames, drawn, strict=True):
        planned, expected = _full_resolution(rgb, alpha, frame, "#ffffff")
        assert picture.size == (planned.width, planned.height) and picture.mode == "RGB"
        diff = np.abs(np.asarray(picture, np.int16) - np.asarray(expected, np.int16))
        assert diff.mean() < 1.5 and np.percentile(diff, 99) < 40


def test_transparent_cutouts_and_masks_keep_their_modes() -> None:
    rgb, alpha = _scene(400)
    frame = Frame(width=200, height=200, margin=0.05)
    (picture,) = _draw(rgb, alpha, [frame], None)
    assert picture.mode == "RGBA"
    planned, expected = _full_resolution(rgb, alpha, frame, None)
    got_alpha = np.asarray(picture)[..., 3].astype(np.int16)
    assert np.abs(got_alpha - np.asarray(expected)[..., 3]).mean() < 1.5
    box = find_subject(alpha).box
    work = canvas.prepare(rgb, alpha, planned.region, planned.scale, crop=True, colours=None)
    mask = canvas.draw(planned, work, "mask", None)
    assert mask.mode == "L" and np.abs(np.asarray(mask, np.int16) - got_alpha).max() <= 1
    assert box is not None


def test_a_wide_margin_is_pure_background_and_the_subject_keeps_its_size() -> None:
    rgb, alpha = _scene(200)
    frame = Frame(margin_px=600)
    (picture,) = _draw(rgb, alpha, [frame], "#ffffff")
    pixels = np.asarray(picture)
    box = find_subject(alpha).box
    assert box is not None
    side_w, side_h = box[2] - box[0] + 1200, box[3] - box[1] + 1200
    assert picture.size == (side_w, side_h)  # at the source's scale, plus the margins
    assert (pixels[:600] == 255).all() and (pixels[-600:] == 255).all()
    assert (pixels[:, :600] == 255).all() and (pixels[:, -600:] == 255).all()
    assert (pixels[600:-600, 600:-600] != 255).any()  # the subject is there
