"""Imaging to the pixel and to the limit: the values a result image must hold, exactly.

Compositing, alpha and colour parsing are checked on pixels computed by hand; every limit
(pixels, frames, WebP's side) at its boundary; each image mode with its own transparency.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cutq.core.errors import ImageTooLarge, OutputUnencodable, UndecodableImage, UnsupportedImage
from cutq.worker.render import imaging


def encoded(image: Image.Image, fmt: str = "PNG", **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def pixel(rgb: tuple[int, int, int], alpha: int, background: str | None) -> tuple[int, ...]:
    image = imaging.cutout(np.array([[rgb]], np.uint8), np.array([[alpha]], np.uint8), background)
    return tuple(np.asarray(image)[0, 0].tolist())


def test_parse_color_reads_hex_pairs_with_optional_alpha() -> None:
    assert imaging.parse_color("#12ab3c") == (0x12, 0xAB, 0x3C, 255)
    assert imaging.parse_color("#12ab3c7f") == (0x12, 0xAB, 0x3C, 0x7F)


def test_cutout_keeps_the_subject_and_its_alpha_as_they_are() -> None:
    image = imaging.cutout(np.array([[[9, 8, 7]]], np.uint8), np.array([[77]], np.uint8))
    assert image.mode == "RGBA" and np.asarray(image)[0, 0].tolist() == [9, 8, 7, 77]


@pytest.mark.parametrize(
    ("alpha", "expected"),
    [
        (255, (200, 100, 50)),  # opaque: the subject
        (0, (0, 0, 255)),  # transparent: the background
        (51, (40, 20, 214)),  # 20 % subject: 0.2·200, 0.2·100, 0.2·50 + 0.8·255
    ],
)
def test_an_opaque_background_composites_linearly(alpha: int, expected: tuple) -> None:
    assert pixel((200, 100, 50), alpha, "#0000ff") == expected


@pytest.mark.parametrize(
    ("alpha", "expected"),
    [
        (255, (200, 100, 50, 255)),
        (0, (0, 255, 0, 128)),  # only the background, at its own alpha
        # a = 0.4, bg a = 128/255: out a = 0.4 + 0.502·0.6 = 0.701; rgb = (0.4·c + 0.301·bg) / 0.701
        (102, (114, 167, 29, 179)),
    ],
)
def test_a_translucent_background_composites_over_with_straight_alpha(
    alpha: int, expected: tuple
) -> None:
    assert pixel((200, 100, 50), alpha, "#00ff0080") == expected


def test_nothing_over_a_fully_transparent_background_stays_transparent_black() -> None:
    assert pixel((200, 100, 50), 0, "#00ff0000") == (0, 0, 0, 0)


def test_combine_alpha_rounds_the_product_to_the_nearest_level() -> None:
    mask = np.array([[255, 127, 128, 200, 0]], np.uint8)
    own = np.array([[255, 1, 1, 128, 255]], np.uint8)
    combined = imaging.combine_alpha(mask, own)
    assert combined.dtype == np.uint8
    # 127·1/255 = 0.498 → 0; 128·1/255 = 0.502 → 1; 200·128/255 = 100.39 → 100
    assert combined.tolist() == [[255, 0, 1, 100, 0]]
    assert imaging.combine_alpha(mask, None) is mask


def test_the_mask_image_is_8_bit_grayscale() -> None:
    image = imaging.mask_image(np.array([[0, 128, 255]], np.uint8))
    assert image.mode == "L" and np.asarray(image).tolist() == [[0, 128, 255]]


def test_webp_keeps_the_colour_under_transparent_pixels_and_its_largest_side() -> None:
    rgba = Image.fromarray(np.array([[[10, 200, 30, 0], [1, 2, 3, 255]]], np.uint8), "RGBA")
    with Image.open(io.BytesIO(imaging.encode(rgba, "webp"))) as back:
        assert back.format == "WEBP"
        assert np.asarray(back.convert("RGBA")).tolist() == [[[10, 200, 30, 0], [1, 2, 3, 255]]]
    widest = Image.new("L", (imaging.WEBP_MAX_SIDE, 1), 7)
    with Image.open(io.BytesIO(imaging.encode(widest, "webp"))) as back:
        assert back.size == (16383, 1)
    with pytest.raises(OutputUnencodable):
        imaging.encode(Image.new("L", (16384, 1)), "webp")
    with Image.open(io.BytesIO(imaging.encode(rgba, "png"))) as back:
        assert back.format == "PNG"
    with pytest.raises(ValueError, match="gif"):
        imaging.encode(rgba, "gif")


def test_the_pixel_limit_is_inclusive_and_reserved_before_decoding() -> None:
    data = encoded(Image.new("RGB", (4, 3), "red"))
    reserved: list[tuple[int, int]] = []

    def reserve(width: int, height: int) -> None:
        reserved.append((width, height))

    decoded = imaging.decode(data, max_pixels=12, reserve=reserve)
    assert decoded.width == 4 and decoded.height == 3 and reserved == [(4, 3)]
    with pytest.raises(ImageTooLarge, match="4×3 = 12 pixels; the limit is 11"):
        imaging.decode(data, max_pixels=11, reserve=reserve)
    assert reserved == [(4, 3)]  # refused from the header: nothing reserved


def test_two_frames_are_already_an_animation() -> None:
    frames = [Image.new("RGB", (4, 4), c) for c in ("red", "blue")]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(UnsupportedImage, match="2 frames"):
        imaging.decode(data, max_pixels=100)


def test_corrupt_data_says_so() -> None:
    data = encoded(Image.new("RGB", (64, 64), "red"))[:-30]
    with pytest.raises(UndecodableImage, match="corrupt or truncated"):
        imaging.decode(data, max_pixels=10_000)


@pytest.mark.parametrize(
    ("data", "heic"),
    [
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", True),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00", True),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x00\x00", False),  # an MP4, not HEIC
        (b"\x00\x00\x00\x18abcdheic\x00\x00\x00\x00", False),  # no ftyp box
    ],
)
@pytest.mark.parametrize("extra", [True, False])
def test_heic_is_named_only_when_it_is_heic(
    data: bytes, heic: bool, extra: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not extra:  # a worker without the heic extra (pillow-heif) installed
        monkeypatch.setattr(imaging, "_heif_opener", lambda: False)
    with pytest.raises(UndecodableImage) as caught:
        imaging.decode(data, max_pixels=100)
    if heic and extra:
        assert str(caught.value) == (
            "HEIC/HEIF data that pillow-heif cannot read (corrupt or truncated)"
        )
    elif heic:
        assert "pip install 'cutq[heic]'" in str(caught.value)
    else:
        assert str(caught.value) == "input is not an image format Pillow recognises"


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L", "I;16N", "I", "F"])
def test_every_high_bit_depth_mode_is_scaled_to_8_bits(mode: str) -> None:
    high = mode.startswith("I;16") or mode == "I"
    values = np.array([[0, 32768, 65535]]) if high else np.array([[0.0, 128.0, 255.0]])
    image = Image.fromarray(values.astype(np.int32 if mode == "I" else np.float32))
    if mode.startswith("I;16"):
        image = Image.fromarray(values.astype(np.uint16)).convert("I").convert(mode)
    elif mode == "I":
        image = image.convert("I")
    assert image.mode == mode
    decoded = imaging._to_rgb_alpha(image)
    expected = [0, 128, 255]
    assert decoded.rgb[0, :, 0].tolist() == expected and decoded.alpha is None
    assert decoded.rgb.dtype == np.uint8 and decoded.rgb.shape == (1, 3, 3)


def test_a_32_bit_image_is_16_bit_scaled_only_when_a_value_is_over_255() -> None:
    eight_bit = Image.fromarray(np.array([[0, 100, 255]], np.int32))
    assert imaging._to_rgb_alpha(eight_bit).rgb[0, :, 0].tolist() == [0, 100, 255]
    sixteen_bit = Image.fromarray(np.array([[0, 100, 256]], np.int32))
    assert imaging._to_rgb_alpha(sixteen_bit).rgb[0, :, 0].tolist() == [0, 0, 1]


@pytest.mark.parametrize("mode", ["RGBA", "LA", "PA", "RGBa"])
def test_every_mode_with_alpha_keeps_its_alpha(mode: str) -> None:
    rgba = Image.new("RGBA", (2, 1), (255, 0, 0, 255))
    rgba.putpixel((1, 0), (255, 0, 0, 0))
    decoded = imaging._to_rgb_alpha(rgba.convert(mode))
    assert decoded.alpha is not None and decoded.alpha.tolist() == [[255, 0]]
    assert decoded.rgb.shape == (1, 2, 3)


@pytest.mark.parametrize("mode", ["L", "RGB", "P"])
def test_a_transparency_key_becomes_alpha(mode: str) -> None:
    image = Image.new("RGB", (2, 1), (10, 10, 10)).convert(mode)
    key = image.getpixel((0, 0))
    image.info["transparency"] = key
    decoded = imaging._to_rgb_alpha(image)
    assert decoded.alpha is not None and decoded.alpha.tolist() == [[0, 0]]


@pytest.mark.parametrize("mode", ["L", "RGB", "P", "CMYK"])
def test_without_transparency_there_is_no_alpha(mode: str) -> None:
    decoded = imaging._to_rgb_alpha(Image.new("RGB", (2, 1), (10, 20, 30)).convert(mode))
    assert decoded.alpha is None and decoded.rgb.shape == (1, 2, 3)


def test_a_fully_opaque_alpha_is_dropped() -> None:
    decoded = imaging._to_rgb_alpha(Image.new("RGBA", (2, 1), (1, 2, 3, 255)))
    assert decoded.alpha is None and decoded.rgb.tolist() == [[[1, 2, 3], [1, 2, 3]]]


def test_high_bit_depth_values_are_scaled_rounded_and_clipped() -> None:
    # 16-bit by its mode even when every value is small; 51529·255/65535 = 200.502 → 201.
    sixteen = Image.fromarray(np.array([[0, 100, 255, 51529]], np.uint16)).convert("I")
    rgb = imaging._to_rgb_alpha(sixteen.convert("I;16")).rgb
    assert rgb[0, :, 0].tolist() == [0, 0, 1, 201]
    # A float image over 65535 is clipped, not wrapped around; a negative one too.
    floats = Image.fromarray(np.array([[0, 1000, 100000]], np.float32))
    assert imaging._to_rgb_alpha(floats).rgb[0, :, 0].tolist() == [0, 4, 255]
    negative = Image.fromarray(np.array([[-5, 100, 255]], np.int32))
    assert imaging._to_rgb_alpha(negative).rgb[0, :, 0].tolist() == [0, 100, 255]


def test_a_nearly_opaque_background_keeps_its_own_alpha() -> None:
    assert pixel((200, 100, 50), 0, "#00ff00fe") == (0, 255, 0, 254)


def test_a_16_bit_image_of_small_values_stays_on_the_16_bit_scale() -> None:
    small = Image.fromarray(np.array([[0, 200, 255]], np.uint16)).convert("I").convert("I;16")
    assert imaging._to_rgb_alpha(small).rgb[0, :, 0].tolist() == [0, 1, 1]
