"""Where and how a job's results are written: the ``output`` object of job contract v1.

Its formats, kinds and edge settings, the checks an output needs, and the names its result
objects get (``<output>/dt=<UTC date of publish>/<file>``, the file named by the default
scheme or by ``output.template``, :mod:`cutq.core.naming`). :mod:`cutq.core.contract` and
:mod:`cutq.core.renditions` both build on it; it imports neither.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from cutq.core import validation as v
from cutq.core.errors import InvalidJob
from cutq.core.naming import Identity, check_template, render

Format = Literal["png", "webp", "jpeg", "avif"]
Kind = Literal["cutout", "mask", "both"]
Foreground = Literal["none", "ml"]
FORMATS: tuple[Format, ...] = ("png", "webp", "jpeg", "avif")
KINDS: tuple[Kind, ...] = ("cutout", "mask", "both")
#: ``none``: edge pixels keep the input's colours; ``ml``: multi-level foreground estimation.
FOREGROUNDS: tuple[Foreground, ...] = ("none", "ml")
CONTENT_TYPES = {
    "png": "image/png",
    "webp": "image/webp",
    "jpeg": "image/jpeg",
    "avif": "image/avif",
}
EXTENSIONS = {"png": "png", "webp": "webp", "jpeg": "jpg", "avif": "avif"}
#: Formats that take a ``quality`` (WebP: lossy at that quality, lossless without one).
LOSSY_FORMATS = ("webp", "jpeg", "avif")
COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$")
OUTPUT_FIELDS = {"uri", "format", "kind", "background", "quality", "template"}
#: With renditions, ``output`` gives only these (each rendition says the rest).
RENDITION_OUTPUT_FIELDS = {"uri", "template"}


@dataclass(frozen=True)
class OutputSpec:
    """Where and how results are written."""

    uri: str
    format: Format = "png"
    kind: Kind = "cutout"
    background: str | None = None  # "#rrggbb[aa]": composite the cutout onto this colour
    quality: int | None = None  # 1-100 for jpeg, webp (lossy; lossless without), avif
    template: str | None = None  # result file names (cutq.core.naming); None: <job_id>…

    def canonical(self) -> dict[str, Any]:
        canonical: dict[str, Any] = {
            "uri": self.uri,
            "format": self.format,
            "kind": self.kind,
            "background": self.background,
        }
        if self.quality is not None:  # only when set: ids of jobs without one stay the same
            canonical["quality"] = self.quality
        if self.template is not None:  # the same: names are part of what a job makes
            canonical["template"] = self.template
        return canonical

    def canonical_for_renditions(self) -> dict[str, Any]:
        """What ``output`` says of a job with renditions: where, and how files are named."""
        return {key: value for key, value in self.canonical().items() if key in ("uri", "template")}

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


@dataclass(frozen=True)
class Planned:
    """One result a job writes, as the file-naming needs it."""

    name: str  # the rendition's name (``cutout``/``mask`` for jobs without renditions)
    format: str
    preset: str | None = None


def result_uris(
    output: OutputSpec,
    *,
    job_id: str,
    input_uri: str,
    identity: Identity,
    publish_time: datetime,
    planned: tuple[Planned, ...],
    renditions: bool,
) -> dict[str, str]:
    """``{name: uri}`` for each planned result, in order. Without a template: renditions are
    ``<job_id>.<rendition>.<ext>``, a plain job's cutout ``<job_id>.<ext>`` and its mask
    ``<job_id>.mask.<ext>``."""
    day = publish_time.astimezone(timezone.utc).strftime("%Y-%m-%d")
    base = f"{output.uri.rstrip('/')}/dt={day}"
    uris = {}
    for result in planned:
        ext = EXTENSIONS[result.format]  # type: ignore[index]
        if output.template is not None:
            file = render(
                output.template,
                job_id=job_id,
                identity=identity,
                input_uri=input_uri,
                rendition=result.name,
                preset=result.preset,
                ext=ext,
            )
        elif renditions:
            file = f"{job_id}.{result.name}.{ext}"
        else:
            file = f"{job_id}.mask.{ext}" if result.name == "mask" else f"{job_id}.{ext}"
        uris[result.name] = f"{base}/{file}"
    return uris


def check_result_names(uris: dict[str, str]) -> None:
    """Each result needs a file of its own, and one storage accepts."""
    files = [uri.rsplit("/", 1)[-1] for uri in uris.values()]
    shared = sorted({file for file in files if files.count(file) > 1})
    if shared:
        raise InvalidJob(
            f"output.template: results would share the name {shared[0]!r}; "
            "add {rendition} to the template"
        )
    for name, uri in uris.items():
        if uri.rsplit("/", 1)[-1].startswith("."):
            raise InvalidJob(f"output.template: the {name} result's name would start with '.'")
        v.object_name_fits(uri, f"output ({name} result)")


def output_uri(value: Any, defaults: OutputSpec) -> Any:
    if isinstance(value, dict):
        return value.get("uri", defaults.uri)
    return defaults.uri if value is None else value


def parse_output(value: Any, defaults: OutputSpec) -> OutputSpec:
    """A job's ``output`` (an object, a URI string, or absent), completed from ``defaults``."""
    if value is None:
        return defaults
    if isinstance(value, str):
        value = {"uri": value}
    obj = v.require_object(value, "output")
    v.reject_unknown(obj, OUTPUT_FIELDS, "output")
    uri = v.uri(obj.get("uri", defaults.uri), "output.uri")
    fmt = v.choice(obj.get("format", defaults.format), FORMATS, "output.format")
    kind = v.choice(obj.get("kind", defaults.kind), KINDS, "output.kind")
    background = obj.get("background", defaults.background)
    # A default quality belongs to the default format: a job choosing png drops it.
    quality = obj.get("quality", defaults.quality if fmt == defaults.format else None)
    template = check_template(obj.get("template", defaults.template))
    return check_output(
        OutputSpec(
            uri=uri,
            format=fmt,
            kind=kind,
            background=background,
            quality=quality,
            template=template,
        )
    )


def check_output(spec: OutputSpec) -> OutputSpec:
    """The checks an output needs beyond its fields' own types; raises :class:`InvalidJob`."""
    background, quality = spec.background, spec.quality
    if background is not None and (
        not isinstance(background, str) or not COLOR_RE.match(background)
    ):
        raise InvalidJob(
            f"output.background: expected '#rrggbb' or '#rrggbbaa', got {background!r}"
        )
    if background is not None and spec.kind == "mask":
        raise InvalidJob("output.background: only applies to kind 'cutout' or 'both'")
    if spec.format == "jpeg" and spec.kind != "mask":
        if background is None:
            raise InvalidJob(
                "output.background: format 'jpeg' has no transparency: a cutout needs an "
                "opaque background colour to be composited on, e.g. '#ffffff'"
            )
        if len(background) == 9 and background[7:].lower() != "ff":
            raise InvalidJob(
                f"output.background: format 'jpeg' has no transparency; {background!r} is "
                "translucent: use '#rrggbb'"
            )
    if quality is not None:
        if isinstance(quality, bool) or not isinstance(quality, int):
            raise InvalidJob(f"output.quality: expected an integer 1-100, got {quality!r}")
        if not 1 <= quality <= 100:
            raise InvalidJob(f"output.quality: must be 1-100, got {quality}")
        if spec.format not in LOSSY_FORMATS:
            raise InvalidJob(
                f"output.quality: only for formats {', '.join(LOSSY_FORMATS)}; "
                f"{spec.format} is lossless"
            )
    return spec
