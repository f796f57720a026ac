"""Decoding untrusted bytes into RGB pixels, and encoding masks into result images.

Decoding checks the pixel count from the header *before* any pixel is decoded, so a
decompression bomb costs nothing; it respects EXIF orientation and turns every mode Pillow
reads (palette, grayscale, CMYK, 16-bit, with or without alpha) into 8-bit RGB plus the
image's own alpha, if any, through the image's ICC profile (:mod:`.colour`); what the outputs
carry over (profile, DPI, EXIF/XMP: :mod:`.metadata`) rides on the decoded value and is
embedded by :func:`encode`. HEIC/HEIF is read through pillow-heif (the ``heic`` extra).
Encoding keeps straight (unpremultiplied) alpha, so edges keep the
colours they are given (the input's, or the estimated foreground's: :mod:`.matting`) and never
get a dark fringe.
"""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError, features

from cutq.core.errors import (
    CutqError,
    ImageTooLarge,
    OutputUnencodable,
    UndecodableImage,
    UnsupportedImage,
)
from cutq.worker.render import colour
from cutq.worker.render.metadata import Carried, carried

# The pixel limit is cutq's configurable ``max_pixels``, checked in decode() from the header
# before any pixel is decoded. Pillow's process-wide MAX_IMAGE_PIXELS is left as it is (its
# warning is silenced inside decode(); a max_pixels above twice Pillow's ~89 MP, where Pillow
# refuses an image itself, reports that refusal as image_too_large).


@dataclass(frozen=True)
class Decoded:
    """An input image, upright, as 8-bit RGB plus its own alpha (or None).

    ``rgb`` is in the outputs' colour space (sRGB, or with ``colour: keep`` the input's own
    RGB space); ``srgb`` is what the model sees.
    """

    rgb: np.ndarray  # H×W×3 uint8
    alpha: np.ndarray | None  # H×W uint8, when the input had transparency
    carried: Carried = field(default_factory=Carried)  # what the outputs embed
    model_rgb: np.ndarray | None = None  # sRGB, where ``rgb`` is in another space

    @property
    def srgb(self) -> np.ndarray:
        return self.rgb if self.model_rgb is None else self.model_rgb

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def decode(
    data: bytes,
    *,
    max_pixels: int,
    reserve: Callable[[int, int], None] | None = None,
    keep_colour: bool = False,
    keep_metadata: bool = False,
) -> Decoded:
    """Decode one image, refusing what cutq cannot or should not process.

    Only :class:`~cutq.core.errors.PermanentError` subclasses escape for bad bytes:
    Pillow's plugins raise a zoo of types on corrupt input (``struct.error``, ``IndexError``,
    ``TypeError``, ``RuntimeError``, ``NotImplementedError``…), and any of them escaping would
    make a bad image look like a worker bug (nack, retries, dead letter) instead of a
    ``failed`` event. ``MemoryError`` is the one exception left alone: it says the worker,
    not the input, is in trouble.

    ``reserve(width, height)`` is called once the header is read and the size accepted,
    before any pixel is decoded: the worker's in-flight budget charges the job there (or
    refuses it: :mod:`cutq.worker.memory`). ``keep_colour``: an RGB input's own profile for the
    outputs (else sRGB); ``keep_metadata``: its EXIF and XMP too (without GPS).
    """
    if not data:
        raise UndecodableImage("input is empty (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "Corrupt EXIF data", "palette images with …"
        try:
            return _decode(data, max_pixels, reserve, keep_colour, keep_metadata)
        except (CutqError, MemoryError):
            raise
        except UnidentifiedImageError:
            raise UndecodableImage(_unidentified(data)) from None
        except Image.DecompressionBombError as error:  # only past a max_pixels over Pillow's
            raise ImageTooLarge(str(error)) from None
        except Exception as error:
            raise UndecodableImage(
                f"image data is corrupt or truncated: {type(error).__name__}: {error}"
            ) from None


def _decode(
    data: bytes,
    max_pixels: int,
    reserve: Callable[[int, int], None] | None,
    keep_colour: bool,
    keep_metadata: bool,
) -> Decoded:
    if _is_heif(data):
        _heif_opener()
    image = Image.open(io.BytesIO(data))
    width, height = image.size
    if width < 1 or height < 1:
        raise UnsupportedImage(f"image has a zero-sized side ({width}×{height})")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"image is {width}×{height} = {width * height:,} pixels; the limit is {max_pixels:,}"
        )
    frames = getattr(image, "n_frames", 1)  # seeks through the file: may hit corrupt data
    if frames > 1:
        raise UnsupportedImage(f"animated images are not supported ({frames} frames)")
    if reserve is not None:
        reserve(width, height)
    image.load()
    image = ImageOps.exif_transpose(image)
    if image.mode in _WIDE_GRAY:  # 16-bit and float grayscale: untagged, quantised once
        return Decoded(*_wide_gray(image), carried=carried(image, colour.srgb_icc(), keep_metadata))
    managed = colour.manage(image, keep=keep_colour)
    rgb, alpha = _arrays(managed.image)
    model = _arrays(managed.srgb)[0] if managed.srgb is not None else None
    return Decoded(rgb, alpha, carried(image, managed.icc, keep_metadata), model)


_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
HEIF_SUFFIXES = (".heic", ".heif", ".hif")


def _is_heif(data: bytes) -> bool:
    return data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS


@functools.cache
def _heif_opener() -> bool:
    """Register pillow-heif's reader with Pillow once; False when the extra is not installed."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def _unidentified(data: bytes) -> str:
    """Why Pillow did not recognise ``data``, naming formats people actually send."""
    if _is_heif(data) and not _heif_opener():
        return (
            "HEIC/HEIF input needs the worker's 'heic' extra (pillow-heif): "
            "pip install 'cutq[heic]', or convert to JPEG, PNG, WebP or AVIF"
        )
    if _is_heif(data):
        return "HEIC/HEIF data that pillow-heif cannot read (corrupt or truncated)"
    return "input is not an image format Pillow recognises"


_WIDE_GRAY = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _wide_gray(image: Image.Image) -> tuple[np.ndarray, None]:
    array = np.asarray(image, dtype=np.float64)
    top = 65535.0 if image.mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
    gray = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2), None


def _to_rgb_alpha(image: Image.Image) -> Decoded:
    """Any mode's pixels as 8-bit RGB and alpha, taken as they are (no profile)."""
    if image.mode in _WIDE_GRAY:
        return Decoded(*_wide_gray(image))
    return Decoded(*_arrays(image))


def _arrays(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """RGB pixels and the alpha (None where opaque everywhere) as arrays."""
    mode = image.mode
    has_alpha = (
        mode in ("RGBA", "LA", "PA", "RGBa", "La")
        or (mode == "P" and "transparency" in image.info)
        or (mode in ("L", "RGB") and "transparency" in image.info)
    )
    if has_alpha:
        rgba = np.asarray(image.convert("RGBA"))
        alpha = rgba[:, :, 3]
        if alpha.min(initial=255) == 255:
            return np.ascontiguousarray(rgba[:, :, :3]), None
        return np.ascontiguousarray(rgba[:, :, :3]), np.ascontiguousarray(alpha)
    return np.asarray(image.convert("RGB")), None


def combine_alpha(mask: np.ndarray, own_alpha: np.ndarray | None) -> np.ndarray:
    """The result alpha: the predicted mask, never more opaque than the input already was."""
    if own_alpha is None:
        return mask
    return ((mask.astype(np.uint16) * own_alpha.astype(np.uint16) + 127) // 255).astype(np.uint8)


def parse_color(text: str) -> tuple[int, int, int, int]:
    """``#rrggbb`` or ``#rrggbbaa`` → an RGBA tuple."""
    digits = text.lstrip("#")
    values = [int(digits[i : i + 2], 16) for i in range(0, len(digits), 2)]
    return (values[0], values[1], values[2], values[3] if len(values) == 4 else 255)


COMPOSITE_BAND_PIXELS = 1 << 20  # composite this many pixels at a time: float32 temporaries
#                                   stay ~40 MB whatever the picture's size


def cutout(rgb: np.ndarray, alpha: np.ndarray, background: str | None = None) -> Image.Image:
    """RGBA cutout with straight alpha, or the subject composited onto a solid colour."""
    if background is None:
        return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    colour = parse_color(background)
    channels = 3 if colour[3] == 255 else 4
    out = np.empty((*alpha.shape, channels), np.uint8)
    rows = max(1, COMPOSITE_BAND_PIXELS // max(1, alpha.shape[1]))
    for top in range(0, alpha.shape[0], rows):
        band = slice(top, top + rows)
        out[band] = _composite(rgb[band], alpha[band], colour)
    return Image.fromarray(out, "RGB" if channels == 3 else "RGBA")


def _composite(rgb: np.ndarray, alpha: np.ndarray, colour: tuple[int, int, int, int]) -> np.ndarray:
    """``rgb`` under ``alpha`` over a solid ``colour`` (uint8 RGB, or RGBA when translucent)."""
    red, green, blue, bg_alpha = colour
    a = alpha.astype(np.float32)[:, :, None] / 255.0
    bg = np.array([red, green, blue], dtype=np.float32)
    if bg_alpha == 255:
        out_rgb = rgb.astype(np.float32) * a + bg * (1.0 - a)
        return np.clip(out_rgb + 0.5, 0, 255).astype(np.uint8)
    # A translucent background: "over" compositing, then un-premultiply for straight alpha.
    out_a = a + (bg_alpha / 255.0) * (1.0 - a)
    premultiplied = rgb.astype(np.float32) * a + bg * (bg_alpha / 255.0) * (1.0 - a)
    straight = np.where(out_a > 0, premultiplied / np.maximum(out_a, 1e-6), 0.0)
    rgba = np.dstack([straight, out_a * 255.0])
    return np.clip(rgba + 0.5, 0, 255).astype(np.uint8)


def mask_image(alpha: np.ndarray) -> Image.Image:
    """An 8-bit grayscale mask."""
    return Image.fromarray(alpha, "L")


WEBP_MAX_SIDE = 16383  # the WebP format's own limit
JPEG_MAX_SIDE = 65535  # … and JPEG's
JPEG_DEFAULT_QUALITY = 90
AVIF_DEFAULT_QUALITY = 75  # libavif's default in Pillow


def encode(
    image: Image.Image, fmt: str, quality: int | None = None, carried: Carried | None = None
) -> bytes:
    """PNG (fast zlib level), WebP (lossless, or lossy at ``quality``), JPEG or AVIF bytes.

    A side over a format's own limit can never be encoded: :class:`OutputUnencodable`
    (permanent; the job can ask for PNG), never a fall-back to another format behind its name.
    JPEG holds no alpha: cutouts reach it composited on an opaque colour (the contract demands
    one), masks as grayscale. ``carried``: the ICC profile, DPI, EXIF and XMP to embed
    (every format here holds them; masks get their DPI only).
    """
    buffer = io.BytesIO()
    extra = _embedded(carried, fmt)
    if fmt == "png":
        image.save(buffer, format="PNG", compress_level=1, **extra)
    elif fmt == "webp":
        _fits(image, WEBP_MAX_SIDE, "WebP")
        if quality is None:
            image.save(
                buffer, format="WEBP", lossless=True, quality=50, method=2, exact=True, **extra
            )
        else:
            image.save(buffer, format="WEBP", quality=quality, method=4, **extra)
    elif fmt == "jpeg":
        _fits(image, JPEG_MAX_SIDE, "JPEG")
        if image.mode not in ("RGB", "L"):
            raise OutputUnencodable(f"JPEG cannot hold a {image.mode} image; give a background")
        image.save(buffer, format="JPEG", quality=quality or JPEG_DEFAULT_QUALITY, **extra)
    elif fmt == "avif":
        if not features.check("avif"):
            raise OutputUnencodable("this worker's Pillow has no AVIF encoder; ask for webp")
        image.save(buffer, format="AVIF", quality=quality or AVIF_DEFAULT_QUALITY, speed=8, **extra)
    else:
        raise ValueError(f"unsupported output format {fmt!r}")
    return buffer.getvalue()


def _embedded(carried: Carried | None, fmt: str) -> dict[str, Any]:
    """Pillow's save() arguments for what an output carries."""
    if carried is None:
        return {}
    extra: dict[str, Any] = {}
    if carried.icc:
        extra["icc_profile"] = carried.icc
    if carried.dpi and fmt in ("png", "jpeg"):  # WebP and AVIF have no resolution field
        extra["dpi"] = carried.dpi
    if carried.exif:
        extra["exif"] = carried.exif
    if carried.xmp and fmt == "png":  # Pillow writes PNG's XMP as the iTXt chunk it reads
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", carried.xmp.decode("utf-8"), zip=True)
        extra["pnginfo"] = info
    elif carried.xmp:
        extra["xmp"] = carried.xmp
    return extra


def _fits(image: Image.Image, max_side: int, name: str) -> None:
    if max(image.size) > max_side:
        raise OutputUnencodable(
            f"{name} cannot hold a {image.width}×{image.height} image (at most "
            f"{max_side} px a side); ask for png"
        )
