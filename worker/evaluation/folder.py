"""A labelled folder in the DIS layout: the user's own photos and their masks.

    my-set/
      im/  sku-0001.jpg  sku-0002.png  …     the photographs (any format Pillow reads)
      gt/  sku-0001.png  sku-0002.png  …     8-bit masks, 255 = object, same size and stem

DIS5K, DUTS and most salient-object sets ship so. Images and masks are paired by file stem;
a photo without a mask, a mask without a photo, or a pair of different sizes is a
:class:`~cutq.core.errors.ConfigError` naming the file, before any model runs. Photos are
turned upright by their EXIF orientation (as the worker decodes them) and converted to RGB;
masks to 8-bit grey. Samples are read one at a time, so memory does not grow with the set.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from cutq.core.errors import ConfigError
from cutq.worker.evaluation.dataset import Sample

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class Pair:
    """One photograph and its mask."""

    name: str
    image: Path
    mask: Path


def pairs(folder: str | Path) -> list[Pair]:
    """Every photo of ``folder/im`` with its mask in ``folder/gt``, by name."""
    root = Path(folder).expanduser()
    images, masks = _files(root / "im"), _files(root / "gt")
    lonely = sorted(set(images) - set(masks))
    if lonely:
        raise ConfigError(f"{root}: no mask in gt/ for {_listed(images, lonely)}")
    orphans = sorted(set(masks) - set(images))
    if orphans:
        raise ConfigError(f"{root}: no photo in im/ for {_listed(masks, orphans)}")
    if not images:
        raise ConfigError(f"{root}: im/ and gt/ hold no images")
    return [Pair(name, images[name], masks[name]) for name in sorted(images)]


def load(folder: str | Path) -> Iterator[Sample]:
    """The folder's samples, in name order (tags: none)."""
    for pair in pairs(folder):
        yield read(pair)


def read(pair: Pair) -> Sample:
    try:
        with Image.open(pair.image) as photo:
            image = np.asarray(ImageOps.exif_transpose(photo).convert("RGB"))
        with Image.open(pair.mask) as drawn:
            mask = np.asarray(drawn.convert("L"))
    except OSError as error:
        raise ConfigError(f"cannot read {pair.name}: {error}") from None
    if image.shape[:2] != mask.shape:
        raise ConfigError(
            f"{pair.image.name} is {image.shape[1]}×{image.shape[0]} but its mask "
            f"{pair.mask.name} is {mask.shape[1]}×{mask.shape[0]}"
        )
    return Sample(pair.name, np.ascontiguousarray(image), np.ascontiguousarray(mask), ())


def _files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder (the DIS layout: im/ and gt/ side by side)")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.stem in found:
            raise ConfigError(f"{folder}: two files named {path.stem} ({found[path.stem].name})")
        found[path.stem] = path
    return found


def _listed(files: dict[str, Path], names: list[str], most: int = 5) -> str:
    shown = ", ".join(files[n].name for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")
