"""Model registry: names jobs and configuration use → classes, imported only when asked for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cutq.submitter.errors import ConfigError

if TYPE_CHECKING:
    from cutq.worker.config import WorkerConfig
    from cutq.worker.models.base import Model

MODELS = ("u2netp", "inspyrenet")


def create_model(config: WorkerConfig) -> Model:
    """The configured model, not yet set up on a device."""
    extra = {"max_side": config.model_max_side} if config.model_max_side else {}
    if config.model == "u2netp":
        from cutq.worker.models.u2netp import U2NetP

        try:
            return U2NetP(**extra)
        except ValueError as error:
            raise ConfigError(f"u2netp: {error}") from None
    if config.model == "inspyrenet":
        if not config.checkpoint:
            raise ConfigError("model inspyrenet needs CUTQ_CHECKPOINT (a path or gs:// URI)")
        try:
            from cutq.worker.models.inspyrenet import InSPyReNet
        except ImportError as error:
            raise ConfigError(
                f"model inspyrenet needs the extra: pip install 'cutq[inspyrenet]' ({error})"
            ) from None
        try:
            return InSPyReNet(
                checkpoint=config.checkpoint,
                mode=config.model_mode or "base",  # type: ignore[arg-type]
                checksum_sha256=config.checkpoint_sha256,
                cache_dir=config.checkpoint_cache_dir,
                **extra,
            )
        except ValueError as error:
            raise ConfigError(f"inspyrenet: {error}") from None
    raise ConfigError(f"unknown model {config.model!r}; choose one of {', '.join(MODELS)}")
