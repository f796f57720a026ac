"""What an output carries over from its input: colour profile, DPI and, when a job asks,
EXIF and XMP.

The EXIF orientation is applied to the pixels at decode, so the outputs' EXIF says
``Orientation = 1``; GPS never travels (a shop's product photo must not publish where the
studio or the supplier's phone was): the EXIF GPS directory and every ``exif:GPS…`` property
of the XMP are removed. XMP that does not parse is dropped whole rather than passed on
unchecked.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from PIL import ExifTags, Image

log = logging.getLogger(__name__)

_EXIF_NS = "http://ns.adobe.com/exif/1.0/"


@dataclass(frozen=True)
class Carried:
    """What each cutout embeds (masks: ``dpi`` only; they are untagged data)."""

    icc: bytes | None = None  # the ICC profile (sRGB by default)
    dpi: tuple[float, float] | None = None
    exif: bytes | None = None  # orientation 1, no GPS; only when the job keeps metadata
    xmp: bytes | None = None  # without GPS; only when the job keeps metadata

    def for_mask(self) -> Carried:
        return Carried(dpi=self.dpi)


def carried(image: Image.Image, icc: bytes | None, keep: bool) -> Carried:
    """From an upright decoded ``image`` (its EXIF orientation already applied)."""
    dpi = _dpi(image.info.get("dpi"))
    if not keep:
        return Carried(icc, dpi)
    return Carried(icc, dpi, _exif(image), _xmp(image.info.get("xmp")))


def _dpi(value: object) -> tuple[float, float] | None:
    if not isinstance(value, tuple) or len(value) != 2:
        return None
    try:
        x, y = float(value[0]), float(value[1])
    except (TypeError, ValueError):
        return None
    return (x, y) if 0 < x < 1e5 and 0 < y < 1e5 else None


def _exif(image: Image.Image) -> bytes | None:
    try:
        exif = image.getexif()
        if not exif:
            return None
        exif.pop(ExifTags.IFD.GPSInfo, None)
        exif[ExifTags.Base.Orientation] = 1  # the pixels are upright
        return exif.tobytes()
    except Exception as error:  # corrupt EXIF: the photo goes on without it
        log.warning("dropping EXIF that cannot be rewritten: %s: %s", type(error).__name__, error)
        return None


def _xmp(value: object) -> bytes | None:
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, bytes) or not value.strip():
        return None
    text = value.strip(b"\x00 \r\n\t")
    try:
        root = ET.fromstring(text)  # expat refuses entity-expansion bombs
    except ET.ParseError as error:
        log.warning("dropping XMP that does not parse: %s", error)
        return None
    gps = f"{{{_EXIF_NS}}}GPS"
    for element in list(root.iter()):
        for name in [name for name in element.attrib if name.startswith(gps)]:
            del element.attrib[name]
        for child in [child for child in element if child.tag.startswith(gps)]:
            element.remove(child)
    return ET.tostring(root, encoding="utf-8")
