"""Salient-object metrics per image: IoU at 0.5, MAE, S-measure, max/mean F-measure, weighted
F-measure and mean E-measure (the five DIS5K papers report: maxF, wF, MAE, S, mean E).

MAE, S-measure, F-measure, weighted F and E-measure come from ``pysodmetrics`` (module
``py_sod_metrics``), the
implementation salient-object papers report with: the prediction is min-max normalised and
the ground truth binarised at 128 before scoring, as there. IoU is computed here, on masks
binarised at 0.5 (≥ 128 of 255) on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import py_sod_metrics as sod

#: F-measure's β² (precision weighted over recall), the value every SOD benchmark uses.
F_BETA2 = 0.3


@dataclass(frozen=True)
class Scores:
    """One image's scores; higher is better except ``mae``."""

    iou: float
    mae: float
    s_measure: float
    max_f: float
    mean_f: float
    weighted_f: float  # Margolin et al.'s F^w_β (β² = 1)
    mean_e: float  # E-measure (Fan et al.) averaged over the 256 thresholds


def iou(pred: np.ndarray, gt: np.ndarray, threshold: int = 128) -> float:
    """Intersection over union of two 8-bit masks binarised at ``threshold``.

    Two empty masks agree perfectly (1.0).
    """
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    p, g = pred >= threshold, gt >= threshold
    union = np.count_nonzero(p | g)
    return 1.0 if union == 0 else np.count_nonzero(p & g) / union


class Scorer:
    """Scores images one at a time and keeps the F-measure curves for the dataset's max F.

    The dataset-level max F is the maximum over thresholds of the *mean* curve (as papers
    report it), which is not the mean of per-image maxima.
    """

    def __init__(self) -> None:
        self._prepare = sod.utils.prepare_data
        self._mae = sod.MAE()
        self._sm = sod.Smeasure()
        self._f = sod.FmeasureHandler(with_dynamic=True, with_adaptive=False, beta=F_BETA2)
        self._fm = sod.FmeasureV2({"f": self._f})
        self._wfm = sod.WeightedFmeasure()
        self._em = sod.Emeasure()
        self._curves: list[np.ndarray] = []

    def score(self, pred: np.ndarray, gt: np.ndarray) -> Scores:
        """``pred`` and ``gt``: H×W uint8 (255 = object)."""
        if pred.shape != gt.shape or pred.dtype != np.uint8 or gt.dtype != np.uint8:
            raise ValueError(
                f"expected two uint8 masks of one shape, got {pred.shape} {pred.dtype} "
                f"and {gt.shape} {gt.dtype}"
            )
        norm_pred, bin_gt = self._prepare(pred, gt)
        mae = float(self._mae.cal_mae(norm_pred, bin_gt))
        sm = float(self._sm.cal_sm(norm_pred, bin_gt))
        self._fm.step(norm_pred, bin_gt, normalize=False)
        curve = np.asarray(self._f.dynamic_results[-1], np.float64)
        self._curves.append(curve)
        wfm = float(self._wfm.cal_wfm(norm_pred, bin_gt)) if bin_gt.any() else 0.0
        self._em.step(norm_pred, bin_gt, normalize=False)
        return Scores(
            iou=iou(pred, gt),
            mae=mae,
            s_measure=sm,
            max_f=float(curve.max()),
            mean_f=float(curve.mean()),
            weighted_f=wfm,
            mean_e=float(np.mean(self._em.changeable_ems[-1])),
        )

    def dataset_max_f(self) -> float:
        """Max over thresholds of the mean F-measure curve of every image scored so far."""
        if not self._curves:
            return float("nan")
        return float(np.mean(np.stack(self._curves), axis=0).max())


def mean_scores(scores: list[Scores]) -> dict[str, float]:
    """The mean of each score over ``scores`` (NaN when empty)."""
    names = ("iou", "mae", "s_measure", "max_f", "mean_f", "weighted_f", "mean_e")
    if not scores:
        return dict.fromkeys(names, float("nan"))
    return {name: float(np.mean([getattr(s, name) for s in scores])) for name in names}
