"""Edge quality measured on composites: what a product page shows.

A cutout is composited over a new background (white and black, the two extremes a halo shows
on) and compared with the true composite of the same scene, ``αF + (1 − α)·new``, made from
the generator's exact alpha and foreground colours. The error (mean absolute, 0-255 per
channel) is reported over the whole image and in the edge band (pixels within
:data:`BAND_PX` of the true outline, where halos live), for each edge variant: the worker's
own option code (:mod:`cutq.worker.render.matting`, :func:`cutq.worker.render.imaging.cutout`)
run on the
model's mask, with the time each variant adds per image.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import binary_dilation, binary_erosion

from cutq.worker.evaluation.dataset import Sample
from cutq.worker.render import imaging, matting

#: New backgrounds the cutout is composited on.
NEW_BACKGROUNDS = ("#ffffff", "#000000")
#: Half-width of the edge band around the true outline, in pixels.
BAND_PX = 3
#: Closed-form matting bounds used by the eval (the worker's defaults).
MATTING_MAX_PIXELS = 1_000_000
MATTING_TIMEOUT_S = 10.0

#: name → (post_process, matting, foreground)
VARIANTS: dict[str, tuple[bool, bool, str]] = {
    "none": (False, False, "none"),
    "foreground=ml": (False, False, "ml"),
    "post_process": (True, False, "none"),
    "post_process+ml": (True, False, "ml"),
    "matting": (False, True, "none"),
    "matting+ml": (False, True, "ml"),
}
#: Rows with the true alpha instead of the model's: the colour step on its own.
ORACLE = {"true alpha, none": "none", "true alpha, foreground=ml": "ml"}


@dataclass
class _Totals:
    all_error: float = 0.0
    band_error: float = 0.0
    seconds: float = 0.0
    count: int = 0
    skipped: int = 0


@dataclass
class EdgeScorer:
    """Accumulates composite errors per variant over the images it is given."""

    variants: Sequence[str]
    save_dir: Path | None = None
    totals: dict[str, _Totals] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [name for name in self.variants if name not in VARIANTS]
        if unknown:
            raise ValueError(f"unknown edge variant(s) {unknown}; known: {list(VARIANTS)}")
        for name in [*self.variants, *ORACLE]:
            self.totals[name] = _Totals()

    def add(self, sample: Sample, mask: np.ndarray) -> None:
        """Score every variant on one image and its predicted 8-bit mask."""
        if sample.foreground is None or sample.alpha is None:
            raise ValueError(f"{sample.name}: the sample carries no true foreground")
        band = edge_band(sample.alpha)
        truths = [true_composite(sample, colour) for colour in NEW_BACKGROUNDS]
        pictures = {}
        for name in self.variants:
            post_process, matted, foreground = VARIANTS[name]
            started = time.perf_counter()
            refined = matting.refine_mask(
                sample.image,
                mask,
                post_process=post_process,
                matting=False,
                max_pixels=MATTING_MAX_PIXELS,
                timeout_s=MATTING_TIMEOUT_S,
            )
            if matted:
                result = matting.refine_alpha(
                    sample.image,
                    refined,
                    max_pixels=MATTING_MAX_PIXELS,
                    timeout_s=MATTING_TIMEOUT_S,
                )
                self.totals[name].skipped += result.skipped is not None
                refined = result.alpha
            colours = matting.foreground_colours(sample.image, refined, foreground)
            self.totals[name].seconds += time.perf_counter() - started
            pictures[name] = self._score(name, colours, refined, truths, band)
        true_alpha = sample.mask
        for name, foreground in ORACLE.items():
            colours = matting.foreground_colours(sample.image, true_alpha, foreground)
            self._score(name, colours, true_alpha, truths, band)
        if self.save_dir is not None:
            self._save(sample, pictures)

    def _score(
        self,
        name: str,
        colours: np.ndarray,
        alpha: np.ndarray,
        truths: list[np.ndarray],
        band: np.ndarray,
    ) -> np.ndarray:
        totals = self.totals[name]
        first = None
        for colour, truth in zip(NEW_BACKGROUNDS, truths, strict=True):
            shown = np.asarray(imaging.cutout(colours, alpha, colour), np.float32)
            error = np.abs(shown - truth)
            totals.all_error += float(error.mean()) / len(NEW_BACKGROUNDS)
            totals.band_error += float(error[band].mean()) / len(NEW_BACKGROUNDS)
            first = shown if first is None else first
        totals.count += 1
        assert first is not None
        return first.astype(np.uint8)

    def _save(self, sample: Sample, pictures: dict[str, np.ndarray]) -> None:
        """``<name>.edges.png``: the input, then the cutout over white for each variant."""
        assert self.save_dir is not None
        panels = [("input", sample.image), *pictures.items()]
        height, width = sample.image.shape[:2]
        strip = Image.new("RGB", (width * len(panels), height + 16), "white")
        draw = ImageDraw.Draw(strip)
        for index, (label, pixels) in enumerate(panels):
            strip.paste(Image.fromarray(pixels, "RGB"), (index * width, 16))
            draw.text((index * width + 4, 2), label, fill="black")
        strip.save(self.save_dir / f"{sample.name}.edges.png")

    def rows(self, model_s_per_image: float) -> list[dict[str, Any]]:
        """One row per variant: errors, the edge step's ms per image, and images/s overall."""
        out = []
        for name, totals in self.totals.items():
            if not totals.count:
                continue
            oracle = name in ORACLE
            per_image = totals.seconds / totals.count
            out.append(
                {
                    "variant": name,
                    "oracle": oracle,
                    "mae_all": round(totals.all_error / totals.count, 3),
                    "mae_band": round(totals.band_error / totals.count, 3),
                    "edge_ms": None if oracle else round(per_image * 1000, 1),
                    "images_per_s": None
                    if oracle
                    else round(1.0 / (model_s_per_image + per_image), 3),
                    "matting_skipped": totals.skipped,
                }
            )
        return out


def render(rows: list[dict[str, Any]]) -> str:
    """The rows of :meth:`EdgeScorer.rows` as a plain-text table."""
    lines = [
        f"composite error over {' and '.join(NEW_BACKGROUNDS)} vs the true composite "
        f"(MAE, 0-255; band: ≤ {BAND_PX} px from the true outline)",
        f"{'variant':<26} {'MAE all':>8} {'MAE band':>9} {'edge ms':>8} {'images/s':>9}",
    ]
    for row in rows:
        ms = "–" if row["edge_ms"] is None else f"{row['edge_ms']:.1f}"
        rate = "–" if row["images_per_s"] is None else f"{row['images_per_s']:.2f}"
        lines.append(
            f"{row['variant']:<26} {row['mae_all']:>8.3f} {row['mae_band']:>9.3f} {ms:>8} {rate:>9}"
        )
    return "\n".join(lines)


def true_composite(sample: Sample, colour: str) -> np.ndarray:
    """The scene's subject over ``colour``, from the exact alpha and foreground (float)."""
    assert sample.foreground is not None and sample.alpha is not None
    red, green, blue, _ = imaging.parse_color(colour)
    new = np.array([red, green, blue], np.float32)
    composite = sample.foreground + new * (1.0 - sample.alpha[..., None])
    return np.clip(composite, 0.0, 255.0)


def edge_band(alpha: np.ndarray, width_px: int = BAND_PX) -> np.ndarray:
    """Pixels within ``width_px`` of the true outline (soft pixels and the hard boundary)."""
    inside = alpha >= 0.5
    outline = (inside ^ binary_erosion(inside)) | ((alpha > 0) & (alpha < 1))
    return binary_dilation(outline, iterations=width_px)


def parse_variants(text: str | None) -> list[str]:
    """``--edges`` → variant names (all of them for an empty value)."""
    if not text:
        return list(VARIANTS)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        raise ValueError(
            f"unknown edge variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}"
        )
    return names
