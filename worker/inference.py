"""The runner: everything between a batch of CPU tensors and per-image 8-bit masks.

One thread owns it. It picks the device, moves batches there (pinned memory, non-blocking
copies, channels-last and fp16/bf16 autocast on CUDA), checks the model returned one map per
input, splits a batch in halves when CUDA runs out of memory, and upsamples each mask back to
its image's size (on the GPU when there is one). :meth:`Runner.warmup` proves the model works
at the configured shapes before the worker takes any job.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from cutq.core.contract import Resize
from cutq.core.errors import ConfigError, DeviceOutOfMemory, WarmupFailed
from cutq.worker.models.base import Model

log = logging.getLogger(__name__)


def pick_device(name: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; an explicit CUDA device must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    return device


def pick_dtype(device: torch.device, precision: str) -> torch.dtype:
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    return torch.float16


class Runner:
    """Owns a model on a device and runs batches through it."""

    def __init__(self, model: Model, device: str = "auto", precision: str = "auto") -> None:
        self.model = model
        self.device = pick_device(device)
        self.dtype = pick_dtype(self.device, precision)
        self.cuda = self.device.type == "cuda"

    def setup(self) -> None:
        started = time.perf_counter()
        self.model.setup(self.device)
        if self.cuda:
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        log.info(
            "model %s %s ready on %s (%s) in %.1fs",
            self.model.name,
            self.model.version,
            self.device,
            str(self.dtype).removeprefix("torch."),
            time.perf_counter() - started,
        )

    def predict(self, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Saliency maps (1×h×w, float32, on the device) for same-sized inputs, in order."""
        try:
            return self._predict(tensors)
        except torch.cuda.OutOfMemoryError:
            if len(tensors) == 1:
                raise DeviceOutOfMemory("out of device memory for a batch of one") from None
        # Split outside the except block: inside it, the traceback would keep the failed
        # attempt's batch and activations alive while the halves run.
        torch.cuda.empty_cache()
        half = len(tensors) // 2
        log.warning("CUDA out of memory on a batch of %d; splitting", len(tensors))
        return self.predict(tensors[:half]) + self.predict(tensors[half:])

    def _predict(self, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        batch = torch.stack(list(tensors))
        if self.cuda:
            batch = batch.pin_memory().to(self.device, non_blocking=True)
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), self._autocast():
            output = self.model.predict(batch)
        expected = (len(tensors), 1, batch.shape[2], batch.shape[3])
        if tuple(output.shape) != expected:
            raise RuntimeError(
                f"{self.model.name}.predict returned shape {tuple(output.shape)} for a batch of "
                f"shape {tuple(batch.shape)}; expected {expected}: one 1-channel map per input, "
                "at the input's size"
            )
        return list(output.float().unbind(0))

    def to_mask(
        self, saliency: torch.Tensor, height: int, width: int, threshold: float | None = None
    ) -> np.ndarray:
        """One saliency map → an 8-bit mask at the image's own size."""
        with torch.inference_mode():
            if saliency.shape[-2:] != (height, width):
                saliency = F.interpolate(
                    saliency[None], size=(height, width), mode="bilinear", align_corners=False
                )[0]
            saliency = saliency[0].clamp(0.0, 1.0)  # a copy: never touch the caller's map
            if threshold is not None:
                saliency = (saliency >= threshold).float()
            return saliency.mul_(255.0).add_(0.5).to(torch.uint8).cpu().numpy()

    def warmup(
        self,
        resize: Resize,
        batch_sizes: Sequence[int],
        image_sizes: Sequence[tuple[int, int]] = ((480, 640),),
    ) -> float:
        """Run real shapes through the model and check what comes out; return seconds taken.

        The probe is a bright disc on a dark background: any genuine model must return finite
        values in [0, 1] at the right shape, and (unless its weights are random) find the disc.
        Raises :class:`WarmupFailed` otherwise: a broken instance must never take traffic.
        """
        started = time.perf_counter()
        for height, width in image_sizes:
            image = _disc_image(height, width)
            size = self.model.input_size(height, width, resize)
            if min(size) <= 0:
                raise WarmupFailed(f"{self.model.name}: input size {size} for {width}×{height}")
            tensor = self.model.preprocess(image, size)
            for batch_size in batch_sizes:
                maps = self.predict([tensor] * batch_size)
                mask = self.to_mask(maps[-1], height, width)
                self._check_warmup(maps, mask, image)
        if self.cuda:
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - started

    def _check_warmup(self, maps: list[torch.Tensor], mask: np.ndarray, image: np.ndarray) -> None:
        values = torch.stack(maps)
        if not bool(torch.isfinite(values).all()):
            raise WarmupFailed(f"{self.model.name}: warm-up produced NaN or infinite values")
        if values.min() < -1e-3 or values.max() > 1 + 1e-3:
            raise WarmupFailed(f"{self.model.name}: warm-up values outside [0, 1]")
        if mask.shape != image.shape[:2]:
            raise WarmupFailed(f"{self.model.name}: mask {mask.shape} for image {image.shape}")
        if self.model.version == "random":
            return
        inside = image[:, :, 0] > 128
        if mask[inside].mean() <= mask[~inside].mean() + 64:
            raise WarmupFailed(
                f"{self.model.name}: warm-up did not find the subject (mean alpha inside "
                f"{mask[inside].mean():.0f}, outside {mask[~inside].mean():.0f}); wrong weights?"
            )

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        if self.dtype == torch.float32:
            yield
        else:
            with torch.autocast(device_type=self.device.type, dtype=self.dtype):
                yield


def _disc_image(height: int, width: int) -> np.ndarray:
    """A warm, bright disc on a cool, dark, slightly textured background."""
    yy, xx = np.mgrid[0:height, 0:width]
    radius = min(height, width) * 0.3
    inside = (yy - height / 2) ** 2 + (xx - width / 2) ** 2 <= radius**2
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[...] = (30, 40, 60)
    image[(yy // 16 + xx // 16) % 2 == 0] = (36, 46, 70)
    image[inside] = (235, 200, 60)
    return image


def batch_shapes(max_batch: int) -> list[int]:
    """Batch sizes to warm up: 1 and the largest (powers of two in between on CUDA)."""
    sizes = {1, max_batch}
    sizes.update(2**k for k in range(1, int(math.log2(max(max_batch, 1))) + 1))
    return sorted(size for size in sizes if size <= max_batch)
