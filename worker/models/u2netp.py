"""U²-Net-p, the small (1.1 M parameters) salient-object network bundled with cutq.

U²-Net (Qin et al., "U²-Net: Going Deeper with Nested U-Structure for Salient Object
Detection", Pattern Recognition 2020) stacks residual U-blocks (RSU) inside an outer U. The
"p" variant keeps the shape but uses 16 middle / 64 output channels everywhere.

The bundled weights come from rembg's ``u2netp.onnx``, where every BatchNorm is folded into
the convolution before it, so each conv-BN-ReLU block of the paper is a biased 3×3
convolution followed by ReLU here (see ``tools/convert_u2netp.py``).

Pre- and post-processing follow rembg, which the weights were exported for: Lanczos resize,
divide by the image's maximum, ImageNet mean/std; the fused sigmoid map min-max normalised
per image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cutq.core.contract import Resize
from cutq.worker.models.base import Model
from cutq.worker.models.u2netp_spec import (
    DEFAULT_MAX_SIDE,
    MEAN,
    STATIC_SIDE,
    STD,
    STRIDE,
    bundled_weights_path,
    check_max_side,
    file_sha256,
    input_size,
    preprocess_array,
)

__all__ = [
    "DEFAULT_MAX_SIDE",
    "MEAN",
    "STATIC_SIDE",
    "STD",
    "STRIDE",
    "NormalisedU2NetP",
    "U2NetP",
    "U2NetPNet",
    "bundled_weights_path",
    "file_sha256",
    "load_network",
    "normalize_per_image",
]

#: Guards the per-image min-max normalisation against a constant map.
_EPS = 1e-8


def _upsample_like(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of ``x`` to ``ref``'s spatial size (half-pixel centres, as exported)."""
    return F.interpolate(x, size=ref.shape[2:], mode="bilinear", align_corners=False)


def _pool(x: torch.Tensor) -> torch.Tensor:
    """2× max pooling that keeps a trailing odd row/column, as the original network does."""
    return F.max_pool2d(x, kernel_size=2, stride=2, ceil_mode=True)


class ConvReLU(nn.Module):
    """3×3 convolution (BatchNorm folded into its bias) followed by ReLU."""

    def __init__(self, in_ch: int, out_ch: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=dilation, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))


class RSU(nn.Module):
    """Residual U-block of height ``height`` (RSU-7 … RSU-4): a small U-Net plus a shortcut.

    Layout: an input conv to ``out_ch``; an encoder of ``height - 1`` convs with a pooling
    before each but the first; a dilated bottom conv; a decoder of ``height - 1`` convs, each
    fed the upsampled deeper map concatenated with the encoder map of the same level.
    """

    def __init__(self, height: int, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__()
        depth = height - 1
        self.conv_in = ConvReLU(in_ch, out_ch)
        self.encoder = nn.ModuleList(
            ConvReLU(out_ch if i == 0 else mid_ch, mid_ch) for i in range(depth)
        )
        self.bottom = ConvReLU(mid_ch, mid_ch, dilation=2)
        # decoder[i] produces the level-i output (i = 0 is the full-resolution level).
        self.decoder = nn.ModuleList(
            ConvReLU(2 * mid_ch, out_ch if i == 0 else mid_ch) for i in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_in(x)
        skips: list[torch.Tensor] = []
        h = shortcut
        for i, conv in enumerate(self.encoder):
            h = conv(h if i == 0 else _pool(h))
            skips.append(h)
        h = self.bottom(h)
        deepest = len(self.decoder) - 1
        for level in range(deepest, -1, -1):
            skip = skips[level]
            if level < deepest:  # the bottom conv already runs at the deepest level's size
                h = _upsample_like(h, skip)
            h = self.decoder[level](torch.cat((h, skip), dim=1))
        return h + shortcut


class RSUDilated(nn.Module):
    """RSU-4F: the resolution-keeping residual block of the deepest stages.

    Dilations 1, 2, 4 down and 8 at the bottom replace pooling; the decoder mirrors them.
    """

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv_in = ConvReLU(in_ch, out_ch)
        self.encoder = nn.ModuleList(
            ConvReLU(out_ch if i == 0 else mid_ch, mid_ch, dilation=2**i) for i in range(3)
        )
        self.bottom = ConvReLU(mid_ch, mid_ch, dilation=8)
        self.decoder = nn.ModuleList(
            ConvReLU(2 * mid_ch, out_ch if i == 0 else mid_ch, dilation=2**i) for i in range(3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_in(x)
        skips: list[torch.Tensor] = []
        h = shortcut
        for conv in self.encoder:
            h = conv(h)
            skips.append(h)
        h = self.bottom(h)
        for level in range(len(self.decoder) - 1, -1, -1):
            h = self.decoder[level](torch.cat((h, skips[level]), dim=1))
        return h + shortcut


class U2NetPNet(nn.Module):
    """The U²-Net-p network: six encoder stages, five decoder stages, six side outputs fused.

    ``forward`` returns the fused saliency map after the sigmoid (N×1×h×w). The six side
    maps only feed the fusion here; the exported ONNX also emits them as extra outputs.
    """

    def __init__(self, mid_ch: int = 16, ch: int = 64) -> None:
        super().__init__()
        self.encoder = nn.ModuleList(
            [
                RSU(7, 3, mid_ch, ch),
                RSU(6, ch, mid_ch, ch),
                RSU(5, ch, mid_ch, ch),
                RSU(4, ch, mid_ch, ch),
                RSUDilated(ch, mid_ch, ch),
                RSUDilated(ch, mid_ch, ch),
            ]
        )
        # decoder[i] yields the stage-i map; listed shallow to deep, run deep to shallow.
        self.decoder = nn.ModuleList(
            [
                RSU(7, 2 * ch, mid_ch, ch),
                RSU(6, 2 * ch, mid_ch, ch),
                RSU(5, 2 * ch, mid_ch, ch),
                RSU(4, 2 * ch, mid_ch, ch),
                RSUDilated(2 * ch, mid_ch, ch),
            ]
        )
        self.sides = nn.ModuleList(nn.Conv2d(ch, 1, 3, padding=1) for _ in range(6))
        self.fuse = nn.Conv2d(6, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        h = x
        for i, stage in enumerate(self.encoder):
            h = stage(h if i == 0 else _pool(h))
            skips.append(h)
        stage_maps = [h]  # deepest first; the deepest stage has no decoder block
        for level in range(len(self.decoder) - 1, -1, -1):
            skip = skips[level]
            h = self.decoder[level](torch.cat((_upsample_like(h, skip), skip), dim=1))
            stage_maps.append(h)
        stage_maps.reverse()  # shallow to deep, as the side heads are numbered
        first = self.sides[0](stage_maps[0])
        side_logits = [first] + [
            _upsample_like(head(m), first)
            for head, m in zip(self.sides[1:], stage_maps[1:], strict=True)
        ]
        return torch.sigmoid(self.fuse(torch.cat(side_logits, dim=1)))


def normalize_per_image(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each N×1×h×w map to [0, 1] on its own (rembg's ``(p - mi) / (ma - mi)``).

    Computed in float32 and returned in the input's dtype; a constant map becomes all zeros.
    """
    flat = maps.float().flatten(1)
    lo = flat.amin(dim=1).view(-1, 1, 1, 1)
    hi = flat.amax(dim=1).view(-1, 1, 1, 1)
    return ((maps.float() - lo) / (hi - lo).clamp_min(_EPS)).to(maps.dtype)


class NormalisedU2NetP(nn.Module):
    """The network plus the per-image normalisation: what :meth:`U2NetP.predict` computes,
    as one module (the graph exported for onnxruntime)."""

    def __init__(self, net: U2NetPNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return normalize_per_image(self.net(x))


def load_network(weights: Path) -> U2NetPNet:
    """The network on the CPU in eval mode, its state dict loaded strictly from ``weights``."""
    net = U2NetPNet()
    state = torch.load(weights, map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return net.eval()


class U2NetP(Model):
    """cutq's embedded default model: U²-Net-p with bundled Apache-2.0 weights."""

    name = "u2netp"
    license = "Apache-2.0"  # U-2-Net's weights (xuebinqin/U-2-Net)
    commercial_use = True
    # fp16's masks missed IoU 0.99 against fp32 on some images (bf16's by far); the network is
    # small, so fp32 costs the GPU little (docs/performance.md, "GPU").
    gpu_precision = "fp32"

    def __init__(self, max_side: int = DEFAULT_MAX_SIDE, weights: Path | None = None) -> None:
        """``max_side`` caps the longer side in "dynamic" mode (a positive multiple of 32).

        ``weights`` defaults to the bundled state dict; the version is read from its sha256.
        """
        self.max_side = check_max_side(max_side)
        self.weights_path = weights if weights is not None else bundled_weights_path()
        self.version = file_sha256(self.weights_path)[:12]
        self.net: U2NetPNet | None = None

    def setup(self, device: torch.device) -> None:
        """Load the state dict (strictly), move the network to ``device`` (NHWC), eval mode."""
        net = load_network(self.weights_path)
        # NHWC: oneDNN on CPU (and cuDNN with fp16) run these small convolutions ~3× faster.
        self.net = net.to(device, memory_format=torch.channels_last).eval()

    def input_size(self, height: int, width: int, resize: Resize) -> tuple[int, int]:
        """See :func:`cutq.worker.models.u2netp_spec.input_size`."""
        return input_size(height, width, resize, self.max_side)

    def preprocess(self, image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        """Lanczos resize to ``size``, divide by the image's maximum, ImageNet mean/std."""
        return torch.from_numpy(preprocess_array(image, size))

    def predict(self, batch: torch.Tensor, urgent: bool = False) -> torch.Tensor:
        """N×3×h×w → N×1×h×w: the fused map, min-max normalised per image."""
        if self.net is None:
            raise RuntimeError("U2NetP.predict called before setup()")
        with torch.inference_mode():
            fused = self.net(batch.contiguous(memory_format=torch.channels_last))
            return normalize_per_image(fused).contiguous()
