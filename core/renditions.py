"""Renditions: the named outputs one job makes from one model run, and how each is framed.

Part of job contract v1 (:mod:`cutq.core.contract` parses a job's ``renditions`` through
:func:`parse_renditions`). A rendition is a format, a kind (``cutout`` or ``mask``), a
background, a quality, an edge setting and an optional :class:`Frame`; a ``preset``
(:mod:`cutq.core.presets`) supplies any of those, and the rendition's own fields override it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from cutq.core import validation as v
from cutq.core.errors import InvalidJob
from cutq.core.output import FOREGROUNDS, FORMATS, LOSSY_FORMATS, OutputSpec, check_output
from cutq.core.presets import PRESETS

Fit = Literal["contain", "cover"]
Position = Literal["center", "bottom"]
FITS: tuple[Fit, ...] = ("contain", "cover")
POSITIONS: tuple[Position, ...] = ("center", "bottom")
RENDITION_KINDS = ("cutout", "mask")
NAME_RE = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,31}\Z")
MAX_RENDITIONS = 8
MAX_SIDE = 16383  # the largest side any of our formats holds (WebP's limit)
MAX_MARGIN = 0.45  # a fraction of the canvas per side: the subject keeps at least 10 %

FRAME_FIELDS = {
    "crop",
    "margin",
    "margin_px",
    "width",
    "height",
    "longest",
    "fit",
    "position",
    "upscale",
}
# Frame fields that exclude each other: a job giving one side drops a preset's other side.
_ALTERNATIVES = (({"margin"}, {"margin_px"}), ({"width", "height"}, {"longest"}))
RENDITION_FIELDS = {
    "name",
    "preset",
    "format",
    "kind",
    "background",
    "quality",
    "foreground",
    "frame",
}


@dataclass(frozen=True)
class Frame:
    """Where the subject sits in the picture.

    ``crop``: start from the subject's bounding box (from the alpha; specks ignored) rather
    than the whole image. ``margin``: a fraction of the canvas's shorter side kept clear on
    every side (without a canvas: of the framed picture's longer side), or ``margin_px``
    pixels. The canvas is ``width``×``height`` (the subject fitted in by ``fit``: ``contain``
    whole, ``cover`` filling it and cut), or ``longest`` px on the longer side, or the framed
    picture at the source's scale. ``position``: ``center``, or ``bottom`` (centred, resting on
    the bottom margin: products standing on a surface). Never upscaled unless ``upscale``:
    when the source is too small, the whole canvas shrinks by the same factor, so the subject
    keeps its share of the frame.
    """

    crop: bool = True
    margin: float | None = None
    margin_px: int | None = None
    width: int | None = None
    height: int | None = None
    longest: int | None = None
    fit: Fit = "contain"
    position: Position = "center"
    upscale: bool = False

    def canonical(self) -> dict[str, Any]:
        return {key: value for key, value in vars(self).items() if value is not None}


@dataclass(frozen=True)
class Rendition:
    """One named output of a job."""

    name: str
    format: str = "png"
    kind: str = "cutout"  # cutout | mask
    background: str | None = None
    quality: int | None = None
    foreground: str | None = None  # none | ml; None: the job's option (or the worker's default)
    frame: Frame | None = None
    preset: str | None = None

    def canonical(self) -> dict[str, Any]:
        canonical: dict[str, Any] = {
            key: value for key, value in vars(self).items() if value is not None
        }
        if self.frame is not None:
            canonical["frame"] = self.frame.canonical()
        return canonical


def parse_renditions(value: Any) -> tuple[Rendition, ...]:
    """The ``renditions`` list of a job; raises :class:`InvalidJob` naming the field."""
    if not isinstance(value, list) or not value:
        raise InvalidJob("renditions: expected a non-empty list of rendition objects")
    if len(value) > MAX_RENDITIONS:
        raise InvalidJob(f"renditions: at most {MAX_RENDITIONS}, got {len(value)}")
    parsed = tuple(
        parse_rendition(item, f"renditions[{index}]") for index, item in enumerate(value)
    )
    names = [rendition.name for rendition in parsed]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise InvalidJob(f"renditions: names must be unique; repeated: {', '.join(duplicated)}")
    return parsed


def parse_rendition(value: Any, where: str) -> Rendition:
    obj = v.require_object(value, where)
    v.reject_unknown(obj, RENDITION_FIELDS, where)
    preset_name = obj.get("preset")
    fields: dict[str, Any] = {}
    if preset_name is not None:
        if not isinstance(preset_name, str) or preset_name not in PRESETS:
            raise InvalidJob(
                f"{where}.preset: unknown preset {preset_name!r}; known: {', '.join(PRESETS)}"
            )
        fields.update(PRESETS[preset_name].fields)
    frame_fields = dict(fields.get("frame") or {})
    if "format" in obj and "quality" not in obj and obj["format"] not in LOSSY_FORMATS:
        fields.pop("quality", None)  # the preset's quality belongs to the preset's format
    fields.update(obj)
    if isinstance(obj.get("frame"), dict):  # a job's frame overrides the preset's field by field
        given = obj["frame"]
        for one, other in _ALTERNATIVES:  # … and a field replaces the preset's alternatives
            for chosen, dropped in ((one, other), (other, one)):
                if chosen & set(given):
                    frame_fields = {k: v for k, v in frame_fields.items() if k not in dropped}
        fields["frame"] = {**frame_fields, **given}
    name = fields.get("name", preset_name)
    if name is None:
        raise InvalidJob(f"{where}.name: required (unless a preset names it)")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidJob(
            f"{where}.name: 1-32 characters of a-z 0-9 _ -, starting with a letter or digit; "
            f"got {name!r}"
        )
    fmt = v.choice(fields.get("format", "png"), FORMATS, f"{where}.format")
    kind = v.choice(fields.get("kind", "cutout"), RENDITION_KINDS, f"{where}.kind")
    background, quality = fields.get("background"), fields.get("quality")
    if kind == "mask" and "background" not in obj:
        background = None  # a preset's background is for its cutouts
    try:
        check_output(OutputSpec("file:///", fmt, kind, background, quality))  # type: ignore[arg-type]
    except InvalidJob as error:
        raise InvalidJob(str(error).replace("output.", f"{where}.", 1)) from None
    foreground = fields.get("foreground")
    if foreground is not None:
        foreground = v.choice(foreground, FOREGROUNDS, f"{where}.foreground")
    frame_value = fields.get("frame")
    frame = None if frame_value is None else parse_frame(frame_value, f"{where}.frame")
    return Rendition(name, fmt, kind, background, quality, foreground, frame, preset_name)


def parse_frame(value: Any, where: str) -> Frame:
    obj = v.require_object(value, where)
    v.reject_unknown(obj, FRAME_FIELDS, where)
    margin, margin_px = obj.get("margin"), obj.get("margin_px")
    if margin is not None and margin_px is not None:
        raise InvalidJob(f"{where}: give margin (a fraction) or margin_px, not both")
    if margin is not None:
        if isinstance(margin, bool) or not isinstance(margin, (int, float)):
            raise InvalidJob(f"{where}.margin: expected a number, got {margin!r}")
        if not 0 <= margin <= MAX_MARGIN:
            raise InvalidJob(f"{where}.margin: a fraction 0-{MAX_MARGIN}, got {margin}")
        margin = float(margin)
    if margin_px is not None:
        margin_px = _side(margin_px, f"{where}.margin_px", minimum=0)
    width = _side(obj.get("width"), f"{where}.width")
    height = _side(obj.get("height"), f"{where}.height")
    longest = _side(obj.get("longest"), f"{where}.longest")
    if (width is None) != (height is None):
        raise InvalidJob(f"{where}: give width and height together (or longest)")
    if longest is not None and width is not None:
        raise InvalidJob(f"{where}: give width×height or longest, not both")
    canvas = min(width, height) if width is not None and height is not None else longest
    if margin_px is not None and canvas is not None and 2 * margin_px >= canvas:
        raise InvalidJob(f"{where}.margin_px: {margin_px} px a side leaves no room in {canvas} px")
    return Frame(
        crop=True if obj.get("crop") is None else v.flag(obj["crop"], f"{where}.crop"),
        margin=margin,
        margin_px=margin_px,
        width=width,
        height=height,
        longest=longest,
        fit=v.choice(obj.get("fit", "contain"), FITS, f"{where}.fit"),
        position=v.choice(obj.get("position", "center"), POSITIONS, f"{where}.position"),
        upscale=v.flag(obj.get("upscale"), f"{where}.upscale"),
    )


def _side(value: Any, where: str, minimum: int = 1) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidJob(f"{where}: expected an integer number of pixels, got {value!r}")
    if not minimum <= value <= MAX_SIDE:
        raise InvalidJob(f"{where}: must be {minimum}-{MAX_SIDE} px, got {value}")
    return value


def presets(*names: str) -> tuple[Rendition, ...]:
    """One rendition per preset, named after it: ``presets("amazon-main", "thumbnail")``."""
    return parse_renditions([{"preset": name} for name in names])
