"""Logging set-up: the handler follows the process's current standard streams."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from cutq.core.logs import setup_logging


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_records_go_to_the_stream_as_it_is_now_never_to_a_closed_one(
    monkeypatch: pytest.MonkeyPatch, restore_root: None
) -> None:
    """A worker thread that logs after the stream the CLI started with was replaced and
    closed (pytest's capture between tests did this) writes to the current one."""
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    setup_logging("text", "INFO")
    logging.getLogger("cutq.test").info("one")
    first.close()
    monkeypatch.setattr(sys, "stderr", second)
    monkeypatch.setattr(logging, "raiseExceptions", True)
    logging.getLogger("cutq.test").info("two")
    assert second.getvalue().rstrip().endswith("two")


def test_json_lines_go_to_stdout(monkeypatch: pytest.MonkeyPatch, restore_root: None) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    setup_logging("json", "INFO")
    logging.getLogger("cutq.test").warning("hello", extra={"job_id": "j1"})
    entry = json.loads(out.getvalue())
    assert (entry["severity"], entry["message"], entry["job_id"]) == ("WARNING", "hello", "j1")
