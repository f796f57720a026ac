"""Quality flags: what in a job's mask suggests a human should look at it.

Every completed job carries its flags (possibly none) and the figures behind them, in the
event's data and as Pub/Sub attributes (``flags``: comma-separated; ``flag_<name>``: ``1``),
so a subscription can route flagged jobs to review. Measured on the final alpha at
:data:`~cutq.worker.render.thresholds.SOLID` (the subject's pixels); the thresholds live in
:mod:`cutq.worker.render.thresholds`. An empty image carries ``empty`` alone: on a bare backdrop the
faint parts a model finds would also read as ``multiple`` and ``uncertain``, which only adds
noise for a reviewer. Precision and recall on labelled sets: docs/verdicts.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cutq.worker.render.subject import find_subject
from cutq.worker.render.thresholds import (
    CONFIDENT,
    EDGE_ABOVE,
    EMPTY_BELOW,
    MULTIPLE_SHARE,
    SOLID,
    UNCERTAIN_ABOVE,
    VISIBLE,
)

FLAGS = ("empty", "edge", "multiple", "uncertain")
#: What each flag tells a reviewer, in one line (the review page shows it beside the flag).
FLAG_MEANINGS = {
    "empty": "no subject found: the mask is (almost) empty; the photo may show only backdrop",
    "edge": "the subject touches the photo's border: it may be cut off by the frame",
    "multiple": "more than one separate subject: a second product, or a stray object kept",
    "uncertain": "much of the mask is neither clearly subject nor background: check the edges",
}


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
    visible = alpha >= VISIBLE
    unsure = visible & (alpha < CONFIDENT)
    uncertain = float(unsure.sum() / max(1, int(visible.sum())))
    if confident < EMPTY_BELOW:
        flags = ["empty"]  # alone: a backdrop's faint parts say nothing more
    else:
        raised = {
            "edge": edge > EDGE_ABOVE,
            "multiple": second >= MULTIPLE_SHARE,
            "uncertain": uncertain > UNCERTAIN_ABOVE,
        }
        flags = [flag for flag in FLAGS if raised.get(flag)]
    figures = {
        "coverage": round(coverage, 4),
        "confident": round(confident, 4),
        "edge": round(edge, 4),
        "second_part": round(second, 4),
        "uncertain": round(uncertain, 4),
    }
    return Quality(tuple(flags), figures)
