"""The verdict on a rendition made from a preset: ``pass``, ``review`` or ``fail``.

``fail``: a preset's rule failed on the encoded bytes, or no subject was found (the job's
``empty`` flag). ``review``: every rule holds but a quality flag the preset does not tolerate
says the result may be wrong (cut off by the source's edge, more than one subject, low
confidence): a shop must look before publishing it. ``pass``: nothing says it is wrong. What
each flag does is :data:`cutq.worker.render.thresholds.FLAG_VERDICTS`.

Everything is measured on the decoded output, as a marketplace would see it, never on the
arrays it was made from: the fill ratio (the subject's box over the canvas, on the axis it
fills most; subject pixels are those more than :data:`TOLERANCE` from the background colour,
or with alpha above it on transparency), the background purity (the share of the border
ring's pixels exactly at the background colour, or exactly transparent) and the size.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from cutq.core.presets import Rules
from cutq.worker.render.imaging import parse_color
from cutq.worker.render.thresholds import FLAG_VERDICTS, RING_SHARE, TOLERANCE

VERDICTS = ("pass", "review", "fail")  # best first


@dataclass(frozen=True)
class Verdict:
    """``pass``, ``review`` or ``fail``; each failed rule in words (``failed``); every reason
    it is not ``pass`` (``reasons``: the failed rules, then the flags' reasons; empty on a
    pass); and the figures measured."""

    verdict: str
    failed: tuple[str, ...] = ()
    figures: dict[str, Any] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()


def measure(data: bytes, background: str | None) -> dict[str, Any]:
    """Width, height, fill and purity of an encoded picture on ``background`` (None:
    transparency)."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        width, height = image.size
        if background is None:
            alpha = np.asarray(image.convert("RGBA"))[:, :, 3]
            subject, exact = alpha > TOLERANCE, alpha == 0
        else:
            pixels = np.asarray(image.convert("RGB")).astype(np.int16)
            colour = np.array(parse_color(background)[:3], np.int16)
            distance = np.abs(pixels - colour).max(axis=2)
            subject, exact = distance > TOLERANCE, distance == 0
    rows, cols = np.flatnonzero(subject.any(axis=1)), np.flatnonzero(subject.any(axis=0))
    fill = 0.0
    if rows.size:
        fill = max((cols[-1] - cols[0] + 1) / width, (rows[-1] - rows[0] + 1) / height)
    ring = max(1, round(RING_SHARE * min(width, height)))
    border = np.ones_like(exact)
    border[ring:-ring, ring:-ring] = False
    purity = float(exact[border].mean()) if border.any() else 1.0
    return {"width": width, "height": height, "fill": round(float(fill), 4), "purity": purity}


def check(
    data: bytes,
    background: str | None,
    rules: Rules,
    source_size: tuple[int, int],
    flags: tuple[str, ...] = (),
) -> Verdict:
    """Measure ``data`` and hold it to ``rules``; ``source_size``: the input's (w, h);
    ``flags``: the job's quality flags (:mod:`.quality`)."""
    figures = measure(data, background)
    figures["purity"] = round(figures["purity"], 6)
    figures["source_width"], figures["source_height"] = source_size
    width, height, fill, purity = (figures[k] for k in ("width", "height", "fill", "purity"))
    failed = []
    if rules.square and width != height:
        failed.append(f"not square: {width}×{height} px")
    if rules.min_side is not None and max(width, height) < rules.min_side:
        failed.append(
            f"source only {max(source_size)} px: output {width}×{height} px is under the "
            f"{rules.min_side} px {rules.min_side_reason}"
        )
    if rules.fill_min is not None and fill < rules.fill_min:
        failed.append(f"subject fills {fill:.1%} of the frame: under {rules.fill_min:.0%}")
    if rules.fill_max is not None and fill > rules.fill_max:
        failed.append(f"subject fills {fill:.1%} of the frame: over {rules.fill_max:.0%}")
    if rules.purity_min is not None and purity < rules.purity_min:
        failed.append(
            f"background not pure: {purity:.2%} of the border exactly {background or 'clear'} "
            f"(needs {rules.purity_min:.0%})"
        )
    return judge(tuple(failed), flags, rules.tolerates, figures)


def judge(
    failed: tuple[str, ...],
    flags: tuple[str, ...],
    tolerates: tuple[str, ...] = (),
    figures: dict[str, Any] | None = None,
) -> Verdict:
    """The verdict from the rules ``failed`` and the job's ``flags`` (those in ``tolerates``
    ignored): the worst any of them allows, with every reason."""
    worst, reasons = "fail" if failed else "pass", list(failed)
    for flag in flags:
        if flag in tolerates or flag not in FLAG_VERDICTS:
            continue
        allowed, reason = FLAG_VERDICTS[flag]
        reasons.append(reason)
        worst = max(worst, allowed, key=VERDICTS.index)
    return Verdict(worst, failed, dict(figures or {}), tuple(reasons))
