"""The evaluation set: seeded product-style photos with exact ground-truth alpha.

Each image is one to three objects (:mod:`.shapes`) on a backdrop: a studio sweep, a
gradient, a texture (wood, fabric), smooth colour noise, a checkerboard, or blurred clutter.
Objects cast soft shadows on some backdrops (shadows belong to the background), and some are
deliberately close in colour to what is behind them. The composite is
``foreground + background × (1 − alpha) + grain``: the ground truth is the same alpha that
made the picture, so the only error a model can make is its own.

Image ``i`` of seed ``s`` depends on ``(s, i)`` only: the first N images of a larger set are
the same pixels as a set of N, and a run is reproducible anywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import gaussian_filter, shift

from cutq.worker.evaluation.shapes import (
    KINDS,
    Placement,
    appearance,
    blur,
    random_color,
    silhouette,
)

DEFAULT_COUNT = 80
DEFAULT_SEED = 0
#: Shortest and longest long side, in pixels.
MIN_SIDE, MAX_SIDE = 256, 768
ASPECTS = (1.0, 5 / 4, 4 / 3, 3 / 2, 16 / 9)
BACKGROUNDS = ("studio", "gradient", "radial", "wood", "fabric", "noise", "checker", "clutter")
#: Share of objects coloured like the backdrop behind them.
LOW_CONTRAST_RATE = 0.15


@dataclass(frozen=True)
class Sample:
    """One evaluation image: RGB pixels, the exact alpha, and tags for per-group results."""

    name: str
    image: np.ndarray  # H×W×3 uint8
    mask: np.ndarray  # H×W uint8, 255 = object
    tags: tuple[str, ...]
    foreground: np.ndarray | None = None  # H×W×3 float32, the subject premultiplied by alpha
    alpha: np.ndarray | None = None  # H×W float32 in [0, 1], the exact alpha


@dataclass(frozen=True)
class Scene:
    """The layers a sample is made of (float32, 0..255), kept apart for checking."""

    name: str
    background: np.ndarray  # H×W×3, shadows included
    foreground: np.ndarray  # H×W×3, premultiplied by alpha
    alpha: np.ndarray  # H×W in [0, 1]
    grain: np.ndarray  # H×W×3 sensor noise
    tags: tuple[str, ...]

    def composite(self) -> np.ndarray:
        """The photo as 8-bit RGB."""
        rgb = self.foreground + self.background * (1.0 - self.alpha[..., None]) + self.grain
        return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)

    def sample(self) -> Sample:
        mask = np.clip(self.alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Sample(self.name, self.composite(), mask, self.tags, self.foreground, self.alpha)


def generate(count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> Iterator[Sample]:
    """Samples ``0 … count-1`` of the set for ``seed``, made one at a time."""
    if count < 0:
        raise ValueError(f"count must be ≥ 0, got {count}")
    for index in range(count):
        yield make_scene(seed, index).sample()


def make_scene(seed: int, index: int) -> Scene:
    """Image ``index`` of the set for ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    height, width = _image_size(rng)
    bg_kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    background = _background(bg_kind, rng, height, width).astype(np.float32)
    count = int(rng.choice([1, 2, 3], p=[0.6, 0.28, 0.12]))
    tags = [f"bg:{bg_kind}", f"objects:{count}"]
    shadows = rng.random() < 0.6 and bg_kind not in ("clutter", "noise")
    if shadows:
        tags.append("shadow")
    foreground = np.zeros((height, width, 3), np.float32)
    alpha = np.zeros((height, width), np.float32)
    for where in _placements(rng, count, height, width):
        kind = KINDS[int(rng.integers(len(KINDS)))]
        cover = silhouette(kind, rng, where, height, width)
        if shadows:
            _cast_shadow(rng, background, cover, where)
        base = random_color(rng)
        if rng.random() < LOW_CONTRAST_RATE:
            base = _backdrop_colour(rng, background, cover)
            tags.append("low_contrast")
        colors, pattern = appearance(rng, cover, base, where)
        # "over": later objects sit in front of earlier ones.
        foreground = colors * cover[..., None] + foreground * (1.0 - cover[..., None])
        alpha = cover + alpha * (1.0 - cover)
        tags += [f"kind:{kind}", f"pattern:{pattern}"]
    grain = rng.normal(0.0, rng.uniform(0.0, 3.0), size=(height, width, 3)).astype(np.float32)
    name = f"s{seed}-{index:04d}"
    return Scene(name, background, foreground, alpha, grain, tuple(dict.fromkeys(tags)))


def _image_size(rng: np.random.Generator) -> tuple[int, int]:
    long_side = int(rng.integers(MIN_SIDE, MAX_SIDE + 1))
    short_side = round(long_side / ASPECTS[int(rng.integers(len(ASPECTS)))])
    return (long_side, short_side) if rng.random() < 0.4 else (short_side, long_side)


def _placements(rng: np.random.Generator, count: int, height: int, width: int) -> list[Placement]:
    """Objects side by side along the longer axis, each well inside its own slot."""
    along = width >= height
    slot = (width if along else height) / count
    across = height if along else width
    out = []
    for k in range(count):
        room = min(slot, across) / 2
        radius = room * (rng.uniform(0.55, 0.8) if count == 1 else rng.uniform(0.6, 0.8))
        jitter = max(0.0, room - radius) * 0.8
        centre_along = slot * (k + 0.5) + rng.uniform(-jitter, jitter)
        centre_across = across / 2 + rng.uniform(-jitter, jitter)
        cx, cy = (centre_along, centre_across) if along else (centre_across, centre_along)
        upright = rng.random() < 0.7
        angle = rng.uniform(-0.3, 0.3) if upright else rng.uniform(-np.pi, np.pi)
        # Rotated corners reach √2 of the unit frame: shrink so objects stay in the frame.
        radius /= 1.0 if upright else 1.25
        out.append(Placement(cx, cy, radius, angle, flip=bool(rng.random() < 0.5)))
    return out


def _smooth_noise(rng: np.random.Generator, height: int, width: int, sigma: float) -> np.ndarray:
    """Zero-mean, unit-std smooth noise (made small and upscaled, so it is cheap)."""
    factor = max(1, int(sigma // 4))
    small = gaussian_filter(
        rng.normal(size=(height // factor + 2, width // factor + 2)), sigma / factor
    )
    img = Image.fromarray(small.astype(np.float32), "F").resize(
        (width + 2 * factor, height + 2 * factor), Image.BICUBIC
    )
    field = np.asarray(img)[factor : factor + height, factor : factor + width]
    return (field - field.mean()) / (field.std() + 1e-6)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)[..., None]
    return (a[None, None, :] * (1.0 - t) + b[None, None, :] * t).astype(np.float32)


def _pale(rng: np.random.Generator) -> np.ndarray:
    """A light, low-saturation backdrop colour."""
    grey = rng.uniform(170, 250)
    return np.clip(grey + rng.normal(0, 12, size=3), 0, 255).astype(np.float32)


def _background(kind: str, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    v, u = yy / height, xx / width
    if kind == "studio":  # paper sweep: light wall, darker floor, soft vignette
        wall = _pale(rng)
        bend = rng.uniform(0.55, 0.85)
        bg = _mix(wall, wall * rng.uniform(0.75, 0.92), (v - bend + 0.2) / 0.4)
        vignette = 1.0 - rng.uniform(0.0, 0.25) * ((u - 0.5) ** 2 + (v - 0.5) ** 2) * 2
        return bg * vignette[..., None]
    if kind == "gradient":
        theta = rng.uniform(0, 2 * np.pi)
        t = (u - 0.5) * np.cos(theta) + (v - 0.5) * np.sin(theta) + 0.5
        return _mix(random_color(rng), random_color(rng), t)
    if kind == "radial":
        r = np.hypot(u - rng.uniform(0.3, 0.7), v - rng.uniform(0.3, 0.7)) / 0.7
        return _mix(_pale(rng), random_color(rng), r)
    if kind == "wood":
        warp = _smooth_noise(rng, height, width, rng.uniform(20, 40)) * rng.uniform(4, 12)
        grain = np.sin((yy + warp * 1.5) / rng.uniform(3, 9)) * 0.5 + 0.5
        fine = _smooth_noise(rng, height, width, 1.0) * 0.1
        base = np.array([rng.uniform(110, 200), rng.uniform(70, 140), rng.uniform(30, 90)])
        return _mix(base.astype(np.float32), base.astype(np.float32) * 0.7, grain + fine)
    if kind == "fabric":
        weave = np.sin(xx * rng.uniform(0.8, 1.6)) * np.sin(yy * rng.uniform(0.8, 1.6))
        fine = _smooth_noise(rng, height, width, 0.8)
        colour = random_color(rng)
        return np.clip(colour * (1 + 0.08 * weave + 0.06 * fine)[..., None], 0, 255)
    if kind == "noise":
        c1, c2 = random_color(rng), random_color(rng)
        return _mix(c1, c2, _smooth_noise(rng, height, width, rng.uniform(15, 60)) * 0.3 + 0.5)
    if kind == "checker":
        tile = rng.uniform(12, 64)
        checks = ((xx // tile + yy // tile) % 2).astype(np.float32)
        c1 = _pale(rng) if rng.random() < 0.5 else random_color(rng)
        c2 = np.clip(c1 + rng.normal(0, 40, size=3), 0, 255).astype(np.float32)
        return gaussian_filter(_mix(c1, c2, checks), sigma=(0.8, 0.8, 0))
    if kind == "clutter":  # an out-of-focus room: random things, heavily blurred
        canvas = Image.new("RGB", (width, height), tuple(int(c) for c in random_color(rng)))
        draw = ImageDraw.Draw(canvas)
        for _ in range(int(rng.integers(15, 45))):
            x0, y0 = rng.uniform(-0.1, 1.0) * width, rng.uniform(-0.1, 1.0) * height
            w, h = rng.uniform(0.05, 0.4) * width, rng.uniform(0.05, 0.4) * height
            fill = tuple(int(c) for c in random_color(rng))
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape([x0, y0, x0 + w, y0 + h], fill=fill)
        sigma = rng.uniform(4, 9)
        channels = np.asarray(canvas, np.float32)
        blurred = np.stack([blur(channels[..., c], sigma) for c in range(3)], axis=-1)
        return blurred * rng.uniform(0.6, 1.0)
    raise ValueError(f"unknown background {kind!r}")


def _cast_shadow(
    rng: np.random.Generator, background: np.ndarray, cover: np.ndarray, where: Placement
) -> None:
    """Darken the backdrop under and beside the object (in place): a soft drop shadow."""
    offset = (where.radius * rng.uniform(0.03, 0.15), where.radius * rng.uniform(-0.12, 0.12))
    blurred = blur(shift(cover, offset, order=1), where.radius * rng.uniform(0.05, 0.2))
    background *= (1.0 - rng.uniform(0.2, 0.5) * blurred)[..., None]


def _backdrop_colour(
    rng: np.random.Generator, background: np.ndarray, cover: np.ndarray
) -> np.ndarray:
    """A colour close to the backdrop's mean behind the object: a low-contrast case."""
    weights = cover / max(float(cover.sum()), 1e-6)
    mean = (background * weights[..., None]).sum(axis=(0, 1))
    return np.clip(mean + rng.normal(0, 18, size=3), 0, 255).astype(np.float32)
