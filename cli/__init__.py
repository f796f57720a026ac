"""The ``cutq`` command: one entry point above both sides.

Each subcommand lives with its side (``cutq.worker.commands.*``, ``cutq.submitter.commands.*``)
and defines ``register(commands)``, adding a subparser with ``set_defaults(handler=...)``.
Registering is light: heavy imports (torch, numpy) happen inside handlers, so ``cutq submit``
never loads them and a light install (``pip install cutq``) can still print every command's help.
A handler that needs an extra the install lacks ends with the ``pip install`` line to run and
exit status 2, like every other configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from cutq.core.errors import ConfigError, CutqError

# module → the extra its handlers need beyond the light client (the smallest that serves:
# `cpu` is 274 MB where torch's `gpu` is ~5.9 GB)
COMMAND_MODULES = {
    "cutq.worker.commands.run": "cpu",
    "cutq.worker.commands.worker": "cpu",
    "cutq.worker.commands.eval": "eval",
    "cutq.worker.commands.report": "cpu",
    "cutq.submitter.commands.submit": None,
    "cutq.submitter.commands.cancel": None,
}
# What to add to an extra's install line: where a GPU or torch is wanted instead.
ALTERNATIVES = {
    "cpu": " (on a GPU: 'cutq[gpu-onnx]'; for torch models such as inspyrenet: install torch, "
    "then 'cutq[gpu]'; see the README)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cutq", description="Background removal as a queue-driven, scale-to-zero service."
    )
    parser.add_argument(
        "--log-level", default=None, help="DEBUG, INFO (default), WARNING (or CUTQ_LOG_LEVEL)"
    )
    parser.add_argument(
        "--log-format",
        default=None,
        help="auto (JSON on Cloud Run, default), json or text (or CUTQ_LOG_FORMAT)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, extra in COMMAND_MODULES.items():
        before = set(commands.choices)
        importlib.import_module(name).register(commands)
        for command in set(commands.choices) - before:
            commands.choices[command].set_defaults(extra=extra)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from cutq.core.logs import LogSettings

        LogSettings.from_env(os.environ, format=args.log_format, level=args.log_level).apply()
        return int(args.handler(args))
    except ModuleNotFoundError as error:
        if not _is_third_party(error) or args.extra is None:
            raise
        print(install_hint(args.command, error, args.extra), file=sys.stderr)
        return 2
    except ConfigError as error:
        print(f"cutq: configuration error: {error}", file=sys.stderr)
        return 2
    except CutqError as error:
        print(f"cutq: {error.code}: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        if not _no_credentials(error):
            raise
        from cutq.submitter.credentials import NO_CREDENTIALS

        print(f"cutq: configuration error: {NO_CREDENTIALS}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def install_hint(command: str, error: ModuleNotFoundError, extra: str) -> str:
    """The line that says which extra ``command`` needs, and the ``pip install`` to run."""
    return (
        f"cutq {command}: {error}: this command needs the {extra!r} extra: "
        f"pip install 'cutq[{extra}]'{ALTERNATIVES.get(extra, '')}"
    )


def _no_credentials(error: Exception) -> bool:
    """google-auth found no Application Default Credentials (the client libraries' error)."""
    try:
        from google.auth.exceptions import DefaultCredentialsError
    except ImportError:  # pragma: no cover - google-auth comes with every install
        return False
    return isinstance(error, DefaultCredentialsError)


def _is_third_party(error: ModuleNotFoundError) -> bool:
    """A missing dependency, not a missing module of cutq's own (that is a bug: re-raise)."""
    return bool(error.name) and error.name.partition(".")[0] != "cutq"
