"""Which device the worker runs on, whether a GPU it sees is usable, and the CUDA-only calls.

* :func:`cuda_present` asks the driver (libcuda) whether it sees a device, without torch.
* :func:`gpu_status` adds what torch says: a GPU can be present yet unusable, e.g. a driver too
  old for the torch wheel's CUDA version. :func:`gpu_usable` is what ``device=auto`` follows,
  and it says why once, in a warning that names the driver and the wheel's CUDA version.
* :class:`Backend` is everything the runner does differently on a GPU: moving batches there,
  cuDNN autotuning on or off, waiting for the GPU to finish. On a CPU every call is a no-op;
  :class:`CudaBackend` is the real one; tests substitute a recording one.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cutq.core.errors import ConfigError
from cutq.worker import torch_builds

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

_PROC_DRIVER_VERSION = Path("/proc/driver/nvidia/version")


@functools.lru_cache(maxsize=1)
def cuda_present() -> bool:
    """Whether the CUDA driver sees a device, asked without importing torch (Linux: libcuda)."""
    if sys.platform != "linux":
        import torch

        return bool(torch.cuda.is_available())
    driver = _libcuda()
    if driver is None:
        return False
    count = ctypes.c_int(0)
    if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return False
    return count.value > 0


@dataclass(frozen=True)
class GpuStatus:
    """What the driver and torch each say about the GPU."""

    present: bool  # the driver sees a device
    usable: bool  # torch can run on it
    driver: str | None = None  # "535.216.03"
    driver_cuda: str | None = None  # the newest CUDA the driver runs: "12.2"
    torch_version: str | None = None
    torch_cuda: str | None = None  # the wheel's CUDA version: "12.6"; None: a CPU-only build

    def problem(self) -> str | None:
        """Why a present GPU is unusable, naming the driver and the wheel; None if it is fine."""
        if not self.present:
            return "no CUDA device is visible to the NVIDIA driver"
        if self.usable:
            return None
        driver = f"NVIDIA driver {self.driver or '(version unknown)'}"
        if self.driver_cuda:
            driver += f" (runs CUDA ≤ {self.driver_cuda})"
        image = torch_builds.IMAGE_BUILD
        fix = f"install torch=={image.torch} from {image.index_url} (worker/torch_builds.py)"
        if self.torch_cuda is None:
            return f"{driver} sees a GPU, but torch {self.torch_version} is a CPU-only build: {fix}"
        need = torch_builds.min_driver_for(self.torch_cuda)
        return (
            f"{driver} sees a GPU, but torch {self.torch_version} is built for CUDA "
            f"{self.torch_cuda}, which needs driver ≥ {need}: {fix}, or update the driver"
        )


@functools.lru_cache(maxsize=1)
def gpu_status() -> GpuStatus:
    """The GPU as the driver and torch see it (torch is imported only when a GPU is present)."""
    if not cuda_present():
        return GpuStatus(present=False, usable=False)
    import torch

    return GpuStatus(
        present=True,
        usable=bool(torch.cuda.is_available()),
        driver=driver_version(),
        driver_cuda=driver_cuda_version(),
        torch_version=torch.__version__,
        torch_cuda=torch.version.cuda,
    )


@functools.lru_cache(maxsize=1)
def gpu_usable() -> bool:
    """Whether the worker can run on the GPU; warns once when one is present but unusable."""
    status = gpu_status()
    if status.present and not status.usable:
        log.warning("GPU unusable, running on the CPU: %s", status.problem())
    return status.usable


def pick_device(name: str) -> torch.device:
    """``auto`` → CUDA when usable, else CPU; an explicit CUDA device must be usable."""
    import torch

    if name == "auto":
        return torch.device("cuda" if gpu_usable() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not usable: {_why_not()}")
    return device


def _why_not() -> str:
    status = gpu_status()
    if status.present:
        return status.problem() or "torch.cuda.is_available() is False"
    import torch

    wheel = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    return f"the NVIDIA driver sees no GPU (torch {torch.__version__}, {wheel})"


def driver_version() -> str | None:
    """The kernel module's version ("535.216.03"), from /proc; None when unreadable."""
    try:
        text = _PROC_DRIVER_VERSION.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    match = re.search(r"Kernel Module\s+(?:for \S+\s+)?(\d+\.\d+(?:\.\d+)?)", text)
    return match.group(1) if match else None


def driver_cuda_version() -> str | None:
    """The newest CUDA version the driver runs ("12.2"), from libcuda; None when unknown."""
    driver = _libcuda()
    if driver is None:
        return None
    version = ctypes.c_int(0)
    if driver.cuDriverGetVersion(ctypes.byref(version)) != 0 or version.value <= 0:
        return None
    return f"{version.value // 1000}.{version.value % 1000 // 10}"


def _libcuda() -> Any:
    try:
        return ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None


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
