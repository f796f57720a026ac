"""``cutq eval``: score a model on the generated product-photo set or on a labelled folder in
the DIS layout (mIoU, MAE, S, F, weighted F, E), alone or beside a second model."""

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
        help="measure a model's quality on a generated set or your own labelled photos",
        description="Score a model through the worker's batching runner: on seeded "
        "product-style photos with exact alpha (1-3 objects on studio, gradient, texture, "
        "noise, checker and clutter backdrops), or with --data on your own photos in the DIS "
        "layout (DIR/im/NAME.jpg and DIR/gt/NAME.png). Prints mean IoU at 0.5, MAE, "
        "S-measure, max/mean F-measure, weighted F-measure and mean E-measure "
        "(pysodmetrics), overall and per group, and the model's licence; --against scores a "
        "second model on the same images, side by side. Needs the 'eval' extra.",
    )
    add_model_args(parser)
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="score a labelled folder in the DIS layout (im/ photos, gt/ masks, same names) "
        "instead of the generated set",
    )
    parser.add_argument(
        "--against",
        metavar="MODEL",
        help="also score this model on the same images, side by side: a built-in model name "
        "or a model spec (a .json path)",
    )
    parser.add_argument("--csv", metavar="PATH", help="write every image's scores as CSV")
    parser.add_argument(
        "--resize",
        choices=("static", "dynamic"),
        help="model input size: fixed square (default) or following the aspect",
    )
    parser.add_argument(
        "--count", type=int, help=f"images of the generated set (default {DEFAULT_COUNT})"
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
    if args.count is not None and args.count < 1:
        raise ConfigError("--count must be ≥ 1")
    if args.data and args.count is not None:
        raise ConfigError("--count sizes the generated set; --data scores every image of DIR")
    if args.data and args.edges is not None:
        raise ConfigError("--edges needs the generated set's exact foreground, not --data")
    configs = [worker_config(args)]
    if args.against:
        spec = args.against.endswith(".json")
        other = {"model_spec": args.against, "model": None} if spec else {}
        other = other or {"model": args.against, "model_spec": ""}
        configs.append(worker_config(args, **other))
    try:
        from cutq.worker.evaluation import folder
        from cutq.worker.evaluation.compare import side_by_side, write_csv
        from cutq.worker.evaluation.dataset import generate
        from cutq.worker.evaluation.edges import parse_variants
        from cutq.worker.evaluation.evaluate import evaluate
    except ImportError as error:  # scipy / pysodmetrics missing
        raise ConfigError(f"cutq eval needs: pip install 'cutq[eval]' ({error})") from None
    from cutq.worker.models import create_model
    from cutq.worker.runtime.inference import Runner

    try:
        variants = parse_variants(args.edges) if args.edges is not None else []
    except ValueError as error:
        raise ConfigError(f"--edges: {error}") from None
    if args.data:
        folder.pairs(args.data)  # a folder that does not pair up stops before any model loads
    reports = []
    for index, config in enumerate(configs):
        runner = Runner(
            create_model(config), config.device, config.precision, platform=config.platform
        )
        runner.setup()
        save_dir = Path(args.save_dir) if args.save_dir else None
        if save_dir is not None and index > 0:
            save_dir = save_dir / runner.model.name
        reports.append(
            evaluate(
                runner,
                folder.load(args.data)
                if args.data
                else generate(args.count or DEFAULT_COUNT, args.seed),
                resize=config.resize,  # type: ignore[arg-type]
                max_batch=config.max_batch,
                seed=None if args.data else args.seed,
                save_dir=save_dir,
                edges=variants,
                formats=args.formats,
                source=str(args.data) if args.data else "generated",
            )
        )
    if args.csv:
        write_csv(reports, Path(args.csv))
    documents = [report.to_json() for report in reports]
    document = json.dumps(documents[0] if len(reports) == 1 else {"reports": documents}, indent=2)
    if args.json == "-":
        print(document)
    else:
        print("\n\n".join(report.render() for report in reports))
        if len(reports) > 1:
            print("\n" + side_by_side(reports))
        if args.json:
            Path(args.json).write_text(document + "\n")
    first = reports[0]
    if args.min_iou is not None and first.means["iou"] < args.min_iou:
        print(
            f"cutq eval: mean IoU {first.means['iou']:.4f} is below --min-iou {args.min_iou}",
            file=sys.stderr,
        )
        return 1
    return 0
