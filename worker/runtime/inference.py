"""The runner: everything between a batch of CPU tensors and per-image 8-bit masks.

One thread owns it. It picks the device, moves batches there (pinned memory, non-blocking
copies, channels-last and fp16/bf16 autocast on CUDA), checks the model returned one finite
map per input, splits a batch in halves when CUDA runs out of memory, and upsamples each mask
back to its image's size (on the GPU when there is one). :meth:`Runner.warmup` proves the
model works at the shapes the worker will run before it takes any job.

On a GPU:

* ``precision="auto"`` is the model's :attr:`~cutq.worker.models.base.Model.gpu_precision`,
  chosen by measured mask agreement with fp32 (docs/performance.md, "GPU"); on a CPU it is fp32.
* a map with NaN or infinite values is computed again in fp32, once; an image whose map is
  still not finite fails with ``model_output_not_finite``, never a blank result.
* cuDNN autotunes only the shapes warm-up ran (each batch size up to ``max_batch`` at the
  warm-up sizes); any other shape runs on cuDNN's heuristics, so a new shape never stalls
  the model thread or spikes memory.
* :meth:`Runner.run` waits for the GPU before it returns: its time is the GPU's time.

Models whose ``engine`` is not torch (onnxruntime, on the CPU or CUDA's execution provider)
get numpy arrays instead, and
this module then never imports torch: the masks are upsampled with the same bilinear rule in
numpy (:func:`resize_bilinear`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cutq.core.contract import Resize
from cutq.core.errors import (
    ConfigError,
    DeviceOutOfMemory,
    ModelOutputNotFinite,
    WarmupFailed,
)
from cutq.worker.models.base import Model
from cutq.worker.runtime.device import Backend, CudaBackend, pick_device
from cutq.worker.runtime.hardware import CPU_ONLY, Platform
from cutq.worker.runtime.masks import mask_from_array, resize_bilinear

if TYPE_CHECKING:
    import torch

__all__ = [
    "Prediction",
    "Runner",
    "batch_shapes",
    "mask_from_array",
    "resize_bilinear",
]

log = logging.getLogger(__name__)

#: Image sizes (h, w) warm-up runs in dynamic resize mode on a GPU: the common photo shapes
#: (4:3 and 16:9 either way, square), so their model input sizes are autotuned before any job.
DYNAMIC_WARMUP_SIZES = ((3000, 4000), (4000, 3000), (1080, 1920), (1920, 1080), (2000, 2000))


def pick_dtype(device: torch.device, precision: str, gpu_precision: str = "fp32") -> torch.dtype:
    """The autocast dtype: ``auto`` is fp32 on a CPU and the model's ``gpu_precision`` on CUDA."""
    import torch

    if precision == "auto":
        precision = gpu_precision if device.type == "cuda" else "fp32"
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


@dataclass
class Prediction:
    """What one :meth:`Runner.run` produced: a map per input, or that input's error."""

    maps: list[Any]
    #: input index → why it has no map (its map was not finite, also in fp32)
    failed: dict[int, Exception] = field(default_factory=dict)
    fp32_reruns: int = 0  # (sub-)batches computed again in fp32 because of non-finite values
    fp32_rerun_ms: float = 0.0


class Runner:
    """Owns a model on a device and runs batches through it."""

    def __init__(
        self,
        model: Model,
        device: str = "auto",
        precision: str = "auto",
        backend: Backend | None = None,
        platform: Platform = CPU_ONLY,
    ) -> None:
        self.model = model
        #: numpy arrays in and out (a model not run by torch); torch is then never imported.
        self.arrays = model.engine != "torch"
        self.device: Any
        self.dtype: Any
        if self.arrays:  # the model was built for its place (cutq.worker.models.create_model)
            wanted = str(device) if ":" in str(device) else f"{device}:0"
            if wanted.startswith("cuda") and model.onnx_device != wanted:
                raise ConfigError(
                    f"{model.name} on {model.engine} was built for {model.onnx_device}, not "
                    f"{device!r} (build it with onnx_engine.Placement.for_device({device!r}, …))"
                )
            if precision not in ("auto", "fp32"):
                raise ConfigError(f"{model.name} on {model.engine} runs in fp32, not {precision}")
            # self.cuda: torch's CUDA (pinned memory, autocast); onnxruntime moves its own data.
            self.device, self.dtype, self.cuda = model.onnx_device, "float32", False
        else:
            self.device = pick_device(device, platform)  # auto: the platform found at start-up
            self.dtype = pick_dtype(self.device, precision, model.gpu_precision)
            self.cuda = self.device.type == "cuda"
        self.backend = backend or (CudaBackend(self.device) if self.cuda else Backend())
        self.fp32_reruns = 0  # since start, for logs
        self.warmup_s = 0.0
        self._tuned: set[tuple[int, ...]] = set()  # batch shapes autotuned during warm-up
        self._warming = False

    def setup(self) -> None:
        started = time.perf_counter()
        self.model.setup(self.device)
        if self.arrays:  # onnxruntime may have had to fall back to the CPU (auto only)
            self.device = self.model.onnx_device
        self.backend.configure()
        terms = self.model.terms()
        log.info(
            "model %s %s ready on %s (%s, %s) in %.1fs; licence %s, commercial use %s",
            self.model.name,
            self.model.version,
            self.device,
            self.model.engine,
            str(self.dtype).removeprefix("torch."),
            time.perf_counter() - started,
            terms["license"],
            terms["commercial_use"],
        )
        if self.model.commercial_use is False:
            log.warning(
                "model %s: its licence (%s) does not allow commercial use",
                self.model.name,
                terms["license"],
            )

    def predict(self, tensors: Sequence[Any]) -> list[Any]:
        """Saliency maps (1×h×w, float32, on the device) for same-sized inputs, in order.

        Raises :class:`ModelOutputNotFinite` if any input's map is not finite (see :meth:`run`).
        """
        prediction = self.run(tensors)
        if prediction.failed:
            raise next(iter(prediction.failed.values()))
        return prediction.maps

    def run(self, tensors: Sequence[Any], urgent: bool = False) -> Prediction:
        """Maps for same-sized inputs, in order; the device has finished when this returns.

        ``urgent`` (the lane policy, :mod:`cutq.worker.lane_policy`) goes on to the model's
        ``predict``: an onnxruntime model runs it on its wide session. A torch model runs one
        stream, where nothing runs beside a forward, so it has nothing to choose."""
        prediction = Prediction([])
        if self.arrays:
            prediction.maps = self._predict_arrays(tensors, urgent)
            finite = [bool(np.isfinite(m).all()) for m in prediction.maps]
            self._record_failures(prediction, finite, 0)
        else:
            prediction.maps = self._predict_split(tensors, prediction, 0)
        return prediction

    def _predict_split(
        self, tensors: Sequence[Any], prediction: Prediction, offset: int
    ) -> list[Any]:
        import torch

        try:
            return self._predict(tensors, prediction, offset)
        except torch.cuda.OutOfMemoryError:
            if len(tensors) == 1:
                raise DeviceOutOfMemory("out of device memory for a batch of one") from None
        # Split outside the except block: inside it, the traceback would keep the failed
        # attempt's batch and activations alive while the halves run.
        self.backend.release_cached()
        half = len(tensors) // 2
        log.warning("CUDA out of memory on a batch of %d; splitting", len(tensors))
        first = self._predict_split(tensors[:half], prediction, offset)
        return first + self._predict_split(tensors[half:], prediction, offset + half)

    def _predict(
        self, tensors: Sequence[torch.Tensor], prediction: Prediction, offset: int
    ) -> list[torch.Tensor]:
        import torch

        batch = self.backend.to_device(torch.stack(list(tensors)))
        shape = tuple(batch.shape)
        if self._warming:
            self._tuned.add(shape)
        self.backend.autotune(shape in self._tuned)
        output = self._forward(batch, self.dtype)
        self._check_shape(tuple(output.shape), shape)
        self.backend.synchronize()  # the GPU's time counts as infer, not as the next stage's
        finite = _finite_per_item(output)
        if not all(finite) and self.dtype != torch.float32:
            started = time.perf_counter()
            log.warning(
                "%s: NaN or infinite values in %s for %d of %d image(s); computing the batch "
                "again in fp32",
                self.model.name,
                str(self.dtype).removeprefix("torch."),
                finite.count(False),
                len(finite),
            )
            output = self._forward(batch, torch.float32)
            self.backend.synchronize()
            finite = _finite_per_item(output)
            prediction.fp32_reruns += 1
            prediction.fp32_rerun_ms += (time.perf_counter() - started) * 1000.0
            self.fp32_reruns += 1
        self._record_failures(prediction, finite, offset)
        return list(output.float().unbind(0))

    def _record_failures(self, prediction: Prediction, finite: list[bool], offset: int) -> None:
        for index, ok in enumerate(finite):
            if not ok:
                prediction.failed[offset + index] = ModelOutputNotFinite(
                    f"{self.model.name} returned NaN or infinite values for this image"
                    + ("" if str(self.dtype).endswith("float32") else " (also in fp32)")
                )

    def _forward(self, batch: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        import torch

        with torch.inference_mode(), self._autocast(dtype):
            return self.model.predict(batch)  # type: ignore[no-any-return]

    def _predict_arrays(self, arrays: Sequence[np.ndarray], urgent: bool) -> list[np.ndarray]:
        batch = arrays[0][None] if len(arrays) == 1 else np.stack(arrays)
        output = np.asarray(self.model.predict(batch, urgent=urgent), dtype=np.float32)
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
        image_sizes: Sequence[tuple[int, int]] | None = None,
    ) -> float:
        """Run real shapes through the model and check what comes out; return seconds taken.

        ``image_sizes`` defaults to one 480×640 photo, and on a GPU in dynamic mode to
        :data:`DYNAMIC_WARMUP_SIZES`; each distinct model input size runs at every batch size
        in ``batch_sizes``, and only these shapes are autotuned by cuDNN.

        The probe is a bright disc on a dark background: any genuine model must return finite
        values in [0, 1] at the right shape, at the configured precision (not by falling back
        to fp32), and (unless its weights are random) find the disc. Raises
        :class:`WarmupFailed` otherwise: a broken instance must never take traffic.
        """
        if image_sizes is None:
            dynamic_gpu = self.cuda and resize == "dynamic"
            image_sizes = DYNAMIC_WARMUP_SIZES if dynamic_gpu else ((480, 640),)
        started = time.perf_counter()
        seen: set[tuple[int, int]] = set()
        self._warming = True
        try:
            for height, width in image_sizes:
                size = self.model.input_size(height, width, resize)
                if min(size) <= 0:
                    raise WarmupFailed(f"{self.model.name}: input size {size} for {width}×{height}")
                if size in seen:
                    continue
                seen.add(size)
                image = _disc_image(height, width)
                tensor = self.model.preprocess(image, size)
                for batch_size in batch_sizes:
                    self._warm_one([tensor] * batch_size, image)
        finally:
            self._warming = False
        self.backend.synchronize()
        self.warmup_s = time.perf_counter() - started
        return self.warmup_s

    def _warm_one(self, tensors: list[Any], image: np.ndarray) -> None:
        prediction = self.run(tensors)
        precision = str(self.dtype).removeprefix("torch.")
        if prediction.fp32_reruns:
            raise WarmupFailed(
                f"{self.model.name}: warm-up produced NaN or infinite values in {precision} "
                "(fp32 was fine): set CUTQ_PRECISION=fp32 or bf16"
            )
        if prediction.failed:
            raise WarmupFailed(f"{self.model.name}: warm-up produced NaN or infinite values")
        height, width = image.shape[:2]
        mask = self.to_mask(prediction.maps[-1], height, width)
        self._check_warmup(prediction.maps, mask, image)

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
    def _autocast(self, dtype: torch.dtype) -> Iterator[None]:
        import torch

        if dtype == torch.float32:
            yield
        else:
            with torch.autocast(device_type=self.device.type, dtype=dtype):
                yield


def _finite_per_item(output: torch.Tensor) -> list[bool]:
    """Per batch item: are all its values finite? (One small device → host copy.)"""
    import torch

    return [bool(ok) for ok in torch.isfinite(output).flatten(1).all(dim=1).tolist()]


def _to_numpy(saliency: Any) -> np.ndarray:
    if isinstance(saliency, np.ndarray):
        return saliency
    return saliency.detach().float().cpu().numpy()  # type: ignore[no-any-return]


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
    """Batch sizes to warm up on a GPU: every size from 1 to ``max_batch``.

    The batcher closes a batch at any size up to ``max_batch``, and cuDNN autotunes each new
    batch shape; shapes warm-up did not run are not autotuned (cuDNN's heuristics instead).
    """
    return list(range(1, max(max_batch, 1) + 1))
