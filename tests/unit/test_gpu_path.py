"""Issue 26: the GPU path, shown on a CPU.

CPU autocast reproduces fp16 overflow (InSPyReNet's attention, item 2); a stand-in model that
returns NaN under autocast shows what happens to non-finite maps (item 3); a recording
:class:`~cutq.worker.runtime.device.Backend` shows cuDNN autotuning per shape (item 4) and the
synchronisation at the end of ``infer`` (item 5); stubbed driver answers show a GPU that is
present but unusable (item 6). Each test failed on the code before issue 26.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cutq.core.errors import ConfigError, ModelOutputNotFinite, WarmupFailed
from cutq.worker.config import WorkerConfig
from cutq.worker.models.base import Model
from cutq.worker.pipeline import Pipeline
from cutq.worker.runtime import hardware
from cutq.worker.runtime.device import Backend
from cutq.worker.runtime.hardware import GpuStatus, Platform
from cutq.worker.runtime.inference import Runner, batch_shapes
from tests.support.gated import Events, message, settle_all


class Fragile(Model):
    """Brightness as saliency, but NaN for bright images (mean > 0.5) when ``nan_when`` says.

    ``nan_when="autocast"``: only under CPU autocast (like fp16 overflow: fp32 is fine);
    ``"always"``: in every precision (a genuinely broken output).
    """

    name = "fragile"
    version = "test"

    def __init__(
        self, nan_when: str = "autocast", log: list[str] | None = None, bright: float = 0.5
    ) -> None:
        self.nan_when = nan_when
        self.log = log if log is not None else []
        self.bright = bright

    def setup(self, device: torch.device) -> None:
        pass

    def input_size(self, height: int, width: int, resize: str) -> tuple[int, int]:
        return (32, 32) if resize == "static" else (32 * (1 + height // 64), 32)

    def preprocess(self, image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        tensor = torch.from_numpy(image.copy()).permute(2, 0, 1).float() / 255.0
        return torch.nn.functional.interpolate(tensor[None], size=size, mode="bilinear")[0]

    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        self.log.append("forward")
        saliency = batch.mean(dim=1, keepdim=True)
        low_precision = torch.is_autocast_enabled("cpu")
        if self.nan_when == "always" or (self.nan_when == "autocast" and low_precision):
            bright = saliency.mean(dim=(1, 2, 3)) > self.bright
            saliency = torch.where(bright[:, None, None, None], float("nan"), saliency)
        return saliency


class Recording(Backend):
    """Records the runner's device calls in order; ``sync_s`` makes the device 'busy'."""

    def __init__(self, log: list[str], sync_s: float = 0.0) -> None:
        self.log = log
        self.sync_s = sync_s
        self.autotuned: list[tuple[tuple[int, ...], bool]] = []

    def to_device(self, batch: torch.Tensor) -> torch.Tensor:
        self.shape = tuple(batch.shape)
        return batch

    def autotune(self, enabled: bool) -> None:
        self.autotuned.append((self.shape, enabled))

    def synchronize(self) -> None:
        time.sleep(self.sync_s)
        self.log.append("synchronize")


def batch(*levels: float) -> list[torch.Tensor]:
    return [torch.full((3, 32, 32), level) for level in levels]


# --- item 2: InSPyReNet in fp16 -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(360)  # fp16 kernels on a CPU are slow; ~30 s alone, minutes when shared
@pytest.mark.parametrize("precision", ["auto on a GPU", "bf16"])
def test_inspyrenet_warms_up_under_low_precision_autocast(precision: str) -> None:
    """Random weights through the real Runner.warmup with CPU autocast, at what ``auto``
    means on a GPU (fp16). Before the fix fp16 failed: ``torch.bmm(prob, f)`` in the attention
    sums over the fixed 384² grid of ``fast`` mode (whatever the input size, so a 64×64 input
    shows it) and overflows fp16's 65504."""
    from cutq.worker.models.inspyrenet import InSPyReNet

    model = InSPyReNet(None, mode="fast", random_init=True)
    gpu_auto = precision == "auto on a GPU"
    runner = Runner(model, "cpu", model.gpu_precision if gpu_auto else precision)
    assert runner.dtype == (torch.float16 if gpu_auto else torch.bfloat16)
    runner.setup()
    runner.warmup("dynamic", [1], image_sizes=((64, 64),))
    assert runner.fp32_reruns == 0


def test_inspyrenet_attention_runs_in_fp32_under_autocast() -> None:
    from cutq.worker.models.inspyrenet import InSPyReNet

    model = InSPyReNet(None, mode="fast", random_init=True)
    model.setup(torch.device("cpu"))
    seen: list[torch.dtype] = []
    model.net.attention2.conv_out4.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    model.net.decoder.register_forward_hook(lambda m, i, o: seen.append(o[0].dtype))
    with torch.autocast("cpu", dtype=torch.float16):
        out = model.predict(torch.randn(1, 3, 64, 64))
    assert seen == [torch.float16, torch.float32]  # decoder in fp16, attention in fp32
    assert torch.isfinite(out).all()


# --- item 3: non-finite maps ----------------------------------------------------------------


def test_non_finite_batch_is_computed_again_in_fp32_once() -> None:
    runner = Runner(Fragile("autocast"), "cpu", "bf16")
    prediction = runner.run(batch(0.2, 0.9, 0.4))
    assert prediction.fp32_reruns == 1 and runner.fp32_reruns == 1 and not prediction.failed
    assert prediction.fp32_rerun_ms > 0
    assert [round(float(m.mean()), 3) for m in prediction.maps] == [0.2, 0.9, 0.4]


def test_a_map_still_not_finite_in_fp32_fails_that_image_only() -> None:
    runner = Runner(Fragile("always"), "cpu", "fp16")
    prediction = runner.run(batch(0.2, 0.9, 0.4))
    assert prediction.fp32_reruns == 1 and list(prediction.failed) == [1]
    assert isinstance(prediction.failed[1], ModelOutputNotFinite)
    with pytest.raises(ModelOutputNotFinite):
        runner.predict(batch(0.9))
    # in fp32 there is nothing to re-run: the image fails at once
    assert list(Runner(Fragile("always"), "cpu", "fp32").run(batch(0.9, 0.1)).failed) == [0]


def test_failed_halves_keep_their_batch_index_after_an_out_of_memory_split() -> None:
    class Small(Fragile):
        def predict(self, batch: torch.Tensor) -> torch.Tensor:
            if len(batch) > 2:
                raise torch.cuda.OutOfMemoryError("simulated")
            return super().predict(batch)

    prediction = Runner(Small("always"), "cpu").run(batch(0.1, 0.2, 0.3, 0.9))
    assert list(prediction.failed) == [3] and len(prediction.maps) == 4


def test_warmup_refuses_a_precision_that_needs_fp32_reruns() -> None:
    runner = Runner(Fragile("autocast", bright=0.0), "cpu", "fp16")
    with pytest.raises(WarmupFailed, match="CUTQ_PRECISION=fp32 or bf16"):
        runner.warmup("static", [1])


def _photo(path: Path, level: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), (level, level, level)).save(path)
    return path


def test_pipeline_never_completes_a_job_with_a_non_finite_map(tmp_path: Path) -> None:
    """Before: the NaN map was clamped to alpha 0 and the job reported ``completed``."""
    config = WorkerConfig(
        output=(tmp_path / "out").as_uri(), warmup=False, max_batch=4, max_wait_ms=200
    )
    events = Events()
    pipeline = Pipeline(config, Runner(Fragile("always"), "cpu", "bf16"), events)
    pipeline.start()
    dark = message(_photo(tmp_path / "in" / "dark.png", 40), tmp_path, "1")
    bright = message(_photo(tmp_path / "in" / "bright.png", 240), tmp_path, "2")
    pipeline.submit(dark)
    pipeline.submit(bright)
    settle_all([dark, bright])
    pipeline.close(time.monotonic() + 5)
    by_input = {Path(e.input or "").name: e for e in events.published}
    assert by_input["dark.png"].status == "completed"
    assert by_input["bright.png"].status == "failed"
    assert by_input["bright.png"].error_code == "model_output_not_finite"
    assert bright.settled == ["ack"]  # permanent: not retried forever
    reruns = [e.timings_ms.get("fp32_rerun") for e in events.published]
    assert pipeline.stats.fp32_reruns == pipeline.stats.batches >= 1
    assert all(value is not None and value >= 0 for value in reruns)


# --- item 4: cuDNN autotuning only at warmed-up shapes --------------------------------------


def test_warmup_covers_every_batch_size_and_only_those_shapes_are_autotuned() -> None:
    assert batch_shapes(6) == [1, 2, 3, 4, 5, 6]  # the batcher closes batches of any size
    log: list[str] = []
    backend = Recording(log)
    runner = Runner(Fragile("never", log), "cpu", backend=backend)
    runner.warmup("dynamic", batch_shapes(3), image_sizes=((10, 10), (100, 10)))
    warmed = {shape for shape, enabled in backend.autotuned}
    assert warmed == {(n, 3, h, 32) for n in (1, 2, 3) for h in (32, 64)}
    assert all(enabled for _, enabled in backend.autotuned)
    backend.autotuned.clear()
    runner.run(batch(0.1, 0.2))  # (2, 3, 32, 32): warmed up
    runner.run([torch.zeros(3, 96, 32)] * 2)  # a dynamic size warm-up never ran
    assert backend.autotuned == [((2, 3, 32, 32), True), ((2, 3, 96, 32), False)]


# --- item 5: infer waits for the device -----------------------------------------------------


def test_run_returns_only_after_the_device_finished() -> None:
    log: list[str] = []
    runner = Runner(Fragile("never", log), "cpu", backend=Recording(log))
    runner.run(batch(0.3))
    assert log == ["forward", "synchronize"]


def test_infer_timing_includes_the_device_time(tmp_path: Path) -> None:
    """A 'GPU' that needs 300 ms after the launch: the event's infer holds them, not encode."""
    config = WorkerConfig(output=(tmp_path / "out").as_uri(), warmup=False, max_wait_ms=0)
    events = Events()
    runner = Runner(Fragile("never"), "cpu", backend=Recording([], sync_s=0.3))
    pipeline = Pipeline(config, runner, events)
    pipeline.start()
    job = message(_photo(tmp_path / "in" / "a.png", 90), tmp_path, "1")
    pipeline.submit(job)
    settle_all([job])
    pipeline.close(time.monotonic() + 5)
    (event,) = events.published
    assert event.timings_ms["infer"] >= 300 and event.timings_ms["encode"] < 300


# --- item 6: a GPU that is present but unusable ---------------------------------------------


@pytest.fixture
def old_driver(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """libcuda sees a GPU whose driver (535, CUDA 12.2) is too old for a CUDA 13.0 wheel."""
    monkeypatch.setattr(hardware, "_cuda_devices", lambda: 1)
    monkeypatch.setattr(hardware, "driver_version", lambda: "535.216.03")
    monkeypatch.setattr(hardware, "driver_cuda_version", lambda: "12.2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "13.0")


def test_present_but_unusable_gpu_gets_cpu_defaults_and_a_warning(
    old_driver: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="cutq.worker.runtime.hardware"):
        platform = Platform.detect()  # once, at start-up: the one place the GPU is asked about
    config = WorkerConfig(platform=platform)
    assert platform.gpus == 1 and not platform.has_gpu and not config.on_gpu
    assert (config.max_batch, config.max_in_flight, config.io_threads) == (1, 8, 2)
    (record,) = caplog.records
    for fragment in ("535.216.03", "CUDA ≤ 12.2", "CUDA 13.0", "≥ 580", "cu126"):
        assert fragment in record.getMessage()
    runner = Runner(Fragile(), "auto", platform=platform)
    assert runner.device.type == "cpu" and not runner.cuda


def test_explicit_cuda_on_an_unusable_gpu_names_the_driver_and_the_wheel(
    old_driver: None,
) -> None:
    with pytest.raises(ConfigError, match=r"driver 535\.216\.03.*CUDA 13\.0.*≥ 580"):
        Runner(Fragile(), "cuda", platform=Platform.detect())


def test_gpu_status_problem_for_a_cpu_only_wheel() -> None:
    status = GpuStatus(present=True, usable=False, driver="550.1", torch_version="2.14.1+cpu")
    assert "CPU-only build" in (status.problem() or "")
    assert GpuStatus(present=True, usable=True).problem() is None
