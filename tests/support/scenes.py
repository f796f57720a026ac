"""Synthetic photographs for model tests: structured, seeded, no files."""

from __future__ import annotations

import numpy as np


def scene(seed: int, height: int, width: int) -> np.ndarray:
    """A random but structured RGB image: a smooth background and a few filled shapes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    image = np.empty((height, width, 3), np.float32)
    for c in range(3):
        a, b, d = rng.uniform(-1, 1, 3)
        image[..., c] = 128 + 60 * a * yy / height + 60 * b * xx / width + 20 * d
    for _ in range(3):
        cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
        r = rng.uniform(0.1, 0.3) * min(height, width)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < r**2] = rng.uniform(0, 255, 3)
    image += rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)
