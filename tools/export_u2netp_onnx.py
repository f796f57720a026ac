"""Export the bundled u2netp weights into the onnxruntime graphs that ship in the package.

The CPU engine (:mod:`cutq.worker.models.u2netp_onnx`) only loads these graphs; it never
exports at run time, so a CPU install needs neither torch nor onnx. This script is the one
place they come from: it exports the general graph (any batch and size) and the fixed
1×3×320×320 graph from ``worker/models/weights/u2netp.pt``, checks each against torch on fixed
probes (largest difference ≤ ``PARITY_TOLERANCE``, else nothing is written), and records the
weights' and the graphs' sha256 in ``u2netp-onnx.json`` beside them.

Usage (dev extra: torch and onnx)::

    python -m tools.export_u2netp_onnx            # rewrite the shipped graphs and manifest
    python -m tools.export_u2netp_onnx --check    # re-export into a scratch folder and compare

``--check`` is what the test suite runs: the shipped files must match their manifest, the
manifest the weights, and the shipped graphs must compute what a fresh export computes.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from cutq.worker.models import onnx_engine
from cutq.worker.models.u2netp_onnx import (
    PARITY_TOLERANCE,
    SHIPPED_FIXED,
    SHIPPED_GENERAL,
    Shipped,
    export,
    probe_batches,
)
from cutq.worker.models.u2netp_spec import bundled_weights_path, file_sha256

log = logging.getLogger("export_u2netp_onnx")


def export_into(folder: Path, weights: Path) -> float:
    """Both graphs for ``weights`` into ``folder`` under their shipped names, and the
    manifest; returns the worst |onnxruntime − torch| on the probes."""
    worst = export(weights, folder / SHIPPED_GENERAL, folder / SHIPPED_FIXED)
    Shipped.write(folder, weights, worst, exporter=f"torch {torch.__version__}")
    return worst


def compare(shipped: Path, fresh: Path) -> float:
    """Largest difference between the shipped graphs and freshly exported ones on the probes
    (each graph on the probes it takes)."""
    worst = 0.0
    for name in (SHIPPED_GENERAL, SHIPPED_FIXED):
        old = onnx_engine.load_session(shipped / name, threads=onnx_engine.cpu_count())
        new = onnx_engine.load_session(fresh / name, threads=onnx_engine.cpu_count())
        fixed = [d if isinstance(d, int) else None for d in old.get_inputs()[0].shape]
        for batch in probe_batches():
            singles = [batch] if None in fixed else [batch[i : i + 1] for i in range(len(batch))]
            for probe in singles:
                if None not in fixed and list(probe.shape) != fixed:
                    continue
                got = onnx_engine.run(old, probe)
                expected = onnx_engine.run(new, probe)
                worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def check(weights: Path) -> float:
    """Verify the shipped graphs against their manifest and against a fresh export; returns
    the largest difference seen (raises when above ``PARITY_TOLERANCE``)."""
    folder = weights.parent
    Shipped.read(folder).verify(weights, file_sha256(weights))
    with tempfile.TemporaryDirectory(prefix="cutq-export-") as scratch:
        fresh = Path(scratch)
        export_into(fresh, weights)
        worst = compare(folder, fresh)
    if not worst <= PARITY_TOLERANCE:
        raise onnx_engine.ExportMismatch(
            f"shipped graphs differ from a fresh export by {worst:.2e} "
            f"(tolerance {PARITY_TOLERANCE:.0e}): run python -m tools.export_u2netp_onnx"
        )
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--weights", type=Path, default=None, help="default: the bundled .pt")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    weights = args.weights or bundled_weights_path()
    if args.check:
        worst = check(weights)
        print(f"shipped graphs match a fresh export (max |difference| {worst:.1e})")
        return 0
    with tempfile.TemporaryDirectory(prefix="cutq-export-") as scratch:
        fresh = Path(scratch)
        worst = export_into(fresh, weights)
        for name in (SHIPPED_GENERAL, SHIPPED_FIXED, "u2netp-onnx.json"):
            shutil.copyfile(fresh / name, weights.parent / name)
    print(
        f"wrote {SHIPPED_GENERAL}, {SHIPPED_FIXED} and the manifest into {weights.parent} "
        f"(max |onnxruntime − torch| {worst:.1e})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
