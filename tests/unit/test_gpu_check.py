"""tools/gpu_check.py: the one-shot GPU check runs every step it can, skips the rest with a
reason, keeps to its budget and always leaves a JSON report and a markdown table.

The steps themselves are the worker's real code at small sizes: ``make gpu-check`` runs them
all (minutes on a CPU); here one real step (``environment``) and stand-ins for the others.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools import gpu_check, gpu_checks
from tools.gpu_checks import Ctx, Step


def _ok(ctx: Ctx) -> gpu_checks.Outcome:
    return True, {"device": ctx.device, "quick": ctx.quick}, "fine"


def _broken(ctx: Ctx) -> gpu_checks.Outcome:
    raise RuntimeError("CUDA error: an illegal memory access")


def _cannot(ctx: Ctx) -> gpu_checks.Outcome:
    raise gpu_checks.Skip("onnxruntime here has no CUDA EP")


def _rates(ctx: Ctx) -> gpu_checks.Outcome:
    row = {"input": 320, "precision": "float16", "images_per_s": {1: 100.0, 8: 400.0}}
    return True, {"u2netp/-": row | {"batching_gain": {8: 4.0}}}, "rates"


def test_dry_run_runs_what_a_cpu_can_and_says_what_it_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = (
        gpu_checks.STEPS[0],  # environment: the real one
        Step("cpu step", "test", _ok, 1),
        Step("needs cuda", "test", _ok, 1, gpu_only="caps CUDA memory"),
        Step("breaks", "test", _broken, 1),
        Step("cannot here", "test", _cannot, 1),
        Step("forward batch 1/8/32", "bench", _rates, 1),
    )
    monkeypatch.setattr(gpu_checks, "STEPS", steps)
    monkeypatch.setattr(gpu_checks, "usable_gpu", lambda: False)
    code = gpu_check.run(tmp_path, 60, {"status": "skipped"}, None)
    assert code == 1  # a failed step fails the check
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert report["mode"] == "dry run (no usable GPU)" and report["quick"] is True
    status = {s["name"]: s["status"] for s in report["steps"]}
    assert status == {
        "environment": "passed",
        "cpu step": "passed",
        "needs cuda": "skipped",
        "breaks": "failed",
        "cannot here": "skipped",
        "forward batch 1/8/32": "passed",
    }
    steps_by_name = {s["name"]: s for s in report["steps"]}
    assert "needs a GPU (caps CUDA memory)" in steps_by_name["needs cuda"]["reason"]
    assert "illegal memory access" in steps_by_name["breaks"]["summary"]
    assert steps_by_name["cannot here"]["reason"] == "onnxruntime here has no CUDA EP"
    assert steps_by_name["cpu step"]["data"] == {"device": "cpu", "quick": True}
    assert steps_by_name["environment"]["data"]["image_build"]["cuda"] == "12.6"
    table = (tmp_path / "gpu-check.md").read_text()
    assert "| needs cuda | skipped |" in table
    assert "| u2netp/- | 320² | float16 | 100.0 / 400.0 | 4.0× |" in table


def test_on_a_gpu_a_step_that_no_longer_fits_the_budget_is_not_started(tmp_path: Path) -> None:
    slow = Step("slow", "bench", _broken, estimate_s=120)
    result = gpu_checks.run_step(slow, gpu=True, quick=False, left_s=30, work=tmp_path)
    assert result["status"] == "skipped" and "120s > 30s left" in result["reason"]


def test_set_up_is_skipped_where_cutq_is_installed() -> None:
    assert gpu_check.set_up(None)["status"] == "skipped"


def test_device_wheels_are_pinned() -> None:
    assert all("==" in spec for spec in gpu_check.DEVICE_WHEELS)
    assert "transparent-background==1.3.4" in gpu_check.DEVICE_WHEELS


def test_the_onnxruntime_gpu_wheel_travels_in_parts_and_is_checked(tmp_path: Path) -> None:
    wheel = tmp_path / "onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl"
    wheel.write_bytes(bytes(range(256)) * 1000)
    small, parts = tmp_path / "wheels", tmp_path / "parts"
    small.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gpu_check, "PART_BYTES", 100_000)
        record = gpu_check.split_wheel(wheel, parts, small)
    assert record["parts"] == ["part0", "part1", "part2"]  # 256,000 bytes in 100,000s
    (tmp_path / "joined").mkdir()
    joined = gpu_check.join_parts(parts, small, tmp_path / "joined")
    assert joined.name == wheel.name and joined.read_bytes() == wheel.read_bytes()
    (parts / "part1" / "piece").write_bytes(b"x" * 100_000)  # a part from another wheel
    with pytest.raises(SystemExit, match=r"do not make onnxruntime_gpu-1\.31\.1"):
        gpu_check.join_parts(parts, small, tmp_path / "joined")
    (parts / "part2" / "piece").unlink()  # a call that did not carry it (or a fresh machine)
    with pytest.raises(SystemExit, match=r"parts part2 of .* are not here"):
        gpu_check.join_parts(parts, small, tmp_path / "joined")


@pytest.mark.timeout(120)
def test_the_onnxruntime_step_compares_providers_through_the_worker(tmp_path: Path) -> None:
    """On a CPU the step runs its real code with the CPU's provider on both sides: u2netp's
    shipped graphs and the custom graph it builds, served from its spec."""
    from tools import gpu_checks_onnx

    passed, data, summary = gpu_checks_onnx.cuda_ep(Ctx(gpu=False, quick=True, work=tmp_path))
    assert passed, summary
    for label in ("u2netp", "custom spec"):
        assert data[label]["device"] == "cpu"
        assert data[label]["max_abs_diff_batch1"] == data[label]["max_abs_diff_batch8"] == 0.0
        assert {"device_batch8_ms", "cpu_batch8_ms"} <= set(data[label])  # two models ran
    assert "custom spec on cpu: max diff 0.0e+00" in summary
    assert (tmp_path / "custom.json").is_file()


def test_the_published_graph_step_runs_1024_fixed_batch_fp32_and_fp16(tmp_path: Path) -> None:
    """The custom-graph step's dry run: a 1024² graph fixed at batch 1, float32 and float16,
    served from its spec on the CPU on both sides, timed bound and plain."""
    import json

    from tools import gpu_checks, gpu_checks_onnx

    assert "custom graph 1024² batch 1, fp32/fp16, CUDA EP" in [s.name for s in gpu_checks.STEPS]
    passed, data, summary = gpu_checks_onnx.published_graphs(
        Ctx(gpu=False, quick=True, work=tmp_path)
    )
    assert passed, summary
    assert data["side"] == 1024 and data["images"] == 2
    for precision in ("fp32", "fp16"):
        row = data[precision]
        assert row["device"] == "cpu" and row["max_abs_diff_vs_cpu"] == 0.0
        assert row["binding"] > 0 and row["run"] > 0 and row["binding_gain"] > 0
        spec = json.loads((tmp_path / f"published-{precision}.json").read_text())
        assert spec["license"] == "MIT" and spec["commercial_use"] is True
    import onnx

    half = onnx.load(str(tmp_path / "published-fp16.onnx"))
    assert half.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    dims = [d.dim_value for d in half.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 1024, 1024]
    assert "fp16 on cpu:" in summary and "images/s bound" in summary


def test_the_scratch_site_sees_the_images_cuda_libraries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """onnxruntime-gpu's preload_dlls looks for nvidia/… beside itself (the scratch site);
    the dev venv's torch brings nvidia-* wheels, as the device image's does."""
    monkeypatch.setattr(gpu_check, "SITE", tmp_path)
    found = gpu_check._share_cuda_libraries()
    assert found is not None and (tmp_path / "nvidia").resolve() == Path(found).resolve()
    assert any((tmp_path / "nvidia").iterdir())
    assert gpu_check._share_cuda_libraries() is None  # already there: left alone
