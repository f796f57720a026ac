"""Graphs as they are published: float16 inputs and outputs, 1024² fixed-batch inputs, the
licence a spec records, and I/O binding (what CUDA's provider uses), on graphs built here."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from cutq.core.errors import ConfigError
from cutq.worker.models.onnx_custom import CustomOnnx
from cutq.worker.models.onnx_spec import ModelSpec, main
from cutq.worker.runtime.inference import Runner
from tests.support import onnx_graphs
from tests.unit.test_onnx_custom import resized, scene, sigmoid, write_spec


def _fp16_runner(tmp_path: Path, size: tuple[int, int], **spec: object) -> Runner:
    graph = onnx_graphs.fp16_graph(
        tmp_path / "fp16.onnx", size=size, channel=0, gain=0.05, bias=-4.0
    )
    path = write_spec(tmp_path, name="half", file=graph.name, sigmoid=True, scale=1.0, **spec)
    runner = Runner(CustomOnnx(ModelSpec.load(path)), "cpu")
    runner.setup()
    return runner


def test_an_fp16_graph_is_fed_float16_and_read_back_as_float32(tmp_path: Path) -> None:
    runner = _fp16_runner(tmp_path, (64, 96))
    model = runner.model
    assert isinstance(model, CustomOnnx) and model.input_dtype is np.float16
    assert model.batch_of_one and model.spec.input_size == (64, 96)
    image = scene(150, 200)
    size = model.input_size(150, 200, "static")
    maps = runner.predict([model.preprocess(image, size), model.preprocess(image[::-1], size)])
    assert all(m.dtype == np.float32 and m.shape == (1, 64, 96) for m in maps)
    # What the graph computes, in float16 at its input and output, from the image directly.
    red = resized(image, (64, 96))[:, :, 0].astype(np.float16).astype(np.float32)
    expected = sigmoid((0.05 * red - 4.0).astype(np.float16).astype(np.float32))
    np.testing.assert_allclose(maps[0][0], expected, atol=1e-6)
    in_float32 = sigmoid(0.05 * resized(image, (64, 96))[:, :, 0] - 4.0)
    assert np.abs(maps[0][0] - in_float32).max() > 1e-5  # float16 really was on the way
    flipped = resized(image[::-1], (64, 96))[:, :, 0]
    np.testing.assert_allclose(maps[1][0], sigmoid(0.05 * flipped - 4.0), atol=5e-3)


def test_a_1024_square_fixed_batch_graph_runs_image_by_image(tmp_path: Path) -> None:
    runner = _fp16_runner(tmp_path, (1024, 1024))
    model = runner.model
    assert isinstance(model, CustomOnnx)
    image = scene(700, 1100)
    size = model.input_size(700, 1100, "dynamic")  # a fixed graph: always its own size
    assert size == (1024, 1024)
    tensors = [model.preprocess(image, size) for _ in range(3)]
    maps = runner.predict(tensors)
    assert len(maps) == 3 and maps[0].shape == (1, 1024, 1024)
    np.testing.assert_array_equal(maps[0], maps[2])
    mask = runner.to_mask(maps[0], 700, 1100)
    assert mask.shape == (700, 1100) and mask[350, 550] > 200 and mask[20, 20] < 50


def test_io_binding_gives_what_a_plain_run_gives(tmp_path: Path) -> None:
    """The CUDA path binds the input and the chosen output (here on the CPU's provider,
    which the same onnxruntime calls serve): same maps as ``session.run``."""
    graph = onnx_graphs.nchw_graph(
        tmp_path / "g.onnx", gain=0.02, bias=-2.0, outputs=("decoy", "map"), main=1
    )
    path = write_spec(
        tmp_path,
        name="bound",
        file=graph.name,
        input_size=[48, 64],
        output="map",
        sigmoid=True,
        scale=1.0,
    )
    model = CustomOnnx(ModelSpec.load(path))
    model.setup("cpu")
    assert model._graph is not None and not model._graph.binding  # CPU: plain run
    batch = np.stack([model.preprocess(scene(60, 80, seed), (48, 64)) for seed in (1, 2)])
    plain = model.predict(batch)
    model._graph.binding = True
    bound = model.predict(batch)
    np.testing.assert_array_equal(bound, plain)
    red = resized(scene(60, 80, 2), (48, 64))[:, :, 0]
    np.testing.assert_allclose(bound[1, 0], sigmoid(0.02 * red - 2.0), atol=1e-5)


def test_a_graph_of_another_input_type_is_refused(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Cast", ["image"], ["map"], to=TensorProto.FLOAT)],
        "ints",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("map", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    onnx_graphs._save(graph, tmp_path / "u8.onnx")
    path = write_spec(tmp_path, name="bytes", file="u8.onnx")
    with pytest.raises(ConfigError, match=r"input image is tensor\(uint8\)"):
        CustomOnnx(ModelSpec.load(path)).setup("cpu")


def test_the_licence_is_recorded_shown_at_start_up_and_checked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.INFO):
        runner = _fp16_runner(tmp_path, (32, 32), license="MIT", commercial_use=True)
    assert runner.model.terms() == {"license": "MIT", "commercial_use": "yes"}
    assert "licence MIT, commercial use yes" in caplog.text
    assert "does not allow commercial use" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        runner = _fp16_runner(tmp_path, (32, 32), license="CC-BY-NC-4.0", commercial_use=False)
    assert "licence CC-BY-NC-4.0, commercial use no" in caplog.text
    assert "its licence (CC-BY-NC-4.0) does not allow commercial use" in caplog.text
    unstated = _fp16_runner(tmp_path, (32, 32))
    assert unstated.model.terms() == {"license": "unknown", "commercial_use": "unknown"}
    for wrong, message in (
        ({"commercial_use": "yes"}, "commercial_use must be true or false"),
        ({"license": ""}, "license must be a short text"),
    ):
        with pytest.raises(ConfigError, match=message):
            ModelSpec.from_dict({"name": "x", "file": "x.onnx", **wrong})
    spec = write_spec(tmp_path, name="x", file="x.onnx", license="Apache-2.0", commercial_use=True)
    assert main([str(spec)]) == 0
    assert "licence Apache-2.0, commercial use yes" in capsys.readouterr().out
    assert main([str(write_spec(tmp_path, name="x", file="x.onnx", licence="MIT"))]) == 1
    assert "unknown key(s) licence" in capsys.readouterr().err


def test_the_bundled_models_state_their_licence() -> None:
    from cutq.worker.models.inspyrenet import InSPyReNet
    from cutq.worker.models.u2netp_onnx import U2NetPOnnx

    assert U2NetPOnnx.license == "Apache-2.0" and U2NetPOnnx.commercial_use is True
    assert InSPyReNet.license == "MIT" and InSPyReNet.commercial_use is True
