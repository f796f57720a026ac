"""Reports side by side, and every image's scores as CSV (``cutq eval --csv``, ``--against``).

The CSV has one row per image and model (``image, model, version, width, height, …scores``),
so two models on one folder sort and pivot in any spreadsheet; the side-by-side table puts
each metric's mean for every model in one row, with the difference to the first model.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from cutq.worker.evaluation.evaluate import Report

#: The metrics, in the order tables and CSV show them; ``mae`` is the one where lower is better.
METRICS = ("iou", "mae", "s_measure", "max_f", "mean_f", "weighted_f", "mean_e")
LABELS = {
    "iou": "mIoU",
    "mae": "MAE",
    "s_measure": "S-measure",
    "max_f": "max F",
    "mean_f": "mean F",
    "weighted_f": "weighted F",
    "mean_e": "mean E",
}
COLUMNS = ("image", "model", "version", "width", "height", *METRICS)


def write_csv(reports: Sequence[Report], path: Path) -> int:
    """Every image of every report, one row each; the number of rows written."""
    rows = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for report in reports:
            for image in report.images:
                scores = asdict(image.scores)
                writer.writerow(
                    {
                        "image": image.name,
                        "model": report.model["name"],
                        "version": report.model["version"],
                        "width": image.width,
                        "height": image.height,
                        **{name: f"{scores[name]:.6f}" for name in METRICS},
                    }
                )
                rows += 1
    return rows


def side_by_side(reports: Sequence[Report]) -> str:
    """Each metric's mean for every model, the difference to the first, and their terms."""
    names = [f"{r.model['name']} {r.model['version']}" for r in reports]
    width = max(12, *(len(n) for n in names))
    head = f"{'':<12} " + " ".join(f"{n:>{width}}" for n in names)
    if len(reports) > 1:
        head += "  " + " ".join(f"{'Δ ' + r.model['name']:>{width}}" for r in reports[1:])
    lines = [head]
    for metric in METRICS:
        values = [r.means[metric] for r in reports]
        row = f"{LABELS[metric]:<12} " + " ".join(f"{v:>{width}.4f}" for v in values)
        if len(reports) > 1:
            row += "  " + " ".join(f"{v - values[0]:>+{width}.4f}" for v in values[1:])
        lines.append(row)
    lines.append(f"{'images/s':<12} " + " ".join(f"{r.images_per_s:>{width}.2f}" for r in reports))
    for report in reports:
        terms = report.terms or {"license": "unknown", "commercial_use": "unknown"}
        lines.append(
            f"{report.model['name']}: licence {terms['license']}, "
            f"commercial use {terms['commercial_use']}"
        )
    lines.append("(higher is better except MAE)")
    return "\n".join(lines)
