"""How the model runs on one image: the ``options`` object of job contract v1."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from cutq.core import validation as v
from cutq.core.errors import InvalidJob
from cutq.core.output import FOREGROUNDS, Foreground

_OPTION_FIELDS = {
    "resize",
    "threshold",
    "foreground",
    "matting",
    "post_process",
    "colour",
    "metadata",
}
Resize = Literal["static", "dynamic"]
RESIZES: tuple[Resize, ...] = ("static", "dynamic")
Colour = Literal["srgb", "keep"]
Metadata = Literal["minimal", "keep"]
#: ``srgb``: outputs converted to sRGB with the sRGB profile embedded (marketplaces expect
#: sRGB); ``keep``: an RGB input's own ICC profile, its pixel values unconverted.
COLOURS: tuple[Colour, ...] = ("srgb", "keep")
#: ``minimal``: DPI and the colour profile only; ``keep``: also the input's EXIF (orientation
#: reset, GPS removed) and XMP.
METADATA: tuple[Metadata, ...] = ("minimal", "keep")


@dataclass(frozen=True)
class Options:
    """How the model runs on this image."""

    resize: Resize | None = None  # None: the worker's configured mode
    threshold: float | None = None  # binarise the mask at this probability
    foreground: Foreground | None = None  # edge colours; None: the worker's configured default
    matting: bool = False  # refine the mask by closed-form alpha matting on a trimap
    post_process: bool = False  # open, blur and re-threshold the mask (rembg's post-process)
    colour: Colour = "srgb"  # the outputs' colour space (COLOURS)
    metadata: Metadata = "minimal"  # what the outputs carry of the input's metadata (METADATA)

    def canonical(self) -> dict[str, Any]:
        canonical: dict[str, Any] = {"resize": self.resize, "threshold": self.threshold}
        # Newer fields only when set: the ids of jobs that do not use them stay the same.
        if self.foreground is not None:
            canonical["foreground"] = self.foreground
        if self.matting:
            canonical["matting"] = True
        if self.post_process:
            canonical["post_process"] = True
        if self.colour != "srgb":
            canonical["colour"] = self.colour
        if self.metadata != "minimal":
            canonical["metadata"] = self.metadata
        return canonical


def parse_options(value: Any) -> Options:
    """A job's ``options`` object; raises :class:`InvalidJob` naming the field."""
    if value is None:
        return Options()
    obj = v.require_object(value, "options")
    v.reject_unknown(obj, _OPTION_FIELDS, "options")
    resize = obj.get("resize")
    if resize is not None:
        resize = v.choice(resize, RESIZES, "options.resize")
    threshold = obj.get("threshold")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise InvalidJob(f"options.threshold: expected a number, got {threshold!r}")
        if not 0.0 < threshold < 1.0:
            raise InvalidJob(f"options.threshold: must be between 0 and 1, got {threshold}")
        threshold = float(threshold)
    foreground = obj.get("foreground")
    if foreground is not None:
        foreground = v.choice(foreground, FOREGROUNDS, "options.foreground")
    return Options(
        resize=resize,
        threshold=threshold,
        foreground=foreground,
        matting=v.flag(obj.get("matting"), "options.matting"),
        post_process=v.flag(obj.get("post_process"), "options.post_process"),
        colour=v.choice(obj.get("colour", "srgb"), COLOURS, "options.colour"),
        metadata=v.choice(obj.get("metadata", "minimal"), METADATA, "options.metadata"),
    )
