"""Command-line flags for the job contract's output fields, shared by ``cutq run`` and
``cutq submit``: both describe the same :class:`~cutq.core.contract.OutputSpec` and
:class:`~cutq.core.contract.Options`, so the choices come from the contract, once."""

from __future__ import annotations

import argparse

from cutq.core.contract import FOREGROUNDS, FORMATS, KINDS, RESIZES, Options
from cutq.core.errors import ConfigError, InvalidJob
from cutq.core.options import COLOURS, METADATA
from cutq.core.presets import PRESETS
from cutq.core.renditions import FRAME_FIELDS, RENDITION_FIELDS, Rendition, parse_renditions

#: What ``--preset NAME:field=value`` may set: a rendition's own fields and its frame's.
OVERRIDABLE = tuple(sorted(RENDITION_FIELDS - {"preset", "frame"})) + tuple(sorted(FRAME_FIELDS))


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
        metavar="NAME[:FIELD=VALUE,...]",
        help="one rendition per preset, each checked against its rules (verdict pass, review "
        f"or fail in the event); repeatable, one model run for all: {', '.join(PRESETS)}. "
        "Override its fields after a colon, e.g. amazon-main:upscale=true,margin=0.05 "
        "(two of one preset need name=...)",
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
    group.add_argument(
        "--colour",
        choices=COLOURS,
        default="srgb",
        help="srgb (default): outputs converted to sRGB, its profile embedded; keep: an RGB "
        "input's own ICC profile and pixel values",
    )
    group.add_argument(
        "--metadata",
        choices=METADATA,
        default="minimal",
        help="minimal (default): DPI and the colour profile; keep: also the input's EXIF "
        "(without GPS) and XMP",
    )


def options_from_args(args: argparse.Namespace) -> Options:
    """The job :class:`Options` the flags of :func:`add_output_args` describe."""
    return Options(
        resize=args.resize,
        threshold=args.threshold,
        foreground=args.foreground,
        matting=args.matting,
        post_process=args.post_process,
        colour=args.colour,
        metadata=args.metadata,
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
    entries = [preset_entry(text) for text in args.preset]
    for text, entry in zip(args.preset, entries, strict=True):
        try:
            parse_renditions([entry])
        except InvalidJob as error:
            message = str(error).removeprefix("renditions[0].")
            raise ConfigError(f"--preset {text}: {message}") from None
    try:
        return parse_renditions(entries)
    except InvalidJob as error:  # repeated names, too many
        raise ConfigError(f"--preset: {error} (name each: --preset NAME:name=other,...)") from None


def preset_entry(text: str) -> dict[str, object]:
    """``NAME`` or ``NAME:field=value[,field=value]`` as a job's rendition object: frame
    fields go into its ``frame``; values read as true/false, integers, decimals, else text."""
    name, colon, rest = text.partition(":")
    if name not in PRESETS:
        raise ConfigError(f"--preset {text}: unknown preset {name!r}; known: {', '.join(PRESETS)}")
    entry: dict[str, object] = {"preset": name}
    frame: dict[str, object] = {}
    for pair in rest.split(",") if colon else ():
        key, equals, value = (part.strip() for part in pair.partition("="))
        if not equals or not key:
            raise ConfigError(f"--preset {text}: expected NAME:field=value[,field=value]")
        if key not in OVERRIDABLE:
            raise ConfigError(
                f"--preset {text}: unknown field {key!r}; fields: {', '.join(OVERRIDABLE)}"
            )
        if key in entry or key in frame:
            raise ConfigError(f"--preset {text}: {key} given twice")
        (frame if key in FRAME_FIELDS else entry)[key] = _value(value)
    if frame:
        entry["frame"] = frame
    return entry


def _value(text: str) -> object:
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
