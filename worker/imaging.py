"""Decoding untrusted bytes into RGB pixels, and encoding masks into result images.

Decoding checks the pixel count from the header *before* any pixel is decoded, so a
decompression bomb costs nothing; it respects EXIF orientation and turns every mode Pillow
reads (palette, grayscale, CMYK, 16-bit, with or without alpha) into 8-bit RGB plus the
image's own alpha, if any. Encoding keeps straight (unpremultiplied) alpha, so edges keep the
colours they are given (the input's, or the estimated foreground's: :mod:`.matting`) and never
get a dark fringe.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError, features

from cutq.core.errors import (
    CutqError,
    ImageTooLarge,
    OutputUnencodable,
    UndecodableImage,
    UnsupportedImage,
)

# The pixel limit is cutq's configurable ``max_pixels``, checked in decode() from the header
# before any pixel is decoded. Pillow's process-wide MAX_IMAGE_PIXELS is left as it is (its
# warning is silenced inside decode(); a max_pixels above twice Pillow's ~89 MP, where Pillow
# refuses an image itself, reports that refusal as image_too_large).


@dataclass(frozen=True)
class Decoded:
    """An input image, upright, as 8-bit RGB plus its own alpha (or None)."""

    rgb: np.ndarray  # H×W×3 uint8
    alpha: np.ndarray | None  # H×W uint8, when the input had transparency

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def decode(
    data: bytes, *, max_pixels: int, reserve: Callable[[int, int], None] | None = None
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
    refuses it: :mod:`cutq.worker.memory`).
    """
    if not data:
        raise UndecodableImage("input is empty (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "Corrupt EXIF data", "palette images with …"
        try:
            return _decode(data, max_pixels, reserve)
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


def _decode(data: bytes, max_pixels: int, reserve: Callable[[int, int], None] | None) -> Decoded:
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
    return _to_rgb_alpha(image)


_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")


def _unidentified(data: bytes) -> str:
    """Why Pillow did not recognise ``data``, naming formats people actually send."""
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return (
            "HEIC/HEIF images are not supported (no HEVC decoder in this worker); "
            "convert to JPEG, PNG, WebP or AVIF"
        )
    return "input is not an image format Pillow recognises"


def _to_rgb_alpha(image: Image.Image) -> Decoded:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        gray = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Decoded(np.repeat(gray[:, :, None], 3, axis=2), None)
    has_alpha = (
        mode in ("RGBA", "LA", "PA", "RGBa", "La")
        or (mode == "P" and "transparency" in image.info)
        or (mode in ("L", "RGB") and "transparency" in image.info)
    )
    if has_alpha:
        rgba = np.asarray(image.convert("RGBA"))
        alpha = rgba[:, :, 3]
        if alpha.min(initial=255) == 255:
            return Decoded(np.ascontiguousarray(rgba[:, :, :3]), None)
        return Decoded(np.ascontiguousarray(rgba[:, :, :3]), np.ascontiguousarray(alpha))
    # Pillow's JPEG reader already undoes Adobe's inverted CMYK; convert() does the rest.
    return Decoded(np.asarray(image.convert("RGB")), None)


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


def encode(image: Image.Image, fmt: str, quality: int | None = None) -> bytes:
    """PNG (fast zlib level), WebP (lossless, or lossy at ``quality``), JPEG or AVIF bytes.

    A side over a format's own limit can never be encoded: :class:`OutputUnencodable`
    (permanent; the job can ask for PNG), never a fall-back to another format behind its name.
    JPEG holds no alpha: cutouts reach it composited on an opaque colour (the contract demands
    one), masks as grayscale.
    """
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, format="PNG", compress_level=1)
    elif fmt == "webp":
        _fits(image, WEBP_MAX_SIDE, "WebP")
        if quality is None:
            image.save(buffer, format="WEBP", lossless=True, quality=50, method=2, exact=True)
        else:
            image.save(buffer, format="WEBP", quality=quality, method=4)
    elif fmt == "jpeg":
        _fits(image, JPEG_MAX_SIDE, "JPEG")
        if image.mode not in ("RGB", "L"):
            raise OutputUnencodable(f"JPEG cannot hold a {image.mode} image; give a background")
        image.save(buffer, format="JPEG", quality=quality or JPEG_DEFAULT_QUALITY)
    elif fmt == "avif":
        if not features.check("avif"):
            raise OutputUnencodable("this worker's Pillow has no AVIF encoder; ask for webp")
        image.save(buffer, format="AVIF", quality=quality or AVIF_DEFAULT_QUALITY, speed=8)
    else:
        raise ValueError(f"unsupported output format {fmt!r}")
    return buffer.getvalue()


def _fits(image: Image.Image, max_side: int, name: str) -> None:
    if max(image.size) > max_side:
        raise OutputUnencodable(
            f"{name} cannot hold a {image.width}×{image.height} image (at most "
            f"{max_side} px a side); ask for png"
        )
