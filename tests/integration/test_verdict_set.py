"""The labelled set of real photographs (tests/data/verdict_set.json, labels decided by
looking) through ``cutq run --preset google-shopping`` with the bundled u2netp: no wrong
``pass``, and ``review`` on at most a third of the good photos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.verdict_set import LABELS, load, main
from cutq.core.tally import Exit


def test_the_set_is_labelled_by_hand_with_every_class_present() -> None:
    preset, images = load()
    assert preset == "google-shopping"
    assert len({item.name for item in images}) == len(images)
    for label in LABELS:
        assert sum(item.label == label for item in images) >= 10, label
    for item in images:
        assert item.why and set(item.flags) <= {"empty", "edge", "multiple", "uncertain"}
        if item.label == "fail":  # nothing to publish, or a rule that cannot hold
            assert "empty" in item.flags or "px" in item.why, item


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_no_wrong_pass_on_the_labelled_set(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path), "--json", str(tmp_path / "report.json")]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["wrong_passes"] == [], report["rows"]
    good = report["confusion"]["good"]
    assert good["error"] == 0 and good["fail"] == 0, report["rows"]
    assert good["review"] <= sum(good.values()) / 3, report["rows"]
    assert report["exit_code"] == Exit.VERDICT_FAIL  # --accept-review: the fails still count
