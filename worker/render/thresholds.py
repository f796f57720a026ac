"""Every number a verdict rests on, in one place (documented in docs/verdicts.md).

Two kinds: the quality flags' thresholds (:mod:`.quality` measures them on the job's final
alpha) and the measurement tolerances of a preset's rules (:mod:`.verdict` measures those on
the encoded bytes). What a raised flag does to a verdict is :data:`FLAG_VERDICTS`: a shop
publishes a ``pass`` unseen, so a flag that says the result may be wrong makes it at best
``review``, and no subject at all is ``fail``. A preset may tolerate flags
(:attr:`cutq.core.presets.Rules.tolerates`).
"""

from __future__ import annotations

# --- Quality flags, on the final alpha (H×W uint8) -------------------------------------------
SOLID = 128  # alpha at or above this is the subject
#: ``empty``: the subject's confident pixels (alpha ≥ :data:`CONFIDENT`) cover less than this
#: share of the image. (A salient-object model finds *something* on a bare backdrop, but only
#: faintly.)
EMPTY_BELOW = 0.005
CONFIDENT = 224
#: ``edge``: the subject's pixels cover more than this share of the image's border.
EDGE_ABOVE = 0.01
#: ``multiple``: a second separate part at least this share of the largest part's area.
MULTIPLE_SHARE = 0.15
#: ``uncertain``: more than this share of the subject's visible pixels (alpha ≥
#: :data:`VISIBLE`) are neither clearly in nor clearly out (VISIBLE ≤ alpha < CONFIDENT).
UNCERTAIN_ABOVE = 0.25
VISIBLE = 32

# --- A preset's rules, measured on the encoded bytes -----------------------------------------
#: This close to the background (per channel; alpha on transparency) is background: JPEG's
#: ripples beside a saturated edge reach ~8.
TOLERANCE = 16
#: The border ring whose purity is measured: 1 % of the shorter side wide (at least 1 px).
RING_SHARE = 0.01

# --- What a flag does to a preset's verdict --------------------------------------------------
#: flag → (the verdict it allows at best, the reason in words). ``fail`` beats ``review``
#: beats ``pass``; a flag the preset tolerates does nothing.
FLAG_VERDICTS: dict[str, tuple[str, str]] = {
    "empty": ("fail", "no subject found"),
    "edge": ("review", "subject cut off by the source's edge"),
    "multiple": ("review", "more than one subject where the preset wants one product"),
    "uncertain": ("review", "low confidence: much of the mask is neither clearly in nor out"),
}
