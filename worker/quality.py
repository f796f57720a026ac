"""Quality flags: what in a job's mask suggests a human should look at it.

Every completed job carries its flags (possibly none) and the figures behind them, in the
event's data and as Pub/Sub attributes (``flags``: comma-separated; ``flag_<name>``: ``1``),
so a subscription can route flagged jobs to review. Measured on the final alpha at
:data:`SOLID` (the subject's pixels), thresholds below; their precision and recall on a
labelled set are in the README ("Quality flags").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cutq.worker.subject import find_subject

FLAGS = ("empty", "edge", "multiple", "uncertain")
#: What each flag tells a reviewer, in one line (the review page shows it beside the flag).
FLAG_MEANINGS = {
    "empty": "no subject found: the mask is (almost) empty; the photo may show only backdrop",
    "edge": "the subject touches the photo's border: it may be cut off by the frame",
    "multiple": "more than one separate subject: a second product, or a stray object kept",
    "uncertain": "much of the mask is neither clearly subject nor background: check the edges",
}
SOLID = 128  # alpha at or above this is the subject
#: ``empty``: the subject's confident pixels (alpha ≥ 224) cover less than this share of the
#: image. (A salient-object model finds *something* on a bare backdrop, but only faintly.)
EMPTY_BELOW = 0.005
CONFIDENT = 224
#: ``edge``: the subject's pixels cover more than this share of the image's border.
EDGE_ABOVE = 0.01
#: ``multiple``: a second separate part at least this share of the largest part's area.
MULTIPLE_SHARE = 0.15
#: ``uncertain``: more than this share of the subject's pixels (alpha ≥ 32) are neither
#: clearly in nor clearly out (32 ≤ alpha ≤ 223).
UNCERTAIN_ABOVE = 0.25


@dataclass(frozen=True)
class Quality:
    """The flags raised and the figures they come from."""

    flags: tuple[str, ...]
    figures: dict[str, float] = field(default_factory=dict)


def assess(alpha: np.ndarray) -> Quality:
    """Flags and figures for one result alpha (H×W uint8)."""
    solid = alpha >= SOLID
    coverage = float(solid.mean())
    confident = float((alpha >= CONFIDENT).mean())
    border = np.concatenate((solid[0], solid[-1], solid[1:-1, 0], solid[1:-1, -1]))
    edge = float(border.mean())
    parts = find_subject(alpha, level=SOLID).parts
    second = parts[1].area / parts[0].area if len(parts) > 1 else 0.0
    visible = alpha >= 32
    unsure = visible & (alpha <= 223)
    uncertain = float(unsure.sum() / max(1, int(visible.sum())))
    flags = []
    if confident < EMPTY_BELOW:
        flags.append("empty")
    if edge > EDGE_ABOVE:
        flags.append("edge")
    if second >= MULTIPLE_SHARE:
        flags.append("multiple")
    if uncertain > UNCERTAIN_ABOVE:
        flags.append("uncertain")
    figures = {
        "coverage": round(coverage, 4),
        "confident": round(confident, 4),
        "edge": round(edge, 4),
        "second_part": round(second, 4),
        "uncertain": round(uncertain, 4),
    }
    return Quality(tuple(flags), figures)
