"""Edge maths with known answers: foreground colours under soft alpha, mask post-processing,
closed-form matting and its bounds."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cutq.worker.render import imaging, matting

FG = np.array([220.0, 30.0, 40.0])  # red subject …
BG = np.array([20.0, 170.0, 200.0])  # … over a teal backdrop


def ramp(height: int = 64, width: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """One colour over another with a linear soft edge 100 px wide: exact I = αF + (1 − α)B."""
    alpha = np.clip((np.arange(width) - 50) / 100.0, 0.0, 1.0)[None, :].repeat(height, 0)
    rgb = alpha[..., None] * FG + (1.0 - alpha[..., None]) * BG
    return (
        np.clip(rgb + 0.5, 0, 255).astype(np.uint8),
        np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8),
    )


def soft_disc(height: int = 120, width: int = 160, seed: int = 0) -> tuple[np.ndarray, ...]:
    """A textured subject with a soft round edge over a different textured backdrop."""
    rng = np.random.default_rng(seed)

    def texture(base: np.ndarray) -> np.ndarray:
        small = rng.normal(0, 25, size=(height // 8, width // 8, 3)) + base
        img = Image.fromarray(np.clip(small, 0, 255).astype(np.uint8))
        return np.asarray(img.resize((width, height), Image.BICUBIC)).astype(np.float64)

    fg, bg = texture(FG), texture(BG)
    yy, xx = np.mgrid[0:height, 0:width]
    distance = np.hypot(yy - height / 2, xx - width / 2) - min(height, width) * 0.3
    alpha = np.clip(0.5 - distance / 8.0, 0.0, 1.0)
    rgb = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    to8 = lambda x: np.clip(x + 0.5, 0, 255).astype(np.uint8)  # noqa: E731
    return to8(rgb), to8(alpha * 255), fg, bg


def test_the_foreground_under_a_soft_ramp_is_the_subjects_colour() -> None:
    rgb, alpha = ramp()
    estimated = matting.estimate_foreground(rgb, alpha).astype(np.float64)
    soft = (alpha > 0) & (alpha < 255)
    assert soft.sum() > 90 * 64
    # The input itself is far off (that is the halo) …
    assert np.abs(rgb[soft] - FG).max() > 150
    # … the estimate is the subject's colour, everywhere the subject shows at all.
    assert np.abs(estimated[soft] - FG).max() <= 2.0
    assert np.abs(estimated[alpha == 255] - FG).max() <= 1.0


def test_composited_on_white_the_estimate_removes_the_halo() -> None:
    rgb, alpha = ramp()
    a = alpha[..., None] / 255.0
    truth = a * FG + (1 - a) * 255.0
    kept = imaging.cutout(rgb, alpha, "#ffffff")
    clean = imaging.cutout(matting.estimate_foreground(rgb, alpha), alpha, "#ffffff")
    soft = (alpha > 0) & (alpha < 255)
    error_kept = np.abs(np.asarray(kept, np.float64) - truth)[soft].mean()
    error_clean = np.abs(np.asarray(clean, np.float64) - truth)[soft].mean()
    assert error_kept > 20
    assert error_clean < 1.0


def test_it_matches_pymatting_the_reference_on_composites() -> None:
    """Red-black sweeps (ours) and raster-order sweeps (pymatting) differ pixel by pixel a
    little; over a new background the two come out alike, and near the truth."""
    pymatting = pytest.importorskip("pymatting")
    rgb, alpha, fg, _ = soft_disc()
    reference = pymatting.estimate_foreground_ml(rgb / 255.0, alpha / 255.0) * 255.0
    reference = np.clip(reference + 0.5, 0, 255).astype(np.uint8)
    ours = matting.estimate_foreground(rgb, alpha)
    soft = (alpha > 0) & (alpha < 255)
    weight = alpha[soft][:, None] / 255.0  # what a composite sees of each pixel's colour
    difference = np.abs(reference[soft].astype(float) - ours[soft])
    assert (difference * weight).sum() / (weight.sum() * 3) < 4.0
    a = alpha[..., None] / 255.0
    truth = a * fg + (1 - a) * 255.0

    def error(colours: np.ndarray) -> float:
        shown = np.asarray(imaging.cutout(colours, alpha, "#ffffff"), np.float64)
        return float(np.abs(shown - truth)[soft].mean())

    assert error(ours) <= 1.15 * error(reference) + 0.2
    assert error(ours) < 0.5 * error(rgb)


def test_it_recovers_textured_colours_better_than_the_input() -> None:
    rgb, alpha, fg, _ = soft_disc(seed=1)
    soft = (alpha > 25) & (alpha < 230)
    estimated = matting.estimate_foreground(rgb, alpha).astype(np.float64)
    assert np.abs(estimated[soft] - fg[soft]).mean() < 0.3 * np.abs(rgb[soft] - fg[soft]).mean()


def test_none_and_hard_edges_keep_the_input() -> None:
    rgb, alpha = ramp()
    assert matting.foreground_colours(rgb, alpha, "none") is rgb
    hard = np.where(alpha >= 128, 255, 0).astype(np.uint8)
    assert matting.foreground_colours(rgb, hard, "ml") is rgb
    assert matting.foreground_colours(rgb, alpha, "ml") is not rgb
    with pytest.raises(ValueError):
        matting.foreground_colours(rgb, alpha, "bogus")


def test_foreground_estimation_is_bounded_in_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    rgb, alpha = ramp()
    monkeypatch.setattr(matting, "FOREGROUND_MAX_PIXELS", alpha.size - 1)
    assert matting.foreground_colours(rgb, alpha, "ml") is rgb


def test_odd_and_tiny_sizes() -> None:
    for height, width in ((1, 1), (1, 7), (5, 1), (3, 2), (33, 65)):
        rgb = np.full((height, width, 3), 100, np.uint8)
        alpha = np.full((height, width), 128, np.uint8)
        out = matting.estimate_foreground(rgb, alpha)
        assert out.shape == (height, width, 3) and out.dtype == np.uint8


def test_post_process_matches_rembgs_opencv_steps() -> None:
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(3)
    small = rng.random((24, 32)) * 255
    mask = np.asarray(Image.fromarray(small.astype(np.uint8)).resize((128, 96), Image.BICUBIC))
    mask = np.where(rng.random(mask.shape) < 0.01, 255, mask).astype(np.uint8)  # specks
    # rembg.bg.post_process, step by step:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    expected = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    expected = cv2.GaussianBlur(expected, (5, 5), sigmaX=2, sigmaY=2)
    expected = np.where(expected < 127, 0, 255).astype(np.uint8)
    ours = matting.post_process_mask(mask)
    assert set(np.unique(ours)) <= {0, 255}
    # OpenCV blurs in fixed point: a pixel within rounding of 127 may differ, rarely.
    assert (ours != expected).mean() < 0.0005


def test_post_process_removes_specks_and_keeps_the_subject() -> None:
    mask = np.zeros((64, 64), np.uint8)
    mask[20:44, 20:44] = 255
    mask[5, 5] = mask[60, 50] = 255  # isolated specks
    mask[20:44, 44] = 90  # a faint soft edge
    out = matting.post_process_mask(mask)
    assert out[5, 5] == 0 and out[60, 50] == 0
    assert (out[22:42, 22:42] == 255).all()
    assert (out[:10, :] == 0).all()


def test_trimap_follows_rembg() -> None:
    mask = np.zeros((60, 60), np.uint8)
    mask[10:50, 10:50] = 255
    tri = matting.trimap(mask, erode_px=4)
    assert set(np.unique(tri)) == {0, 128, 255}
    assert tri[30, 30] == 255 and tri[0, 0] == 0
    assert tri[10, 30] == 128 and tri[9, 30] == 128  # the eroded band each side of the edge


def matting_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A subject with a soft edge, and a coarse mask of it (blurred and a bit too big)."""
    rgb, alpha, _, _ = soft_disc(120, 160, seed=2)
    rough = Image.fromarray(alpha).filter(__import__("PIL.ImageFilter").ImageFilter.MaxFilter(5))
    rough = rough.filter(__import__("PIL.ImageFilter").ImageFilter.GaussianBlur(4))
    return rgb, alpha, np.asarray(rough)


def test_matting_brings_a_coarse_mask_closer_to_the_true_alpha() -> None:
    pytest.importorskip("pymatting")
    rgb, truth, rough = matting_scene()
    refined = matting.refine_alpha(rgb, rough, max_pixels=10**7, timeout_s=60)
    assert refined.skipped is None and refined.scale == 1.0
    band = (truth > 0) & (truth < 255) | (rough > 0) & (rough < 255)
    before = np.abs(rough[band].astype(float) - truth[band]).mean()
    after = np.abs(refined.alpha[band].astype(float) - truth[band]).mean()
    assert after < 0.6 * before, (before, after)


def test_matting_runs_scaled_down_past_its_pixel_cap() -> None:
    pytest.importorskip("pymatting")
    rgb, _, rough = matting_scene()
    refined = matting.refine_alpha(rgb, rough, max_pixels=4800, timeout_s=60)
    assert refined.skipped is None
    assert refined.scale == pytest.approx(0.5)
    assert refined.alpha.shape == rough.shape and refined.alpha.dtype == np.uint8
    sure = matting.trimap(rough)
    assert (refined.alpha[sure == 255] == 255).all() and (refined.alpha[sure == 0] == 0).all()


def test_matting_past_its_time_budget_keeps_the_mask() -> None:
    pytest.importorskip("pymatting")
    rgb, _, rough = matting_scene()
    refined = matting.refine_alpha(rgb, rough, max_pixels=10**7, timeout_s=1e-9)
    assert refined.skipped is not None and "past" in refined.skipped
    assert refined.alpha is rough


def test_matting_with_nothing_unknown_keeps_the_mask() -> None:
    mask = np.zeros((40, 40), np.uint8)
    refined = matting.refine_alpha(
        np.zeros((40, 40, 3), np.uint8), mask, max_pixels=10, timeout_s=1
    )
    assert refined.skipped and refined.alpha is mask


def test_sweeping_only_the_band_gives_what_the_full_sweep_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rgb, alpha, _, _ = soft_disc(300, 400, seed=4)
    banded = matting.estimate_foreground(rgb, alpha)
    monkeypatch.setattr(matting, "DENSE_MAX_PIXELS", 10**9)
    dense = matting.estimate_foreground(rgb, alpha)
    soft = (alpha > 0) & (alpha < 255)
    assert np.abs(banded[soft].astype(float) - dense[soft]).mean() < 0.5
    assert (banded[alpha == 255] == rgb[alpha == 255]).all()  # opaque pixels keep their colour
