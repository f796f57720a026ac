"""``inspyrenet``: the production model, InSPyReNet (Swin-B) from ``transparent-background``.

The network class comes from the ``transparent-background`` package (MIT), imported lazily
and without running the package's ``__init__`` (which pulls in its GUI, albumentations, gdown
and warns when flet is missing). Weights come from a local path or a ``gs://`` URI through
:func:`~cutq.worker.models.fetch.fetch_checkpoint`, never from a hub: the package's
``Remover`` downloads on its own, so it is not used.

Two things differ from the package on purpose:

* ``predict`` normalises each saliency map on its own. The package's ``forward_inference``
  ends with one min-max over the whole batch, so an image's mask depended on its batch mates.
  We call ``forward_inspyre`` (what ``forward_inference`` runs when ``threshold=None``, as
  ``Remover`` configures it), take the finest saliency logits ``d0``, apply the sigmoid and
  min-max normalise per image, with the package's epsilon.
* dynamic resize never produces a zero side (the package rounds sides ≤16 px to 0) and
  bounds the longer side by ``max_side``, so memory never depends on the input.
* the attention modules (``SICA``, ``SelfAttention``) always run in fp32, also under
  fp16/bf16 autocast (:func:`keep_attention_in_fp32`): SICA's ``torch.bmm(prob, f)`` sums over
  a fixed 1024² (base) or 384² (fast) grid, reaching ~8e6 — far past fp16's 65504, so in fp16
  the mask became NaN; ``SelfAttention``'s unnormalised query-key products can overflow the
  same way (plemeri/InSPyReNet#36). InSPyReNet's author says they need full precision.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import os
import re
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from PIL import Image

from cutq.core.contract import Resize
from cutq.core.errors import ConfigError
from cutq.core.storage import Stores

from .base import Model, round_to_multiple
from .fetch import fetch_checkpoint as fetch_checkpoint  # re-exported (lives in fetch)
from .fetch import file_sha256 as file_sha256

log = logging.getLogger(__name__)

Mode = Literal["base", "fast"]

#: Static input size per mode, as the package's config.yaml gives it (also the net's base_size).
STATIC_SIZES: dict[str, tuple[int, int]] = {"base": (1024, 1024), "fast": (384, 384)}
#: Dynamic resize: the shorter side is capped at this many pixels (the package uses 1280).
SHORT_SIDE_CAPS: dict[str, int] = {"base": 1280, "fast": 384}
#: Every input side is a multiple of the network's coarsest stride.
STRIDE = 32
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
#: Same epsilon as the package's final min-max normalisation.
NORM_EPS = 1e-8
#: Random init only: output heads are scaled by this so random logits stay in sigmoid's range.
_RANDOM_HEAD_GAIN = 0.01
_RANDOM_SEED = 0
_PACKAGE = "transparent_background"


class InSPyReNet(Model):
    """InSPyReNet Swin-B salient-object network (90.7 M parameters, ~367 MB of weights)."""

    name: ClassVar[str] = "inspyrenet"
    license = "MIT"  # plemeri/InSPyReNet and transparent-background
    commercial_use = True
    gpu_precision: ClassVar[str] = "fp16"  # with the attention in fp32 (docs/performance.md, "GPU")

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | None,
        mode: Mode = "base",
        max_side: int = 2048,
        checksum_sha256: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        random_init: bool = False,
        storage: Stores | None = None,
    ) -> None:
        """Validate the configuration; nothing is imported or loaded until :meth:`setup`.

        ``checkpoint`` is a local path, a ``file://`` or a ``gs://`` URI of the package's
        state dict (``ckpt_base.pth`` for ``mode="base"``, ``ckpt_fast.pth`` for ``"fast"``).
        ``checkpoint=None`` needs ``random_init=True``: random weights, for tests and benchmarks.
        ``max_side`` bounds the longer input side in dynamic mode (a multiple of 32).
        ``storage``: the worker's backends, to download a ``gs://`` checkpoint through.
        """
        if mode not in STATIC_SIZES:
            raise ConfigError(f"inspyrenet mode must be 'base' or 'fast', not {mode!r}")
        if (checkpoint is None) != random_init:
            raise ConfigError("inspyrenet needs a checkpoint, or random_init=True and none")
        if max_side < STRIDE or max_side % STRIDE:
            raise ConfigError(f"max_side must be a positive multiple of {STRIDE}, not {max_side}")
        if checksum_sha256 is not None:
            checksum_sha256 = checksum_sha256.lower()
            if not re.fullmatch(r"[0-9a-f]{64}", checksum_sha256):
                raise ConfigError("checksum_sha256 must be 64 hex digits")
        self.checkpoint = None if checkpoint is None else os.fspath(checkpoint)
        self.mode: Mode = mode
        self.max_side = max_side
        self.checksum_sha256 = checksum_sha256
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.random_init = random_init
        self.storage = storage
        # The package's InSPyReNet module; untyped, hence Any.
        self.net: Any = None

    def setup(self, device: torch.device) -> None:
        """Build the net, load (or randomly draw) its weights, move it to ``device``, eval."""
        if self.checkpoint is None:
            net = build_net(self.mode, random_init=True)
            self.version = "random"
        else:
            path = fetch_checkpoint(
                self.checkpoint, self.cache_dir, self.checksum_sha256, self.storage
            )
            net = build_net(self.mode)
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict):
                raise ConfigError(f"{self.checkpoint} is not a state dict")
            net.load_state_dict(state, strict=True)
            self.version = (self.checksum_sha256 or file_sha256(path))[:12]
        keep_attention_in_fp32(net)
        # The package overrides .to() to also move its pyramid kernels, which are not buffers.
        self.net = net.to(device).eval()
        log.info("inspyrenet %s loaded on %s (version %s)", self.mode, device, self.version)

    def input_size(self, height: int, width: int, resize: Resize) -> tuple[int, int]:
        """Static: the mode's fixed square. Dynamic: the package's rule, bounded and never 0.

        Dynamic keeps the aspect ratio: the shorter side is capped at 1280 (base) or 384 (fast),
        then the longer side at ``max_side``; small images are not upscaled. Each side is then
        rounded to the nearest multiple of 32, at least 32.
        """
        if resize == "static":
            return STATIC_SIZES[self.mode]
        if resize != "dynamic":
            raise ValueError(f"unknown resize mode {resize!r}")
        if height < 1 or width < 1:
            raise ValueError(f"image size must be positive, not {height}×{width}")
        scale = min(1.0, SHORT_SIDE_CAPS[self.mode] / min(height, width))
        scale = min(scale, self.max_side / max(height, width))
        return round_to_multiple(height * scale, STRIDE), round_to_multiple(width * scale, STRIDE)

    def preprocess(self, image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        """Resize with PIL bilinear (as the package does for PIL input), then ImageNet-normalise.

        PIL's bilinear filter widens its support when shrinking, so downscaling is antialiased.
        """
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an H×W×3 uint8 image, got {image.dtype} {image.shape}")
        height, width = size
        if image.shape[:2] != (height, width):
            resized = Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR)
            image = np.asarray(resized)
        array = (image.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))

    def predict(self, batch: torch.Tensor, urgent: bool = False) -> torch.Tensor:
        """One batched forward; the finest saliency map, sigmoid, min-max normalised per image."""
        if self.net is None:
            raise RuntimeError("InSPyReNet.predict called before setup()")
        with torch.inference_mode():
            logits = self.net.forward_inspyre(batch)["saliency"][-1]
            return normalize_per_image(torch.sigmoid(logits.float()))


#: The package's attention modules: their unnormalised ``bmm`` products overflow fp16
#: (plemeri/InSPyReNet#36 names both), so they run in fp32.
_FP32_MODULES = ("SICA", "SelfAttention")


def keep_attention_in_fp32(net: Any) -> None:
    """Run each attention module of ``net`` in fp32, whatever autocast is active.

    Its inputs are cast to fp32 and autocast is switched off inside it; the rest of the
    network (the Swin backbone, the convolutions) keeps the configured precision. The
    instance's ``forward`` is wrapped (the state dict is unchanged), so checkpoints load
    before or after.
    """
    for module in net.modules():
        wrapped = getattr(module.forward, "_cutq_fp32", False)
        if type(module).__name__ in _FP32_MODULES and not wrapped:
            module.forward = _in_fp32(module.forward)


def _in_fp32(forward: Any) -> Any:
    @functools.wraps(forward)
    def run(*args: Any) -> Any:
        device_type = next((a.device.type for a in args if isinstance(a, torch.Tensor)), "cpu")
        with torch.autocast(device_type=device_type, enabled=False):
            return forward(*(_widen(a) for a in args))

    run._cutq_fp32 = True  # type: ignore[attr-defined]
    return run


def _widen(value: Any) -> Any:
    """fp16/bf16 tensors → fp32; anything else (fp32, fp64, None) as it is."""
    if isinstance(value, torch.Tensor) and value.dtype in (torch.float16, torch.bfloat16):
        return value.float()
    return value


def normalize_per_image(saliency: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each N×1×h×w map to [0, 1] on its own (the package does the batch)."""
    low = saliency.amin(dim=(1, 2, 3), keepdim=True)
    high = saliency.amax(dim=(1, 2, 3), keepdim=True)
    return (saliency - low) / (high - low + NORM_EPS)


def build_net(mode: Mode, random_init: bool = False) -> Any:
    """The package's ``InSPyReNet_SwinB`` on the CPU, as ``Remover`` builds it.

    With ``random_init`` the weights are drawn with a fixed seed, then made numerically sane:
    with the package's init, BatchNorm running statistics of 0/1 let activations grow to
    ~1e10 (saturated masks, fp16 overflow). So the statistics are measured on one batch of
    noise and the output heads are damped, giving graded masks like a trained net's.
    """
    module = _import_inspyrenet_module()
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        torch.manual_seed(_RANDOM_SEED)
        # Swin's window attention calls torch.meshgrid without `indexing` (a UserWarning).
        warnings.filterwarnings("ignore", message=r"torch\.meshgrid", category=UserWarning)
        net = module.InSPyReNet_SwinB(
            depth=64, pretrained=False, base_size=list(STATIC_SIZES[mode]), threshold=None
        )
        if random_init:
            _calibrate_random_net(net)
    return net.eval()


def _calibrate_random_net(net: Any) -> None:
    """Set BatchNorm statistics from one noise batch and damp the saliency/Laplacian heads."""
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average: one batch sets the statistics exactly
    net.train()
    with torch.no_grad():
        net.forward_inspyre(torch.randn(2, 3, 64, 64))
        net.decoder.conv5.conv.weight.mul_(_RANDOM_HEAD_GAIN)
        for attention in (net.attention0, net.attention1, net.attention2):
            attention.conv_out4.bn.weight.mul_(_RANDOM_HEAD_GAIN)
            attention.conv_out4.bn.bias.mul_(_RANDOM_HEAD_GAIN)
    for norm in norms:
        norm.momentum = 0.1
    net.eval()


def _import_inspyrenet_module() -> ModuleType:
    """``transparent_background.InSPyReNet``, without running the package's ``__init__``.

    The package ``__init__`` imports its GUI and ``Remover`` (albumentations, gdown, wget, flet).
    When the package is not imported yet, a bare, unexecuted package module stands in while the
    submodule loads, and is removed afterwards so a later ``import transparent_background``
    still runs the real ``__init__``. ``sys.path`` is restored (the module appends its own
    directory, which would make its ``utils``/``gui`` importable as top-level names).
    """
    name = f"{_PACKAGE}.InSPyReNet"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("inspyrenet needs transparent-background: pip install 'cutq[inspyrenet]'")
    path_before = list(sys.path)
    stub = None
    if _PACKAGE not in sys.modules:
        stub = importlib.util.module_from_spec(spec)
        sys.modules[_PACKAGE] = stub
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # timm/kornia deprecation noise at import time
            return importlib.import_module(name)
    except ImportError as error:
        raise ConfigError(f"inspyrenet could not import its dependencies: {error}") from error
    finally:
        if stub is not None and sys.modules.get(_PACKAGE) is stub:
            del sys.modules[_PACKAGE]
        sys.path[:] = path_before
