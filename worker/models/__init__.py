"""Model registry: names jobs and configuration use → factories, imported only when asked for."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from cutq.core.errors import ConfigError

if TYPE_CHECKING:
    from cutq.worker.config import WorkerConfig
    from cutq.worker.models.base import Model


def _u2netp(config: WorkerConfig, extra: dict[str, int]) -> Model:
    from cutq.worker.models.u2netp import U2NetP

    return U2NetP(**extra)


def _inspyrenet(config: WorkerConfig, extra: dict[str, int]) -> Model:
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


REGISTRY: dict[str, Callable[[WorkerConfig, dict[str, int]], Model]] = {
    "u2netp": _u2netp,
    "inspyrenet": _inspyrenet,
}
MODELS = tuple(REGISTRY)


def create_model(config: WorkerConfig) -> Model:
    """The configured model, not yet set up on a device."""
    factory = REGISTRY.get(config.model)
    if factory is None:
        raise ConfigError(f"unknown model {config.model!r}; choose one of {', '.join(MODELS)}")
    extra = {"max_side": config.model_max_side} if config.model_max_side else {}
    try:
        return factory(config, extra)
    except ValueError as error:
        raise ConfigError(f"{config.model}: {error}") from None
