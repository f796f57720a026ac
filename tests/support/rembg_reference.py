"""rembg 2.0.86's u2netp mask, line for line, for the tests (rembg itself cannot be installed
beside the dev extra: its scikit-image pin conflicts with pysodmetrics', pyproject ``peer``).

``rembg.remove(data, session=new_session("u2netp"), only_mask=True)`` on an image file does,
in rembg 2.0.86 (``bg.py`` ``remove``, ``sessions/base.py`` ``normalize``,
``sessions/u2netp.py`` ``predict``):

1. ``Image.open`` the bytes, ``fix_image_orientation`` (EXIF), then ``normalize``: convert to
   RGB, resize to 320×320 with LANCZOS, divide by the image's own maximum, subtract ImageNet's
   mean and divide by its std per channel, **in float64**, then cast to float32;
2. run the graph, take output 0, channel 0; min-max normalise over the map;
3. ``(pred * 255).astype("uint8")`` (truncation, not rounding) into an "L" image, resized
   to the photo's size with LANCZOS: that is the mask.

:func:`rembg_mask` does exactly that with onnxruntime on the same graph; ``bench/rembg_masks.py``
runs the real rembg 2.0.86 in its own venv against it and against cutq (docs/models.md has
the numbers). :func:`rembg_post` is step 3 alone, applied to cutq's saliency map.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
#: A model spec that serves rembg's own u2netp.onnx as rembg runs it (its output 0 is the
#: fused map, already a sigmoid; rembg min-max normalises it).
SPEC: dict[str, Any] = {
    "name": "rembg-u2netp",
    "file": "u2netp.onnx",
    "scale": "max",
    "mean": list(MEAN),
    "std": list(STD),
    "output": 0,
    "minmax": True,
    "resample": "lanczos",
    "license": "Apache-2.0",
    "commercial_use": True,
}


def open_photo(path: Path) -> Image.Image:
    """As ``remove`` opens it: the file, turned upright by its EXIF orientation."""
    with Image.open(path) as image:
        return ImageOps.exif_transpose(image)


def rembg_mask(session: Any, photo: Image.Image) -> np.ndarray:
    """rembg 2.0.86's u2netp mask (H×W uint8) for ``photo``, ``session`` an onnxruntime
    session of the same u2netp.onnx."""
    im = photo.convert("RGB").resize((320, 320), Image.Resampling.LANCZOS)
    im_ary = np.array(im)
    im_ary = im_ary / max(np.max(im_ary), 1e-6)
    tmp = np.zeros((im_ary.shape[0], im_ary.shape[1], 3))
    for channel in range(3):
        tmp[:, :, channel] = (im_ary[:, :, channel] - MEAN[channel]) / STD[channel]
    feed = {session.get_inputs()[0].name: np.expand_dims(tmp.transpose((2, 0, 1)), 0)}
    outputs = session.run(None, {k: v.astype(np.float32) for k, v in feed.items()})
    pred = outputs[0][:, 0, :, :]
    pred = (pred - np.min(pred)) / (np.max(pred) - np.min(pred))
    return rembg_post(np.squeeze(pred), photo.size)


def rembg_post(saliency: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Step 3: a 320×320 map in [0, 1] → the mask at ``size`` (width, height)."""
    mask = Image.fromarray((saliency * 255).astype("uint8"), mode="L")
    return np.asarray(mask.resize(size, Image.Resampling.LANCZOS))
