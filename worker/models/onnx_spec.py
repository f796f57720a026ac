"""A model spec: what cutq must know to serve someone's single-output saliency ONNX graph.

ISNet, BiRefNet, BRIA RMBG and u2net exports all take one image tensor and give one map per
image, but they differ in how the image goes in and how the map comes out. A spec is a small
JSON file that says so; every field has one meaning (the ``#`` notes are not JSON)::

    {
      "name": "birefnet",                         # what jobs say in "model"; events report it
      "version": "general-epoch244",              # events report it (default: sha256[:12])
      "file": "gs://my-models/BiRefNet.onnx",     # path (relative to the spec), file:// or gs://
      "sha256": "…64 hex digits…",                # checked before the graph is loaded
      "input_size": [1024, 1024],                 # h, w in "static" resize mode
      "dynamic": false,                           # the graph takes any h×w (multiples of stride)
      "stride": 32, "max_side": 1024,             # dynamic mode: rounding, cap on the longer side
      "scale": 0.00392156862745098,               # pixel × scale (a number), or "max": ÷ the
      "mean": [0.485, 0.456, 0.406],              #   image's own maximum (rembg's convention)
      "std": [0.229, 0.224, 0.225],               # then (x − mean) / std per channel
      "channel_order": "rgb",                     # or "bgr"
      "layout": "nchw",                           # or "nhwc"
      "output": 0,                                # output index, or its name
      "sigmoid": true,                            # the output is logits
      "minmax": false,                            # min-max normalise each map to [0, 1]
      "license": "MIT",                           # the weights' licence (SPDX id or a note)
      "commercial_use": true                      # whether that licence allows it
    }

The graph's input and output may be float32 or float16 (as GPU exports often are): cutq feeds
the type the graph declares and reads maps back as float32. ``license`` and
``commercial_use`` are shown at start-up and in ``cutq eval``'s report; a spec without them
says "unknown", and a worker warns at start-up when a model's commercial use is not allowed.

Only ``name`` and ``file`` are required. Unknown keys are an error, as in the worker's own
configuration: a typo never silently falls back to a default.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cutq.core.contract import Resize
from cutq.core.errors import ConfigError
from cutq.core.storage import scheme_of
from cutq.worker.models.base import round_to_multiple, terms

#: What jobs may put in ``model`` (the job contract's pattern).
NAME_PATTERN = r"[a-z0-9_-]{1,64}"
#: Names the registry already uses; a spec cannot take them.
RESERVED_NAMES = ("u2netp", "inspyrenet")
_RESAMPLING = {"lanczos": Image.Resampling.LANCZOS, "bilinear": Image.Resampling.BILINEAR}


@dataclass(frozen=True)
class ModelSpec:
    """How one ONNX graph takes images and gives saliency maps (see the module docstring)."""

    name: str
    file: str
    sha256: str | None = None
    version: str | None = None
    input_size: tuple[int, int] | None = None  # None: read from a fixed graph at start-up
    dynamic: bool = False
    stride: int = 32
    max_side: int | None = None  # dynamic mode; None: the larger side of input_size
    scale: float | str = 1 / 255
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    channel_order: str = "rgb"
    layout: str = "nchw"
    output: int | str = 0
    sigmoid: bool = False
    minmax: bool = False
    resample: str = "lanczos"
    license: str | None = None  # the weights' licence ("MIT", "Apache-2.0", "CC-BY-NC-4.0")
    commercial_use: bool | None = None  # None: not stated

    def __post_init__(self) -> None:
        _check(
            isinstance(self.name, str) and re.fullmatch(NAME_PATTERN, self.name) is not None,
            f"name must match {NAME_PATTERN} (what jobs put in 'model'), got {self.name!r}",
        )
        _check(self.name not in RESERVED_NAMES, f"name {self.name!r} is a built-in model's")
        _check(isinstance(self.file, str) and bool(self.file), "file must be a path or URI")
        _check(
            self.sha256 is None or re.fullmatch(r"[0-9a-fA-F]{64}", str(self.sha256)) is not None,
            "sha256 must be 64 hex digits",
        )
        _check(
            self.version is None or re.fullmatch(r"[\w.+-]{1,64}", str(self.version)) is not None,
            "version must be 1-64 letters, digits or . _ + -",
        )
        _check(isinstance(self.stride, int) and self.stride >= 1, "stride must be an int ≥ 1")
        if self.input_size is not None:
            _check(
                len(self.input_size) == 2 and all(_positive_int(v) for v in self.input_size),
                f"input_size must be [height, width] in pixels, got {list(self.input_size)}",
            )
            _check(
                not self.dynamic or all(v % self.stride == 0 for v in self.input_size),
                f"input_size {list(self.input_size)} must be multiples of stride {self.stride}",
            )
        _check(
            self.max_side is None
            or (_positive_int(self.max_side) and self.max_side % self.stride == 0),
            f"max_side must be a positive multiple of stride {self.stride}",
        )
        _check(
            self.scale == "max" or (_number(self.scale) and float(self.scale) > 0),
            f'scale must be a positive number or "max", got {self.scale!r}',
        )
        for key in ("mean", "std"):
            value = getattr(self, key)
            _check(
                len(value) == 3 and all(_number(v) for v in value),
                f"{key} must be three numbers (one per channel, in RGB order), got {value!r}",
            )
        _check(all(float(v) > 0 for v in self.std), "std must be positive")
        _check(self.channel_order in ("rgb", "bgr"), "channel_order must be rgb or bgr")
        _check(self.layout in ("nchw", "nhwc"), "layout must be nchw or nhwc")
        _check(
            (isinstance(self.output, int) and not isinstance(self.output, bool))
            or isinstance(self.output, str),
            "output must be an output index or an output name",
        )
        for key in ("dynamic", "sigmoid", "minmax"):
            _check(isinstance(getattr(self, key), bool), f"{key} must be true or false")
        _check(self.resample in _RESAMPLING, f"resample must be one of {', '.join(_RESAMPLING)}")
        _check(
            self.license is None
            or (isinstance(self.license, str) and 0 < len(self.license.strip()) <= 200),
            "license must be a short text (an SPDX id such as MIT or Apache-2.0)",
        )
        _check(
            self.commercial_use is None or isinstance(self.commercial_use, bool),
            "commercial_use must be true or false",
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any], base_dir: Path | None = None) -> ModelSpec:
        """A spec from parsed JSON; a relative local ``file`` is taken from ``base_dir``."""
        if not isinstance(data, dict):
            raise ConfigError("a model spec is a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            listed = ", ".join(sorted(known))
            raise ConfigError(f"model spec: unknown key(s) {', '.join(unknown)}; known: {listed}")
        missing = [key for key in ("name", "file") if key not in data]
        if missing:
            raise ConfigError(f"model spec: missing {', '.join(missing)}")
        values = dict(data)
        for key in ("input_size", "mean", "std"):
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        file = values["file"]
        relative = isinstance(file, str) and scheme_of(file) == "file"
        relative = relative and not file.startswith("file://")
        if base_dir is not None and relative and not os.path.isabs(os.path.expanduser(file)):
            values["file"] = str(base_dir / file)
        try:
            return cls(**values)
        except ConfigError as error:
            raise ConfigError(f"model spec {values.get('name')!r}: {error}") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ModelSpec:
        """The spec in the JSON file at ``path``."""
        location = Path(path).expanduser()
        try:
            data = json.loads(location.read_text())
        except OSError as error:
            raise ConfigError(f"model spec {location}: {error.strerror or error}") from None
        except json.JSONDecodeError as error:
            raise ConfigError(f"model spec {location} is not JSON: {error}") from None
        return cls.from_dict(data, base_dir=location.parent)

    def with_input_size(self, size: tuple[int, int]) -> ModelSpec:
        """This spec with ``input_size`` filled in (from a fixed graph)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return ModelSpec(**{**values, "input_size": tuple(size)})

    def static_size(self) -> tuple[int, int]:
        if self.input_size is None:
            raise ConfigError(f"model spec {self.name!r}: input_size is not known yet")
        return (int(self.input_size[0]), int(self.input_size[1]))

    def cap(self) -> int:
        """The longer side's bound in dynamic mode."""
        return self.max_side or max(self.static_size())

    def size_for(self, height: int, width: int, resize: Resize) -> tuple[int, int]:
        """The network input for an image: ``input_size`` unless both the job asks for
        "dynamic" and the graph takes any size; then the aspect ratio is kept, the longer
        side at most :meth:`cap`, each side rounded to a positive multiple of ``stride``."""
        if height <= 0 or width <= 0:
            raise ValueError(f"image size must be positive, got {height}×{width}")
        if resize != "dynamic" or not self.dynamic:
            return self.static_size()
        cap = self.cap()
        scale = min(1.0, cap / max(height, width))
        top = cap - cap % self.stride or self.stride
        return (
            min(top, round_to_multiple(height * scale, self.stride)),
            min(top, round_to_multiple(width * scale, self.stride)),
        )

    def preprocess(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """H×W×3 uint8 RGB → 3×h×w float32: resize, scale, channel order, (x − mean) / std.

        Always channels-first here (the runner stacks images); :meth:`to_layout` turns a batch
        into the graph's layout."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"expected an H×W×3 uint8 RGB image, got shape {image.shape} {image.dtype}"
            )
        height, width = size
        resized = Image.fromarray(image).resize((width, height), _RESAMPLING[self.resample])
        array = np.asarray(resized, dtype=np.float32)
        if self.scale == "max":
            array = array / max(float(array.max()), 1.0)
        else:
            array = array * np.float32(self.scale)
        array = (array - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        if self.channel_order == "bgr":
            array = array[:, :, ::-1]
        return np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32)

    def to_layout(self, batch: np.ndarray) -> np.ndarray:
        """N×3×h×w → what the graph takes (N×h×w×3 for "nhwc")."""
        if self.layout == "nhwc":
            return np.ascontiguousarray(batch.transpose(0, 2, 3, 1))
        return np.ascontiguousarray(batch)

    def to_saliency(self, output: np.ndarray, batch: int, size: tuple[int, int]) -> np.ndarray:
        """The graph's output for ``batch`` images → N×1×h×w in [0, 1].

        Takes N×1×h×w, N×h×w×1 (nhwc) or N×h×w; anything else, or maps at another size
        than the input, is a wrong spec or a graph cutq cannot serve: ValueError says which."""
        maps = np.asarray(output, dtype=np.float32)
        if maps.ndim == 4 and self.layout == "nhwc" and maps.shape[3] == 1:
            maps = maps.transpose(0, 3, 1, 2)
        elif maps.ndim == 3:
            maps = maps[:, None]
        if maps.ndim != 4 or maps.shape[0] != batch or maps.shape[1] != 1:
            raise ValueError(
                f"output {self.output!r} has shape {list(output.shape)} for {batch} image(s); "
                "expected one 1-channel map per image (N×1×h×w or N×h×w): "
                "is 'output' the saliency map's index, and 'layout' right?"
            )
        if maps.shape[2:] != tuple(size):
            raise ValueError(
                f"output {self.output!r} is {maps.shape[2]}×{maps.shape[3]} for an input of "
                f"{size[0]}×{size[1]}; cutq serves graphs whose map has the input's size"
            )
        if self.sigmoid:
            maps = 1.0 / (1.0 + np.exp(-np.clip(maps, -60.0, 60.0)))
        if self.minmax:
            low = maps.min(axis=(1, 2, 3), keepdims=True)
            high = maps.max(axis=(1, 2, 3), keepdims=True)
            maps = (maps - low) / np.maximum(high - low, np.float32(1e-8))
        return maps.astype(np.float32, copy=False)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def main(argv: list[str] | None = None) -> int:
    """``python -m cutq.worker.models.onnx_spec SPEC.json``: parse a spec (the image build
    checks a baked one so); print its name, file and terms, or the error and exit 1."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m cutq.worker.models.onnx_spec SPEC.json", file=sys.stderr)
        return 2
    try:
        spec = ModelSpec.load(args[0])
    except ConfigError as error:
        print(f"model spec {args[0]}: {error}", file=sys.stderr)
        return 1
    shown = terms(spec.license, spec.commercial_use)
    print(
        f"model spec {spec.name}: {spec.file} (sha256 {spec.sha256 or 'not pinned'}), "
        f"licence {shown['license']}, commercial use {shown['commercial_use']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
