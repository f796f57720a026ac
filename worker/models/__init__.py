"""Model registry: names jobs and configuration use → factories, imported only when asked for.

``engine`` picks what runs the network. ``auto`` runs u2netp through onnxruntime when the
worker runs on a CPU and onnxruntime is installed (faster than torch there, and torch is never
imported), and in torch everywhere else. ``onnxruntime`` on a GPU runs u2netp on
onnxruntime's CUDA execution provider (``cutq[gpu-onnx]``), as model specs always do there.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cutq.core.errors import ConfigError

if TYPE_CHECKING:
    from cutq.core.storage import Stores
    from cutq.worker.config import WorkerConfig
    from cutq.worker.models import onnx_engine
    from cutq.worker.models.base import Model

#: The torch the README and the Makefile install for the GPU worker (x86-64).
TORCH_PIN = "torch==2.14.1"


def resolve_engine(config: WorkerConfig) -> str:
    """``torch`` or ``onnxruntime`` for this configuration (see the module docstring)."""
    on_cpu = not config.on_gpu  # the platform found at start-up (a usable GPU)
    if config.engine == "onnxruntime":  # on a GPU: CUDA's execution provider
        if config.model != "u2netp":
            raise ConfigError(f"engine onnxruntime runs u2netp only, not {config.model}")
        if importlib.util.find_spec("onnxruntime") is None:
            extra = "cpu" if on_cpu else "gpu-onnx"
            raise ConfigError(f"engine onnxruntime needs: pip install 'cutq[{extra}]'")
        return "onnxruntime"
    auto_cpu = config.engine == "auto" and config.model == "u2netp" and on_cpu
    if auto_cpu and importlib.util.find_spec("onnxruntime") is not None:
        return "onnxruntime"
    if importlib.util.find_spec("torch") is None:
        where = "on a GPU" if not on_cpu else "on the torch engine"
        raise ConfigError(
            f"model {config.model} {where} needs torch, which is not installed: "
            f"pip install {TORCH_PIN} 'cutq[gpu]' (the README's Install section)"
        )
    return "torch"


def _u2netp(config: WorkerConfig, extra: dict[str, Any]) -> Model:
    if resolve_engine(config) == "onnxruntime":
        from cutq.worker.models.u2netp_onnx import U2NetPOnnx

        return U2NetPOnnx(
            cache_dir=config.checkpoint_cache_dir,
            threads=config.threads,
            streams=config.streams,
            placement=_placement(config),
            **extra,
        )
    from cutq.worker.models.u2netp import U2NetP

    return U2NetP(**extra)


def _inspyrenet(config: WorkerConfig, extra: dict[str, Any]) -> Model:
    resolve_engine(config)  # refuses engine=onnxruntime
    if not config.checkpoint:
        raise ConfigError("model inspyrenet needs CUTQ_CHECKPOINT (a path or gs:// URI)")
    try:
        from cutq.worker.models.inspyrenet import InSPyReNet
    except ImportError as error:
        raise ConfigError(
            f"model inspyrenet needs the extra: pip install 'cutq[inspyrenet]' ({error})"
        ) from None
    return InSPyReNet(
        checkpoint=config.checkpoint,
        mode=config.model_mode or "base",  # type: ignore[arg-type]
        checksum_sha256=config.checkpoint_sha256,
        cache_dir=config.checkpoint_cache_dir,
        **extra,
    )


def custom_model(config: WorkerConfig, storage: Stores | None = None) -> Model:
    """The ONNX graph ``config.model_spec`` describes (see :mod:`cutq.worker.models.onnx_spec`).

    Always onnxruntime: on CUDA's execution provider when the worker runs on a GPU."""
    if importlib.util.find_spec("onnxruntime") is None:
        raise ConfigError(
            "a model spec needs onnxruntime: pip install 'cutq[cpu]' (on a GPU: 'cutq[gpu-onnx]')"
        )
    from cutq.worker.models.onnx_custom import CustomOnnx
    from cutq.worker.models.onnx_spec import ModelSpec

    assert config.model_spec is not None
    spec = ModelSpec.load(config.model_spec)
    if config.model not in ("u2netp", spec.name):  # u2netp: the default, not a choice
        raise ConfigError(f"CUTQ_MODEL={config.model} but the model spec serves {spec.name}")
    if config.engine == "torch":
        raise ConfigError("a model spec runs in onnxruntime; unset CUTQ_ENGINE=torch")
    return CustomOnnx(
        spec,
        config.checkpoint_cache_dir,
        threads=config.threads,
        streams=config.streams,
        placement=_placement(config),
        storage=storage,
    )


def _placement(config: WorkerConfig) -> onnx_engine.Placement:
    """Where an onnxruntime model runs: CUDA's execution provider for ``cuda``/``cuda:N``
    and for ``auto`` when the driver sees a GPU (torch need not be installed: onnxruntime-gpu
    brings its own CUDA; a missing provider stops the worker either way), else the CPU."""
    from cutq.worker.models.onnx_engine import Placement

    return Placement.for_device(config.device, config.platform.gpus)


REGISTRY: dict[str, Callable[[WorkerConfig, dict[str, Any]], Model]] = {
    "u2netp": _u2netp,
    "inspyrenet": _inspyrenet,
}
MODELS = tuple(REGISTRY)


def create_model(config: WorkerConfig, storage: Stores | None = None) -> Model:
    """The configured model, not yet set up on a device; a weights file it fetches from
    ``gs://`` comes through ``storage`` (the worker's backends)."""
    if config.model_spec:
        return custom_model(config, storage)
    factory = REGISTRY.get(config.model)
    if factory is None:
        raise ConfigError(f"unknown model {config.model!r}; choose one of {', '.join(MODELS)}")
    if config.streams not in (None, 1) and resolve_engine(config) != "onnxruntime":
        raise ConfigError("streams above 1 need the onnxruntime engine (u2netp on a CPU)")
    extra: dict[str, Any] = {"max_side": config.model_max_side} if config.model_max_side else {}
    if config.model == "inspyrenet":
        extra["storage"] = storage
    try:
        return factory(config, extra)
    except ValueError as error:
        raise ConfigError(f"{config.model}: {error}") from None
