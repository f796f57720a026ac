"""Composite error on the generated set: the true composite scores zero, halos do not."""

from __future__ import annotations

import numpy as np
import pytest

from cutq.worker.evaluation.dataset import make_scene
from cutq.worker.evaluation.edges import (
    ORACLE,
    EdgeScorer,
    edge_band,
    parse_variants,
    render,
    true_composite,
)


def test_the_true_composite_is_what_the_scene_shows_over_a_new_background() -> None:
    scene = make_scene(0, 3)
    sample = scene.sample()
    white = true_composite(sample, "#ffffff")
    alpha = scene.alpha[..., None]
    assert np.allclose(white, scene.foreground + 255.0 * (1 - alpha), atol=1e-3)
    opaque = scene.alpha == 1.0
    # where the subject is opaque, the photo (less grain) is the composite
    assert np.abs(white[opaque] - sample.image[opaque]).mean() < 4.0


def test_the_band_hugs_the_true_outline() -> None:
    alpha = np.zeros((50, 50), np.float32)
    alpha[10:40, 10:40] = 1.0
    band = edge_band(alpha, 3)
    assert band[10, 25] and band[7, 25] and band[12, 25]
    assert not band[25, 25] and not band[2, 25]


def test_true_alpha_with_estimated_colours_nearly_matches_and_beats_the_input() -> None:
    sample = make_scene(0, 5).sample()
    scorer = EdgeScorer(["none", "foreground=ml"])
    scorer.add(sample, sample.mask)  # the model is perfect: only colours differ
    rows = {row["variant"]: row for row in scorer.rows(0.1)}
    assert rows["none"]["mae_band"] == pytest.approx(rows["true alpha, none"]["mae_band"])
    assert rows["foreground=ml"]["mae_band"] < 0.7 * rows["none"]["mae_band"]
    assert rows["none"]["edge_ms"] >= 0 and rows["none"]["images_per_s"] > 0
    assert set(ORACLE) <= set(rows)
    assert "foreground=ml" in render(scorer.rows(0.1))


def test_a_worse_mask_scores_worse() -> None:
    sample = make_scene(0, 5).sample()
    good, bad = EdgeScorer(["none"]), EdgeScorer(["none"])
    good.add(sample, sample.mask)
    bad.add(sample, np.roll(sample.mask, 4, axis=1))
    assert bad.rows(1)[0]["mae_band"] > 2 * good.rows(1)[0]["mae_band"]
    assert bad.rows(1)[0]["mae_all"] > good.rows(1)[0]["mae_all"]


def test_variant_names_are_checked() -> None:
    assert parse_variants("") == parse_variants(None) and "matting+ml" in parse_variants("")
    assert parse_variants("none, post_process") == ["none", "post_process"]
    with pytest.raises(ValueError, match="blur"):
        parse_variants("none,blur")
