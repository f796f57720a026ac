"""U²-Net-p on a CPU through onnxruntime: the default engine when there is no GPU.

The same bundled weights, the same preprocessing and the same per-image normalisation as
:class:`~cutq.worker.models.u2netp.U2NetP`, exported from it into two ONNX graphs that ship in
the package beside ``u2netp.pt`` (``tools/export_u2netp_onnx.py`` writes them and the manifest
``u2netp-onnx.json`` with their hashes; a test re-exports them and checks parity with torch).
At run time this module only loads them: no export, no cache directory, no child process and
no torch import. Start-up is onnxruntime's session load (~0.1 s).

Two graphs: one for any batch and size, and one fixed at a single image at the static 320² —
what every CPU job in the default "static" mode runs (``max_batch`` is 1 on a CPU). With every
size known ahead, onnxruntime folds the shape arithmetic around each upsample and keeps the
activations in its blocked layout: 1.1× the general graph's images/s on 2 cores.

Other weights than the bundled ones (``weights=``) have no shipped graph: they are exported
once into a cache, in a child process that needs torch and onnx.

Check the shipped graphs (e.g. while building an image)::

    python -m cutq.worker.models.u2netp_onnx
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cutq.core.contract import Resize
from cutq.core.errors import ConfigError
from cutq.worker.models import onnx_engine
from cutq.worker.models.base import Model
from cutq.worker.models.u2netp_spec import (
    DEFAULT_MAX_SIDE,
    STATIC_SIDE,
    bundled_weights_path,
    check_max_side,
    file_sha256,
    input_size,
    preprocess_array,
)

log = logging.getLogger(__name__)

#: Bumped whenever the exported graph changes for the same weights (new file names).
EXPORT_FORMAT = f"norm-opset{onnx_engine.OPSET}-v1"
#: The one input shape the fixed graph takes: one image at the static side.
FIXED_SHAPE = (1, 3, STATIC_SIDE, STATIC_SIDE)
#: Largest allowed |onnxruntime − torch| on the probes.
PARITY_TOLERANCE = 1e-4
#: The shipped graphs' record, beside the weights: files, hashes, the weights they came from.
MANIFEST_FILE = "u2netp-onnx.json"
SHIPPED_GENERAL = "u2netp.onnx"
SHIPPED_FIXED = f"u2netp-fixed-1x{STATIC_SIDE}x{STATIC_SIDE}.onnx"


class ShippedGraphError(RuntimeError):
    """The graphs in the package do not match their manifest or the bundled weights."""


def probe_batches() -> list[np.ndarray]:
    """Fixed inputs the export is checked on: two scenes at 320² (batch 2) and one at 96×160."""
    rng = np.random.default_rng(20261129)
    batches = []
    for count, (height, width) in ((2, (STATIC_SIDE, STATIC_SIDE)), (1, (96, 160))):
        images = []
        for _ in range(count):
            yy, xx = np.mgrid[0:240, 0:300]
            scene = np.empty((240, 300, 3), np.float32)
            scene[...] = rng.uniform(20, 120, 3) + 40 * (yy / 240.0)[..., None]
            cy, cx, r = rng.uniform(80, 160), rng.uniform(100, 200), rng.uniform(40, 90)
            scene[(yy - cy) ** 2 + (xx - cx) ** 2 < r**2] = rng.uniform(150, 255, 3)
            scene += rng.normal(0, 5, scene.shape)
            image = np.clip(scene, 0, 255).astype(np.uint8)
            images.append(preprocess_array(image, (height, width)))
        batches.append(np.stack(images))
    return batches


def graph_paths(cache_dir: Path, version: str) -> tuple[Path, Path]:
    """Where the general graph and the fixed 1×320² graph exported for weights ``version``
    live in a cache (weights other than the bundled ones)."""
    stem = f"u2netp-{version}-{EXPORT_FORMAT}"
    side = f"{STATIC_SIDE}x{STATIC_SIDE}"
    return cache_dir / f"{stem}.onnx", cache_dir / f"{stem}-fixed-1x{side}.onnx"


def export(weights: Path, general: Path, fixed: Path) -> float:
    """Export both graphs for ``weights`` (needs torch and onnx); returns the worst parity
    with torch reached."""
    from cutq.worker.models.u2netp import NormalisedU2NetP, load_network

    module = NormalisedU2NetP(load_network(weights))
    probes = probe_batches()
    worst = onnx_engine.export_checked(module, probes, general, PARITY_TOLERANCE)
    singles = [batch[i : i + 1] for batch in probes for i in range(len(batch))]
    at_static = [single for single in singles if single.shape == FIXED_SHAPE]
    worst_fixed = onnx_engine.export_checked(
        module, at_static, fixed, PARITY_TOLERANCE, fixed_shape=True
    )
    return max(worst, worst_fixed)


@dataclass(frozen=True)
class Shipped:
    """The graphs that ship in the package, as their manifest records them."""

    folder: Path
    weights_sha256: str
    export_format: str
    general_sha256: str
    fixed_sha256: str

    @property
    def general(self) -> Path:
        return self.folder / SHIPPED_GENERAL

    @property
    def fixed(self) -> Path:
        return self.folder / SHIPPED_FIXED

    @classmethod
    def read(cls, folder: Path | None = None) -> Shipped:
        folder = folder if folder is not None else bundled_weights_path().parent
        try:
            record = json.loads((folder / MANIFEST_FILE).read_text())
            return cls(
                folder=folder,
                weights_sha256=record["weights_sha256"],
                export_format=record["export_format"],
                general_sha256=record["graphs"][SHIPPED_GENERAL],
                fixed_sha256=record["graphs"][SHIPPED_FIXED],
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ShippedGraphError(f"no usable {MANIFEST_FILE} in {folder}: {error}") from None

    def verify(self, weights: Path, weights_sha256: str) -> None:
        """The manifest matches the weights (whose digest the caller has already taken),
        this code's export format and both files."""
        if self.export_format != EXPORT_FORMAT:
            raise ShippedGraphError(
                f"shipped graphs are {self.export_format}, this code runs {EXPORT_FORMAT}: "
                "run tools/export_u2netp_onnx.py"
            )
        if weights_sha256 != self.weights_sha256:
            raise ShippedGraphError(
                f"shipped graphs were exported from other weights than {weights.name}: "
                "run tools/export_u2netp_onnx.py"
            )
        for path, expected in (
            (self.general, self.general_sha256),
            (self.fixed, self.fixed_sha256),
        ):
            if not path.is_file() or file_sha256(path) != expected:
                raise ShippedGraphError(f"{path} is missing or damaged (sha256 differs)")

    @staticmethod
    def write(folder: Path, weights: Path, parity: float, exporter: str) -> Path:
        """Record the graphs now in ``folder`` (after :func:`export` wrote them there)."""
        record = {
            "weights": weights.name,
            "weights_sha256": file_sha256(weights),
            "export_format": EXPORT_FORMAT,
            "graphs": {
                name: file_sha256(folder / name) for name in (SHIPPED_GENERAL, SHIPPED_FIXED)
            },
            "max_abs_diff_vs_torch": float(f"{parity:.3g}"),
            "exported_with": exporter,
        }
        path = folder / MANIFEST_FILE
        path.write_text(json.dumps(record, indent=2) + "\n")
        return path


class U2NetPOnnx(Model):
    """cutq's embedded default model on a CPU: U²-Net-p in onnxruntime."""

    name = "u2netp"
    engine = "onnxruntime"
    license = "Apache-2.0"  # U-2-Net's weights (xuebinqin/U-2-Net)
    commercial_use = True

    def __init__(
        self,
        max_side: int = DEFAULT_MAX_SIDE,
        weights: Path | None = None,
        cache_dir: str | Path | None = None,
        threads: int | None = None,
        spinning: bool = False,
        streams: int | None = None,
        placement: onnx_engine.Placement = onnx_engine.CPU,
    ) -> None:
        """The bundled weights run from the graphs shipped beside them; other ``weights`` are
        exported once into ``cache_dir`` (default ``~/.cache/cutq/onnx``).

        Up to ``streams`` images run at once, each on its own model thread (default: 2 when
        there are 2 cores or more). An image running alone gets ``threads`` intra-op threads
        (default: one per core); images running together share them out (see
        :class:`~cutq.worker.models.onnx_engine.Graph`). On 2 cores, two single-threaded
        forwards beat one two-threaded forward at a time (``cutq run`` on 32 photographs:
        7.95 s against 8.2 s), and a lone image is still done in one two-threaded forward.

        ``placement`` on CUDA runs both graphs on onnxruntime's CUDA execution provider
        (the ``onnxruntime-gpu`` wheel), one stream (``CUTQ_ENGINE=onnxruntime`` on a GPU).
        """
        self.max_side = check_max_side(max_side)
        self.shipped = weights is None
        self.weights_path = weights if weights is not None else bundled_weights_path()
        self.weights_sha256 = file_sha256(self.weights_path)
        self.version = self.weights_sha256[:12]
        self.cache_dir = Path(cache_dir) if cache_dir else onnx_engine.default_cache_dir()
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be ≥ 1, got {threads}")
        if streams is not None and streams < 1:
            raise ValueError(f"streams must be ≥ 1, got {streams}")
        self.threads = threads or onnx_engine.cpu_count()
        self.streams = 1 if placement.cuda else streams or min(2, onnx_engine.cpu_count())
        self.spinning = spinning
        self.placement = placement
        self.onnx_device = placement.device
        if self.shipped:
            self.onnx_path = self.weights_path.parent / SHIPPED_GENERAL
            self.fixed_path = self.weights_path.parent / SHIPPED_FIXED
        else:
            self.onnx_path, self.fixed_path = graph_paths(self.cache_dir, self.version)
        self.exported_s: float | None = None  # set when this setup had to export
        self.busy = onnx_engine.Streams()
        self.general: onnx_engine.Graph | None = None  # any batch, any size
        self.fixed: onnx_engine.Graph | None = None  # FIXED_SHAPE only

    def setup(self, device: Any = "cpu") -> None:
        """Load the shipped graphs (checked against their manifest), or for other weights the
        cached exports, exporting (and checking) them first when one is missing."""
        if str(device) != self.placement.device:
            raise ValueError(
                f"this u2netp was built for {self.placement.device}, not {device} "
                "(U2NetPOnnx(placement=…) picks CPU or CUDA's execution provider)"
            )
        if self.shipped:
            Shipped.read(self.weights_path.parent).verify(self.weights_path, self.weights_sha256)
            self._load()
            return
        if not (self.onnx_path.exists() and self.fixed_path.exists()):
            self._export()
        try:
            self._load()
        except Exception as error:  # a damaged cache file: export again
            log.warning("cached u2netp graph unusable (%s); exporting it again", error)
            self._export()
            self._load()

    def _load(self) -> None:
        settings = (self.threads, self.streams, self.busy, self.spinning, self.placement)
        self.general = onnx_engine.Graph(self.onnx_path, *settings)
        self.fixed = onnx_engine.Graph(self.fixed_path, *settings)
        self.onnx_device = self.fixed.placement.device  # the CPU, if CUDA's fell back

    def _export(self) -> None:
        """Export in a child process: torch (half a gigabyte with a CUDA build) is loaded
        there and gone when it exits, so even a first start leaves this process torch-free."""
        missing = [name for name in ("torch", "onnx") if importlib.util.find_spec(name) is None]
        if missing:
            raise ConfigError(
                f"u2netp weights {self.weights_path.name} have no shipped onnxruntime graph and "
                f"exporting one needs {' and '.join(missing)}: pip install {' '.join(missing)} "
                "(or run them with CUTQ_ENGINE=torch)"
            )
        started = time.perf_counter()
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            writable = os.access(self.cache_dir, os.W_OK)
        except OSError:
            writable = False
        if not writable:  # a read-only cache: keep the export in a private directory
            scratch = Path(tempfile.mkdtemp(prefix="cutq-onnx-"))
            log.warning("cannot write to %s; exporting into %s", self.cache_dir, scratch)
            self.cache_dir = scratch
            self.onnx_path, self.fixed_path = graph_paths(scratch, self.version)
        log.info("exporting u2netp for onnxruntime into %s (once)", self.cache_dir)
        command = [sys.executable, "-m", __name__, "--weights", str(self.weights_path)]
        command += ["--cache-dir", str(self.cache_dir)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"exporting u2netp for onnxruntime failed (exit {done.returncode}):\n"
                + done.stderr[-3000:]
            )
        self.exported_s = time.perf_counter() - started

    def input_size(self, height: int, width: int, resize: Resize) -> tuple[int, int]:
        """See :func:`cutq.worker.models.u2netp_spec.input_size`."""
        return input_size(height, width, resize, self.max_side)

    def preprocess(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Lanczos resize to ``size``, divide by the image's maximum, ImageNet mean/std."""
        return preprocess_array(image, size)

    def predict(self, batch: np.ndarray, urgent: bool = False) -> np.ndarray:
        """N×3×h×w → N×1×h×w: the fused map, min-max normalised per image (in the graph)."""
        return self.graph_for(batch.shape).run(batch, urgent)

    def graph_for(self, shape: tuple[int, ...]) -> onnx_engine.Graph:
        """The fixed graph for one image at 320², the general one for anything else."""
        if self.general is None or self.fixed is None:
            raise RuntimeError("U2NetPOnnx.predict called before setup()")
        return self.fixed if tuple(shape) == FIXED_SHAPE else self.general


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Check the shipped u2netp graphs (no arguments), or export graphs for "
        "other weights into a cache (--weights, needs torch and onnx)."
    )
    parser.add_argument("--weights", type=Path, help="a u2netp state dict to export")
    parser.add_argument("--cache-dir", type=Path, help="default ~/.cache/cutq/onnx")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.weights is None:
        model = U2NetPOnnx(threads=1, streams=1)
        model.setup("cpu")
        maps = model.predict(probe_batches()[0][:1])
        if maps.shape != (1, 1, STATIC_SIDE, STATIC_SIDE) or not np.isfinite(maps).all():
            print(f"shipped u2netp graphs gave {maps.shape} / non-finite output", file=sys.stderr)
            return 1
        print(f"shipped u2netp graphs OK: {model.onnx_path.name}, {model.fixed_path.name}")
        return 0
    model = U2NetPOnnx(cache_dir=args.cache_dir, weights=args.weights)
    export(model.weights_path, model.onnx_path, model.fixed_path)
    print(model.onnx_path)
    print(model.fixed_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
