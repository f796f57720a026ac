"""Event sinks: what `publish` promises before the worker acks (durable, one line per event)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from cutq.core.errors import PublishFailed
from cutq.core.events import Event
from cutq.worker.sinks import JsonlEventSink


def test_jsonl_sink_appends_one_cloudevent_per_line_across_threads(tmp_path: Path) -> None:
    sink = JsonlEventSink(tmp_path / "deep" / "events.jsonl")
    threads = [
        threading.Thread(
            target=lambda i=i: [
                sink.publish(Event.failed(f"j{i}-{n}", None, "image_undecodable", "x"))
                for n in range(50)
            ]
        )
        for i in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sink.close()
    lines = (tmp_path / "deep" / "events.jsonl").read_text().splitlines()
    ids = [json.loads(line)["data"]["job_id"] for line in lines]
    assert sorted(ids) == sorted(f"j{i}-{n}" for i in range(4) for n in range(50))


def test_jsonl_sink_appends_to_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    for job_id in ("a", "b"):
        sink = JsonlEventSink(path)
        sink.publish(Event.failed(job_id, None, "image_undecodable", "x"))
        sink.close()
    assert [json.loads(line)["subject"] for line in path.read_text().splitlines()] == ["a", "b"]


def test_a_write_that_fails_is_a_transient_publish_error(tmp_path: Path) -> None:
    sink = JsonlEventSink(tmp_path / "events.jsonl")
    sink.close()  # a closed file cannot be written: the job must be nacked, not acked
    with pytest.raises(PublishFailed):
        sink.publish(Event.failed("a", None, "image_undecodable", "x"))


def test_a_jsonl_sink_creates_the_folders_it_needs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cutq.core.events import Event
    from cutq.worker.sinks import JsonlEventSink

    sink = JsonlEventSink(tmp_path / "a" / "b" / "events.jsonl")
    sink.publish(Event(job_id="j", status="completed", input=None))
    sink.close()
    assert (tmp_path / "a" / "b" / "events.jsonl").read_text().count("\n") == 1
