"""Regenerate ``samples/``: small product-style photos made by the project (public domain).

Each image is a shaded object with a soft shadow on a textured backdrop, saved in a different
format or mode, so ``cutq run samples`` also shows how inputs of every kind are handled.
Deterministic: running it again produces the same pixels.

    python tools/make_samples.py samples/
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter


def backdrop(height: int, width: int, rng: np.random.Generator, tint: tuple) -> np.ndarray:
    """A studio-like backdrop: vertical gradient, fabric-like noise."""
    yy = np.linspace(0.0, 1.0, height)[:, None, None]
    base = np.array(tint, dtype=np.float32)[None, None, :]
    image = base * (1.05 - 0.35 * yy) + rng.normal(0, 6, (height, width, 3))
    stripes = 8 * np.sin(np.arange(width) / 3.0)[None, :, None]
    return np.clip(image + stripes * 0.3, 0, 255)


def shaded_ellipse(
    image: np.ndarray,
    cy: float,
    cx: float,
    ry: float,
    rx: float,
    colour: tuple,
    rng: np.random.Generator,
) -> None:
    """Draw a lit ellipsoid (highlight top-left) with a soft contact shadow."""
    height, width, _ = image.shape
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    shadow = ((yy - cy - ry * 0.95) / (ry * 0.18)) ** 2 + ((xx - cx) / (rx * 1.1)) ** 2
    image *= 1.0 - 0.45 * np.exp(-shadow)[:, :, None]
    d = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
    inside = d <= 1.0
    nz = np.sqrt(np.clip(1.0 - d, 0.0, 1.0))
    light = 0.35 + 0.65 * np.clip(nz * 0.8 - (yy - cy) / ry * 0.3 - (xx - cx) / rx * 0.3, 0, 1)
    spec = (
        np.exp(
            -(
                ((yy - cy + ry * 0.45) / (ry * 0.15)) ** 2
                + ((xx - cx + rx * 0.35) / (rx * 0.15)) ** 2
            )
        )
        * 120
    )
    body = np.array(colour, np.float32)[None, None, :] * light[:, :, None] + spec[:, :, None]
    body += rng.normal(0, 3, body.shape)
    image[inside] = np.clip(body[inside], 0, 255)


def scene(
    height: int, width: int, seed: int, tint: tuple, colour: tuple, objects: int = 1
) -> Image.Image:
    rng = np.random.default_rng(seed)
    image = backdrop(height, width, rng, tint)
    for index in range(objects):
        cx = width * (0.5 if objects == 1 else 0.3 + 0.4 * index)
        shaded_ellipse(
            image, height * 0.52, cx, height * 0.3, width * (0.22 / objects), colour, rng
        )
    smooth = Image.fromarray(image.astype(np.uint8), "RGB").filter(ImageFilter.GaussianBlur(0.6))
    return smooth


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    scene(600, 800, 1, (225, 225, 230), (200, 40, 40)).save(out / "red-ball.jpg", quality=88)
    scene(640, 480, 2, (200, 215, 235), (40, 110, 200), objects=2).save(
        out / "blue-pair.png", optimize=True
    )
    # A phone photo stored sideways with an EXIF orientation tag (6 = rotate 90° on display).
    sideways = scene(480, 720, 3, (235, 225, 205), (60, 150, 70)).transpose(
        Image.Transpose.ROTATE_90
    )
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways.save(out / "green-rotated-exif.jpg", quality=88, exif=exif.tobytes())
    scene(500, 500, 4, (220, 220, 220), (230, 160, 30)).convert("CMYK").save(
        out / "orange-cmyk.jpg", quality=90
    )
    scene(400, 600, 5, (210, 210, 210), (90, 90, 90)).convert("L").save(out / "gray.png")
    scene(360, 480, 6, (235, 210, 220), (150, 60, 160)).quantize(64).save(
        out / "purple-palette.png"
    )
    rgba = scene(400, 400, 7, (215, 230, 215), (180, 120, 60)).convert("RGBA")
    alpha = Image.new("L", rgba.size, 255)
    alpha.paste(0, (0, 0, 400, 24))  # a transparent band the result must keep transparent
    rgba.putalpha(alpha)
    rgba.save(out / "brown-rgba.png")
    webp = io.BytesIO()
    scene(420, 560, 8, (230, 230, 200), (30, 160, 160)).save(webp, format="WEBP", quality=85)
    (out / "teal.webp").write_bytes(webp.getvalue())


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "samples"))
