"""Colour profiles and metadata from decode to encode (worker/render/colour.py,
worker/render/metadata.py)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms, features

from cutq.core.contract import Options, OutputSpec, new_job, parse_job
from cutq.core.errors import InvalidJob
from cutq.worker.render import colour, imaging
from tests.support.icc import FLAGS, INTENT, profiles

SRGB = colour.srgb_profile()
PIXELS = np.array([[[200, 30, 40], [20, 180, 60], [30, 40, 220], [250, 250, 250]]], np.uint8)


def tagged(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def through(image: Image.Image, source: ImageCms.ImageCmsProfile) -> np.ndarray:
    """What LittleCMS makes of ``image`` in sRGB (the reference the worker must match)."""
    converted = ImageCms.profileToProfile(
        image, source, SRGB, renderingIntent=INTENT, outputMode="RGB", flags=FLAGS
    )
    assert converted is not None
    return np.asarray(converted)


def description(data: bytes) -> str | None:
    icc = Image.open(io.BytesIO(data)).info.get("icc_profile")
    if not icc:
        return None
    return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip()


def test_an_adobe_rgb_input_is_converted_to_srgb_for_the_model_and_the_outputs() -> None:
    adobe = profiles()["adobe"]
    data = tagged(Image.fromarray(PIXELS), icc_profile=adobe.tobytes())
    decoded = imaging.decode(data, max_pixels=100)
    expected = through(Image.fromarray(PIXELS), adobe)
    assert np.array_equal(decoded.rgb, expected)
    assert not np.array_equal(expected, PIXELS)  # the profile matters for these pixels
    assert decoded.srgb is decoded.rgb and decoded.carried.icc == colour.srgb_icc()


def test_keep_leaves_the_pixels_and_carries_the_inputs_profile() -> None:
    p3 = profiles()["p3"]
    rgba = Image.fromarray(np.dstack([PIXELS, np.array([[255, 128, 0, 255]], np.uint8)]))
    data = tagged(rgba, icc_profile=p3.tobytes())
    decoded = imaging.decode(data, max_pixels=100, keep_colour=True)
    assert np.array_equal(decoded.rgb, PIXELS)
    assert np.array_equal(decoded.srgb, through(Image.fromarray(PIXELS), p3))
    assert decoded.alpha is not None and decoded.alpha.tolist() == [[255, 128, 0, 255]]
    assert decoded.carried.icc == p3.tobytes()


def test_a_cmyk_jpeg_converts_through_its_profile_adobe_inverted_or_not() -> None:
    cmyk = profiles()["cmyk"]
    colours = np.array([[[180, 60, 50], [60, 140, 80], [70, 90, 150], [240, 240, 235]]], np.uint8)
    muted = colours.repeat(16, axis=0).repeat(16, axis=1)  # blocks: JPEG keeps their colour
    ink = ImageCms.profileToProfile(
        Image.fromarray(muted), SRGB, cmyk, renderingIntent=INTENT, outputMode="CMYK", flags=FLAGS
    )
    assert ink is not None
    # Pillow writes Adobe's inverted CMYK (APP14) and un-inverts it when reading.
    data = tagged(ink, "JPEG", quality=100, icc_profile=cmyk.tobytes())
    assert b"Adobe" in data[:200]
    decoded = imaging.decode(data, max_pixels=1024, keep_colour=True)
    read = Image.open(io.BytesIO(data))
    assert np.array_equal(decoded.rgb, through(read, cmyk))
    assert decoded.carried.icc == colour.srgb_icc()  # CMYK cannot be kept for a cutout
    centres = (slice(8, 9), slice(8, None, 16))  # each block's middle

    def error(rgb: np.ndarray) -> int:
        return int(np.abs(rgb[centres].astype(int) - colours).max())

    ours = error(decoded.rgb)
    naive = imaging.decode(tagged(ink, "JPEG", quality=100), max_pixels=1024)
    assert np.array_equal(naive.rgb, np.asarray(read.convert("RGB")))  # no profile: as before
    assert ours <= 6 < 12 < error(naive.rgb)


def test_a_profile_lcms_cannot_read_or_that_does_not_fit_is_ignored() -> None:
    broken = tagged(Image.fromarray(PIXELS), icc_profile=b"not a profile at all" * 10)
    assert np.array_equal(imaging.decode(broken, max_pixels=100).rgb, PIXELS)
    cmyk_on_rgb = tagged(Image.fromarray(PIXELS), icc_profile=profiles()["cmyk"].tobytes())
    decoded = imaging.decode(cmyk_on_rgb, max_pixels=100)
    assert np.array_equal(decoded.rgb, PIXELS) and decoded.carried.icc == colour.srgb_icc()


FORMATS = ["png", "jpeg", "webp"] + (["avif"] if features.check("avif") else [])


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_carries_the_profile_and_masks_none(fmt: str) -> None:
    adobe = profiles()["adobe"]
    data = tagged(Image.fromarray(PIXELS), icc_profile=adobe.tobytes(), dpi=(300, 300))
    for keep, name in ((False, "sRGB built-in"), (True, "Compatible with Adobe RGB (1998)")):
        decoded = imaging.decode(data, max_pixels=100, keep_colour=keep)
        alpha = np.full((1, 4), 255, np.uint8)
        cutout = imaging.cutout(decoded.rgb, alpha, "#ffffff" if fmt == "jpeg" else None)
        assert description(imaging.encode(cutout, fmt, None, decoded.carried)) == name
    mask = imaging.encode(imaging.mask_image(alpha), fmt, None, decoded.carried.for_mask())
    assert description(mask) is None
    if fmt in ("png", "jpeg"):
        assert Image.open(io.BytesIO(mask)).info["dpi"] == pytest.approx((300, 300), abs=0.01)


def exif_photo() -> Image.Image:
    image = Image.fromarray(np.zeros((2, 3, 3), np.uint8))
    exif = image.getexif()
    exif[ExifTags.Base.Orientation] = 6  # rotate 90° clockwise to show
    exif[ExifTags.Base.Copyright] = "(c) Shop Studio"
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] = "N"
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 24.0)
    image.info["exif"] = exif.tobytes()
    return image


XMP = (
    b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description rdf:about="" xmlns:exif="http://ns.adobe.com/exif/1.0/" '
    b'xmlns:dc="http://purl.org/dc/elements/1.1/" exif:GPSLatitude="48,51.4N">'
    b"<exif:GPSLongitude>2,21.1E</exif:GPSLongitude>"
    b"<dc:rights>Shop Studio</dc:rights></rdf:Description></rdf:RDF></x:xmpmeta>"
    b'<?xpacket end="w"?>'
)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_kept_metadata_is_upright_without_gps_and_dpi_always_stays(fmt: str) -> None:
    data = tagged(exif_photo(), "JPEG", exif=exif_photo().info["exif"], dpi=(240, 240), xmp=XMP)
    kept = imaging.decode(data, max_pixels=100, keep_metadata=True)
    assert kept.rgb.shape == (3, 2, 3)  # turned upright
    out = Image.open(io.BytesIO(imaging.encode(imaging.cutout(kept.rgb, np.full((3, 2), 255,
        np.uint8), "#ffffff"), fmt, None, kept.carried)))  # fmt: skip
    exif = out.getexif()
    assert exif[ExifTags.Base.Orientation] == 1
    assert exif[ExifTags.Base.Copyright] == "(c) Shop Studio"
    assert ExifTags.IFD.GPSInfo not in exif and not exif.get_ifd(ExifTags.IFD.GPSInfo)
    xmp = out.info.get("xmp") or b""
    xmp = xmp.encode() if isinstance(xmp, str) else xmp
    assert b"Shop Studio" in xmp and b"GPS" not in xmp
    if fmt != "webp":
        assert out.info["dpi"] == pytest.approx((240, 240), abs=0.01)
    plain = imaging.decode(data, max_pixels=100)
    assert plain.carried.exif is None and plain.carried.xmp is None
    assert plain.carried.dpi == pytest.approx((240, 240))


def test_colour_and_metadata_options_leave_other_jobs_ids_alone() -> None:
    spec = OutputSpec("gs://shop-bucket/out")
    plain = new_job("gs://shop-bucket/in.jpg", spec)
    defaults = Options(colour="srgb", metadata="minimal")
    explicit = new_job("gs://shop-bucket/in.jpg", spec, options=defaults)
    kept = new_job("gs://shop-bucket/in.jpg", spec, options=Options(colour="keep"))
    meta = new_job("gs://shop-bucket/in.jpg", spec, options=Options(metadata="keep"))
    assert plain.job_id == explicit.job_id
    assert len({plain.job_id, kept.job_id, meta.job_id}) == 3
    parsed = parse_job(kept.to_message(), defaults=spec)
    assert parsed.options.colour == "keep" and parsed.job_id == kept.job_id
    assert "colour" not in json.loads(plain.to_message()).get("options", {})
    body = {"input": "gs://shop-bucket/in.jpg", "options": {"colour": "adobe"}}
    with pytest.raises(InvalidJob, match=r"options\.colour: expected one of srgb, keep"):
        parse_job(json.dumps(body).encode(), defaults=spec)
