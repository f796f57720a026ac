"""Run a model over the evaluation set through the worker's own :class:`Runner` and score it.

The path is the worker's: ``model.input_size`` → ``model.preprocess`` → batched
``runner.predict`` → ``runner.to_mask`` at the image's size. Images are grouped by input size
(all one size in "static" mode) and batched up to ``max_batch``; samples are generated while
the run goes, a window at a time, so memory does not grow with the set.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cutq.core.contract import Resize
from cutq.worker.evaluation.dataset import Sample
from cutq.worker.evaluation.edges import EdgeScorer
from cutq.worker.evaluation.edges import render as render_edges
from cutq.worker.evaluation.formats import FormatScorer
from cutq.worker.evaluation.formats import render as render_formats
from cutq.worker.evaluation.metrics import Scorer, Scores, mean_scores
from cutq.worker.models.base import Model
from cutq.worker.runtime.inference import Runner

log = logging.getLogger(__name__)

#: Tag families summarised per group in the report.
GROUPS = ("bg:", "kind:", "objects:", "low_contrast", "shadow")


@dataclass(frozen=True)
class ImageResult:
    """One image's size, model input size, tags and scores."""

    name: str
    height: int
    width: int
    input_size: tuple[int, int]
    tags: tuple[str, ...]
    scores: Scores


@dataclass(frozen=True)
class Report:
    """Everything one evaluation run measured."""

    model: dict[str, str]
    device: str
    precision: str
    resize: str
    max_batch: int
    seed: int | None
    infer_s: float  # preprocess + predict + to_mask, warm-up excluded
    images: list[ImageResult]
    dataset_max_f: float
    terms: dict[str, str] = field(default_factory=dict)  # licence, commercial use
    source: str = "generated"  # the generated set, or the labelled folder scored
    edges: list[dict[str, Any]] = field(default_factory=list)  # composite error per variant
    formats: list[dict[str, Any]] = field(default_factory=list)  # bytes and encode ms per format
    means: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "means", mean_scores([r.scores for r in self.images]))

    @property
    def images_per_s(self) -> float:
        return len(self.images) / self.infer_s if self.infer_s > 0 else float("nan")

    def by_tag(self) -> dict[str, dict[str, float]]:
        """Mean scores and image count per tag (only the families in :data:`GROUPS`)."""
        groups: dict[str, list[Scores]] = {}
        for result in self.images:
            for tag in result.tags:
                if tag.startswith(GROUPS):
                    groups.setdefault(tag, []).append(result.scores)
        return {
            tag: {"count": len(scores), **mean_scores(scores)}
            for tag, scores in sorted(groups.items())
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            **self.terms,
            "source": self.source,
            "device": self.device,
            "precision": self.precision,
            "resize": self.resize,
            "max_batch": self.max_batch,
            "seed": self.seed,
            "count": len(self.images),
            "infer_s": round(self.infer_s, 3),
            "images_per_s": round(self.images_per_s, 3),
            "mean": self.means,
            "dataset_max_f": self.dataset_max_f,
            "by_tag": self.by_tag(),
            "edges": self.edges,
            "formats": self.formats,
            "images": [
                {
                    "name": r.name,
                    "height": r.height,
                    "width": r.width,
                    "input_size": list(r.input_size),
                    "tags": list(r.tags),
                    **asdict(r.scores),
                }
                for r in self.images
            ],
        }

    def render(self, worst: int = 5) -> str:
        """A plain-text summary: overall means, per-group means, the worst images."""
        m = self.means
        terms = self.terms or {"license": "unknown", "commercial_use": "unknown"}
        scored = f"seed {self.seed}" if self.source == "generated" else f"from {self.source}"
        lines = [
            f"model {self.model['name']} {self.model['version']} on {self.device} "
            f"({self.precision}), resize {self.resize}, batch ≤ {self.max_batch}, "
            f"{scored}, {len(self.images)} images",
            f"licence {terms['license']}, commercial use {terms['commercial_use']}",
            f"throughput {self.images_per_s:.2f} images/s ({self.infer_s:.1f} s in the model path)",
            "",
            f"{'':<20} {'n':>4} {'mIoU':>7} {'MAE':>7} {'S':>7} {'maxF':>7} {'meanF':>7} "
            f"{'wF':>7} {'E':>7}",
            _row("all", len(self.images), m),
        ]
        lines += [_row(tag, int(g["count"]), g) for tag, g in self.by_tag().items()]
        lines.append(
            f"dataset max F (max over thresholds of the mean curve): {self.dataset_max_f:.4f}"
        )
        if self.edges:
            lines += ["", render_edges(self.edges)]
        if self.formats:
            lines += ["", render_formats(self.formats)]
        ranked = sorted(self.images, key=lambda r: r.scores.iou)[:worst]
        if ranked:
            lines += ["", "worst IoU:"]
            lines += [
                f"  {r.name} {r.width}×{r.height} IoU {r.scores.iou:.3f} "
                f"S {r.scores.s_measure:.3f}  {' '.join(r.tags)}"
                for r in ranked
            ]
        return "\n".join(lines)


def _row(label: str, count: int, m: dict[str, float]) -> str:
    return (
        f"{label:<20} {count:>4} {m['iou']:>7.4f} {m['mae']:>7.4f} {m['s_measure']:>7.4f} "
        f"{m['max_f']:>7.4f} {m['mean_f']:>7.4f} {m['weighted_f']:>7.4f} {m['mean_e']:>7.4f}"
    )


def evaluate(
    runner: Runner,
    samples: Iterable[Sample],
    *,
    resize: Resize = "static",
    max_batch: int = 8,
    seed: int | None = None,
    save_dir: Path | None = None,
    warmup: bool = True,
    edges: Sequence[str] = (),
    formats: bool = False,
    source: str = "generated",
) -> Report:
    """Predict and score every sample; ``runner`` must already be set up.

    ``save_dir`` receives ``<name>.input.png``, ``<name>.gt.png`` and ``<name>.pred.png``
    (and ``<name>.edges.png`` with ``edges``). ``edges``: edge variants
    (:data:`~.edges.VARIANTS`) to score on composites, each timed on its own. ``formats``:
    encode each cutout in every result format (:mod:`.formats`).
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be ≥ 1, got {max_batch}")
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)
    model = runner.model
    scorer = Scorer()
    edge_scorer = EdgeScorer(edges, save_dir=save_dir) if edges else None
    format_scorer = FormatScorer() if formats else None
    results: list[ImageResult] = []
    infer_s = 0.0
    warmed = not warmup
    for size, batch in _batches(samples, model, resize, max_batch):
        if not warmed:  # first call: allocator, oneDNN/cuDNN kernel choice; not timed
            runner.predict([model.preprocess(batch[0].image, size)])
            warmed = True
        started = time.perf_counter()
        tensors = [model.preprocess(sample.image, size) for sample in batch]
        maps = runner.predict(tensors)
        masks = [
            runner.to_mask(saliency, *sample.mask.shape)
            for saliency, sample in zip(maps, batch, strict=True)
        ]
        infer_s += time.perf_counter() - started
        for sample, mask in zip(batch, masks, strict=True):
            scores = scorer.score(mask, sample.mask)
            height, width = sample.mask.shape
            results.append(ImageResult(sample.name, height, width, size, sample.tags, scores))
            log.debug("%s IoU %.4f S %.4f", sample.name, scores.iou, scores.s_measure)
            if save_dir is not None:
                _save(save_dir, sample, mask)
            if edge_scorer is not None:
                edge_scorer.add(sample, mask)
            if format_scorer is not None:
                format_scorer.add(sample.image, mask)
    return Report(
        model=model.describe(),
        terms=model.terms(),
        source=source,
        device=str(runner.device),
        precision=str(runner.dtype).removeprefix("torch."),
        resize=resize,
        max_batch=max_batch,
        seed=seed,
        infer_s=infer_s,
        images=results,
        dataset_max_f=scorer.dataset_max_f(),
        edges=edge_scorer.rows(infer_s / max(len(results), 1)) if edge_scorer else [],
        formats=format_scorer.rows() if format_scorer else [],
    )


def _batches(
    samples: Iterable[Sample], model: Model, resize: Resize, max_batch: int
) -> Iterator[tuple[tuple[int, int], list[Sample]]]:
    """Same-sized batches, formed within windows of a few batches' worth of samples."""
    iterator = iter(samples)
    while window := list(itertools.islice(iterator, max_batch * 4)):
        groups: dict[tuple[int, int], list[Sample]] = {}
        for sample in window:
            height, width = sample.mask.shape
            groups.setdefault(model.input_size(height, width, resize), []).append(sample)
        for size, group in groups.items():
            for start in range(0, len(group), max_batch):
                yield size, group[start : start + max_batch]


def _save(folder: Path, sample: Sample, mask: np.ndarray) -> None:
    Image.fromarray(sample.image, "RGB").save(folder / f"{sample.name}.input.png")
    Image.fromarray(sample.mask, "L").save(folder / f"{sample.name}.gt.png")
    Image.fromarray(mask, "L").save(folder / f"{sample.name}.pred.png")
