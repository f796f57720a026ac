"""Masks in fp16 and bf16 against fp32, per model: the figures behind ``precision=auto``.

    python -m tools.precision_agreement [--eval N] [--photos N] [--models u2netp,inspyrenet]
                                        [--device cpu] [--json out.json]

Images: the first N of the generated eval set (``cutq eval``'s, exact labels not used here)
and the real photographs ``bench/peer.py`` uses (scikit-image's bundled data images). On a
CPU fp16/bf16 run as CPU autocast, which rounds like a GPU's autocast does (the kernels
differ, so the GPU run in ``tools/gpu_check.py`` confirms the figures). InSPyReNet runs with
random weights in ``fast`` mode unless ``--checkpoint`` is given (none can be fetched here).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from bench.peer import SKIMAGE_PHOTOS, skimage_dir
from cutq.worker.evaluation.dataset import generate
from cutq.worker.evaluation.precision import HEADER, Agreement, compare
from cutq.worker.models.base import Model


def photographs(count: int, longest: int = 640) -> list[np.ndarray]:
    """Up to ``count`` of scikit-image's bundled photographs as RGB, longer side ``longest``."""
    images = []
    for name in SKIMAGE_PHOTOS[:count]:
        path = skimage_dir() / name
        if not path.is_file():
            continue
        image = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
        image.thumbnail((longest, longest), Image.Resampling.LANCZOS)
        images.append(np.asarray(image))
    return images


def model_factory(name: str, checkpoint: str | None, mode: str) -> Callable[[], Model]:
    if name == "u2netp":
        from cutq.worker.models.u2netp import U2NetP

        return U2NetP
    from cutq.worker.models.inspyrenet import InSPyReNet

    return lambda: InSPyReNet(checkpoint, mode=mode, random_init=checkpoint is None)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval", type=int, default=40, help="eval-set images (default 40)")
    parser.add_argument("--photos", type=int, default=12, help="real photographs (≤ 12)")
    parser.add_argument("--models", default="u2netp,inspyrenet")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", default="fp16,bf16")
    parser.add_argument("--checkpoint", help="InSPyReNet weights (default: random, fast mode)")
    parser.add_argument("--mode", default="fast", choices=("fast", "base"))
    parser.add_argument(
        "--inspyrenet-images",
        type=int,
        default=8,
        help="InSPyReNet is slow on a CPU: at most this many of each set",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]

    eval_images = [sample.image for sample in generate(args.eval)]
    photos = photographs(args.photos)
    rows: list[tuple[str, Agreement]] = []
    header = HEADER.replace("| model |", "| model | images from |", 1)
    print(header.replace("| --- |", "| --- | --- |", 1))
    for name in args.models.split(","):
        limit = args.inspyrenet_images if name == "inspyrenet" else None
        for label, images in (("eval set", eval_images), ("photographs", photos)):
            factory = model_factory(name, args.checkpoint, args.mode)
            chosen = images[:limit] if limit else images
            for row in compare(factory, chosen, args.precisions.split(","), device=args.device):
                rows.append((label, row))
                print(row.row().replace(f"| {row.model} |", f"| {row.model} | {label} |", 1))
    if args.json:
        table = [asdict(row) | {"images_from": label} for label, row in rows]
        args.json.write_text(json.dumps(table, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
