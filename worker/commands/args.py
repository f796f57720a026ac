"""Flags the worker's commands share, and the configuration they build from flags + ``CUTQ_*``."""

from __future__ import annotations

import argparse
import os

from cutq.worker.config import WorkerConfig


def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model and batching (override CUTQ_* variables)")
    group.add_argument("--model", help="u2netp (bundled, default) or inspyrenet")
    group.add_argument("--checkpoint", help="inspyrenet weights: a path or gs:// URI")
    group.add_argument(
        "--model-spec", help="serve your own ONNX graph: a JSON model spec (see docs/models.md)"
    )
    group.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    group.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"))
    group.add_argument("--max-batch", type=int, help="largest batch (default: 8 on GPU, 1 on CPU)")
    group.add_argument(
        "--max-wait-ms",
        type=float,
        help="how long a batch waits to fill after its first job (default 20)",
    )


_MODEL_FLAGS = (
    "model",
    "model_spec",
    "checkpoint",
    "device",
    "precision",
    "max_batch",
    "max_wait_ms",
    "resize",
)


def worker_config(args: argparse.Namespace, **changes: object) -> WorkerConfig:
    """The configuration from ``CUTQ_*`` variables, overridden by the flags in ``args``."""
    overrides = {name: getattr(args, name, None) for name in _MODEL_FLAGS}
    overrides.update(
        output_format=getattr(args, "format", None),
        output_kind=getattr(args, "kind", None),
        output_background=getattr(args, "background", None),
        output_quality=getattr(args, "quality", None),
        **changes,
    )
    from cutq.worker.runtime.hardware import Platform

    return WorkerConfig.from_env(os.environ, Platform.detect(), **overrides)
