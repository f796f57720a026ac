"""``cutq submit`` of an empty folder says so and exits 5 (NO_INPUT), like ``cutq run``."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cutq.cli import main
from cutq.core.tally import Exit
from tests.support.emulators import PubSubEmulator


def test_an_empty_folder_submits_nothing_and_exits_5(
    pubsub_emulator: PubSubEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "IMG_0001.CR2").write_bytes(b"II*\0")  # not submitted: its extension
    topic = f"projects/{pubsub_emulator.project}/topics/never-used"
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        code = main(["submit", "--no-progress", str(folder), "--topic", topic,
                     "--output", (tmp_path / "out").as_uri()])  # fmt: skip
    finally:  # main() points logging at this test's captured stderr: put it back
        root.handlers[:], root.level = handlers, level
    assert code == Exit.NO_INPUT == 5
    out = capsys.readouterr().out
    assert "published 0, skipped 0 (done), errors 0" in out
    assert f"cutq submit: no image in {folder}: nothing submitted" in out
