"""The ``cutq`` command. Imports only what a subcommand needs: ``submit`` never loads torch."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from cutq.submitter.errors import ConfigError, CutqError

WORKER_HINT = "the worker needs its extra: pip install 'cutq[worker]' (see the README for torch)"

# Each module defines register(commands) — adding a subparser with set_defaults(handler=...) —
# and keeps heavy imports (torch) inside its handler, so `cutq submit` never loads them.
COMMAND_MODULES = (
    "cutq.worker.commands.run",
    "cutq.worker.commands.worker",
    "cutq.worker.commands.eval",
    "cutq.submitter.commands.submit",
)


def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model and batching (override CUTQ_* variables)")
    group.add_argument("--model", help="u2netp (bundled, default) or inspyrenet")
    group.add_argument("--checkpoint", help="inspyrenet weights: a path or gs:// URI")
    group.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    group.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"))
    group.add_argument("--max-batch", type=int, help="largest batch (default: 8 on GPU, 1 on CPU)")
    group.add_argument(
        "--max-wait-ms",
        type=float,
        help="how long a batch waits to fill after its first job (default 20)",
    )


def add_output_args(parser: argparse.ArgumentParser) -> None:
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
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
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
    return int(args.handler(args))


def worker_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The worker's configuration from ``CUTQ_*`` variables, overridden by flags in ``args``."""
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
