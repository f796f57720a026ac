"""``cutq run``: the worker pipeline over local files and directories."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from cutq.core.errors import ConfigError
from cutq.core.flags import add_output_args, options_from_args, renditions_from_args
from cutq.worker.commands.args import add_model_args, worker_config


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "run",
        help="process local files or directories (no cloud)",
        description="Run the worker pipeline over local images. Results go to "
        "OUT/dt=YYYY-MM-DD/<job_id>.png, one event per job to OUT/events.jsonl. "
        "Exits 1 if any image failed or was left unprocessed (SIGINT/SIGTERM finish or "
        "return what runs, then print the summary).",
    )
    parser.add_argument("inputs", nargs="+", help="image files and/or directories")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_model_args(parser)
    add_output_args(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if args.threshold is not None and not 0 < args.threshold < 1:
        raise ConfigError("--threshold must be between 0 and 1")
    for given in args.inputs:
        if "://" in given:
            raise ConfigError(
                f"{given}: cutq run reads local files; for objects in Cloud Storage publish "
                "jobs to a worker: cutq submit gs://… (docs/operations.md, the queue path)"
            )
    writable_folder(args.out)
    renditions = renditions_from_args(args)
    config = worker_config(args)
    from cutq.worker.local_run import run_local

    options = options_from_args(args)
    summary = run_local(
        args.inputs,
        args.out,
        config,
        options,
        progress=not args.no_progress,
        renditions=renditions,
    )
    print(summary.render())
    return int(summary.exit_code(args.accept_review))


def writable_folder(out: str) -> None:
    """``--out`` is a local folder this process can write to (created if absent), or a
    one-line configuration error (exit 2) saying what to change."""
    if "://" in out:
        raise ConfigError(
            f"--out {out}: cutq run writes to a local folder; to write to Cloud Storage "
            "publish jobs to a worker: cutq submit … --output gs://… (docs/operations.md)"
        )
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder; give a folder for the results")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(
            f"--out {out}: cannot write there ({reason}); give a folder you can write to"
        ) from None
