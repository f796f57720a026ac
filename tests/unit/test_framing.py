"""Subject framing: the subject's box (specks ignored), the canvas plan, and the pixels."""

from __future__ import annotations

import numpy as np
import pytest

from cutq.core.renditions import Frame
from cutq.worker.render import framing
from cutq.worker.render.subject import find_subject, label_parts


def scene(height: int = 600, width: int = 800) -> np.ndarray:
    alpha = np.zeros((height, width), np.uint8)
    alpha[100:400, 200:350] = 255  # the subject: 150 wide, 300 tall
    alpha[550:552, 700:702] = 255  # a 4-pixel speck far away
    alpha[10, 10] = 4  # a faint haze pixel below the floor
    return alpha


def box_of(alpha: np.ndarray, level: int = 128) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero((alpha >= level).any(1)), np.flatnonzero((alpha >= level).any(0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def test_the_subject_box_ignores_specks_and_haze() -> None:
    subject = find_subject(scene())
    assert subject.box == (200, 100, 350, 400)
    assert len(subject.parts) == 2  # the speck is a part, just not the subject


def test_a_large_image_box_is_exact_at_full_resolution() -> None:
    alpha = np.zeros((3000, 2000), np.uint8)
    alpha[1001:2503, 333:1777] = 200
    assert find_subject(alpha).box == (333, 1001, 1777, 2503)


def test_no_subject_has_no_box() -> None:
    assert find_subject(np.zeros((50, 50), np.uint8)).box is None


def test_parts_join_diagonally_and_count_separately() -> None:
    grid = np.zeros((6, 6), bool)
    grid[0, 0] = grid[1, 1] = grid[2, 2] = True  # one diagonal part
    grid[4:6, 4:6] = True
    parts = label_parts(grid)
    assert sorted(part.area for part in parts) == [3, 4]
    u = np.zeros((5, 5), bool)
    u[0:5, 0] = u[0:5, 4] = u[4, 0:5] = True  # a U joins only at its bottom row
    assert len(label_parts(u)) == 1


def test_square_canvas_with_margin_fills_by_the_margin() -> None:
    plan = framing.plan((800, 600), (200, 100, 350, 400), Frame(width=200, height=200, margin=0.1))
    assert (plan.width, plan.height) == (200, 200)
    assert plan.scale == pytest.approx(160 / 300)  # the longer side fills 80 %
    assert plan.top == pytest.approx(20) and plan.left == pytest.approx((200 - 80) / 2)


def test_never_upscaled_unless_asked_the_canvas_shrinks_instead() -> None:
    frame = Frame(width=2000, height=2000, margin=0.0625)
    plan = framing.plan((800, 600), (200, 100, 350, 400), frame)
    assert plan.scale == 1.0
    assert plan.width == plan.height == round(300 / 0.875)  # fill held, canvas smaller
    frame = Frame(width=2000, height=2000, margin=0.0625, upscale=True)
    bigger = framing.plan((800, 600), (200, 100, 350, 400), frame)
    assert (bigger.width, bigger.scale) == (2000, pytest.approx(1750 / 300))


@pytest.mark.parametrize("subject", [353, 356, 359])
def test_a_subject_a_hair_short_of_its_canvas_keeps_the_exact_canvas_unscaled(subject: int) -> None:
    """The thumbnail made 399² from a 400 px source: a grid expects exactly 400²."""
    frame = Frame(width=400, height=400, margin=0.05)  # the thumbnail preset's frame
    plan = framing.plan((400, 400), (20, 30, 20 + subject, 30 + subject // 2), frame)
    assert (plan.width, plan.height, plan.scale) == (400, 400, 1.0)  # never enlarged
    assert plan.left == pytest.approx((400 - subject) / 2)  # centred: the margin is wider
    alpha = np.zeros((400, 400), np.uint8)
    alpha[30 : 30 + subject // 2, 20 : 20 + subject] = 255
    framed = framing.apply(plan, alpha)
    assert framed.shape == (400, 400)
    assert (box_of(framed)[2] - box_of(framed)[0]) == subject


def test_a_subject_well_short_of_its_canvas_still_shrinks_the_canvas() -> None:
    frame = Frame(width=400, height=400, margin=0.05)
    plan = framing.plan((400, 400), (20, 30, 372, 200), frame)  # 352: 2.3 % short
    assert (plan.width, plan.scale) == (round(352 / 0.9), 1.0)


def test_a_longest_side_a_hair_out_of_reach_is_given_exactly() -> None:
    frame = Frame(longest=1000, margin=0.05)
    plan = framing.plan((1200, 1200), (0, 0, 890, 400), frame)  # 900 px would fill it
    assert (plan.width, plan.scale) == (1000, 1.0)
    far = framing.plan((1200, 1200), (0, 0, 850, 400), frame)
    assert far.width == round(850 / 0.9)


def test_bottom_position_rests_on_the_bottom_margin() -> None:
    frame = Frame(width=200, height=200, margin_px=10, position="bottom")
    plan = framing.plan((800, 600), (200, 100, 500, 200), frame)  # 300 wide, 100 tall
    assert plan.scale == pytest.approx(180 / 300)
    assert plan.top + 100 * plan.scale == pytest.approx(190)
    assert plan.left == pytest.approx(10)


def test_cover_fills_the_canvas_and_cuts() -> None:
    plan = framing.plan((800, 600), (200, 100, 350, 400), Frame(width=100, height=100, fit="cover"))
    assert plan.scale == pytest.approx(100 / 150)  # the shorter side fills


def test_longest_side_and_no_canvas() -> None:
    plan = framing.plan((800, 600), (200, 100, 350, 400), Frame(longest=150, margin=0.25))
    assert (plan.width, plan.height) == (round(150 * 0.25 + 75), 150)  # 150×300 at 0.25
    plain = framing.plan((800, 600), (200, 100, 350, 400), Frame(margin_px=5))
    assert (plain.width, plain.height, plain.scale) == (160, 310, 1.0)
    whole = framing.plan((800, 600), (200, 100, 350, 400), Frame(crop=False))
    assert (whole.width, whole.height, whole.region) == (800, 600, (0, 0, 800, 600))


def test_framed_pixels_put_the_subject_where_planned_and_clear_the_rest() -> None:
    alpha = scene()
    subject = find_subject(alpha)
    plan = framing.plan((800, 600), subject.box, Frame(width=300, height=300, margin=0.05))
    out = framing.apply(plan, framing.clear_outside(alpha, subject.box), floor=8)
    assert out.shape == (300, 300)
    x0, y0, x1, y1 = box_of(out)
    assert (y1 - y0) / 300 == pytest.approx(0.9, abs=0.006)
    assert abs((x0 + x1) / 2 - 150) <= 1
    assert out[:15].max() == 0 and out[-15:].max() == 0  # margins: nothing, no speck, no haze
    rgb = np.dstack([alpha] * 3)
    assert framing.apply(plan, rgb).shape == (300, 300, 3)


def test_a_subject_with_no_box_frames_the_whole_image() -> None:
    plan = framing.plan((80, 60), None, Frame(width=40, height=40))
    assert plan.region == (0, 0, 80, 60)
