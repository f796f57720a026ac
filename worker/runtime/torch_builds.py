"""The one table of torch/CUDA builds known to suit the worker image, and the driver rules.

Read by the image test (``tests/unit/test_torch_builds.py`` checks that the Dockerfile's and
``infra/cloudbuild.yaml``'s torch pins and wheel index are a row here that runs on Cloud Run's
L4), by the worker when a GPU is present but torch cannot use it (the message names the
driver the wheel needs), and by ``tools/gpu_check.py``. No torch import: it is plain data.

The facts behind it (sources in docs/performance.md, "GPU"):

* NVIDIA's minor-version compatibility: a CUDA 12.x build runs on any driver of the 525 branch
  or later, a CUDA 13.x build needs 580 or later.
* Cloud Run's L4 instances document driver 535 (CUDA 12.2): CUDA 12 builds only.
* PyTorch 2.12 dropped CUDA 12.8 builds; 2.14 ships CUDA 12.6 (legacy), 13.0 and 13.2 (PyPI's
  default). The 2.15 plan removes 12.6 as well, so the image stays on 2.14 until Cloud Run's
  driver reaches 580.
* The L4 is Ada (compute capability 8.9). The 12.6 wheels carry sm_86 machine code, which
  runs on 8.9 (same major capability, equal or higher minor).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Minimum Linux driver branch per CUDA major version (NVIDIA, "CUDA Compatibility",
#: minor-version compatibility table).
MIN_DRIVER_FOR_CUDA_MAJOR: dict[int, int] = {11: 450, 12: 525, 13: 580}

#: The driver Cloud Run documents for its L4 GPUs, and the CUDA version it reports.
CLOUD_RUN_L4_DRIVER = 535
CLOUD_RUN_L4_DRIVER_CUDA = "12.2"


class CudaBuild:
    """A build for one CUDA version: the driver it needs, and whether Cloud Run's L4 has it
    (torch's here, onnxruntime-gpu's in :mod:`cutq.worker.runtime.onnx_builds`)."""

    cuda: str  # "12.6"

    @property
    def min_driver(self) -> int:
        return min_driver_for(self.cuda)

    @property
    def runs_on_cloud_run_l4(self) -> bool:
        return self.min_driver <= CLOUD_RUN_L4_DRIVER


@dataclass(frozen=True)
class TorchBuild(CudaBuild):
    """One published torch + torchvision pair for one CUDA version, on PyTorch's wheel index."""

    torch: str
    torchvision: str
    cuda: str  # "12.6"

    @property
    def index_url(self) -> str:
        return "https://download.pytorch.org/whl/cu" + self.cuda.replace(".", "")


#: Builds that exist and that cutq's worker supports. The first row is the image's pin.
KNOWN_GOOD: tuple[TorchBuild, ...] = (
    TorchBuild("2.14.1", "0.29.1", "12.6"),  # the image: the newest CUDA 12 build of 2.14
    TorchBuild("2.14.1", "0.29.1", "13.0"),  # drivers ≥ 580 only (not Cloud Run's L4 today)
    TorchBuild("2.14.1", "0.29.1", "13.2"),  # PyPI's default build of 2.14; drivers ≥ 580
)
IMAGE_BUILD = KNOWN_GOOD[0]


def min_driver_for(cuda: str) -> int:
    """The lowest driver branch that runs a build for CUDA ``cuda`` ("12.6" → 525)."""
    major = int(cuda.split(".")[0])
    if major not in MIN_DRIVER_FOR_CUDA_MAJOR:
        raise ValueError(f"no driver rule for CUDA {cuda}")
    return MIN_DRIVER_FOR_CUDA_MAJOR[major]


def driver_runs(driver_cuda: str, wheel_cuda: str) -> bool:
    """Whether a driver that reports CUDA ``driver_cuda`` runs a build for ``wheel_cuda``.

    Within a major version any driver of that family runs any minor build (minor-version
    compatibility); across majors the driver must be the newer one.
    """
    have, need = _major(driver_cuda), _major(wheel_cuda)
    return have >= need


def find(torch: str, cuda: str) -> TorchBuild | None:
    """The known-good row for this torch version and CUDA version, if any."""
    return next((b for b in KNOWN_GOOD if b.torch == torch and b.cuda == cuda), None)


def _major(version: str) -> int:
    return int(version.split(".")[0])
