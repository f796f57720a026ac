"""Tiny saliency ONNX graphs of each published convention, built with onnx's helper API.

Each graph reads one channel of its (already normalised) input, multiplies it by ``gain`` and
adds ``bias`` — a 1×1 convolution, or a MatMul over the last axis for NHWC — so a test can
compute exactly what cutq must get from an image with numpy, and a mistake in scaling, mean,
std, channel order, layout, output choice or activation changes the numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: onnxruntime ≥ 1.17 runs opset 17 and IR 8.
OPSET = 17
IR_VERSION = 8


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _pick(channel: int, gain: float) -> np.ndarray:
    weights = np.zeros((1, 3, 1, 1), np.float32)
    weights[0, channel] = gain
    return weights


def nchw_graph(
    path: Path,
    *,
    channel: int = 0,
    gain: float = 1.0,
    bias: float = 0.0,
    shape: tuple[int | str, int | str, int | str, int | str] = ("batch", 3, "height", "width"),
    outputs: tuple[str, ...] = ("map",),
    main: int = 0,
    sigmoid_inside: bool = False,
    squeeze: bool = False,
) -> Path:
    """NCHW input ``image``; output ``outputs[main]`` is gain·x[channel] + bias (sigmoid'd
    inside when ``sigmoid_inside``; N×h×w when ``squeeze``); the others are decoys (−map)."""
    nodes = [helper.make_node("Conv", ["image", "w"], ["linear"], name="pick")]
    nodes.append(helper.make_node("Add", ["linear", "b"], ["shifted"]))
    last = "shifted"
    if sigmoid_inside:
        nodes.append(helper.make_node("Sigmoid", [last], ["activated"]))
        last = "activated"
    if squeeze:
        nodes.append(helper.make_node("Squeeze", [last, "axis1"], ["squeezed"]))
        last = "squeezed"
    out_shape: list[int | str] = [shape[0], 1, shape[2], shape[3]]
    if squeeze:
        out_shape = [shape[0], shape[2], shape[3]]
    declared = []
    for index, name in enumerate(outputs):
        if index == main:
            nodes.append(helper.make_node("Identity", [last], [name]))
        else:
            nodes.append(helper.make_node("Neg", [last], [name]))
        declared.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, out_shape))
    inits = [
        numpy_helper.from_array(_pick(channel, gain), "w"),
        numpy_helper.from_array(np.asarray([bias], np.float32), "b"),
        numpy_helper.from_array(np.asarray([1], np.int64), "axis1"),
    ]
    graph = helper.make_graph(
        nodes,
        "saliency",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, list(shape))],
        declared,
        inits,
    )
    return _save(graph, path)


def nhwc_graph(path: Path, *, channel: int = 0, gain: float = 1.0, bias: float = 0.0) -> Path:
    """NHWC input ``pixels`` [N, H, W, 3] (any size); output N×H×W×1, sigmoid inside."""
    weights = np.zeros((3, 1), np.float32)
    weights[channel, 0] = gain
    nodes = [
        helper.make_node("MatMul", ["pixels", "w"], ["linear"]),
        helper.make_node("Add", ["linear", "b"], ["shifted"]),
        helper.make_node("Sigmoid", ["shifted"], ["alpha"]),
    ]
    graph = helper.make_graph(
        nodes,
        "saliency_nhwc",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", "h", "w", 3])],
        [helper.make_tensor_value_info("alpha", TensorProto.FLOAT, ["n", "h", "w", 1])],
        [
            numpy_helper.from_array(weights, "w"),
            numpy_helper.from_array(np.asarray([bias], np.float32), "b"),
        ],
    )
    return _save(graph, path)


def two_input_graph(path: Path) -> Path:
    """Two inputs (an image and a prompt): not something cutq can serve."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["image", "prompt"], ["map"])],
        "two_inputs",
        [
            helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32]),
            helper.make_tensor_value_info("prompt", TensorProto.FLOAT, [1, 3, 32, 32]),
        ],
        [helper.make_tensor_value_info("map", TensorProto.FLOAT, [1, 3, 32, 32])],
    )
    return _save(graph, path)


def fp16_graph(
    path: Path,
    *,
    size: tuple[int, int] = (64, 64),
    channel: int = 0,
    gain: float = 1.0,
    bias: float = 0.0,
    batch: int | str = 1,
) -> Path:
    """As a GPU export often is: float16 input ``image`` [batch, 3, h, w] (fixed size) and a
    float16 output ``logits``; inside, gain·x[channel] + bias computed in float32 (Casts around
    the convolution, which onnxruntime's CPU provider runs in float32 only)."""
    height, width = size
    nodes = [
        helper.make_node("Cast", ["image"], ["wide"], to=TensorProto.FLOAT),
        helper.make_node("Conv", ["wide", "w"], ["linear"], name="pick"),
        helper.make_node("Add", ["linear", "b"], ["shifted"]),
        helper.make_node("Cast", ["shifted"], ["logits"], to=TensorProto.FLOAT16),
    ]
    graph = helper.make_graph(
        nodes,
        "saliency_fp16",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT16, [batch, 3, height, width])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT16, [batch, 1, height, width])],
        [
            numpy_helper.from_array(_pick(channel, gain), "w"),
            numpy_helper.from_array(np.asarray([bias], np.float32), "b"),
        ],
    )
    return _save(graph, path)
