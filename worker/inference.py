"""The runner: everything between a batch of CPU tensors and per-image 8-bit masks.

One thread owns it. It picks the device, moves batches there (pinned memory, non-blocking
copies, channels-last and fp16/bf16 autocast on CUDA), checks the model returned one map per
input, splits a batch in halves when CUDA runs out of memory, and upsamples each mask back to
its image's size (on the GPU when there is one). :meth:`Runner.warmup` proves the model works
at the configured shapes before the worker takes any job.

Models whose ``engine`` is not torch (onnxruntime on a CPU) get numpy arrays instead, and
this module then never imports torch: the masks are upsampled with the same bilinear rule in
numpy (:func:`resize_bilinear`).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import math
import sys
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cutq.core.contract import Resize
from cutq.core.errors import ConfigError, DeviceOutOfMemory, WarmupFailed
from cutq.worker.models.base import Model

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: Output rows upsampled at a time on the numpy path (bounds its scratch memory).
_ROWS_PER_CHUNK = 256


@functools.lru_cache(maxsize=1)
def cuda_present() -> bool:
    """Whether the CUDA driver sees a device, asked without importing torch (Linux: libcuda)."""
    if sys.platform != "linux":
        import torch

        return bool(torch.cuda.is_available())
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    count = ctypes.c_int(0)
    if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return False
    return count.value > 0


def pick_device(name: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; an explicit CUDA device must exist."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    return device


def pick_dtype(device: torch.device, precision: str) -> torch.dtype:
    import torch

    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    return torch.float16


class Runner:
    """Owns a model on a device and runs batches through it."""

    def __init__(self, model: Model, device: str = "auto", precision: str = "auto") -> None:
        self.model = model
        #: numpy arrays in and out (a model not run by torch); torch is then never imported.
        self.arrays = model.engine != "torch"
        self.device: Any
        self.dtype: Any
        if self.arrays:
            if device not in ("auto", "cpu"):
                raise ConfigError(
                    f"{model.name} on {model.engine} runs on the CPU, not {device!r} "
                    "(CUTQ_ENGINE=torch runs it on a GPU)"
                )
            if precision not in ("auto", "fp32"):
                raise ConfigError(f"{model.name} on {model.engine} runs in fp32, not {precision}")
            self.device, self.dtype, self.cuda = "cpu", "float32", False
        else:
            self.device = pick_device(device)
            self.dtype = pick_dtype(self.device, precision)
            self.cuda = self.device.type == "cuda"

    def setup(self) -> None:
        started = time.perf_counter()
        self.model.setup(self.device)
        if self.cuda:
            import torch

            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        log.info(
            "model %s %s ready on %s (%s, %s) in %.1fs",
            self.model.name,
            self.model.version,
            self.device,
            self.model.engine,
            str(self.dtype).removeprefix("torch."),
            time.perf_counter() - started,
        )

    def predict(self, tensors: Sequence[Any]) -> list[Any]:
        """Saliency maps (1×h×w, float32, on the device) for same-sized inputs, in order."""
        if self.arrays:
            return self._predict_arrays(tensors)
        import torch

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
        import torch

        batch = torch.stack(list(tensors))
        if self.cuda:
            batch = batch.pin_memory().to(self.device, non_blocking=True)
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), self._autocast():
            output = self.model.predict(batch)
        self._check_shape(tuple(output.shape), tuple(batch.shape))
        return list(output.float().unbind(0))

    def _predict_arrays(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        batch = arrays[0][None] if len(arrays) == 1 else np.stack(arrays)
        output = np.asarray(self.model.predict(batch), dtype=np.float32)
        self._check_shape(output.shape, batch.shape)
        return list(output)

    def _check_shape(self, got: tuple[int, ...], batch: tuple[int, ...]) -> None:
        expected = (batch[0], 1, batch[2], batch[3])
        if got != expected:
            raise RuntimeError(
                f"{self.model.name}.predict returned shape {got} for a batch of "
                f"shape {batch}; expected {expected}: one 1-channel map per input, "
                "at the input's size"
            )

    def to_mask(
        self, saliency: Any, height: int, width: int, threshold: float | None = None
    ) -> np.ndarray:
        """One saliency map → an 8-bit mask at the image's own size."""
        if isinstance(saliency, np.ndarray):
            return mask_from_array(saliency[0], height, width, threshold)
        import torch
        import torch.nn.functional as F

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
            import torch

            torch.cuda.synchronize(self.device)
        return time.perf_counter() - started

    def _check_warmup(self, maps: list[Any], mask: np.ndarray, image: np.ndarray) -> None:
        values = np.stack([_to_numpy(m) for m in maps])
        if not bool(np.isfinite(values).all()):
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
        import torch

        if self.dtype == torch.float32:
            yield
        else:
            with torch.autocast(device_type=self.device.type, dtype=self.dtype):
                yield


def _to_numpy(saliency: Any) -> np.ndarray:
    if isinstance(saliency, np.ndarray):
        return saliency
    return saliency.detach().float().cpu().numpy()  # type: ignore[no-any-return]


def _taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of bilinear resampling along one axis, the way
    ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` computes them:
    half-pixel centres, clamped at 0, no antialiasing when shrinking."""
    scale = np.float32(size_in / size_out)
    source = (np.arange(size_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    source = np.maximum(source, np.float32(0.0))
    lower = np.minimum(source.astype(np.int64), size_in - 1)
    upper = np.minimum(lower + 1, size_in - 1)
    weight = (source - lower).astype(np.float32)
    return lower, upper, weight


def resize_bilinear(saliency: np.ndarray, height: int, width: int) -> Iterator[np.ndarray]:
    """``saliency`` (h×w float32) resized to ``height`` × ``width``, yielded in row chunks
    of at most ``_ROWS_PER_CHUNK`` rows (so a 50 MP mask never needs 50 MP of floats)."""
    rows0, rows1, row_w = _taps(saliency.shape[0], height)
    cols0, cols1, col_w = _taps(saliency.shape[1], width)
    for start in range(0, height, _ROWS_PER_CHUNK):
        stop = min(start + _ROWS_PER_CHUNK, height)
        w = row_w[start:stop, None]
        rows = saliency[rows0[start:stop]] * (1 - w) + saliency[rows1[start:stop]] * w
        yield rows[:, cols0] * (1 - col_w) + rows[:, cols1] * col_w


def mask_from_array(
    saliency: np.ndarray, height: int, width: int, threshold: float | None = None
) -> np.ndarray:
    """The numpy twin of :meth:`Runner.to_mask`'s torch path: resize, clamp, threshold, 8-bit."""
    saliency = np.asarray(saliency, dtype=np.float32)
    chunks = (
        resize_bilinear(saliency, height, width)
        if saliency.shape != (height, width)
        else iter([saliency])
    )
    mask = np.empty((height, width), dtype=np.uint8)
    row = 0
    for chunk in chunks:
        values = np.clip(chunk, 0.0, 1.0)
        if threshold is not None:
            values = (values >= threshold).astype(np.float32)
        values = values * np.float32(255.0) + np.float32(0.5)
        mask[row : row + len(values)] = values.astype(np.uint8)
        row += len(values)
    return mask


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
