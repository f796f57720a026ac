"""InSPyReNet (transparent-background's Swin-B): sizes, preprocessing, batching, checkpoints.

The network is built in-process with random weights (``random_init=True``: BatchNorm statistics
calibrated on noise, heads damped, so masks are graded like a trained net's) in ``fast`` mode
at small sizes, so the file runs on a 2-core CPU without the 367 MB checkpoint.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from cutq.core.errors import ConfigError, UnsupportedScheme
from cutq.core.storage import open_storage
from cutq.worker.models.inspyrenet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    InSPyReNet,
    fetch_checkpoint,
    file_sha256,
)

CPU = torch.device("cpu")
AWKWARD = [(1, 1), (16, 16), (17, 5000), (6000, 4000), (20000, 10)]


def _scene(seed: int, height: int, width: int) -> np.ndarray:
    """A random but structured RGB image: a gradient background and a few filled discs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    image = np.empty((height, width, 3), np.float32)
    for c in range(3):
        a, b = rng.uniform(-1, 1, 2)
        image[..., c] = 128 + 80 * a * yy / height + 80 * b * xx / width
    for _ in range(3):
        cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
        r = rng.uniform(0.1, 0.3) * min(height, width)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < r**2] = rng.uniform(0, 255, 3)
    return np.clip(image, 0, 255).astype(np.uint8)


def _batch(model: InSPyReNet, size: tuple[int, int], count: int = 3) -> torch.Tensor:
    return torch.stack([model.preprocess(_scene(seed, 120, 90), size) for seed in range(count)])


@pytest.fixture(scope="module")
def model() -> InSPyReNet:
    m = InSPyReNet(None, mode="fast", random_init=True)
    m.setup(CPU)
    return m


# --- configuration and sizes (no network) ------------------------------------------------------


def test_constructor_validates_its_configuration() -> None:
    with pytest.raises(ConfigError):
        InSPyReNet(None)  # no checkpoint and no random_init
    with pytest.raises(ConfigError):
        InSPyReNet("/x.pth", random_init=True)
    with pytest.raises(ConfigError):
        InSPyReNet("/x.pth", mode="large")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        InSPyReNet("/x.pth", max_side=1000)
    with pytest.raises(ConfigError):
        InSPyReNet("/x.pth", checksum_sha256="abc")


@pytest.mark.parametrize(("height", "width"), AWKWARD)
def test_static_size_is_the_mode_square(height: int, width: int) -> None:
    assert InSPyReNet("/x.pth").input_size(height, width, "static") == (1024, 1024)
    assert InSPyReNet("/x.pth", mode="fast").input_size(height, width, "static") == (384, 384)


@pytest.mark.parametrize("mode", ["base", "fast"])
@pytest.mark.parametrize(("height", "width"), AWKWARD)
def test_dynamic_size_is_bounded_and_never_zero(mode: str, height: int, width: int) -> None:
    model = InSPyReNet("/x.pth", mode=mode)  # type: ignore[arg-type]
    h, w = model.input_size(height, width, "dynamic")
    assert h >= 32 and w >= 32 and h % 32 == 0 and w % 32 == 0
    assert max(h, w) <= 2048
    assert min(h, w) <= (1280 if mode == "base" else 384)


def test_dynamic_size_follows_the_package_rule_with_our_bounds() -> None:
    base, fast = InSPyReNet("/x.pth"), InSPyReNet("/x.pth", mode="fast")
    assert base.input_size(16, 16, "dynamic") == (32, 32)  # the package gives (0, 0)
    assert base.input_size(480, 640, "dynamic") == (480, 640)  # no upscaling
    assert base.input_size(6000, 4000, "dynamic") == (1920, 1280)
    assert fast.input_size(6000, 4000, "dynamic") == (576, 384)
    assert base.input_size(17, 5000, "dynamic") == (32, 2048)
    assert base.input_size(20000, 10, "dynamic") == (2048, 32)
    small = InSPyReNet("/x.pth", max_side=1024)
    assert small.input_size(3000, 6000, "dynamic") == (512, 1024)
    with pytest.raises(ValueError):
        base.input_size(10, 10, "stretch")  # type: ignore[arg-type]


def test_preprocess_resizes_and_normalises_like_the_package(model: InSPyReNet) -> None:
    image = np.zeros((5, 7, 3), np.uint8)
    image[...] = (255, 128, 0)
    tensor = model.preprocess(image, (64, 96))
    assert tensor.shape == (3, 64, 96) and tensor.dtype == torch.float32
    expected = (np.array([255, 128, 0], np.float32) / 255 - IMAGENET_MEAN) / IMAGENET_STD
    assert np.allclose(tensor.mean(dim=(1, 2)).numpy(), expected, atol=1e-5)
    for height, width in AWKWARD[:3]:
        size = model.input_size(height, width, "dynamic")
        pixels = np.full((height, width, 3), 200, np.uint8)
        assert model.preprocess(pixels, size).shape == (3, *size)
    with pytest.raises(ValueError):
        model.preprocess(np.zeros((4, 4), np.uint8), (32, 32))


def test_import_is_light() -> None:
    code = (
        "import sys, cutq.worker.models, cutq.worker.models.inspyrenet\n"
        "assert 'transparent_background' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True, timeout=60)


# --- the network ----------------------------------------------------------------------------------


def test_predict_shapes_dtype_and_range(model: InSPyReNet) -> None:
    out = model.predict(_batch(model, (64, 96), count=2))
    assert out.shape == (2, 1, 64, 96) and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.allclose(out.amin(dim=(1, 2, 3)), torch.zeros(2))
    assert torch.allclose(out.amax(dim=(1, 2, 3)), torch.ones(2), atol=1e-6)
    # graded, not saturated: otherwise the batching test below could not see a mix-up
    assert float(((out > 0.02) & (out < 0.98)).float().mean()) > 0.5


def test_each_image_is_normalised_on_its_own(model: InSPyReNet) -> None:
    """Batch of 3 vs each alone, in float64 so that only real mixing can show up.

    In float32 on CPU, batched and single kernels round differently (up to ~7e-5 here at
    64×96), which says nothing about the normalisation; float64 removes that noise.
    """
    net = model.net
    pyramid = net.image_pyramid
    batch = _batch(model, (64, 96)).double()
    try:
        net.double()
        pyramid.kernel = pyramid.kernel.double()  # not a buffer: .double() does not see it
        together = model.predict(batch)
        alone = torch.cat([model.predict(batch[i : i + 1]) for i in range(3)])
        with torch.inference_mode():
            package = net.forward_inference(batch)  # the package's batch-wide min-max
    finally:
        net.float()
        pyramid.kernel = pyramid.kernel.float()
    assert float((together - alone).abs().max()) <= 1e-4
    # The same check would catch the package's normalisation: it mixes images visibly.
    assert float((package.float() - together).abs().max()) > 1e-3


def test_static_fast_size_runs(model: InSPyReNet) -> None:
    size = model.input_size(720, 1280, "static")
    out = model.predict(model.preprocess(_scene(7, 72, 128), size)[None])
    assert out.shape == (1, 1, 384, 384)
    assert torch.isfinite(out).all()


def test_dynamic_awkward_sizes_run(model: InSPyReNet) -> None:
    sizer = InSPyReNet("/x.pth", mode="fast", max_side=256)  # small bound: cheap on a CPU
    sizes = {sizer.input_size(height, width, "dynamic") for height, width in AWKWARD}
    assert sizes == {(32, 32), (32, 256), (256, 160), (256, 32)}
    for size in sorted(sizes):
        image = _scene(3, max(size[0] // 4, 1), max(size[1] // 4, 1))
        out = model.predict(model.preprocess(image, size)[None])
        assert out.shape == (1, 1, *size)
        assert torch.isfinite(out).all() and float(out.min()) >= 0 and float(out.max()) <= 1


def test_random_init_is_reproducible_and_leaves_the_global_rng(model: InSPyReNet) -> None:
    state = torch.random.get_rng_state()
    other = InSPyReNet(None, mode="fast", random_init=True)
    other.setup(CPU)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert model.version == other.version == "random"
    batch = _batch(model, (64, 64), count=1)
    assert torch.equal(model.predict(batch), other.predict(batch))


# --- checkpoints ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_checkpoint(model: InSPyReNet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("ckpt") / "ckpt_fast.pth"
    torch.save(model.net.state_dict(), path)
    yield path
    path.unlink(missing_ok=True)


def test_checkpoint_round_trip(model: InSPyReNet, saved_checkpoint: Path) -> None:
    digest = file_sha256(saved_checkpoint)
    loaded = InSPyReNet(str(saved_checkpoint), mode="fast", checksum_sha256=digest.upper())
    loaded.setup(CPU)
    assert loaded.version == digest[:12]
    batch = _batch(model, (64, 96), count=2)
    assert torch.equal(loaded.predict(batch), model.predict(batch))

    wrong = InSPyReNet(saved_checkpoint.as_uri(), mode="fast", checksum_sha256="0" * 64)
    with pytest.raises(ConfigError, match="sha256"):
        wrong.setup(CPU)


def test_fetch_checkpoint_local(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    path.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    assert fetch_checkpoint(str(path), sha256=digest) == path
    assert fetch_checkpoint(path.as_uri()) == path
    with pytest.raises(ConfigError, match="sha256"):
        fetch_checkpoint(str(path), sha256="f" * 64)
    with pytest.raises(ConfigError, match="does not exist"):
        fetch_checkpoint(str(tmp_path / "missing.pth"))
    with pytest.raises(UnsupportedScheme):
        fetch_checkpoint("https://example.com/ckpt_base.pth")


def test_fetch_checkpoint_from_gcs_caches_and_verifies(gcs_bucket: str, tmp_path: Path) -> None:
    uri = f"gs://{gcs_bucket}/models/ckpt_base.pth"
    storage = open_storage(uri)
    storage.write(uri, b"v1", content_type="application/octet-stream")
    digest = hashlib.sha256(b"v1").hexdigest()
    cache = tmp_path / "cache"

    first = fetch_checkpoint(uri, cache, digest)
    assert first.read_bytes() == b"v1" and first.parent == cache
    storage.write(uri, b"v2", content_type="application/octet-stream")
    assert fetch_checkpoint(uri, cache, digest) == first  # cached: no download
    assert first.read_bytes() == b"v1"

    first.write_bytes(b"corrupt")  # a damaged cache entry is downloaded again ...
    with pytest.raises(ConfigError, match="sha256"):  # ... and v2 does not match the pin
        fetch_checkpoint(uri, cache, digest)
    assert list(cache.iterdir()) == [first]  # no partial file left behind
    assert fetch_checkpoint(uri, cache, hashlib.sha256(b"v2").hexdigest()).read_bytes() == b"v2"

    with pytest.raises(ConfigError, match="could not be downloaded"):
        fetch_checkpoint(f"gs://{gcs_bucket}/missing.pth", cache)
