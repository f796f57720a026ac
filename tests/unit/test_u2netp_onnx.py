"""u2netp through onnxruntime: the shipped graphs, parity with torch, the export cache for
other weights, engine choice, no torch.

The bundled weights run from the graphs that ship beside them; tests of the export cache use a
copy of the weights under another path (exported once per module, a few seconds).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import tools.export_u2netp_onnx as exporter
from cutq.core.errors import ConfigError
from cutq.worker.config import WorkerConfig
from cutq.worker.models import create_model, onnx_engine
from cutq.worker.models.u2netp import NormalisedU2NetP, U2NetP, load_network
from cutq.worker.models.u2netp_onnx import (
    EXPORT_FORMAT,
    MANIFEST_FILE,
    SHIPPED_FIXED,
    SHIPPED_GENERAL,
    Shipped,
    ShippedGraphError,
    U2NetPOnnx,
    probe_batches,
)
from cutq.worker.models.u2netp_spec import bundled_weights_path, file_sha256
from cutq.worker.runtime.inference import Runner
from tests.support.scenes import scene

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def own_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled weights under another path: weights with no shipped graph."""
    path = tmp_path_factory.mktemp("weights") / "my-u2netp.pt"
    path.write_bytes(bundled_weights_path().read_bytes())
    return path


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> U2NetPOnnx:
    """The default: the shipped graphs, loaded, never exported."""
    unused = tmp_path_factory.mktemp("unused-cache")
    model = U2NetPOnnx(cache_dir=unused)
    model.setup("cpu")
    assert model.exported_s is None and model.shipped
    assert model.onnx_path == bundled_weights_path().parent / SHIPPED_GENERAL
    assert list(unused.iterdir()) == []  # nothing written into the cache
    return model


@pytest.fixture(scope="module")
def exported_model(cache: Path, own_weights: Path) -> U2NetPOnnx:
    model = U2NetPOnnx(cache_dir=cache, weights=own_weights)
    model.setup("cpu")
    assert model.exported_s is not None  # the first setup exported
    return model


@pytest.fixture(scope="module")
def torch_model() -> U2NetP:
    model = U2NetP()
    model.setup(torch.device("cpu"))
    return model


@pytest.mark.parametrize(
    ("size", "count"), [((320, 320), 1), ((320, 320), 3), ((480, 352), 1), ((96, 160), 2)]
)
def test_onnxruntime_matches_torch(
    onnx_model: U2NetPOnnx, torch_model: U2NetP, size: tuple[int, int], count: int
) -> None:
    images = [scene(40 + i, 300 + 17 * i, 420) for i in range(count)]
    arrays = np.stack([onnx_model.preprocess(image, size) for image in images])
    tensors = torch.stack([torch_model.preprocess(image, size) for image in images])
    assert np.array_equal(arrays, tensors.numpy())  # one preprocessing for both engines
    got = onnx_model.predict(arrays)
    expected = torch_model.predict(tensors).numpy()
    assert got.shape == expected.shape == (count, 1, *size)
    assert np.abs(got - expected).max() <= 1e-4
    flat = got.reshape(count, -1)  # normalised per image, in the graph
    assert np.allclose(flat.min(1), 0.0, atol=1e-6) and np.allclose(flat.max(1), 1.0, atol=1e-6)


def test_shipped_graphs_match_a_fresh_export_of_the_weights() -> None:
    """The graphs in the package are what tools/export_u2netp_onnx.py makes from u2netp.pt
    today: hashes as recorded, weights as recorded, outputs equal to a fresh export's."""
    assert exporter.check(bundled_weights_path()) <= 1e-4


def test_shipped_graphs_are_refused_when_they_do_not_match(tmp_path: Path) -> None:
    folder = bundled_weights_path().parent
    for name in ("u2netp.pt", SHIPPED_GENERAL, SHIPPED_FIXED, MANIFEST_FILE):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    Shipped.read(tmp_path).verify(tmp_path / "u2netp.pt", file_sha256(tmp_path / "u2netp.pt"))
    damaged = bytearray((tmp_path / SHIPPED_FIXED).read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    (tmp_path / SHIPPED_FIXED).write_bytes(bytes(damaged))
    with pytest.raises(ShippedGraphError, match="damaged"):
        Shipped.read(tmp_path).verify(tmp_path / "u2netp.pt", file_sha256(tmp_path / "u2netp.pt"))
    other = tmp_path / "other.pt"
    other.write_bytes(b"other weights")
    with pytest.raises(ShippedGraphError, match="other weights"):
        Shipped.read(tmp_path).verify(other, file_sha256(other))
    (tmp_path / MANIFEST_FILE).write_text("{}")
    with pytest.raises(ShippedGraphError, match="no usable"):
        Shipped.read(tmp_path)


def test_weights_without_a_shipped_graph_need_torch_and_onnx_to_export(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, own_weights: Path
) -> None:
    """A CPU install (no torch, no onnx) running other weights: one clear line, no trace."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("torch", "onnx") else real(name, *a),
    )
    model = U2NetPOnnx(cache_dir=tmp_path, weights=own_weights)
    with pytest.raises(ConfigError, match=r"needs torch and onnx: pip install torch onnx"):
        model.setup("cpu")
    U2NetPOnnx(cache_dir=tmp_path).setup("cpu")  # the shipped graphs need neither


def test_cached_export_is_reused(
    exported_model: U2NetPOnnx, cache: Path, own_weights: Path
) -> None:
    path = exported_model.onnx_path
    version = exported_model.version
    assert path.parent == cache and EXPORT_FORMAT in path.name and version in path.name
    before = path.stat().st_mtime_ns
    again = U2NetPOnnx(cache_dir=cache, weights=own_weights)
    again.setup("cpu")
    assert again.exported_s is None and path.stat().st_mtime_ns == before
    # Both graphs, no scratch files left behind, readable by other users of the cache.
    assert sorted(cache.iterdir()) == sorted([path, exported_model.fixed_path])
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in cache.iterdir())


def test_one_image_at_320_runs_the_fixed_graph(onnx_model: U2NetPOnnx) -> None:
    """The default CPU job (static mode, batch 1) takes the faster fixed-shape graph; every
    other shape the general one, and the fixed graph really takes nothing else."""
    fixed, general = onnx_model.fixed, onnx_model.general
    assert fixed is not None and general is not None and fixed is not general
    assert onnx_model.graph_for((1, 3, 320, 320)) is fixed
    for shape in ((2, 3, 320, 320), (1, 3, 320, 352), (1, 3, 96, 160)):
        assert onnx_model.graph_for(shape) is general
    assert fixed.input_shape() == [1, 3, 320, 320]
    with pytest.raises(Exception, match=r"[Ii]nvalid|dimension"):
        fixed.run(np.zeros((2, 3, 320, 320), np.float32))


def test_a_lone_image_runs_wide_and_images_together_share_the_threads(cache: Path) -> None:
    """The first forward in flight gets every thread; one that starts while it runs gets the
    narrow session (threads ÷ streams); once alone again, wide again."""
    model = U2NetPOnnx(cache_dir=cache, threads=2, streams=2)
    model.setup("cpu")
    graph = model.fixed
    assert graph is not None
    assert graph._narrow is None  # not loaded until two images run at once
    assert graph.wide.get_session_options().intra_op_num_threads == 2
    assert graph.narrow.get_session_options().intra_op_num_threads == 1
    used = []

    def recording(session: object) -> object:
        real = session.run  # type: ignore[attr-defined]

        def run(*args: object) -> object:
            used.append(session)
            return real(*args)

        return run

    for session in (graph.wide, graph.narrow):
        session.run = recording(session)  # type: ignore[method-assign]
    image = probe_batches()[0][:1]
    graph.run(image)
    with model.busy.enter() as alone:  # another image is in the model meanwhile
        assert alone
        graph.run(image)
    graph.run(image)
    assert used == [graph.wide, graph.narrow, graph.wide]
    assert model.busy.running == 0
    single = U2NetPOnnx(cache_dir=cache, threads=2, streams=1)
    single.setup("cpu")
    assert single.fixed is not None and single.fixed.narrow is single.fixed.wide


@pytest.mark.parametrize("which", ["onnx_path", "fixed_path"])
def test_damaged_cache_file_is_exported_again(
    tmp_path: Path, which: str, own_weights: Path
) -> None:
    model = U2NetPOnnx(cache_dir=tmp_path, weights=own_weights)
    getattr(model, which).write_bytes(b"not an onnx graph")
    model.setup("cpu")
    assert model.exported_s is not None
    assert model.onnx_path.stat().st_size > 1_000_000 < model.fixed_path.stat().st_size
    assert model.predict(probe_batches()[1]).shape == (1, 1, 96, 160)
    assert model.predict(probe_batches()[0][:1]).shape == (1, 1, 320, 320)


def test_a_failed_export_says_why(tmp_path: Path) -> None:
    weights = tmp_path / "broken.pt"
    weights.write_bytes(b"not a state dict")
    model = U2NetPOnnx(cache_dir=tmp_path / "cache", weights=weights)
    with pytest.raises(RuntimeError, match="exporting u2netp for onnxruntime failed"):
        model.setup("cpu")
    assert not model.onnx_path.exists()


def test_export_that_disagrees_with_torch_is_refused(tmp_path: Path) -> None:
    module = NormalisedU2NetP(load_network(U2NetPOnnx().weights_path))
    target = tmp_path / "strict.onnx"
    with pytest.raises(onnx_engine.ExportMismatch, match="differs from torch"):
        onnx_engine.export_checked(module, probe_batches()[1:], target, tolerance=1e-12)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="one shape"):
        onnx_engine.export_checked(module, probe_batches(), target, fixed_shape=True)


def test_runs_where_it_was_built_for(cache: Path) -> None:
    with pytest.raises(ValueError, match="built for cpu, not cuda"):
        U2NetPOnnx(cache_dir=cache).setup("cuda")
    with pytest.raises(ConfigError, match="built for cpu, not 'cuda'"):
        Runner(U2NetPOnnx(cache_dir=cache), device="cuda")
    on_gpu = U2NetPOnnx(cache_dir=cache, placement=onnx_engine.Placement.for_device("cuda", 1))
    assert (on_gpu.onnx_device, on_gpu.streams) == ("cuda:0", 1)
    assert Runner(on_gpu, device="cuda").device == "cuda:0"
    with pytest.raises(ConfigError, match="built for cuda:0, not 'cuda:1'"):
        Runner(on_gpu, device="cuda:1")
    with pytest.raises(ConfigError, match="fp32"):
        Runner(U2NetPOnnx(cache_dir=cache), device="cpu", precision="fp16")
    with pytest.raises(RuntimeError, match="setup"):
        U2NetPOnnx(cache_dir=cache).predict(probe_batches()[1])


def test_engine_choice(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    def model(**settings: object) -> object:
        return create_model(WorkerConfig(checkpoint_cache_dir=str(cache), **settings))  # type: ignore[arg-type]

    assert type(model(device="cpu")) is U2NetPOnnx
    assert type(model(device="cpu", engine="torch")) is U2NetP
    assert type(model(device="cuda", max_batch=1)) is U2NetP
    assert type(model(device="cpu", threads=3)).__name__ == "U2NetPOnnx"
    assert model(device="cpu", threads=3).threads == 3  # type: ignore[attr-defined]
    # Streams: two on a CPU with ≥ 2 cores, each image alone on every core; torch has one only.
    cores = onnx_engine.cpu_count()
    default = model(device="cpu")
    assert (default.streams, default.threads) == (min(2, cores), cores)  # type: ignore[attr-defined]
    assert model(device="cpu", streams=3).streams == 3  # type: ignore[attr-defined]
    assert model(device="cpu", engine="torch").streams == 1  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="streams above 1 need the onnxruntime engine"):
        model(device="cpu", engine="torch", streams=2)
    with pytest.raises(ConfigError, match="streams must be"):
        WorkerConfig(streams=0)
    # On a GPU, CUTQ_ENGINE=onnxruntime runs it on CUDA's execution provider, one stream.
    on_gpu = model(device="cuda", engine="onnxruntime")
    assert type(on_gpu) is U2NetPOnnx and (on_gpu.onnx_device, on_gpu.streams) == ("cuda:0", 1)
    with pytest.raises(ConfigError, match="u2netp only"):
        model(model="inspyrenet", checkpoint="x.pth", device="cpu", engine="onnxruntime")
    with pytest.raises(ConfigError, match="engine must be one of"):
        WorkerConfig(engine="tensorrt")
    # Without onnxruntime installed, auto falls back to torch; asking for it is an error.
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxruntime" else real(name, *a),
    )
    assert type(model(device="cpu")) is U2NetP
    with pytest.raises(ConfigError, match="needs"):
        model(device="cpu", engine="onnxruntime")


def test_cpu_worker_never_imports_torch(tmp_path: Path) -> None:
    """The whole local run (model load, warm-up, pipeline, masks) on the onnxruntime engine:
    torch is never imported, nothing is exported and no cache is written."""
    home = tmp_path / "home"
    code = f"""
import sys
from cutq.worker.config import WorkerConfig
from cutq.worker.local_run import run_local
config = WorkerConfig(device="cpu")
summary = run_local([{str(REPO / "samples")!r}], {str(tmp_path / "out")!r}, config, progress=False)
assert summary.completed == 8 and summary.mean_batch == 1.0, summary.render()
print("imported:", sorted(m for m in ("torch", "onnx") if m in sys.modules))
"""
    env = dict(os.environ, HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=110, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "imported: []" in done.stdout
    assert "export" not in done.stderr
    assert not home.exists() or not any(home.rglob("*.onnx"))


def test_without_torch_a_torch_only_setting_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    """On the CPU install (no torch): u2netp on a CPU still runs; the torch engine, a GPU or
    InSPyReNet stop at start-up with the pip command, not an ImportError trace."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )

    def model(**settings: object) -> object:
        return create_model(WorkerConfig(checkpoint_cache_dir=str(cache), **settings))  # type: ignore[arg-type]

    assert type(model(device="cpu")) is U2NetPOnnx
    for settings in (
        {"device": "cpu", "engine": "torch"},
        {"device": "cuda", "max_batch": 1},
        {"model": "inspyrenet", "checkpoint": "x.pth", "device": "cpu"},
    ):
        with pytest.raises(ConfigError, match=r"needs torch.*pip install torch==2\.14\.1"):
            model(**settings)
