"""Command-line flags for the job contract's output fields, shared by ``cutq run`` and
``cutq submit``: both describe the same :class:`~cutq.core.contract.OutputSpec` and
:class:`~cutq.core.contract.Options`, so the choices come from the contract, once."""

from __future__ import annotations

import argparse

from cutq.core.contract import FOREGROUNDS, FORMATS, KINDS, RESIZES, Options
from cutq.core.errors import ConfigError, InvalidJob
from cutq.core.presets import PRESETS
from cutq.core.renditions import Rendition, presets


def add_output_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument(
        "--format",
        choices=FORMATS,
        help="result format: png (default), webp (lossless, or lossy with --quality), "
        "jpeg (needs --background for cutouts), avif",
    )
    group.add_argument(
        "--quality", type=int, help="1-100 for jpeg, avif and lossy webp (webp: lossless without)"
    )
    group.add_argument("--kind", choices=KINDS, help="RGBA cutout (default), 8-bit mask, or both")
    group.add_argument("--background", help="composite onto this colour, e.g. '#ffffff'")
    group.add_argument(
        "--resize",
        choices=RESIZES,
        help="model input size: fixed square (default) or following the aspect",
    )
    group.add_argument("--threshold", type=float, help="binarise the mask at this value (0-1)")
    group.add_argument(
        "--preset",
        action="append",
        default=[],
        metavar="NAME",
        choices=tuple(PRESETS),
        help="one rendition per preset, each checked against its rules (pass/fail in the "
        f"event); repeatable, one model run for all: {', '.join(PRESETS)}",
    )
    group.add_argument(
        "--accept-review",
        action="store_true",
        help="exit 0 when results only need review (else 4); a failed verdict still exits 3",
    )
    group.add_argument(
        "--foreground",
        choices=FOREGROUNDS,
        help="edge colours: ml estimates the subject's own colour under soft alpha (the "
        "worker's default), none keeps the input's colours",
    )
    group.add_argument(
        "--matting",
        action="store_true",
        help="refine the mask by closed-form alpha matting (hair, fur; slower, bounded)",
    )
    group.add_argument(
        "--post-process",
        action="store_true",
        help="clean the mask: morphological opening, Gaussian blur, threshold",
    )


def options_from_args(args: argparse.Namespace) -> Options:
    """The job :class:`Options` the flags of :func:`add_output_args` describe."""
    return Options(
        resize=args.resize,
        threshold=args.threshold,
        foreground=args.foreground,
        matting=args.matting,
        post_process=args.post_process,
    )


def renditions_from_args(args: argparse.Namespace) -> tuple[Rendition, ...]:
    """The renditions ``--preset`` asks for (none: the output flags' cutout and/or mask)."""
    if not args.preset:
        return ()
    clashing = [
        flag
        for flag in ("format", "kind", "background", "quality")
        if getattr(args, flag, None) is not None
    ]
    if clashing:
        raise ConfigError(
            f"--preset sets the output itself: drop --{', --'.join(clashing)} "
            "(or submit jobs with renditions of your own)"
        )
    try:
        return presets(*args.preset)
    except InvalidJob as error:
        raise ConfigError(f"--preset: {error}") from None
