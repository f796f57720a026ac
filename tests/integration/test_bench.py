"""The worker benchmark's quick suite runs and reports well-formed numbers.

Only the shape of the report is checked — keys present, rates and ratios positive and finite,
every job completed — never whether a goal was met: timings do not belong in tests.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench(out: Path, suites: str, timeout_s: float) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "bench.worker_bench", "--quick", "--suites", suites, "--out", out],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads((out / "report.json").read_text())
    assert json.loads(done.stdout) == report  # stdout is the same JSON
    assert report["quick"] is True and report["hardware"]["nproc"] >= 1
    return report


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_quick_throughput_and_latency(tmp_path: Path) -> None:
    report = _bench(tmp_path, "efficiency,sweep,latency", 230)
    section = report["models"]["u2netp"]
    efficiency = section["efficiency"]
    rates = efficiency["images_per_s"]
    for key in ("bare_model", "pipeline_local", "pipeline_pubsub", "sequential_batch1"):
        assert _positive(rates[key]), (key, rates)
    assert _positive(efficiency["efficiency"]["local"])
    assert _positive(efficiency["efficiency"]["pubsub"])
    assert _positive(efficiency["batching_gain"])
    for row in section["batch_sweep"]["rows"]:
        assert _positive(row["efficiency"]) and _positive(row["pipeline_images_per_s"]), row
    latency = section["latency"]
    assert _positive(latency["p95_goal_ms"]) and len(latency["rows"]) == 4
    for row in latency["rows"]:
        assert row["statuses"] == {"completed": row["jobs"]}, row
        assert sum(row["batch_sizes"].values()) == row["jobs"], row
        p50, p95, p99 = (row["latency_ms"][q] for q in ("p50", "p95", "p99"))
        assert _positive(row["ideal_queue_p95_ms"]) and _positive(row["p95_over_ideal"])
        assert 0 < p50 <= p95 <= p99 and math.isfinite(p99), row
        assert isinstance(row["p95_goal_met"], bool)
    assert sorted(report["plots"]) == [
        "latency_vs_load_u2netp.png",
        "throughput_vs_batch_u2netp.png",
    ]
    for name in report["plots"]:
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_quick_cold_start_and_memory(tmp_path: Path) -> None:
    report = _bench(tmp_path, "coldstart,memory", 230)
    section = report["models"]["u2netp"]
    for run in section["cold_start"]["runs"]:
        assert 0 < run["start_to_ready_s"] <= run["start_to_first_event_s"], run
        assert _positive(run["load_and_warmup_s"]), run
    memory = section["memory"]
    rows = memory["by_input_size"] + memory["by_queue_length"] + memory["by_max_in_flight"]
    assert len(rows) >= 6
    for row in rows:
        assert row["failed"] == 0 and row["completed"] >= 1, row
        assert _positive(row["peak_rss_mb"]) and row["peak_rss_mb"] >= row["rss_before_mb"], row


@pytest.mark.timeout(240)
def test_onnx_variants_reports_a_rate_and_a_ratio_for_every_variant(tmp_path: Path) -> None:
    quick = ["--forwards", "2", "--rounds", "1", "--cache-dir", str(tmp_path / "onnx")]
    done = subprocess.run(
        [sys.executable, "-m", "bench.onnx_variants", *quick],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=230,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout)
    names = set(report["images_per_s"])
    assert len(names) == 5 and names == set(report["ratio_to_general_graph"])
    assert all(_positive(rate) for rate in report["images_per_s"].values())
    assert report["ratio_to_general_graph"][next(iter(report["images_per_s"]))] == 1.0


def test_the_ideal_queue_is_fifo_over_identical_servers() -> None:
    from bench.throughput import ideal_queue_ms

    assert ideal_queue_ms([0.0, 0.0, 0.0], 1, 100.0) == [100.0, 200.0, 300.0]
    assert ideal_queue_ms([0.0, 0.0, 0.0], 2, 100.0) == [100.0, 100.0, 200.0]
    assert ideal_queue_ms([0.0, 0.5, 0.55], 1, 100.0) == pytest.approx([100.0, 100.0, 150.0])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_big_photos_paths_reports_bytes_per_pixel_for_each_path(tmp_path: Path) -> None:
    """docs/big-photos.md's memory-model command, at small sizes and on two paths."""
    out = tmp_path / "memory-model.json"
    command = [sys.executable, "-m", "bench.big_photos", "paths", "--sizes", "0.5", "2"]
    done = subprocess.run(
        [*command, "--paths", "cutout", "four-presets", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(out.read_text())
    assert set(report["paths"]) == {"cutout", "four-presets"}
    for figures in report["paths"].values():
        assert set(figures["peaks"]) == {"0.5", "2"}
        assert all(_positive(peak["peak_rss_mb"]) for peak in figures["peaks"].values())
        assert math.isfinite(figures["bytes_per_source_pixel"])
