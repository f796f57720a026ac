"""Quality flags measured on a labelled set built from the evaluation images: precision and
recall per flag, as JSON. Run from the repository root:

    .venv/bin/python -m bench.flags_eval --count 240 --json bench/reports/flags.json

Labels come from each image's exact alpha (never from the model): ``empty`` — the backdrop
alone (every 8th image is its scene's background with no object); ``edge`` — an object cut by
the frame (every 4th image is cropped through its subject's middle); ``multiple`` — two or more
separate objects in the ground truth (each at least 2 % of the largest's area); ``uncertain`` —
the model's mask is poor (IoU with the ground truth under 0.8), which is what the flag exists
to catch. Flags come from :func:`cutq.worker.render.quality.assess` on the model's mask.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import publish  # noqa: E402
from cutq.worker.render import quality  # noqa: E402
from cutq.worker.render.subject import label_parts  # noqa: E402

POOR_IOU = 0.8
PART_SHARE = 0.02


def labelled(seed: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(RGB image, exact alpha as uint8) of labelled image ``index``."""
    from cutq.worker.evaluation.dataset import make_scene

    scene = make_scene(seed, index)
    sample = scene.sample()
    image, alpha = sample.image, sample.mask
    if index % 8 == 7:  # the backdrop alone
        pixels = np.clip(scene.background + scene.grain, 0, 255).astype(np.uint8)
        return pixels, np.zeros_like(alpha)
    if index % 4 == 1:  # cut through the subject's middle
        cols = np.flatnonzero((alpha >= 128).any(axis=0))
        if cols.size:
            cut = int((cols[0] + cols[-1]) // 2)
            return np.ascontiguousarray(image[:, :cut]), np.ascontiguousarray(alpha[:, :cut])
    return image, alpha


def truth(alpha: np.ndarray, predicted: np.ndarray) -> set[str]:
    solid = alpha >= 128
    labels = set()
    if not solid.any():
        labels.add("empty")
    if solid[0].any() or solid[-1].any() or solid[:, 0].any() or solid[:, -1].any():
        labels.add("edge")
    parts = label_parts(solid)
    if sum(part.area >= PART_SHARE * parts[0].area for part in parts) >= 2:
        labels.add("multiple")
    both, either = (solid & (predicted >= 128)).sum(), (solid | (predicted >= 128)).sum()
    if either and both / either < POOR_IOU:
        labels.add("uncertain")
    return labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=240)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the result here too")
    parser.add_argument("--details", help="write each image's labels and figures here")
    args = parser.parse_args(argv)
    from cutq.worker.config import WorkerConfig
    from cutq.worker.models import create_model
    from cutq.worker.runtime.inference import Runner

    config = WorkerConfig.from_env({})
    runner = Runner(create_model(config), config.device, config.precision, platform=config.platform)
    runner.setup()
    model = runner.model
    details = []
    counts = {flag: {"tp": 0, "fp": 0, "fn": 0, "positives": 0} for flag in quality.FLAGS}
    for index in range(args.count):
        image, alpha = labelled(args.seed, index)
        size = model.input_size(*alpha.shape, config.resize)
        (saliency,) = runner.predict([model.preprocess(image, size)])
        mask = runner.to_mask(saliency, *alpha.shape)
        judged = quality.assess(mask)
        flagged, labels = set(judged.flags), truth(alpha, mask)
        details.append({"labels": sorted(labels), "figures": judged.figures})
        for flag, count in counts.items():
            count["tp"] += flag in flagged and flag in labels
            count["fp"] += flag in flagged and flag not in labels
            count["fn"] += flag not in flagged and flag in labels
            count["positives"] += flag in labels
    rows = {
        flag: {
            **count,
            "precision": round(count["tp"] / max(1, count["tp"] + count["fp"]), 3),
            "recall": round(count["tp"] / max(1, count["tp"] + count["fn"]), 3),
        }
        for flag, count in counts.items()
    }
    report = {"images": args.count, "seed": args.seed, "model": model.describe(), "flags": rows}
    publish(report, args.json)
    if args.details:
        Path(args.details).write_text(json.dumps(details) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
