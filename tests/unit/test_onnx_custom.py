"""Bring-your-own ONNX model: each published convention, wired end to end on graphs built here.

Every graph reads one channel of its input through a known gain (tests/support/onnx_graphs.py),
so the expected saliency is computed from the image with numpy, independently of cutq's code:
scale, mean, std, channel order, layout, output choice, sigmoid and min-max all show in it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cutq.core.errors import ConfigError, WarmupFailed
from cutq.worker.config import WorkerConfig
from cutq.worker.models import create_model, onnx_engine
from cutq.worker.models.onnx_custom import CustomOnnx
from cutq.worker.models.onnx_spec import ModelSpec
from cutq.worker.runtime.inference import Runner
from tests.support import onnx_graphs

IMAGENET_MEAN = np.asarray([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.asarray([0.229, 0.224, 0.225], np.float32)


def scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A warm disc (high red, low blue) on a dark, noisy background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    image = rng.integers(20, 70, (height, width, 3)).astype(np.uint8)
    inside = (yy - height / 2) ** 2 + (xx - width / 2) ** 2 <= (min(height, width) * 0.3) ** 2
    image[inside] = (170, 140, 40)  # max well under 255, even after Lanczos ringing
    return image


def resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    pil = Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.LANCZOS)
    return np.asarray(pil, np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def write_spec(tmp_path: Path, **fields: Any) -> Path:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(fields))
    return path


def ready(spec_path: Path) -> Runner:
    runner = Runner(CustomOnnx(ModelSpec.load(spec_path)), "cpu")
    runner.setup()
    return runner


def test_u2net_convention_divides_by_the_max_and_min_max_normalises(tmp_path: Path) -> None:
    """u2net / ISNet exports as rembg runs them: ÷ image max, ImageNet mean/std, any size,
    one of several outputs picked by index, min-max per image; static and dynamic resize."""
    onnx_graphs.nchw_graph(
        tmp_path / "u2net.onnx",
        channel=0,
        gain=0.7,
        sigmoid_inside=True,
        outputs=("side", "fused", "side2"),
        main=1,
    )
    spec = write_spec(
        tmp_path,
        name="my-u2net",
        file="u2net.onnx",  # relative to the spec
        input_size=[64, 64],
        dynamic=True,
        max_side=128,
        scale="max",
        mean=IMAGENET_MEAN.tolist(),
        std=IMAGENET_STD.tolist(),
        output=1,
        minmax=True,
    )
    runner = ready(spec)
    model = runner.model
    runner.warmup("static", [1, 2])
    runner.warmup("dynamic", [1])
    image = scene(100, 150)
    assert model.input_size(100, 150, "static") == (64, 64)
    size = model.input_size(100, 150, "dynamic")
    assert size == (96, 128)
    assert model.input_size(20000, 10, "dynamic") == (128, 32)

    [got] = runner.predict([model.preprocess(image, size)])
    pixels = resized(image, size)
    red = (pixels[:, :, 0] / pixels.max() - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    fused = sigmoid(0.7 * red)  # min-max after a sigmoid still shows scale, mean and std
    expected = (fused - fused.min()) / (fused.max() - fused.min())
    assert got.shape == (1, *size)
    np.testing.assert_allclose(got[0], expected, atol=1e-5)


def test_birefnet_convention_fixed_graph_batch_of_one_logits_by_name(tmp_path: Path) -> None:
    """BiRefNet-style exports: fixed 1×3×h×w, ÷ 255, ImageNet mean/std, logits (sigmoid in
    cutq), the map picked by output name, N×h×w maps; input_size read from the graph."""
    path = onnx_graphs.nchw_graph(
        tmp_path / "birefnet.onnx",
        channel=0,
        gain=2.0,
        bias=-0.5,
        shape=(1, 3, 64, 96),
        outputs=("aux", "logits"),
        main=1,
        squeeze=True,
    )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    spec = write_spec(
        tmp_path,
        name="birefnet",
        file=str(path),
        sha256=digest,
        scale=1 / 255,
        mean=IMAGENET_MEAN.tolist(),
        std=IMAGENET_STD.tolist(),
        output="logits",
        sigmoid=True,
    )
    runner = ready(spec)
    model = runner.model
    assert model.version == digest[:12]
    assert model.describe() == {"name": "birefnet", "version": digest[:12]}
    assert model.input_size(500, 20, "dynamic") == (64, 96)  # a fixed graph: always its size
    runner.warmup("static", [1, 3])

    images = [scene(80, 120, seed) for seed in range(3)]
    maps = runner.predict([model.preprocess(image, (64, 96)) for image in images])
    for image, got in zip(images, maps, strict=True):
        red = (resized(image, (64, 96))[:, :, 0] / 255 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
        np.testing.assert_allclose(got[0], sigmoid(2.0 * red - 0.5), atol=1e-5)


def test_nhwc_bgr_convention(tmp_path: Path) -> None:
    """A channels-last graph trained on BGR (OpenCV) input, sigmoid inside the graph."""
    onnx_graphs.nhwc_graph(tmp_path / "bgr.onnx", channel=2, gain=4.0)  # 2 = red in BGR
    spec = write_spec(
        tmp_path,
        name="bgr-nhwc",
        file="bgr.onnx",
        version="2024.1",
        input_size=[64, 64],
        dynamic=True,
        mean=[0.5, 0.5, 0.5],
        std=[0.5, 0.5, 0.5],
        channel_order="bgr",
        layout="nhwc",
    )
    runner = ready(spec)
    assert runner.model.describe() == {"name": "bgr-nhwc", "version": "2024.1"}
    runner.warmup("dynamic", [1, 2])
    image = scene(70, 40)
    size = runner.model.input_size(70, 40, "dynamic")
    assert size == (64, 32)
    [got] = runner.predict([runner.model.preprocess(image, size)])
    red = (resized(image, size)[:, :, 0] / 255 - 0.5) / 0.5
    np.testing.assert_allclose(got[0], sigmoid(4.0 * red), atol=1e-5)


def base_spec(tmp_path: Path, graph: Path, **changes: Any) -> Path:
    fields: dict[str, Any] = {
        "name": "probe",
        "file": str(graph),
        "mean": IMAGENET_MEAN.tolist(),
        "std": IMAGENET_STD.tolist(),
        "sigmoid": True,
    }
    fields.update(changes)
    return write_spec(tmp_path, **{k: v for k, v in fields.items() if v is not None})


FIXED = {"shape": (1, 3, 64, 64), "gain": 4.0}
DYNAMIC = {"gain": 4.0}


@pytest.mark.parametrize(
    ("graph", "changes", "message"),
    [
        (FIXED, {"input_size": [32, 32]}, r"input_size \[32, 32\] but .* fixed at 64×64"),
        (FIXED, {"dynamic": True}, r"says dynamic, but .* fixed at 64×64"),
        (FIXED, {"layout": "nhwc"}, r"64 channels where layout nhwc .*is the layout nchw"),
        (FIXED, {"output": 3}, r"output index 3 but the graph has 1 output\(s\): map"),
        (FIXED, {"output": "mask"}, r"no output named 'mask'; the graph has map"),
        (DYNAMIC, {}, r"has no fixed size; the spec needs input_size"),
        (DYNAMIC, {"input_size": [64, 64], "layout": "nhwc"}, r"failed on a 1×3×64×64 input"),
        (DYNAMIC, {"input_size": [64, 64], "sha256": "0" * 64}, r"has sha256 [0-9a-f]{64}, exp"),
    ],
)
def test_a_wrong_spec_fails_at_setup_naming_the_field(
    tmp_path: Path, graph: dict[str, Any], changes: dict[str, Any], message: str
) -> None:
    path = onnx_graphs.nchw_graph(tmp_path / "g.onnx", **graph)
    model = CustomOnnx(ModelSpec.load(base_spec(tmp_path, path, **changes)))
    with pytest.raises(ConfigError, match=message):
        model.setup("cpu")


def test_graphs_cutq_cannot_serve_fail_at_setup(tmp_path: Path) -> None:
    two = onnx_graphs.two_input_graph(tmp_path / "two.onnx")
    with pytest.raises(ConfigError, match=r"takes 2 inputs \(image, prompt\)"):
        CustomOnnx(ModelSpec.load(base_spec(tmp_path, two))).setup("cpu")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf at all")
    with pytest.raises(ConfigError, match="cannot load"):
        CustomOnnx(ModelSpec.load(base_spec(tmp_path, garbage, input_size=[32, 32]))).setup()
    with pytest.raises(ConfigError, match="does not exist"):
        CustomOnnx(ModelSpec.load(base_spec(tmp_path, tmp_path / "missing.onnx"))).setup()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sigmoid": False}, r"outside \[0, 1\]"),  # logits taken as probabilities
        ({"channel_order": "bgr"}, "did not find the subject"),  # reads blue, not red
        ({"mean": [0, 0, 0], "std": [1, 1, 1], "scale": -1}, "scale must be a positive"),
    ],
)
def test_a_wrong_convention_fails_warm_up_not_jobs(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    path = onnx_graphs.nchw_graph(tmp_path / "g.onnx", **FIXED)
    with pytest.raises((WarmupFailed, ConfigError), match=message):
        ready(base_spec(tmp_path, path, **changes)).warmup("static", [1])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "x", "file": "a.onnx", "mena": [0, 0, 0]}, r"unknown key\(s\) mena"),
        ({"name": "x"}, "missing file"),
        ({"name": "BiRefNet", "file": "a.onnx"}, r"name must match"),
        ({"name": "u2netp", "file": "a.onnx"}, "built-in model"),
        ({"name": "x", "file": "a.onnx", "mean": [0.5, 0.5]}, "mean must be three numbers"),
        ({"name": "x", "file": "a.onnx", "std": [1, 0, 1]}, "std must be positive"),
        ({"name": "x", "file": "a.onnx", "channel_order": "rbg"}, "channel_order must be"),
        ({"name": "x", "file": "a.onnx", "sha256": "abc"}, "64 hex digits"),
        ({"name": "x", "file": "a.onnx", "dynamic": True, "input_size": [100, 64]}, "stride 32"),
        ({"name": "x", "file": "a.onnx", "sigmoid": "yes"}, "sigmoid must be true or false"),
    ],
)
def test_spec_files_are_checked_field_by_field(
    tmp_path: Path, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        ModelSpec.load(write_spec(tmp_path, **fields))


def test_spec_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        ModelSpec.load(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{name: x}")
    with pytest.raises(ConfigError, match="is not JSON"):
        ModelSpec.load(tmp_path / "bad.json")


def test_the_registry_serves_a_spec_through_config(tmp_path: Path) -> None:
    path = onnx_graphs.nchw_graph(tmp_path / "g.onnx", **FIXED)
    spec = str(base_spec(tmp_path, path))
    model = create_model(WorkerConfig(model_spec=spec, device="cpu"))
    assert isinstance(model, CustomOnnx) and model.name == "probe" and model.streams == 1
    assert create_model(WorkerConfig(model_spec=spec, model="probe", streams=2)).streams == 2
    with pytest.raises(ConfigError, match="CUTQ_MODEL=inspyrenet but the model spec serves probe"):
        create_model(WorkerConfig(model_spec=spec, model="inspyrenet"))
    with pytest.raises(ConfigError, match="runs in onnxruntime"):
        create_model(WorkerConfig(model_spec=spec, engine="torch"))
    config = WorkerConfig.from_env({"CUTQ_MODEL_SPEC": spec})
    assert config.model_spec == spec


def test_placement_follows_the_configured_device() -> None:
    placement = onnx_engine.Placement.for_device
    assert placement("cpu", gpus=1) == onnx_engine.CPU
    assert placement("auto", gpus=0) == onnx_engine.CPU
    assert placement("auto", gpus=1) == onnx_engine.Placement(cuda=True)
    assert placement("cuda", gpus=0) == onnx_engine.Placement(cuda=True)
    assert placement("cuda:1", gpus=2).device == "cuda:1"


CUDA = "CUDAExecutionProvider"


class FakeOrt:
    """onnxruntime as if it were the onnxruntime-gpu wheel on a GPU machine: CUDA's provider
    is listed, sessions asked for it record the request and run on the CPU, and report CUDA
    first unless ``starts`` is False (onnxruntime's silent fallback when CUDA's libraries
    cannot be loaded)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, listed: bool = True, starts: bool = True):
        import onnxruntime as ort

        self.requests: list[list[Any]] = []
        self.preloads = 0
        real = ort.InferenceSession
        fake = self

        class Session:
            def __init__(self, path: str, options: Any, providers: list[Any]) -> None:
                fake.requests.append(list(providers))
                self.inner = real(path, options, providers=["CPUExecutionProvider"])
                asked = CUDA in [p[0] if isinstance(p, tuple) else p for p in providers]
                self.providers = [CUDA] * (asked and starts) + ["CPUExecutionProvider"]

            def get_providers(self) -> list[str]:
                return self.providers

            def __getattr__(self, name: str) -> Any:
                return getattr(self.inner, name)

        def preload() -> None:
            self.preloads += 1

        listing = [CUDA] * listed + ["CPUExecutionProvider"]
        monkeypatch.setattr(ort, "get_available_providers", lambda: listing)
        monkeypatch.setattr(ort, "InferenceSession", Session)
        monkeypatch.setattr(ort, "preload_dlls", preload, raising=False)


def test_providers_cuda_first_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeOrt(monkeypatch)
    assert onnx_engine.providers_for(onnx_engine.CPU) == ["CPUExecutionProvider"]
    assert fake.preloads == 0
    on_gpu1 = onnx_engine.Placement.for_device("cuda:1", gpus=2)
    assert onnx_engine.providers_for(on_gpu1) == [(CUDA, {"device_id": 1}), "CPUExecutionProvider"]
    assert fake.preloads == 1  # the nvidia-* wheels' libraries, before the first CUDA session


@pytest.mark.parametrize("device", ["cuda", "auto"])
def test_no_cuda_provider_stops_a_gpu_worker_and_names_what_to_install(
    monkeypatch: pytest.MonkeyPatch, device: str
) -> None:
    """``auto`` on a machine with a GPU is a GPU deployment too: no quiet CPU fallback."""
    FakeOrt(monkeypatch, listed=False)
    placement = onnx_engine.Placement.for_device(device, gpus=1)
    with pytest.raises(ConfigError, match=r"cuda:0 needs onnxruntime's CUDA.*onnxruntime-gpu"):
        onnx_engine.providers_for(placement)
    with pytest.raises(ConfigError, match=r"pip uninstall -y onnxruntime && pip install"):
        onnx_engine.providers_for(placement)
    with pytest.raises(ConfigError, match="on purpose: CUTQ_DEVICE=cpu"):
        onnx_engine.providers_for(placement)


def _spec_config(tmp_path: Path, device: str) -> WorkerConfig:
    from cutq.worker.runtime.hardware import Platform

    spec = base_spec(tmp_path, onnx_graphs.nchw_graph(tmp_path / "g.onnx", **FIXED))
    return WorkerConfig(model_spec=str(spec), device=device, platform=Platform(gpus=1))


def test_a_custom_model_runs_on_cuda_when_the_worker_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = Runner(create_model(_spec_config(tmp_path, "cpu")), "cpu")
    expected.setup()
    fake = FakeOrt(monkeypatch)
    config = _spec_config(tmp_path, "cuda")
    runner = Runner(create_model(config), config.device)
    runner.setup()
    assert runner.device == "cuda:0" and runner.model.streams == 1
    assert fake.requests == [[(CUDA, {"device_id": 0}), "CPUExecutionProvider"]]
    batch = [np.random.default_rng(1).random((3, 64, 64), dtype=np.float32)]
    np.testing.assert_array_equal(runner.predict(batch)[0], expected.predict(batch)[0])


@pytest.mark.parametrize("device", ["cuda", "auto"])
def test_a_cuda_provider_that_falls_back_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, device: str
) -> None:
    FakeOrt(monkeypatch, starts=False)  # listed, but its libraries did not load
    config = _spec_config(tmp_path, device)
    with pytest.raises(ConfigError, match="could not start its CUDAExecutionProvider on cuda:0"):
        Runner(create_model(config), config.device).setup()
    assert Runner(create_model(_spec_config(tmp_path, "cpu")), "cpu").device == "cpu"


def test_u2netp_runs_on_cuda_with_engine_onnxruntime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cutq.worker.runtime.hardware import Platform

    fake = FakeOrt(monkeypatch)
    config = WorkerConfig(engine="onnxruntime", device="cuda", platform=Platform(gpus=1))
    runner = Runner(create_model(config), config.device)
    runner.setup()
    assert runner.device == "cuda:0" and runner.model.streams == 1
    assert len(fake.requests) == 2  # the general and the fixed graph, both on CUDA's provider
    assert all(request[0] == (CUDA, {"device_id": 0}) for request in fake.requests)
    assert runner.predict([np.zeros((3, 320, 320), np.float32)])[0].shape == (1, 320, 320)


def test_a_gs_graph_is_fetched_into_the_cache_and_pinned(gcs_bucket: str, tmp_path: Path) -> None:
    from cutq.core.storage import open_storage

    data = onnx_graphs.nchw_graph(tmp_path / "g.onnx", **FIXED).read_bytes()
    uri = f"gs://{gcs_bucket}/models/probe.onnx"
    open_storage(uri).write(uri, data, content_type="application/octet-stream")
    digest = hashlib.sha256(data).hexdigest()
    spec = ModelSpec.load(base_spec(tmp_path, tmp_path / "unused", file=uri, sha256=digest))
    model = CustomOnnx(spec, cache_dir=tmp_path / "cache")
    model.setup("cpu")
    assert model.path is not None and model.path.parent == tmp_path / "cache"
    assert model.version == digest[:12]
    wrong = ModelSpec.load(base_spec(tmp_path, tmp_path / "x", file=uri, sha256="1" * 64))
    with pytest.raises(ConfigError, match="sha256"):
        CustomOnnx(wrong, cache_dir=tmp_path / "other").setup("cpu")
