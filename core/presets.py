"""Marketplace presets: named bundles of ordinary rendition fields, plus the rules a result
made from one must meet.

A preset's ``fields`` are exactly what a job could write in a rendition itself (see
:mod:`cutq.core.renditions`); a job naming a preset may override any of them. Its ``rules``
are checked after encoding, on the encoded bytes (:mod:`cutq.worker.render.verdict`), and the event
says ``pass``, ``review`` or ``fail`` with each reason (docs/verdicts.md).

Sources for the rules (the marketplaces' seller help pages): Amazon main images on pure white
(RGB 255,255,255), the product filling at least 85 % of the frame, at least 1000 px on the
longest side for zoom (1600 recommended), JPEG preferred; Google Merchant Center: product at
75-90 % of the frame, at least 100×100 px (250×250 for apparel); Shopify: 2048×2048 squares
display best, 800×800 or more for zoom.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Rules:
    """What a rendition made from a preset must show, measured on its encoded bytes.

    ``fill_min``/``fill_max``: the subject's bounding box over the canvas, on the axis where it
    fills most; ``purity_min``: the share of the border ring's pixels exactly at the background
    colour (alpha exactly 0 on transparency); ``min_side``: the output's longer side, in px.
    ``tolerates``: quality flags that do not make its result ``review`` (by default every
    flag that says a result may be wrong does; see docs/verdicts.md).
    """

    fill_min: float | None = None
    fill_max: float | None = None
    purity_min: float | None = None
    min_side: int | None = None
    min_side_reason: str = "minimum"
    square: bool = False
    tolerates: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        return {key: value for key, value in vars(self).items() if value not in (None, False, ())}


@dataclass(frozen=True)
class Preset:
    """A named bundle of rendition fields and the rules its results are checked against."""

    name: str
    summary: str
    fields: Mapping[str, Any]
    rules: Rules = field(default_factory=Rules)


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "amazon-main",
            "Amazon main image: JPEG on pure white, square 2000 px canvas (smaller when the "
            "source is), the product's longer side filling 87.5 %",
            {
                "format": "jpeg",
                "quality": 90,
                "background": "#ffffff",
                "foreground": "ml",
                "frame": {"width": 2000, "height": 2000, "margin": 0.0625},
            },
            Rules(
                fill_min=0.85,
                fill_max=0.90,
                purity_min=1.0,
                min_side=1000,
                min_side_reason="zoom minimum",
                square=True,
            ),
        ),
        Preset(
            "google-shopping",
            "Google Merchant Center: JPEG on white, square 1600 px canvas, product filling 82.5 %",
            {
                "format": "jpeg",
                "quality": 90,
                "background": "#ffffff",
                "foreground": "ml",
                "frame": {"width": 1600, "height": 1600, "margin": 0.0875},
            },
            Rules(fill_min=0.75, fill_max=0.90, purity_min=1.0, min_side=250, square=True),
        ),
        Preset(
            "square-2048",
            "Shopify-style storefront square: lossy WebP on white, 2048×2048, 5 % margin",
            {
                "format": "webp",
                "quality": 90,
                "background": "#ffffff",
                "foreground": "ml",
                "frame": {"width": 2048, "height": 2048, "margin": 0.05},
            },
            Rules(
                fill_min=0.80,
                fill_max=0.95,
                min_side=800,
                min_side_reason="zoom minimum",
                square=True,
                tolerates=("multiple",),  # a storefront square may show a set
            ),
        ),
        Preset(
            "thumbnail",
            "small square WebP on transparency, 400×400, 5 % margin",
            {
                "format": "webp",
                "quality": 80,
                "foreground": "ml",
                "frame": {"width": 400, "height": 400, "margin": 0.05},
            },
            Rules(fill_min=0.80, fill_max=0.95, square=True, tolerates=("multiple",)),
        ),
    )
}


def preset_names() -> tuple[str, ...]:
    return tuple(PRESETS)
