"""What this process runs on, resolved once at start-up and handed to whoever needs it.

:meth:`Platform.detect` asks the CUDA driver how many devices it sees (on Linux through
libcuda, without importing torch). A :class:`~cutq.worker.config.WorkerConfig` carries the
result as a plain value: building a config never probes the hardware.
"""

from __future__ import annotations

import ctypes
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Platform:
    """The accelerators this process can use: ``gpus`` CUDA devices (0: CPU only)."""

    gpus: int = 0

    @property
    def has_gpu(self) -> bool:
        return self.gpus > 0

    @classmethod
    def detect(cls) -> Platform:
        """Ask the CUDA driver (once, at start-up)."""
        return cls(gpus=_cuda_devices())


CPU_ONLY = Platform(gpus=0)


def _cuda_devices() -> int:
    if sys.platform != "linux":
        try:
            import torch
        except ImportError:
            return 0
        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value
