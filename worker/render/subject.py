"""Where the subject is in an alpha mask: its bounding box (stray specks ignored) and its
separate parts, measured once per job for framing (:mod:`.framing`) and quality flags
(:mod:`.quality`).

Connected parts are found on a reduced grid (at most :data:`GRID` px on the longer side, each
cell the maximum of the pixels it covers, so nothing thin is lost), by runs of set cells joined
row to row (8-connected) with a union-find: a few hundred runs, not a pixel-by-pixel walk. The
box is then made exact at full resolution inside the reduced grid's box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRID = 256  # cells on the reduced grid's longer side
ALPHA_FLOOR = 8  # alpha below this (3 %) is background: framing clears it, the box ignores it
SPECK_SHARE = 0.01  # a part under 1 % of the largest part's area is a speck, not the subject


@dataclass(frozen=True)
class Part:
    """One connected part, in reduced-grid cells: area and box (x0, y0, x1, y1; ends open)."""

    area: int
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class Subject:
    """The subject's box at full resolution (None: no subject) and its parts (largest first)."""

    box: tuple[int, int, int, int] | None
    parts: tuple[Part, ...]
    factor: int  # full-resolution pixels per grid cell


def find_subject(alpha: np.ndarray, level: int = ALPHA_FLOOR) -> Subject:
    """The subject of ``alpha`` (H×W uint8): its pixels are those at ``level`` or above."""
    height, width = alpha.shape
    factor = max(1, -(-max(height, width) // GRID))
    grid = _reduce_max(alpha, factor) >= level
    parts = label_parts(grid)
    kept = [part for part in parts if parts and part.area >= SPECK_SHARE * parts[0].area]
    if not kept:
        return Subject(None, (), factor)
    x0 = min(part.box[0] for part in kept) * factor
    y0 = min(part.box[1] for part in kept) * factor
    x1 = min(width, max(part.box[2] for part in kept) * factor)
    y1 = min(height, max(part.box[3] for part in kept) * factor)
    window = alpha[y0:y1, x0:x1] >= level
    rows, cols = np.flatnonzero(window.any(axis=1)), np.flatnonzero(window.any(axis=0))
    box = (x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1)
    return Subject(box, tuple(parts), factor)


def _reduce_max(alpha: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return alpha
    height, width = alpha.shape
    padded = np.zeros((-(-height // factor) * factor, -(-width // factor) * factor), np.uint8)
    padded[:height, :width] = alpha
    rows, cols = padded.shape[0] // factor, padded.shape[1] // factor
    return padded.reshape(rows, factor, cols, factor).max(axis=(1, 3))


def label_parts(grid: np.ndarray) -> list[Part]:
    """The 8-connected parts of a boolean grid, largest first."""
    parent: list[int] = []
    runs: list[tuple[int, int, int]] = []  # (row, start, end)
    previous: list[int] = []  # indices into runs of the previous row's runs

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    for row in range(grid.shape[0]):
        line = grid[row].astype(np.int8)
        edges = np.flatnonzero(np.diff(np.concatenate(([0], line, [0]))))
        current = []
        for start, end in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
            index = len(runs)
            runs.append((row, start, end))
            parent.append(index)
            for other in previous:  # 8-connected: runs touching diagonally join too
                _, other_start, other_end = runs[other]
                if other_start <= end and start <= other_end:
                    a, b = root(index), root(other)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
            current.append(index)
        previous = current
    areas: dict[int, list[int]] = {}
    for index, (row, start, end) in enumerate(runs):
        key = root(index)
        entry = areas.setdefault(key, [0, start, row, end, row + 1])
        entry[0] += end - start
        entry[1], entry[2] = min(entry[1], start), min(entry[2], row)
        entry[3], entry[4] = max(entry[3], end), max(entry[4], row + 1)
    parts = [Part(area, (x0, y0, x1, y1)) for area, x0, y0, x1, y1 in areas.values()]
    return sorted(parts, key=lambda part: -part.area)
