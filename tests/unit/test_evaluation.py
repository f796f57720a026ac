"""The generated evaluation set (determinism, exact ground truth) and the metrics' sanity."""

from __future__ import annotations

import numpy as np
import pytest

from cutq.worker.evaluation.dataset import (
    BACKGROUNDS,
    MAX_SIDE,
    MIN_SIDE,
    generate,
    make_scene,
)
from cutq.worker.evaluation.metrics import Scorer, iou, mean_scores
from cutq.worker.evaluation.shapes import Placement, ellipse, rasterize


def as_uint8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


SQUARE = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])


def test_same_seed_same_pixels_and_different_seed_different_pixels() -> None:
    first, again = make_scene(3, 5).sample(), make_scene(3, 5).sample()
    assert first.name == again.name
    assert np.array_equal(first.image, again.image)
    assert np.array_equal(first.mask, again.mask)
    assert first.tags == again.tags
    other = make_scene(4, 5).sample()
    assert first.image.shape != other.image.shape or not np.array_equal(first.image, other.image)


def test_image_i_does_not_depend_on_the_set_size() -> None:
    small = list(generate(3, seed=1))
    assert [s.name for s in small] == ["s1-0000", "s1-0001", "s1-0002"]
    assert np.array_equal(small[2].image, make_scene(1, 2).sample().image)


def test_ground_truth_is_the_alpha_that_made_the_composite() -> None:
    for index in range(6):
        scene = make_scene(0, index)
        sample = scene.sample()
        alpha = scene.alpha
        assert sample.mask.dtype == np.uint8 and sample.mask.shape == alpha.shape
        assert np.array_equal(sample.mask, np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8))
        # Outside every object the photo is the backdrop; inside, the object's own colours.
        outside, inside = alpha == 0, alpha == 1
        assert outside.any() and inside.any()
        backdrop = as_uint8(scene.background + scene.grain)
        objects = as_uint8(scene.foreground + scene.grain)
        assert np.array_equal(sample.image[outside], backdrop[outside])
        assert np.array_equal(sample.image[inside], objects[inside])
        # And on the soft edges the blend uses the same alpha.
        blend = scene.foreground + scene.background * (1 - alpha[..., None]) + scene.grain
        assert np.array_equal(sample.image, as_uint8(blend))


def test_the_set_varies_sizes_backdrops_and_has_soft_edges() -> None:
    samples = list(generate(24))
    sizes = {s.image.shape[:2] for s in samples}
    assert len(sizes) > 20
    assert all(MIN_SIDE <= max(hw) <= MAX_SIDE for hw in sizes)
    assert {round(max(h, w) / min(h, w), 1) for h, w in sizes} >= {1.0, 1.3, 1.8}
    assert len({t for s in samples for t in s.tags if t.startswith("bg:")}) >= len(BACKGROUNDS) - 2
    for sample in samples:
        soft = np.count_nonzero((sample.mask > 0) & (sample.mask < 255))
        share = np.count_nonzero(sample.mask >= 128) / sample.mask.size
        assert soft > 0, sample.name
        assert 0.02 < share < 0.8, (sample.name, share)
        assert any(t.startswith("kind:") for t in sample.tags)


@pytest.mark.parametrize(("centre", "radius"), [(50.0, 10.25), (50.5, 10.0), (50.3, 7.125)])
def test_rasterized_coverage_is_the_exact_area(centre: float, radius: float) -> None:
    cover = rasterize([(SQUARE, True)], Placement(centre, centre, radius, 0.0), 100, 100)
    assert cover.sum() == pytest.approx((2 * radius) ** 2)
    assert cover.min() == 0.0 and cover.max() == 1.0


def test_holes_are_cut_and_rotation_keeps_the_area() -> None:
    ring = [(ellipse(0, 0, 1, 1), True), (ellipse(0, 0, 0.5, 0.5), False)]
    cover = rasterize(ring, Placement(50, 50, 40, 0.0), 100, 100)
    assert cover[50, 50] == 0.0 and cover[50, 20] == 1.0
    assert cover.sum() == pytest.approx(np.pi * 40**2 * 0.75, rel=0.01)
    turned = rasterize([(SQUARE, True)], Placement(50, 50, 20, 0.4), 100, 100)
    assert turned.sum() == pytest.approx(1600, rel=0.01)


def test_a_perfect_prediction_scores_perfectly() -> None:
    sample = make_scene(0, 1).sample()
    binary = np.where(sample.mask >= 128, 255, 0).astype(np.uint8)
    scores = Scorer().score(binary, binary)
    assert scores.iou == 1.0
    assert scores.mae == 0.0
    assert scores.s_measure == pytest.approx(1.0, abs=1e-6)
    assert scores.max_f == pytest.approx(1.0, abs=1e-6)
    soft = Scorer().score(sample.mask, sample.mask)  # the soft ground truth as a prediction
    assert soft.iou == 1.0
    assert soft.mae < 0.01
    assert soft.s_measure > 0.98


def test_an_inverted_prediction_scores_badly() -> None:
    sample = make_scene(0, 1).sample()
    scores = Scorer().score(255 - sample.mask, sample.mask)
    assert scores.iou < 0.05
    assert scores.mae > 0.9
    assert scores.s_measure < 0.2
    blank = Scorer().score(np.zeros_like(sample.mask), sample.mask)
    assert blank.iou == 0.0


def test_dataset_max_f_is_taken_over_the_mean_curve() -> None:
    scorer = Scorer()
    gt = np.zeros((64, 64), np.uint8)
    gt[16:48, 16:48] = 255
    scorer.score(gt, gt)
    scorer.score(255 - gt, gt)
    assert 0.4 < scorer.dataset_max_f() < 1.0
    means = mean_scores([])
    assert np.isnan(means["iou"])


def test_iou_edge_cases() -> None:
    empty = np.zeros((4, 4), np.uint8)
    assert iou(empty, empty) == 1.0
    with pytest.raises(ValueError, match="shape"):
        iou(empty, np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        Scorer().score(empty.astype(np.float32), empty)  # type: ignore[arg-type]
