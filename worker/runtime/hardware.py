"""What this process runs on, resolved once at start-up and handed to whoever needs it.

:meth:`Platform.detect` asks the CUDA driver how many devices it sees (on Linux through
libcuda, without importing torch) and, when it sees one, what torch says of it: a GPU can be
present yet unusable, e.g. a driver too old for the torch wheel's CUDA version. Such a GPU is
named once, in a warning with the driver and the wheel's CUDA version; ``device=auto`` then
gets CPU defaults, and an explicit CUDA device a :class:`~cutq.core.errors.ConfigError`
(:func:`cutq.worker.runtime.device.pick_device`). A :class:`~cutq.worker.config.WorkerConfig`
carries
the result as a plain value: building a config never probes the hardware.
"""

from __future__ import annotations

import ctypes
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cutq.worker.runtime import torch_builds

log = logging.getLogger(__name__)

_PROC_DRIVER_VERSION = Path("/proc/driver/nvidia/version")


@dataclass(frozen=True)
class GpuStatus:
    """What the driver and torch each say about the GPU."""

    present: bool  # the driver sees a device
    usable: bool  # torch can run on it
    driver: str | None = None  # "535.216.03"
    driver_cuda: str | None = None  # the newest CUDA the driver runs: "12.2"
    torch_version: str | None = None  # None: torch is not installed
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
        fix = (
            f"install torch=={image.torch} from {image.index_url} (worker/runtime/torch_builds.py)"
        )
        if self.torch_version is None:
            return f"{driver} sees a GPU, but torch is not installed: {fix}"
        if self.torch_cuda is None:
            return f"{driver} sees a GPU, but torch {self.torch_version} is a CPU-only build: {fix}"
        need = torch_builds.min_driver_for(self.torch_cuda)
        return (
            f"{driver} sees a GPU, but torch {self.torch_version} is built for CUDA "
            f"{self.torch_cuda}, which needs driver ≥ {need}: {fix}, or update the driver"
        )


@dataclass(frozen=True)
class Platform:
    """The accelerators this process can use: ``gpus`` CUDA devices the driver sees (0: CPU
    only) and, where detected, what torch says of them (None: taken as usable)."""

    gpus: int = 0
    gpu: GpuStatus | None = None

    @property
    def has_gpu(self) -> bool:
        """A GPU the worker can run on: what ``device=auto`` follows."""
        return self.gpus > 0 and (self.gpu is None or self.gpu.usable)

    def problem(self) -> str | None:
        """Why there is no usable GPU (naming the driver and the wheel); None if there is."""
        if self.gpu is not None:
            return self.gpu.problem()
        return None if self.gpus > 0 else "no CUDA device is visible to the NVIDIA driver"

    @classmethod
    def detect(cls) -> Platform:
        """Ask the CUDA driver, and torch when the driver sees a device (once, at start-up);
        a present but unusable GPU is named in a warning."""
        gpus = _cuda_devices()
        if gpus == 0:
            return cls(gpus=0)
        status = _gpu_status()
        if not status.usable:
            log.warning("GPU unusable, running on the CPU: %s", status.problem())
        return cls(gpus=gpus, gpu=status)


CPU_ONLY = Platform(gpus=0)


def _cuda_devices() -> int:
    if sys.platform != "linux":
        try:
            import torch
        except ImportError:
            return 0
        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    driver = _libcuda()
    if driver is None:
        return 0
    count = ctypes.c_int(0)
    if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


def _gpu_status() -> GpuStatus:
    """What torch says of the GPU the driver sees (torch imported only then)."""
    try:
        import torch
    except ImportError:  # an onnxruntime-only install
        return GpuStatus(
            present=True,
            usable=False,
            driver=driver_version(),
            driver_cuda=driver_cuda_version(),
        )
    return GpuStatus(
        present=True,
        usable=bool(torch.cuda.is_available()),
        driver=driver_version(),
        driver_cuda=driver_cuda_version(),
        torch_version=torch.__version__,
        torch_cuda=torch.version.cuda,
    )


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
