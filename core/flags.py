"""Command-line flags for the job contract's output fields, shared by ``cutq run`` and
``cutq submit``: both describe the same :class:`~cutq.core.contract.OutputSpec` and
:class:`~cutq.core.contract.Options`, so the choices come from the contract, once."""

from __future__ import annotations

import argparse

from cutq.core.contract import FORMATS, KINDS, RESIZES


def add_output_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("--format", choices=FORMATS, help="result format (default png)")
    group.add_argument("--kind", choices=KINDS, help="RGBA cutout (default), 8-bit mask, or both")
    group.add_argument("--background", help="composite onto this colour, e.g. '#ffffff'")
    group.add_argument(
        "--resize",
        choices=RESIZES,
        help="model input size: fixed square (default) or following the aspect",
    )
    group.add_argument("--threshold", type=float, help="binarise the mask at this value (0-1)")
