"""``cutq eval``: score a model on the generated product-photo set (mIoU, MAE, S, F)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cutq.core.errors import ConfigError
from cutq.worker.commands.args import add_model_args, worker_config

# Mirrors cutq.worker.evaluation.dataset's defaults without importing numpy/scipy here.
DEFAULT_COUNT = 80
DEFAULT_SEED = 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "eval",
        help="measure a model's quality on a generated, exactly labelled image set",
        description="Generate seeded product-style photos with exact alpha (1-3 objects on "
        "studio, gradient, texture, noise, checker and clutter backdrops), run the model "
        "through the worker's batching runner and print mean IoU at 0.5, MAE, S-measure and "
        "max/mean F-measure, overall and per group. Needs the 'eval' extra (pysodmetrics).",
    )
    add_model_args(parser)
    parser.add_argument(
        "--resize",
        choices=("static", "dynamic"),
        help="model input size: fixed square (default) or following the aspect",
    )
    parser.add_argument(
        "--count", type=int, default=DEFAULT_COUNT, help=f"images (default {DEFAULT_COUNT})"
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"set seed (default {DEFAULT_SEED})"
    )
    parser.add_argument(
        "--json", metavar="PATH", help="write the full report as JSON ('-': stdout)"
    )
    parser.add_argument(
        "--save-dir", metavar="DIR", help="write <name>.input/.gt/.pred.png for inspection"
    )
    parser.add_argument(
        "--edges",
        nargs="?",
        const="",
        metavar="VARIANTS",
        help="also score edge options on composites (comma-separated; default all: none, "
        "foreground=ml, post_process, post_process+ml, matting, matting+ml)",
    )
    parser.add_argument(
        "--formats",
        action="store_true",
        help="also encode each cutout in every result format: mean KB and encode ms",
    )
    parser.add_argument(
        "--min-iou", type=float, help="exit 1 when the mean IoU is below this (a quality gate)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if args.count < 1:
        raise ConfigError("--count must be ≥ 1")
    config = worker_config(args)
    try:
        from cutq.worker.evaluation.dataset import generate
        from cutq.worker.evaluation.edges import parse_variants
        from cutq.worker.evaluation.evaluate import evaluate
    except ImportError as error:  # scipy / pysodmetrics missing
        raise ConfigError(f"cutq eval needs: pip install 'cutq[eval]' ({error})") from None
    from cutq.worker.inference import Runner
    from cutq.worker.models import create_model

    try:
        variants = parse_variants(args.edges) if args.edges is not None else []
    except ValueError as error:
        raise ConfigError(f"--edges: {error}") from None
    runner = Runner(create_model(config), config.device, config.precision, platform=config.platform)
    runner.setup()
    report = evaluate(
        runner,
        generate(args.count, args.seed),
        resize=config.resize,  # type: ignore[arg-type]
        max_batch=config.max_batch,
        seed=args.seed,
        save_dir=Path(args.save_dir) if args.save_dir else None,
        edges=variants,
        formats=args.formats,
    )
    document = json.dumps(report.to_json(), indent=2)
    if args.json == "-":
        print(document)
    else:
        print(report.render())
        if args.json:
            Path(args.json).write_text(document + "\n")
    if args.min_iou is not None and report.means["iou"] < args.min_iou:
        print(
            f"cutq eval: mean IoU {report.means['iou']:.4f} is below --min-iou {args.min_iou}",
            file=sys.stderr,
        )
        return 1
    return 0
