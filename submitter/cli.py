"""The ``cutq`` command. Imports only what a subcommand needs: ``submit`` never loads torch."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from cutq.submitter.errors import ConfigError, CutqError

WORKER_HINT = "the worker needs its extra: pip install 'cutq[worker]' (see the README for torch)"


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model and batching (override CUTQ_* variables)")
    group.add_argument("--model", help="u2netp (bundled, default) or inspyrenet")
    group.add_argument("--checkpoint", help="inspyrenet weights: a path or gs:// URI")
    group.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    group.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"))
    group.add_argument("--max-batch", type=int, help="largest batch (default 8)")
    group.add_argument(
        "--max-wait-ms",
        type=float,
        help="how long a batch waits to fill after its first job (default 20)",
    )


def _add_output_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("--format", choices=("png", "webp"), help="result format (default png)")
    group.add_argument(
        "--kind",
        choices=("cutout", "mask", "both"),
        help="RGBA cutout (default), 8-bit mask, or both",
    )
    group.add_argument("--background", help="composite onto this colour, e.g. '#ffffff'")
    group.add_argument(
        "--resize",
        choices=("static", "dynamic"),
        help="model input size: fixed square (default) or following the aspect",
    )
    group.add_argument("--threshold", type=float, help="binarise the mask at this value (0-1)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cutq", description="Background removal as a queue-driven, scale-to-zero service."
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="process local files or directories (no cloud)",
        description="Run the worker pipeline over local images. Results go "
        "to OUT/dt=YYYY-MM-DD/<job_id>.png, one event per job to "
        "OUT/events.jsonl. Exits 1 if any image failed.",
    )
    run.add_argument("inputs", nargs="+", help="image files and/or directories")
    run.add_argument("--out", required=True, help="output directory")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_model_args(run)
    _add_output_args(run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from cutq.submitter.logs import setup_logging

    setup_logging(
        os.environ.get("CUTQ_LOG_FORMAT", "auto"),
        args.log_level or os.environ.get("CUTQ_LOG_LEVEL", "INFO"),
    )
    try:
        return _dispatch(args)
    except ConfigError as error:
        print(f"cutq: configuration error: {error}", file=sys.stderr)
        return 2
    except CutqError as error:
        print(f"cutq: {error.code}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        return _run(args)
    raise AssertionError(args.command)  # pragma: no cover - argparse enforces the choices


def _worker_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    try:
        from cutq.worker.config import WorkerConfig
    except ImportError as error:  # torch or pillow missing
        raise ConfigError(f"{WORKER_HINT} ({error})") from None
    overrides = {
        name: getattr(args, name, None)
        for name in (
            "model",
            "checkpoint",
            "device",
            "precision",
            "max_batch",
            "max_wait_ms",
            "resize",
        )
    }
    overrides.update(
        output_format=getattr(args, "format", None),
        output_kind=getattr(args, "kind", None),
        output_background=getattr(args, "background", None),
    )
    return WorkerConfig.from_env(os.environ, **overrides)


def _run(args: argparse.Namespace) -> int:
    if args.threshold is not None and not 0 < args.threshold < 1:
        raise ConfigError("--threshold must be between 0 and 1")
    config = _worker_config(args)
    from cutq.submitter.contract import Options
    from cutq.worker.run import run_local

    options = Options(resize=args.resize, threshold=args.threshold)
    summary = run_local(args.inputs, args.out, config, options, progress=not args.no_progress)
    print(summary.render())
    return 1 if summary.failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
