"""Colour management: what an input's pixels mean, and the profile each output carries.

Every conversion goes through LittleCMS (Pillow's :mod:`PIL.ImageCms`), never hand-written
colour maths. An input's embedded ICC profile (RGB, CMYK, including Adobe's inverted CMYK
that Pillow's JPEG reader already un-inverts, or grayscale) converts it to sRGB: the model
sees sRGB, and so do the outputs by default, which embed the sRGB profile (marketplaces
expect sRGB; an untagged file is read as sRGB anyway). With ``colour: keep`` an RGB input's
pixels stay in its own space, unconverted (no clipping to sRGB's gamut), and the outputs
embed its profile; the model still gets an sRGB copy. An input without a profile is sRGB.
A profile LittleCMS cannot read, or one that does not match the image's mode, is ignored
(the image is read as sRGB, as any viewer would) and logged: a worker never fails a photo
over it.
"""

from __future__ import annotations

import functools
import io
import logging
from dataclasses import dataclass

from PIL import Image, ImageCms

log = logging.getLogger(__name__)

# Photoshop's default for photos: relative colorimetric with black point compensation.
INTENT = ImageCms.Intent.RELATIVE_COLORIMETRIC
FLAGS = ImageCms.Flags.BLACKPOINTCOMPENSATION

# The ICC colour space of a profile that can describe each mode Pillow decodes to.
_SPACES = {
    "RGB": "RGB",
    "RGBA": "RGB",
    "P": "RGB",
    "PA": "RGB",
    "CMYK": "CMYK",
    "L": "GRAY",
    "LA": "GRAY",
}


@functools.cache
def srgb_profile() -> ImageCms.ImageCmsProfile:
    """LittleCMS's own sRGB (IEC 61966-2-1) profile."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@functools.cache
def srgb_icc() -> bytes:
    """The sRGB profile's bytes, as outputs embed them."""
    return srgb_profile().tobytes()


@dataclass(frozen=True)
class Managed:
    """An input in the colour space its outputs use, and an sRGB copy where that differs.

    ``image``: RGB or RGBA pixels in the outputs' space; ``icc``: the profile the outputs
    embed; ``srgb``: the same pixels in sRGB for the model (None: ``image`` is sRGB already).
    """

    image: Image.Image
    icc: bytes
    srgb: Image.Image | None = None


@dataclass(frozen=True)
class _Profile:
    profile: ImageCms.ImageCmsProfile
    icc: bytes
    space: str  # RGB, CMYK or GRAY


def manage(image: Image.Image, keep: bool = False) -> Managed:
    """``image`` (as decoded, upright, in an 8-bit mode) as RGB or RGBA, through its profile.

    ``keep``: an RGB input keeps its own profile and pixel values (``srgb`` holds the model's
    copy); a CMYK or grayscale input is converted to sRGB whatever ``keep`` says (their
    profiles cannot describe an RGB cutout).
    """
    profile = _profile(image)
    if profile is not None and profile.space != "RGB":
        return Managed(_to_srgb(image, profile), srgb_icc())
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if _has_alpha(image) else "RGB")
    if profile is None:
        return Managed(image, srgb_icc())
    if keep:
        return Managed(image, profile.icc, _to_srgb(image, profile))
    return Managed(_to_srgb(image, profile), srgb_icc())


def _profile(image: Image.Image) -> _Profile | None:
    """The embedded profile, when LittleCMS reads it and it can describe the image's mode."""
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in _SPACES:
        return None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        space = profile.profile.xcolor_space.strip()
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as error:
        log.warning("ignoring an embedded ICC profile LittleCMS cannot read: %s", error)
        return None
    if _SPACES[image.mode] != space:
        log.warning("ignoring a %s ICC profile on a %s image", space, image.mode)
        return None
    return _Profile(profile, bytes(icc), space)


def _has_alpha(image: Image.Image) -> bool:
    return "A" in image.getbands() or "transparency" in image.info


def _to_srgb(image: Image.Image, source: _Profile) -> Image.Image:
    """RGB (or RGBA: the alpha channel carried over untouched) in sRGB."""
    alpha = image.convert("RGBA").getchannel("A") if _has_alpha(image) else None
    base = {"RGB": "RGB", "CMYK": "CMYK", "GRAY": "L"}[source.space]
    pixels = image if image.mode == base else image.convert(base)
    try:
        converted = ImageCms.profileToProfile(
            pixels,
            source.profile,
            srgb_profile(),
            renderingIntent=INTENT,
            outputMode="RGB",
            flags=FLAGS,
        )
    except ImageCms.PyCMSError as error:
        log.warning("ignoring an ICC profile LittleCMS cannot convert from: %s", error)
        converted = pixels.convert("RGB")
    assert converted is not None  # not in place
    if alpha is not None:
        converted.putalpha(alpha)
    return converted
