"""Result formats compared on the same cutouts: bytes and encode time per format.

Each cutout goes through the worker's own :func:`cutq.worker.render.imaging.cutout` and
:func:`~cutq.worker.render.imaging.encode`; JPEG gets the cutout composited on white (it has no
alpha), every other format the RGBA cutout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import features

from cutq.worker.render import imaging

#: (label, format, quality, background)
FORMATS: tuple[tuple[str, str, int | None, str | None], ...] = (
    ("png", "png", None, None),
    ("webp lossless", "webp", None, None),
    ("webp q90", "webp", 90, None),
    ("webp q80", "webp", 80, None),
    ("jpeg q90 on white", "jpeg", 90, "#ffffff"),
    ("jpeg q80 on white", "jpeg", 80, "#ffffff"),
    ("avif q75", "avif", 75, None),
    ("avif q60", "avif", 60, None),
)


@dataclass
class _Totals:
    bytes: int = 0
    seconds: float = 0.0
    count: int = 0


class FormatScorer:
    """Encodes each cutout it is given in every format, timing each."""

    def __init__(self) -> None:
        self.formats = [f for f in FORMATS if f[1] != "avif" or features.check("avif")]
        self.totals = {label: _Totals() for label, *_ in self.formats}
        self.pixels = 0

    def add(self, rgb: np.ndarray, alpha: np.ndarray) -> None:
        self.pixels += alpha.size
        for label, fmt, quality, background in self.formats:
            picture = imaging.cutout(rgb, alpha, background)
            started = time.perf_counter()
            data = imaging.encode(picture, fmt, quality)
            totals = self.totals[label]
            totals.seconds += time.perf_counter() - started
            totals.bytes += len(data)
            totals.count += 1

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "format": label,
                "mean_kb": round(t.bytes / t.count / 1024, 1),
                "bits_per_pixel": round(8 * t.bytes / self.pixels, 3),
                "encode_ms": round(t.seconds / t.count * 1000, 1),
            }
            for label, t in self.totals.items()
            if t.count
        ]


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "result formats on the same cutouts (mean per image)",
        f"{'format':<20} {'KB':>8} {'bits/px':>8} {'encode ms':>10}",
    ]
    for r in rows:
        kb, bpp, ms = r["mean_kb"], r["bits_per_pixel"], r["encode_ms"]
        lines.append(f"{r['format']:<20} {kb:>8.1f} {bpp:>8.3f} {ms:>10.1f}")
    return "\n".join(lines)
