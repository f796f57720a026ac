"""Decoding hostile and unusual inputs, and encoding straight-alpha results."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from cutq.core.errors import ImageTooLarge, UndecodableImage, UnsupportedImage
from cutq.worker.render import imaging

LIMIT = 50_000_000


def encoded(image: Image.Image, fmt: str = "PNG", **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims huge dimensions."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", UndecodableImage),
        (b"hello, I am a text file named .png", UndecodableImage),
        (encoded(Image.new("RGB", (64, 64), "red"), "JPEG")[:300], UndecodableImage),
        (encoded(Image.new("RGB", (64, 64), "red"))[:-30], UndecodableImage),
        (bomb_png(100_000, 100_000), ImageTooLarge),
    ],
)
def test_bad_inputs_raise_permanent_errors(data: bytes, error: type) -> None:
    with pytest.raises(error):
        imaging.decode(data, max_pixels=LIMIT)


def test_animated_gif_is_unsupported() -> None:
    frames = [Image.new("RGB", (8, 8), (80 * i, 0, 0)) for i in range(3)]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(UnsupportedImage, match="3 frames"):
        imaging.decode(data, max_pixels=LIMIT)


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "CMYK", "I;16", "LA", "RGBA", "1"])
def test_every_mode_becomes_rgb(mode: str) -> None:
    image = Image.new("RGB", (20, 10), (200, 100, 50)).convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    decoded = imaging.decode(encoded(image, fmt), max_pixels=LIMIT)
    assert decoded.rgb.shape == (10, 20, 3) and decoded.rgb.dtype == np.uint8
    assert decoded.alpha is None  # fully opaque inputs carry no alpha


def test_sixteen_bit_keeps_its_range() -> None:
    array = np.full((4, 4), 65535, dtype=np.uint16)
    array[0, 0] = 0
    decoded = imaging.decode(encoded(Image.fromarray(array)), max_pixels=LIMIT)
    assert decoded.rgb[1, 1, 0] == 255 and decoded.rgb[0, 0, 0] == 0


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (40, 20), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90° clockwise
    decoded = imaging.decode(encoded(image, "JPEG", exif=exif.tobytes()), max_pixels=LIMIT)
    assert (decoded.width, decoded.height) == (20, 40)


def test_transparency_is_kept_and_limits_the_result() -> None:
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = 255
    rgba[0, :, 3] = 0
    decoded = imaging.decode(encoded(Image.fromarray(rgba, "RGBA")), max_pixels=LIMIT)
    assert decoded.alpha is not None and decoded.alpha[0].max() == 0
    combined = imaging.combine_alpha(np.full((4, 4), 255, np.uint8), decoded.alpha)
    assert combined[0].max() == 0 and combined[1:].min() == 255


def test_tiny_and_thin_images_decode() -> None:
    for size in ((1, 1), (20000, 10)):
        decoded = imaging.decode(encoded(Image.new("RGB", size, "blue")), max_pixels=LIMIT)
        assert (decoded.width, decoded.height) == size


def test_cutout_keeps_straight_alpha_colours() -> None:
    rgb = np.full((2, 2, 3), (10, 200, 30), np.uint8)
    alpha = np.array([[0, 64], [128, 255]], np.uint8)
    out = np.asarray(imaging.cutout(rgb, alpha))
    assert out.shape == (2, 2, 4)
    assert (out[..., :3] == (10, 200, 30)).all()  # no darkening at soft edges
    assert (out[..., 3] == alpha).all()


def test_background_composite() -> None:
    rgb = np.full((1, 2, 3), 200, np.uint8)
    alpha = np.array([[0, 255]], np.uint8)
    out = np.asarray(imaging.cutout(rgb, alpha, "#000000"))
    assert out.shape == (1, 2, 3) and out[0, 0].tolist() == [0, 0, 0] and out[0, 1, 0] == 200
    translucent = np.asarray(imaging.cutout(rgb, alpha, "#00000000"))
    assert translucent[0, 0, 3] == 0 and translucent[0, 1].tolist() == [200, 200, 200, 255]


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_encode_round_trips_losslessly(fmt: str) -> None:
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    rgba[..., 3] = np.maximum(rgba[..., 3], 1)  # WebP drops colour under alpha 0
    data = imaging.encode(Image.fromarray(rgba, "RGBA"), fmt)
    back = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))
    assert np.array_equal(back, rgba)


def test_importing_the_decoder_leaves_pillow_s_pixel_limit_alone() -> None:
    """cutq's own limit is checked where images are decoded; importing cutq.worker.render.imaging
    must not switch Pillow's decompression-bomb check off for the whole process."""
    import subprocess
    import sys

    code = (
        "from PIL import Image; before = Image.MAX_IMAGE_PIXELS; "
        "import cutq.worker.render.imaging; "
        "assert Image.MAX_IMAGE_PIXELS == before, Image.MAX_IMAGE_PIXELS"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
