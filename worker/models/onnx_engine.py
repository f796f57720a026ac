"""Running cutq's own torch networks through onnxruntime on a CPU: export, check, cache, load;
and where an onnxruntime model runs (:class:`Placement`: the CPU, or CUDA's execution provider).

Nothing here is downloaded. A network is exported from cutq's torch model the first time a CPU
worker needs it (about a second), checked against torch on fixed probe inputs (the largest
difference must stay within ``tolerance``, else the export is refused) and moved atomically
into a cache directory. Later starts load the file without importing torch at all.

Why onnxruntime on a CPU: at u2netp's 320² input on 2 cores it runs ~1.3× torch's forward
(3.9 vs 3.0 images/s), and its arena reuses activation buffers where torch's allocator maps
and unmaps them on every forward (page faults: seconds of system time per hundred images).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cutq.core.errors import ConfigError

if TYPE_CHECKING:
    import onnxruntime as ort
    import torch

log = logging.getLogger(__name__)

#: ONNX opset of the exports (onnxruntime ≥ 1.14 runs it).
OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "saliency"


class ExportMismatch(RuntimeError):
    """The exported graph does not compute what the torch model computes."""


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask, not the whole machine)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cutq" / "onnx"


_arena_lock = threading.Lock()
_arena_registered = False


def share_one_arena() -> None:
    """Register one CPU arena for every session of this process (idempotent).

    Sessions that opt in (``session.use_env_allocators``) take activation buffers from it
    instead of each growing an arena of its own: a process holding a wide and a narrow
    session of two graphs peaks at what runs at once (~200 MB per u2netp forward at 320²),
    not at the sum of four arenas.
    """
    global _arena_registered
    import onnxruntime as ort

    with _arena_lock:
        if not _arena_registered:
            memory = ort.OrtMemoryInfo(
                "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
            )
            ort.create_and_register_allocator(memory, ort.OrtArenaCfg({}))
            _arena_registered = True


def session_options(threads: int, spinning: bool = False) -> ort.SessionOptions:
    """One model thread pool of ``threads``, no second (inter-op) pool, no busy-waiting, and
    the process's shared arena (:func:`share_one_arena`).

    Spinning keeps idle pool threads polling for ~the length of a kernel; on a CPU shared with
    the decode/encode threads it burns the cores they need, so it is off unless asked for.
    Memory-pattern planning is off: it pre-allocates one block per input shape (+170 MB for
    u2netp at 320²) for no measurable speed here; the arena still reuses buffers.
    """
    import onnxruntime as ort

    share_one_arena()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_mem_pattern = False
    options.log_severity_level = 3  # errors only
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.add_session_config_entry("session.use_env_allocators", "1")
    return options


CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
#: What a CPU-only onnxruntime needs to become one with CUDA's execution provider (the two
#: wheels install the same ``onnxruntime`` package: one must go before the other comes).
INSTALL_GPU = "pip uninstall -y onnxruntime && pip install 'cutq[gpu-onnx]'"
#: How a machine with a GPU runs an onnxruntime model on its CPU deliberately.
ON_PURPOSE = "CUTQ_DEVICE=cpu"


@dataclass(frozen=True)
class Placement:
    """Where an onnxruntime model runs: the CPU, or CUDA's execution provider on GPU
    ``device_id``. A CUDA placement is a promise: where onnxruntime cannot keep it (no CUDA
    provider in this build, or one that would not start), the worker stops at start-up,
    ``auto`` on a machine with a GPU included; a GPU deployment never runs on the CPU by
    accident. ``CUTQ_DEVICE=cpu`` runs there on purpose."""

    cuda: bool = False
    device_id: int = 0

    @classmethod
    def for_device(cls, device: str, gpus: int) -> Placement:
        """``device`` as configured (``auto``, ``cpu``, ``cuda``, ``cuda:N``); ``gpus``: how
        many CUDA devices the driver sees (:class:`~cutq.worker.runtime.hardware.Platform`)."""
        if device.startswith("cuda"):
            index = device.partition(":")[2]
            return cls(cuda=True, device_id=int(index) if index else 0)
        return cls(cuda=device == "auto" and gpus > 0)

    @property
    def device(self) -> str:
        return f"cuda:{self.device_id}" if self.cuda else "cpu"


CPU = Placement()


def providers_for(placement: Placement) -> list[Any]:
    """Execution providers for a session: CUDA's on the placement's device, then the CPU's
    (for the odd operator CUDA's lacks), when this onnxruntime build has it (the
    ``onnxruntime-gpu`` wheel), asked for by name; without it a :class:`ConfigError` naming
    what to install (never a quiet CPU session on a GPU deployment)."""
    import onnxruntime as ort

    if not placement.cuda:
        return [CPU_PROVIDER]
    available = ort.get_available_providers()
    if CUDA_PROVIDER in available:
        _preload_cuda_libraries()
        return [(CUDA_PROVIDER, {"device_id": placement.device_id}), CPU_PROVIDER]
    missing = (
        f"onnxruntime {ort.__version__} has no {CUDA_PROVIDER} (it has {', '.join(available)}): "
        f"this is the CPU wheel; install onnxruntime-gpu instead: {INSTALL_GPU}"
    )
    raise ConfigError(
        f"{placement.device} needs onnxruntime's CUDA execution provider, but {missing} "
        f"(or run on the CPU on purpose: {ON_PURPOSE})"
    )


def _preload_cuda_libraries() -> None:
    """onnxruntime-gpu (≥ 1.21) finds the CUDA and cuDNN libraries that its ``cuda`` and
    ``cudnn`` extras install as nvidia-* wheels only through ``preload_dlls``; libraries on
    the loader's path, or loaded by a torch of the same CUDA major, serve as they are.
    Whatever it cannot load, :func:`check_placement` reports."""
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    try:
        preload()
    except Exception as error:  # its own checks (a directory that is not there)
        log.debug("onnxruntime.preload_dlls: %s", error)


def _built_for_cuda() -> str:
    """The CUDA version this onnxruntime was built for, as its wheel records it ("13.0")."""
    try:
        from onnxruntime.capi import build_and_package_info
    except ImportError:
        return "(version unknown)"
    return str(getattr(build_and_package_info, "cuda_version", "(version unknown)"))


def check_placement(session: ort.InferenceSession, placement: Placement) -> Placement:
    """Where ``session`` really runs. onnxruntime drops CUDA's provider with only a log line
    when it cannot load it (CUDA or cuDNN libraries missing, or built for a CUDA the driver
    does not run: :mod:`cutq.worker.runtime.onnx_builds`); a :class:`ConfigError` then stops the
    worker at start-up."""
    if not placement.cuda or CUDA_PROVIDER in session.get_providers():
        return placement
    message = (
        f"onnxruntime could not start its {CUDA_PROVIDER} on {placement.device} (the session "
        f"runs on {', '.join(session.get_providers())}): no usable GPU there, or the CUDA "
        f"{_built_for_cuda()} and cuDNN 9 libraries this onnxruntime-gpu loads are missing "
        "(its `cuda` and `cudnn` extras install them), or a build the driver cannot run "
        f"(cutq.worker.runtime.onnx_builds); its own error is in the log above "
        f"(or run on the CPU on "
        f"purpose: {ON_PURPOSE})"
    )
    raise ConfigError(message)


def load_session(
    path: Path, threads: int, spinning: bool = False, placement: Placement = CPU
) -> ort.InferenceSession:
    """A session with :func:`session_options` on ``placement``'s providers."""
    import onnxruntime as ort

    return ort.InferenceSession(
        str(path), session_options(threads, spinning), providers=providers_for(placement)
    )


def run(session: ort.InferenceSession, batch: np.ndarray) -> np.ndarray:
    """One forward pass: N×3×h×w float32 → the single output."""
    feed = {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)}
    return session.run([OUTPUT_NAME], feed)[0]  # type: ignore[no-any-return]


class Streams:
    """How many forward passes run at once, across every graph of one model."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = 0

    @contextlib.contextmanager
    def enter(self, urgent: bool = False) -> Iterator[bool]:
        """Count a forward pass while it runs; yields whether it takes the wide session: it
        started alone, or it is ``urgent`` (interactive work on the thread kept for it, which
        runs at once beside bulk forwards of lower priority: the lane policy,
        :mod:`cutq.worker.lane_policy`)."""
        with self._lock:
            wide = self.running == 0 or urgent
            self.running += 1
        try:
            yield wide
        finally:
            with self._lock:
                self.running -= 1


class Graph:
    """One exported graph, run by up to ``streams`` model threads at once.

    A forward pass that starts alone runs on the wide session (``threads`` intra-op threads:
    a lone image is done soonest); one that starts while another runs takes the narrow session
    (``threads // streams``), so under a backlog each stream runs single-threaded on 2 cores:
    no stream waits at a kernel's barrier for a thread that decode or encode work preempted.
    The narrow session is loaded when first needed (a lone worker at start-up never does).

    On CUDA's execution provider (``placement``) there is one session and one stream; if
    onnxruntime could not start the provider, :attr:`placement` says where it runs instead
    (:func:`check_placement`).
    """

    def __init__(
        self,
        path: Path,
        threads: int,
        streams: int,
        busy: Streams,
        spinning: bool = False,
        placement: Placement = CPU,
    ) -> None:
        self.path, self.spinning, self.busy = path, spinning, busy
        self.narrow_threads = threads if placement.cuda else max(1, threads // streams)
        self.wide = load_session(path, threads, spinning, placement)
        self.placement = check_placement(self.wide, placement)
        self._narrow = self.wide if self.narrow_threads == threads else None
        self._loading = threading.Lock()

    @property
    def narrow(self) -> ort.InferenceSession:
        with self._loading:
            if self._narrow is None:
                self._narrow = load_session(self.path, self.narrow_threads, self.spinning)
            return self._narrow

    def input_shape(self) -> list[int | str]:
        return list(self.wide.get_inputs()[0].shape)

    def run(self, batch: np.ndarray, urgent: bool = False) -> np.ndarray:
        with self.busy.enter(urgent) as wide:
            return run(self.wide if wide else self.narrow, batch)


def export_checked(
    module: torch.nn.Module,
    probes: Sequence[np.ndarray],
    target: Path,
    tolerance: float = 1e-4,
    fixed_shape: bool = False,
) -> float:
    """Export ``module`` (one input, one output) to ``target``.

    Batch, height and width are dynamic, unless ``fixed_shape``: then the graph takes only the
    shape of ``probes[0]`` (every probe must have it), and onnxruntime can fold every size
    computation ahead of time (u2netp, one image at 320² on 2 cores: 4.65 images/s against the
    dynamic graph's 4.21, ``python -m bench.onnx_variants``).

    Each probe (an N×3×h×w float32 batch) runs through torch and the exported graph; the
    largest absolute difference is returned, or :class:`ExportMismatch` raised above
    ``tolerance`` (and nothing is written). The file appears at ``target`` complete or not
    at all.
    """
    import torch

    started = time.perf_counter()
    module = module.eval().cpu().float()
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(handle)
    try:
        if fixed_shape and any(np.shape(p) != np.shape(probes[0]) for p in probes):
            raise ValueError("a fixed-shape export needs probes of one shape")
        dynamic = {} if fixed_shape else {0: "batch", 2: "height", 3: "width"}
        with warnings.catch_warnings():
            # The TorchScript-based exporter is deprecated in favour of torch.export's, which
            # needs the onnxscript package; this one needs nothing more and is exact here.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (torch.from_numpy(np.asarray(probes[0], np.float32)),),
                scratch,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: dynamic, OUTPUT_NAME: dynamic} if dynamic else None,
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        session = load_session(Path(scratch), threads=cpu_count())
        worst = 0.0
        for probe in probes:
            with torch.inference_mode():
                expected = module(torch.from_numpy(np.asarray(probe, np.float32))).numpy()
            got = run(session, probe)
            if got.shape != expected.shape:
                raise ExportMismatch(f"exported output {got.shape}, torch {expected.shape}")
            worst = max(worst, float(np.abs(got - expected).max()))
        if not worst <= tolerance:  # also catches NaN
            raise ExportMismatch(
                f"exported graph differs from torch by {worst:.2e} (tolerance {tolerance:.0e})"
            )
        os.chmod(scratch, 0o644)  # mkstemp makes it 0600: readable by other users of a cache
        os.replace(scratch, target)
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)
    log.info(
        "exported %s in %.1fs (max |onnxruntime − torch| %.1e)",
        target,
        time.perf_counter() - started,
        worst,
    )
    return worst
