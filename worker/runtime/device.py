"""Which device the runner uses, and the CUDA-only calls.

* :func:`pick_device` follows the platform found once at start-up
  (:class:`~cutq.worker.runtime.hardware.Platform`): ``auto`` is CUDA only when a GPU is present
  *and*
  usable; an explicit CUDA device on an unusable one is a ConfigError naming the driver and the
  torch wheel's CUDA version.
* :class:`Backend` is everything the runner does differently on a GPU: moving batches there,
  cuDNN autotuning on or off, waiting for the GPU to finish. On a CPU every call is a no-op;
  :class:`CudaBackend` is the real one; tests substitute a recording one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cutq.core.errors import ConfigError
from cutq.worker.runtime.hardware import CPU_ONLY, Platform

if TYPE_CHECKING:
    import torch


def pick_device(name: str, platform: Platform = CPU_ONLY) -> torch.device:
    """``auto`` → CUDA when ``platform`` has a usable GPU, else CPU; an explicit CUDA device
    must be usable."""
    import torch

    if name == "auto":
        return torch.device("cuda" if platform.has_gpu else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not usable: {_why_not(platform)}")
    return device


def _why_not(platform: Platform) -> str:
    if platform.gpus > 0:
        return platform.problem() or "torch.cuda.is_available() is False"
    import torch

    wheel = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    return f"the NVIDIA driver sees no GPU (torch {torch.__version__}, {wheel})"


class Backend:
    """The runner's device-specific calls; on a CPU, all of them do nothing."""

    def configure(self) -> None:
        """Once, after the model is on the device."""

    def to_device(self, batch: torch.Tensor) -> torch.Tensor:
        return batch

    def autotune(self, enabled: bool) -> None:
        """Let cuDNN benchmark convolution algorithms for the shapes that follow."""

    def synchronize(self) -> None:
        """Return once the device has finished the work queued so far."""

    def release_cached(self) -> None:
        """Hand cached, unused device memory back (after an out-of-memory error)."""


class CudaBackend(Backend):
    """One CUDA device: pinned, non-blocking, channels-last copies; cuDNN; synchronisation."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def configure(self) -> None:
        import torch

        # Autotuning is switched on per batch (Runner): only for the shapes warm-up ran.
        torch.backends.cudnn.benchmark = False
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    def to_device(self, batch: torch.Tensor) -> torch.Tensor:
        import torch

        batch = batch.pin_memory().to(self.device, non_blocking=True)
        return batch.contiguous(memory_format=torch.channels_last)

    def autotune(self, enabled: bool) -> None:
        import torch

        torch.backends.cudnn.benchmark = enabled

    def synchronize(self) -> None:
        import torch

        torch.cuda.synchronize(self.device)

    def release_cached(self) -> None:
        import torch

        torch.cuda.empty_cache()
