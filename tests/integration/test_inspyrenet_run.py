"""`cutq run --model inspyrenet`: the production model through the registry and the pipeline.

The checkpoint is a random-weight state dict saved by the test (no 367 MB file), so the
warm-up's "find the subject" check is off; shapes, formats and the event are what's checked.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from cutq.cli import main
from cutq.worker.models.inspyrenet import InSPyReNet
from tests.conftest import SAMPLES


@pytest.mark.timeout(240)
def test_run_with_inspyrenet_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = InSPyReNet(None, mode="fast", random_init=True)
    model.setup(torch.device("cpu"))
    checkpoint = tmp_path / "ckpt_fast.pth"
    torch.save(model.net.state_dict(), checkpoint)  # type: ignore[union-attr]
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(SAMPLES / "red-ball.jpg", inputs)
    shutil.copy(SAMPLES / "gray.png", inputs)
    monkeypatch.setenv("CUTQ_WARMUP", "false")
    monkeypatch.setenv("CUTQ_MODEL_MODE", "fast")
    monkeypatch.setenv("CUTQ_CHECKPOINT_SHA256", digest)
    monkeypatch.setenv("CUTQ_MODEL_MAX_SIDE", "128")
    out = tmp_path / "out"
    code = main(
        [
            "run",
            str(inputs),
            "--out",
            str(out),
            "--no-progress",
            "--model",
            "inspyrenet",
            "--checkpoint",
            str(checkpoint),
            "--resize",
            "dynamic",
            "--kind",
            "both",
        ]
    )
    assert code == 0
    events = [json.loads(line)["data"] for line in (out / "events.jsonl").read_text().splitlines()]
    assert len(events) == 2 and {e["status"] for e in events} == {"completed"}
    assert all(e["model"] == {"name": "inspyrenet", "version": digest[:12]} for e in events)
    assert all(len(e["outputs"]) == 2 for e in events)

    monkeypatch.setenv("CUTQ_CHECKPOINT_SHA256", "0" * 64)  # a wrong checksum stops start-up
    assert (
        main(
            [
                "run",
                str(inputs),
                "--out",
                str(out),
                "--no-progress",
                "--model",
                "inspyrenet",
                "--checkpoint",
                str(checkpoint),
            ]
        )
        == 2
    )
