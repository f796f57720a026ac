"""The one table of onnxruntime-gpu builds: which CUDA each links, which drivers run it.

Beside :mod:`cutq.worker.runtime.torch_builds` (whose driver rules it uses) and, like it, plain
data:
no onnxruntime import. ``tests/unit/test_onnx_builds.py`` checks that the ``gpu-onnx`` extra
pins :data:`IMAGE_BUILD`, a row that Cloud Run's L4 driver (535, CUDA 12.2) runs, and that the
CUDA libraries that extra brings are the CUDA 12 ones that row links.

How the rows were read (``pip download --no-deps onnxruntime-gpu==X``, then
``readelf -d onnxruntime/capi/libonnxruntime_providers_cuda.so`` for its NEEDED libraries,
``onnxruntime/capi/build_and_package_info.py`` for ``cuda_version``, and the wheel's METADATA
for what its ``cuda``/``cudnn`` extras install), cp311 manylinux x86-64 wheels, 2026-12-07:

=========  ============  ======================================  ===========================
release    cuda_version  NEEDED (CUDA libraries)                 ``cuda`` extra installs
=========  ============  ======================================  ===========================
1.23.2     12.2          libcudart.so.12 libcublas(Lt).so.12     nvidia-cuda-runtime-cu12 …
                         libcufft.so.11 libcurand.so.10
                         libcudnn.so.9
1.24.4     12.8          (the same as 1.23.2)                    nvidia-cuda-runtime-cu12 …
1.25.1     12.8          (the same)                              nvidia-cuda-runtime-cu12 …
1.26.0     12.8          (the same)                              nvidia-cuda-runtime-cu12 …
1.27.0     13.0          libcudart.so.13 libcublas(Lt).so.13     nvidia-cuda-runtime-cu13 …
                         libcufft.so.12 libcudnn.so.9 libcuda.so.1
1.28.0 …   13.0          libcudart.so.13 libcublas(Lt).so.13     nvidia-cuda-runtime ~=13.0
1.31.1                   libcurand.so.10 libcuda.so.1            (no -cu13 suffix)
=========  ============  ======================================  ===========================

So 1.26.0 is the newest CUDA 12 build, and the pin: NVIDIA's minor-version compatibility runs
a CUDA 12.x build (12.8 here) on any driver of the 525 branch or later, Cloud Run's 535
included; 1.27 and later need a CUDA 13 driver (≥ 580). A CUDA 13 driver runs both (a newer
driver runs older CUDA majors). The cuDNN 9 and cuBLAS libraries come from the nvidia-*-cu12
wheels the pin's ``cuda`` and ``cudnn`` extras install (nvidia-cudnn-cu12 brings
nvidia-cublas-cu12); the worker loads them through ``onnxruntime.preload_dlls``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cutq.worker.runtime.torch_builds import (
    CudaBuild,
    driver_runs,
)


@dataclass(frozen=True)
class OrtBuild(CudaBuild):
    """One onnxruntime-gpu release on PyPI and the CUDA it was built for and links."""

    version: str
    cuda: str  # build_and_package_info.cuda_version, "12.8"
    cudart: str  # the libcudart soname's major version it links ("12")
    runtime_wheel: str  # what its `cuda` extra installs for the CUDA runtime

    def runs_on(self, driver_cuda: str) -> bool:
        """Whether a driver that reports CUDA ``driver_cuda`` ("12.2", "13.0") runs it."""
        return driver_runs(driver_cuda, self.cuda)


#: Releases read from their wheels (module docstring), oldest first.
CHECKED: tuple[OrtBuild, ...] = (
    OrtBuild("1.23.2", "12.2", "12", "nvidia-cuda-runtime-cu12"),
    OrtBuild("1.24.4", "12.8", "12", "nvidia-cuda-runtime-cu12"),
    OrtBuild("1.25.1", "12.8", "12", "nvidia-cuda-runtime-cu12"),
    OrtBuild("1.26.0", "12.8", "12", "nvidia-cuda-runtime-cu12"),
    OrtBuild("1.27.0", "13.0", "13", "nvidia-cuda-runtime-cu13"),
    OrtBuild("1.28.0", "13.0", "13", "nvidia-cuda-runtime"),
    OrtBuild("1.29.0", "13.0", "13", "nvidia-cuda-runtime"),
    OrtBuild("1.30.0", "13.0", "13", "nvidia-cuda-runtime"),
    OrtBuild("1.31.1", "13.0", "13", "nvidia-cuda-runtime"),
)
#: The ``gpu-onnx`` extra's and the ONNX image's pin: the newest CUDA 12 build.
IMAGE_BUILD = next(b for b in reversed(CHECKED) if b.runs_on_cloud_run_l4)
#: The drivers the table is read against: Cloud Run's L4, and a CUDA 13 driver (≥ 580).
DRIVERS = {"driver 535 (CUDA 12.2, Cloud Run L4)": "12.2", "driver ≥ 580 (CUDA 13)": "13.0"}


def find(version: str) -> OrtBuild | None:
    """The checked row for this onnxruntime-gpu version, if any."""
    return next((b for b in CHECKED if b.version == version), None)


def table() -> str:
    """Which release runs on which driver, as docs/models.md shows it."""
    names = list(DRIVERS)
    lines = [
        f"| onnxruntime-gpu | built for CUDA | links libcudart | {' | '.join(names)} |",
        "| --- | --- | --- |" + " --- |" * len(names),
    ]
    for build in CHECKED:
        runs = " | ".join("yes" if build.runs_on(DRIVERS[n]) else "no" for n in names)
        mark = " (the pin)" if build == IMAGE_BUILD else ""
        lines.append(f"| {build.version}{mark} | {build.cuda} | .so.{build.cudart} | {runs} |")
    return "\n".join(lines)
