"""The contract every cutq model meets: small on purpose, so the runner can batch any of them.

A model turns RGB images into saliency maps. It only knows about its own network:

* :meth:`Model.input_size` says at which size it wants an image; images with the same size
  share a batch,
* :meth:`Model.preprocess` turns one decoded image into a CPU tensor (runs in I/O threads),
* :meth:`Model.predict` maps a batch on the device to one saliency map per image.

``engine`` says what runs the network. ``"torch"`` models take and return torch tensors (on
the device the runner picked). ``"onnxruntime"`` models use numpy arrays throughout (on
the CPU, or on CUDA's execution provider: :attr:`Model.onnx_device`), so such a worker never
imports torch (half a gigabyte of memory and seconds of
start-up with a CUDA build of torch).

Moving tensors to the device, mixed precision, upsampling masks back to the original size,
thresholds, splitting batches on out-of-memory and warm-up checks live in
:mod:`cutq.worker.runtime.inference`, once, for every model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from cutq.core.contract import Resize

if TYPE_CHECKING:  # torch is imported only by models that run in it
    import torch


class Model(ABC):
    """A salient-object / matting network behind cutq's batching runner."""

    #: Registry name, as jobs and configuration spell it.
    name: ClassVar[str]
    #: Identifies the weights (e.g. the first hex digits of their sha256); goes into events.
    version: str = "unknown"
    #: What runs the network: "torch" (tensors) or "onnxruntime" (numpy arrays, CPU only).
    engine: ClassVar[str] = "torch"
    #: What ``precision="auto"`` means on a GPU: ``"fp16"``, ``"bf16"`` or ``"fp32"``, chosen
    #: per model by measured mask agreement with fp32 (docs/performance.md, "GPU"); fp32 until a
    #: model's
    #: masks show a lower precision keeps them. A CPU always runs fp32.
    gpu_precision: ClassVar[str] = "fp32"
    #: How many :meth:`predict` calls the pipeline may run at once (one model thread each).
    #: Only a model whose predict is thread-safe and which sized its own threads for it says
    #: more than 1.
    streams: int = 1
    #: Where an onnxruntime model runs: ``"cpu"``, or ``"cuda:N"`` on CUDA's execution
    #: provider. Set when it is built (where it was asked to run) and by its setup (where it
    #: does). Torch models leave it: the runner places them.
    onnx_device: str = "cpu"

    @abstractmethod
    def setup(self, device: torch.device | Any) -> None:
        """Load weights, move the network to ``device`` and switch it to eval mode.

        ``device`` is a ``torch.device`` for torch models and ``"cpu"`` for onnxruntime ones.
        """

    @abstractmethod
    def input_size(self, height: int, width: int, resize: Resize) -> tuple[int, int]:
        """The network input ``(h, w)`` for an image of ``height`` × ``width`` pixels.

        Both sides must be positive multiples of the network's stride, whatever the image
        (1×1 and 20000×10 included), and bounded so memory never depends on the input.
        """

    @abstractmethod
    def preprocess(self, image: np.ndarray, size: tuple[int, int]) -> torch.Tensor | Any:
        """``image`` (H×W×3 uint8 RGB) → a float32 CPU tensor (or array) 3×h×w for
        :meth:`predict`."""

    @abstractmethod
    def predict(self, batch: torch.Tensor | Any, urgent: bool = False) -> torch.Tensor | Any:
        """``batch`` (N×3×h×w on the device) → N×1×h×w saliency in [0, 1].

        Each output depends on its own input only: batching must never change a result.
        ``urgent``: interactive work that must not wait (the lane policy,
        :mod:`cutq.worker.lane_policy`): a model with several sessions runs it on its widest.
        """

    #: The weights' licence and whether it allows commercial use (``None``: not stated);
    #: shown at start-up and in ``cutq eval``'s report (:meth:`terms`).
    license: str | None = None
    commercial_use: bool | None = None

    def describe(self) -> dict[str, str]:
        """Name and version, as completion events report them."""
        return {"name": self.name, "version": self.version}

    def terms(self) -> dict[str, str]:
        """The licence and whether commercial use is allowed (:func:`terms`)."""
        return terms(self.license, self.commercial_use)


def terms(license: str | None, commercial_use: bool | None) -> dict[str, str]:
    """``{"license": …, "commercial_use": "yes" | "no" | "unknown"}``, as start-up logs and
    ``cutq eval``'s report show them."""
    allowed = {True: "yes", False: "no", None: "unknown"}[commercial_use]
    return {"license": license or "unknown", "commercial_use": allowed}


def round_to_multiple(value: float, multiple: int) -> int:
    """``value`` rounded to the nearest positive multiple of ``multiple`` (never 0)."""
    return max(multiple, round(value / multiple) * multiple)
