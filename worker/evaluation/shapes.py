"""Foreground objects for the evaluation set: exact anti-aliased silhouettes, and their looks.

A silhouette is a list of filled or hole polygons in the object's own unit frame (about
[-1, 1]², y down), or a thresholded smooth-noise blob. It is rasterised with 4×4
supersampling and box-averaged, so its alpha is the fraction of each pixel the object covers:
the ground truth is exact, soft edges included. The look (albedo pattern, shading from a
height map built from the silhouette itself, a specular highlight) only colours it.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

#: Supersampling factor per axis when rasterising silhouettes.
SUPERSAMPLE = 4

Polygon = np.ndarray  # K×2 float, unit frame
Part = tuple[Polygon, bool]  # (polygon, True = fill / False = cut a hole)


def ellipse(cx: float, cy: float, rx: float, ry: float, points: int = 120) -> Polygon:
    """An ellipse as a polygon (fine enough that its edges are smooth at 4× supersampling)."""
    t = np.linspace(0.0, 2.0 * np.pi, points, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def rounded_rect(cx: float, cy: float, w: float, h: float, r: float) -> Polygon:
    """A ``w``×``h`` rectangle centred at (cx, cy) with corner radius ``r``."""
    r = min(r, w / 2, h / 2)
    corners = ((w / 2 - r, h / 2 - r), (-w / 2 + r, h / 2 - r))
    corners += ((-w / 2 + r, -h / 2 + r), (w / 2 - r, -h / 2 + r))
    pts = []
    for k, (ox, oy) in enumerate(corners):
        t = np.linspace(k * np.pi / 2, (k + 1) * np.pi / 2, 16)
        pts.append(np.stack([cx + ox + r * np.cos(t), cy + oy + r * np.sin(t)], axis=1))
    return np.concatenate(pts)


def star(points: int, inner: float, twist: float = 0.0) -> Polygon:
    """A star (``inner`` < 1) or, with ``inner`` = cos(π/points), a regular polygon."""
    t = np.arange(2 * points) * np.pi / points - np.pi / 2 + twist
    radius = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)


def _ball(rng: np.random.Generator) -> list[Part]:
    return [(ellipse(0, 0, 1.0, rng.uniform(0.6, 1.0)), True)]


def _box(rng: np.random.Generator) -> list[Part]:
    w, h = rng.uniform(1.0, 2.0), rng.uniform(1.0, 2.0)
    return [(rounded_rect(0, 0, w, h, rng.uniform(0.02, 0.35) * min(w, h)), True)]


def _polygon(rng: np.random.Generator) -> list[Part]:
    n = int(rng.integers(3, 9))
    inner = rng.uniform(0.45, 0.75) if rng.random() < 0.5 else float(np.cos(np.pi / n))
    return [(star(n, inner, rng.uniform(0, np.pi)), True)]


def _ring(rng: np.random.Generator) -> list[Part]:
    ry = rng.uniform(0.75, 1.0)
    hole = rng.uniform(0.4, 0.6)
    return [(ellipse(0, 0, 1.0, ry), True), (ellipse(0, 0, hole, hole * ry), False)]


def _mug(rng: np.random.Generator) -> list[Part]:
    h = rng.uniform(1.3, 1.8)
    w = rng.uniform(0.9, 1.3)
    hr = rng.uniform(0.28, 0.4) * h
    thick = rng.uniform(0.09, 0.15)
    cx = -0.25 + w / 2
    return [
        (ellipse(cx, 0.0, hr + thick, hr), True),
        (ellipse(cx, 0.0, hr, hr - thick), False),
        (rounded_rect(-0.25, 0.0, w, h, 0.12), True),
    ]


def _bottle(rng: np.random.Generator) -> list[Part]:
    w = rng.uniform(0.6, 0.9)
    neck = rng.uniform(0.2, 0.35)
    return [
        (rounded_rect(0, 0.35, w, 1.3, w * 0.3), True),
        (rounded_rect(0, -0.55, neck, 0.8, neck * 0.2), True),
        (rounded_rect(0, -0.95, neck * 1.25, 0.18, 0.03), True),
    ]


def _lollipop(rng: np.random.Generator) -> list[Part]:
    r = rng.uniform(0.45, 0.6)
    stick = rng.uniform(0.06, 0.1)
    parts: list[Part] = [(rounded_rect(0, 0.45, stick, 1.1, stick / 2), True)]
    parts.append((ellipse(0, -1 + r, r, r), True))
    if rng.random() < 0.5:  # a racket: the head is a frame with strings' worth of hole
        parts.append((ellipse(0, -1 + r, r * 0.72, r * 0.72), False))
    return parts


def _bag(rng: np.random.Generator) -> list[Part]:
    w = rng.uniform(1.3, 1.8)
    top = -0.2
    handle_r = rng.uniform(0.3, 0.45)
    thick = rng.uniform(0.06, 0.1)
    body = np.array([[-w / 2, 1.0], [w / 2, 1.0], [w * 0.42, top], [-w * 0.42, top]])
    return [
        (ellipse(0, top, handle_r + thick, handle_r * 1.4 + thick), True),
        (ellipse(0, top, handle_r, handle_r * 1.4), False),
        (body, True),
    ]


SHAPES: dict[str, Callable[[np.random.Generator], list[Part]]] = {
    "ball": _ball,
    "box": _box,
    "polygon": _polygon,
    "ring": _ring,
    "mug": _mug,
    "bottle": _bottle,
    "lollipop": _lollipop,
    "bag": _bag,
}
#: Every kind of object the set draws ("blob" is a thresholded smooth-noise field).
KINDS = (*SHAPES, "blob")


@dataclass(frozen=True)
class Placement:
    """Where an object goes: centre (x, y) in pixels, half-size in pixels, rotation, flip."""

    cx: float
    cy: float
    radius: float
    angle: float
    flip: bool = False


def _transform(poly: Polygon, where: Placement) -> Polygon:
    x = -poly[:, 0] if where.flip else poly[:, 0]
    cos, sin = np.cos(where.angle), np.sin(where.angle)
    px = where.cx + where.radius * (cos * x - sin * poly[:, 1])
    py = where.cy + where.radius * (sin * x + cos * poly[:, 1])
    return np.stack([px, py], axis=1)


def fill_polygon(canvas: np.ndarray, pts: np.ndarray, value: bool) -> None:
    """Set every pixel of ``canvas`` whose centre lies inside polygon ``pts`` (even-odd rule).

    ``pts`` are (x, y) in ``canvas`` pixels, where pixel (i, j) spans [j, j+1) × [i, i+1).
    A scanline fill: each edge crossing a row centre toggles "inside" from the first pixel
    centre at or right of the crossing; no pixel on an edge is counted twice.
    """
    height, width = canvas.shape
    top = max(0, int(np.floor(pts[:, 1].min())))
    bottom = min(height, int(np.ceil(pts[:, 1].max())) + 1)
    left = max(0, int(np.floor(pts[:, 0].min())))
    right = min(width, int(np.ceil(pts[:, 0].max())) + 1)
    if top >= bottom or left >= right:
        return
    x0, y0 = pts[:, 0], pts[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    centres = np.arange(top, bottom, dtype=np.float64)[:, None] + 0.5
    crosses = (y0 <= centres) != (y1 <= centres)
    rows, edges = np.nonzero(crosses)
    t = (centres[rows, 0] - y0[edges]) / (y1[edges] - y0[edges])
    xs = x0[edges] + t * (x1[edges] - x0[edges])
    first = np.clip(np.ceil(xs - 0.5), left, right).astype(np.intp) - left
    toggles = np.zeros((bottom - top, right - left + 1), np.int32)
    np.add.at(toggles, (rows, first), 1)
    inside = (np.cumsum(toggles, axis=1)[:, :-1] % 2).astype(bool)
    canvas[top:bottom, left:right][inside] = value


def rasterize(parts: list[Part], where: Placement, height: int, width: int) -> np.ndarray:
    """Exact coverage (H×W float32 in [0, 1]) of filled parts minus holes, in drawing order.

    Each pixel is sampled at SUPERSAMPLE² sub-pixel centres, so the coverage is exact to
    1/SUPERSAMPLE² of a pixel.
    """
    s = SUPERSAMPLE
    out = np.zeros((height, width), np.float32)
    polys = [(_transform(poly, where), fill) for poly, fill in parts]
    every = np.concatenate([pts for pts, _ in polys])
    top, left = (max(0, int(np.floor(v)) - 1) for v in every.min(axis=0)[::-1])
    bottom = min(height, int(np.ceil(every[:, 1].max())) + 1)
    right = min(width, int(np.ceil(every[:, 0].max())) + 1)
    if top >= bottom or left >= right:
        return out
    # Only the objects' bounding box is sampled; pixel-aligned, so nothing else changes.
    canvas = np.zeros(((bottom - top) * s, (right - left) * s), dtype=bool)
    for pts, fill in polys:
        fill_polygon(canvas, (pts - (left, top)) * s, fill)
    box = canvas.reshape(bottom - top, s, right - left, s).mean(axis=(1, 3), dtype=np.float32)
    out[top:bottom, left:right] = box
    return out


def blob(rng: np.random.Generator, where: Placement, height: int, width: int) -> np.ndarray:
    """A smooth organic blob (a stone, a cushion): low-frequency noise inside an ellipse."""
    s = SUPERSAMPLE
    grid = 48
    noise = gaussian_filter(rng.normal(size=(grid, grid)), sigma=rng.uniform(3.5, 6.0))
    noise /= np.abs(noise).max() + 1e-6
    yy, xx = np.mgrid[-1 : 1 : grid * 1j, -1 : 1 : grid * 1j]
    field = 1.0 - np.hypot(xx, yy * rng.uniform(1.0, 1.5)) + 0.35 * noise
    side = max(1, round(2 * where.radius * s))
    img = Image.fromarray(field.astype(np.float32), "F").resize((side, side), Image.BICUBIC)
    inside = (np.asarray(img) > 0.3).astype(np.uint8) * 255
    canvas = Image.new("L", (width * s, height * s), 0)
    left = round((where.cx - where.radius) * s)
    top = round((where.cy - where.radius) * s)
    canvas.paste(Image.fromarray(inside, "L"), (left, top))
    return np.asarray(canvas.reduce(s), dtype=np.float32) / 255.0


def silhouette(
    kind: str, rng: np.random.Generator, where: Placement, height: int, width: int
) -> np.ndarray:
    """The coverage of one object of ``kind`` placed at ``where`` on an H×W canvas."""
    if kind == "blob":
        return blob(rng, where, height, width)
    return rasterize(SHAPES[kind](rng), where, height, width)


def random_color(rng: np.random.Generator) -> np.ndarray:
    """A product colour: any hue, saturation and brightness (RGB float 0..255)."""
    hue, sat, val = rng.random(), rng.uniform(0.0, 1.0) ** 0.7, rng.uniform(0.15, 0.95)
    return np.asarray(colorsys.hsv_to_rgb(hue, sat, val), dtype=np.float32) * 255.0


def _albedo(
    rng: np.random.Generator, base: np.ndarray, where: Placement, height: int, width: int
) -> tuple[np.ndarray, str]:
    """The object's own colours before lighting: solid, gradient, stripes, noise or a label."""
    pattern = str(rng.choice(["solid", "solid", "gradient", "stripes", "noise", "label"]))
    other = random_color(rng) if rng.random() < 0.6 else base * rng.uniform(0.5, 0.8)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    theta = rng.uniform(0, np.pi)
    u = ((xx - where.cx) * np.cos(theta) + (yy - where.cy) * np.sin(theta)) / where.radius
    if pattern == "gradient":
        mix = np.clip(u * 0.5 + 0.5, 0, 1)
    elif pattern == "stripes":
        period = rng.uniform(0.15, 0.5)
        mix = np.clip(np.sin(u * 2 * np.pi / period) * 3.0, -1, 1) * 0.5 + 0.5
    elif pattern == "noise":
        fine = gaussian_filter(rng.normal(size=(height, width)), rng.uniform(0.8, 3.0))
        mix = np.clip(0.5 + fine / (fine.std() + 1e-6) * 0.25, 0, 1) * 0.5
    elif pattern == "label":
        v = (yy - where.cy) / where.radius
        centre = rng.uniform(-0.2, 0.4)
        mix = np.clip((0.3 - np.abs(v - centre)) * where.radius, 0, 1)
    else:
        mix = np.zeros_like(xx)
    colors = base[None, None, :] * (1 - mix[..., None]) + other[None, None, :] * mix[..., None]
    return colors, pattern


def blur(field: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a 2-D float field; wide blurs run on a downscaled copy (same look)."""
    factor = max(1, int(sigma // 4))
    if factor == 1:
        return gaussian_filter(field, sigma)
    height, width = field.shape
    small = Image.fromarray(field.astype(np.float32), "F").reduce(factor)
    small_blurred = gaussian_filter(np.asarray(small), sigma / factor)
    # Bicubic, not bilinear: the shading differentiates this field, and a piecewise-linear
    # field would show its grid as facets.
    out = Image.fromarray(small_blurred, "F").resize((width, height), Image.BICUBIC)
    return np.asarray(out)


def appearance(
    rng: np.random.Generator, alpha: np.ndarray, base: np.ndarray, where: Placement
) -> tuple[np.ndarray, str]:
    """The object's RGB (H×W×3 float 0..255): albedo lit from a height map of its silhouette.

    Blurring the silhouette gives a rounded "pillow" height field; its normals give Lambert
    shading and a Blinn-Phong highlight, so objects look solid without any 3D renderer.
    Only the object's bounding box is computed; outside it the colour is 0.
    """
    out = np.zeros((*alpha.shape, 3), np.float32)
    rows, cols = np.nonzero(alpha.any(axis=1))[0], np.nonzero(alpha.any(axis=0))[0]
    if rows.size == 0:
        return out, "none"
    top, bottom = max(0, rows[0] - 2), rows[-1] + 3
    left, right = max(0, cols[0] - 2), cols[-1] + 3
    crop = alpha[top:bottom, left:right]
    local = Placement(where.cx - left, where.cy - top, where.radius, where.angle, where.flip)
    colors, pattern = _albedo(rng, base, local, *crop.shape)
    bump = blur(crop, sigma=max(1.0, where.radius * rng.uniform(0.12, 0.3)))
    gy, gx = np.gradient(bump * where.radius * rng.uniform(0.8, 2.0))
    norm = np.sqrt(gx * gx + gy * gy + 1.0)
    nx, ny, nz = -gx / norm, -gy / norm, 1.0 / norm
    light = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.8, -0.2), 1.0])
    light /= np.linalg.norm(light)
    diffuse = np.clip(nx * light[0] + ny * light[1] + nz * light[2], 0, 1)
    ambient = rng.uniform(0.35, 0.6)
    shade = ambient + (1 - ambient) * diffuse
    half = light + np.array([0.0, 0.0, 1.0])
    half /= np.linalg.norm(half)
    spec = np.clip(nx * half[0] + ny * half[1] + nz * half[2], 0, 1) ** rng.uniform(15, 60)
    gloss = rng.uniform(0.0, 0.7)
    rgb = colors * shade[..., None] + 255.0 * gloss * spec[..., None]
    out[top:bottom, left:right] = np.clip(rgb, 0, 255)
    return out, pattern
