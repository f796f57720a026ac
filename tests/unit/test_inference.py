"""The runner's own logic with small in-test models: OOM splitting, output checks, warm-up."""

from __future__ import annotations

import weakref

import numpy as np
import pytest
import torch

from cutq.core.errors import DeviceOutOfMemory, WarmupFailed
from cutq.worker.models.base import Model, round_to_multiple
from cutq.worker.runtime.inference import Runner, batch_shapes, mask_from_array


class Brightness(Model):
    """Saliency = per-pixel brightness: a genuine (if naive) salient-object rule."""

    name = "brightness"
    version = "test"

    def __init__(self, max_batch_in_memory: int | None = None, broken: str | None = None):
        self.max_batch_in_memory = max_batch_in_memory
        self.broken = broken
        self.batch_sizes: list[int] = []

    def setup(self, device: torch.device) -> None:
        self.device = device

    def input_size(self, height: int, width: int, resize: str) -> tuple[int, int]:
        return (
            (32, 32)
            if resize == "static"
            else (round_to_multiple(height, 32), round_to_multiple(width, 32))
        )

    def preprocess(self, image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
        return torch.nn.functional.interpolate(tensor[None], size=size, mode="bilinear")[0]

    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        self.batch_sizes.append(len(batch))
        if self.max_batch_in_memory is not None and len(batch) > self.max_batch_in_memory:
            raise torch.cuda.OutOfMemoryError("simulated")
        saliency = batch.mean(dim=1, keepdim=True)
        if self.broken == "nan":
            return saliency * float("nan")
        if self.broken == "shape":
            return saliency[:1]
        if self.broken == "inverted":
            return 1.0 - saliency
        return saliency


def tensors(count: int) -> list[torch.Tensor]:
    return [torch.full((3, 32, 32), i / max(count, 1)) for i in range(count)]


def test_out_of_memory_splits_the_batch_in_halves() -> None:
    model = Brightness(max_batch_in_memory=2)
    runner = Runner(model, "cpu")
    maps = runner.predict(tensors(8))
    assert len(maps) == 8 and model.batch_sizes == [8, 4, 2, 2, 4, 2, 2]
    assert [float(m.mean()) for m in maps] == pytest.approx([i / 8 for i in range(8)])


def test_out_of_memory_frees_the_failed_batch_before_the_halves_run() -> None:
    """The split happens outside the ``except`` block: the traceback no longer pins the failed
    attempt's batch (and whatever activations its frames held) while the halves run."""

    class Remembers(Brightness):
        def __init__(self) -> None:
            super().__init__(max_batch_in_memory=2)
            self.failed: list[weakref.ref] = []
            self.alive_while_retrying: list[bool] = []

        def predict(self, batch: torch.Tensor) -> torch.Tensor:
            self.alive_while_retrying.append(any(ref() is not None for ref in self.failed))
            activations = batch.repeat(1, 4, 1, 1)  # stands in for the network's temporaries
            if len(batch) > 2:
                self.failed += [weakref.ref(batch), weakref.ref(activations)]
            return super().predict(batch)

    model = Remembers()
    Runner(model, "cpu").predict(tensors(8))
    assert model.batch_sizes == [8, 4, 2, 2, 4, 2, 2]
    assert model.alive_while_retrying == [False] * 7


def test_out_of_memory_at_batch_one_is_a_transient_error() -> None:
    runner = Runner(Brightness(max_batch_in_memory=0), "cpu")
    with pytest.raises(DeviceOutOfMemory):
        runner.predict(tensors(4))


def test_wrong_output_shape_explains_the_contract() -> None:
    runner = Runner(Brightness(broken="shape"), "cpu")
    with pytest.raises(RuntimeError, match="one 1-channel map per input"):
        runner.predict(tensors(3))


def test_to_mask_resizes_thresholds_and_leaves_the_map_alone() -> None:
    runner = Runner(Brightness(), "cpu")
    saliency = torch.linspace(0, 1, 32 * 32).reshape(1, 32, 32)
    before = saliency.clone()
    same_size = runner.to_mask(saliency, 32, 32)
    assert torch.equal(saliency, before)  # the runner never writes into the model's output
    assert same_size.dtype == np.uint8 and same_size.min() == 0 and same_size.max() == 255
    resized = runner.to_mask(saliency, 7, 300, threshold=0.5)
    assert resized.shape == (7, 300) and set(np.unique(resized)) <= {0, 255}


@pytest.mark.parametrize("broken", ["nan", "inverted"])
def test_warmup_refuses_a_broken_model(broken: str) -> None:
    runner = Runner(Brightness(broken=broken), "cpu")
    runner.setup()
    with pytest.raises(WarmupFailed):
        runner.warmup("static", [1, 2])


def test_warmup_passes_a_working_model_at_each_batch_size() -> None:
    model = Brightness()
    runner = Runner(model, "cpu")
    runner.setup()
    runner.warmup("dynamic", [1, 4], image_sizes=((16, 16), (17, 50)))
    assert model.batch_sizes == [1, 4, 1, 4]


def test_batch_shapes() -> None:
    assert batch_shapes(1) == [1]
    assert batch_shapes(8) == [1, 2, 3, 4, 5, 6, 7, 8]


class NumpyBrightness(Brightness):
    """The same rule on numpy arrays: what an onnxruntime model looks like to the runner."""

    engine = "numpy"

    def preprocess(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:  # type: ignore[override]
        return super().preprocess(image, size).numpy()

    def predict(self, batch: np.ndarray, urgent: bool = False) -> np.ndarray:  # type: ignore[override]
        out = super().predict(torch.from_numpy(batch))
        return out.numpy()


def test_numpy_models_get_arrays_and_the_same_masks_as_torch() -> None:
    torch_runner = Runner(Brightness(), "cpu")
    numpy_runner = Runner(NumpyBrightness(), "auto")
    assert numpy_runner.arrays and not numpy_runner.cuda and numpy_runner.device == "cpu"
    images = [np.random.default_rng(i).integers(0, 255, (40, 70, 3), np.uint8) for i in range(3)]
    size = (32, 64)
    maps = numpy_runner.predict([numpy_runner.model.preprocess(im, size) for im in images])
    expected = torch_runner.predict([torch_runner.model.preprocess(im, size) for im in images])
    for got, want in zip(maps, expected, strict=True):
        assert isinstance(got, np.ndarray) and got.shape == (1, *size)
        assert np.allclose(got, want.numpy(), atol=1e-6)
        for threshold in (None, 0.5):
            ours = numpy_runner.to_mask(got, 40, 70, threshold)
            theirs = torch_runner.to_mask(want, 40, 70, threshold)
            assert ours.dtype == np.uint8 and np.array_equal(ours, theirs)


@pytest.mark.parametrize(
    ("source", "target"),
    [((320, 320), (480, 640)), ((320, 320), (17, 5)), ((32, 64), (700, 333)), ((96, 96), (96, 96))],
)
def test_numpy_upsampling_is_torch_bilinear(
    source: tuple[int, int], target: tuple[int, int]
) -> None:
    """Half-pixel centres, clamped edges, no antialiasing, in row chunks (700 rows > 256)."""
    runner = Runner(Brightness(), "cpu")
    rng = np.random.default_rng(sum(source + target))
    saliency = rng.random((1, *source), dtype=np.float32) * 1.2 - 0.1  # also outside [0, 1]
    ours = mask_from_array(saliency[0], *target)
    theirs = runner.to_mask(torch.from_numpy(saliency), *target)
    assert ours.shape == target
    # float rounding may move a value across a .5 boundary: at most one level, rarely
    difference = np.abs(ours.astype(int) - theirs.astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3


def test_numpy_runner_checks_shapes_and_warms_up() -> None:
    runner = Runner(NumpyBrightness(broken="shape"), "cpu")
    with pytest.raises(RuntimeError, match="one 1-channel map per input"):
        runner.predict([np.zeros((3, 32, 32), np.float32)] * 2)
    with pytest.raises(WarmupFailed):
        Runner(NumpyBrightness(broken="inverted"), "cpu").warmup("static", [1])
    model = NumpyBrightness()
    Runner(model, "cpu").warmup("static", [1, 2])
    assert model.batch_sizes == [1, 2]
