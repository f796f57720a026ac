"""``cutq run --model-spec``: a user's own ONNX graph, built here, end to end (no cloud)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from cutq.cli import main
from tests.support import onnx_graphs


def test_cutq_run_serves_a_custom_graph(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    graph = onnx_graphs.nchw_graph(tmp_path / "models" / "red.onnx", gain=6.0, bias=-1.0)
    spec = tmp_path / "models" / "red.json"
    spec.write_text(
        json.dumps(
            {
                "name": "red-things",
                "version": "v1",
                "file": graph.name,
                "input_size": [64, 64],
                "dynamic": True,
                "max_side": 256,
                "mean": [0.5, 0.5, 0.5],
                "std": [0.5, 0.5, 0.5],
                "sigmoid": True,
            }
        )
    )
    inputs = tmp_path / "in"
    inputs.mkdir()
    image = np.full((120, 200, 3), (20, 60, 200), np.uint8)  # blue ...
    image[30:90, 50:150] = (240, 30, 30)  # ... with a red box: the graph's subject
    Image.fromarray(image).save(inputs / "box.png")
    out = tmp_path / "out"
    common = ["run", str(inputs), "--out", str(out), "--no-progress", "--kind", "mask"]
    assert main([*common, "--resize", "dynamic"]) == 0  # u2netp first, into the same place

    assert main([*common, "--resize", "dynamic", "--model-spec", str(spec)]) == 0
    plain, event = [json.loads(line)["data"] for line in lines(out / "events.jsonl")]
    assert plain["model"]["name"] == "u2netp"
    # the job id names the custom model: u2netp's result is not taken for its own
    assert event["job_id"] != plain["job_id"] and event["duplicate"] is False
    assert event["status"] == "completed", event
    assert event["model"] == {"name": "red-things", "version": "v1"}
    mask = np.asarray(Image.open(event["outputs"][0]["uri"].removeprefix("file://")))
    assert mask.shape == (120, 200)
    assert mask[40:80, 60:140].min() > 200 and mask[:20].max() < 50


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()
