"""Closing the pipeline at the edges of its steps: a delivery waiting for a slot notices the
stop, a stuck write never holds close and the writes queued behind it never start, the job
returned at shutdown says so in its log line, and the model threads are named daemons."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from cutq.core.lanes import Lane
from tests.support.gated import Gated, GatedStores, make_photos, message, pipeline_for, settle_all


def test_a_delivery_waiting_for_a_slot_is_held_soon_after_the_stop(tmp_path: Path) -> None:
    model = Gated()
    model.gate.clear()
    pipeline, _ = pipeline_for(tmp_path, model, max_in_flight=1, max_batch=1)
    first, second = (message(p, tmp_path, str(i)) for i, p in enumerate(make_photos(tmp_path, 2)))
    pipeline.submit(first)
    assert model.entered.acquire(timeout=10)  # the one slot is taken
    take_slot, waiting = pipeline.ledger.take_slot, threading.Event()

    def take(timeout_s: float, lane: Lane) -> bool:
        waiting.set()
        return take_slot(timeout_s, lane)

    pipeline.ledger.take_slot = take  # type: ignore[method-assign]
    submitter = threading.Thread(target=pipeline.submit, args=(second,), daemon=True)
    submitter.start()
    assert waiting.wait(10)
    pipeline.stop_taking()
    deadline = time.monotonic() + 0.9  # it looks at the stop flag every 0.1 s
    while pipeline.held() < 1 and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    assert pipeline.held() == 1, "a delivery waiting for a slot did not notice the stop"
    model.gate.set()
    settle_all([first])
    pipeline.close(time.monotonic() + 5)
    pipeline.release_held()
    submitter.join(10)
    assert first.settled == ["ack"] and second.settled == ["nack"]


def test_close_never_waits_for_a_stuck_write_and_starts_none_of_the_queued_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = GatedStores("write", wait_s=5)
    storage.gate.clear()
    pipeline, events = pipeline_for(tmp_path, Gated(), storage, io_threads=1, max_batch=2)
    items = [message(p, tmp_path, str(i)) for i, p in enumerate(make_photos(tmp_path, 2))]
    for item in items:
        pipeline.submit(item)
    assert storage.entered.acquire(timeout=10)  # one writes; the other waits for the writer
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="cutq.worker.joblog"):
        pipeline.close(started + 0.3)
    assert time.monotonic() - started < 0.8, "close() overran its deadline"
    assert all(item.settled == ["nack"] for item in items)
    lines = [r for r in caplog.records if r.name == "cutq.worker.joblog"]
    assert len(lines) == 2 and all(r.error_code == "shutting_down" for r in lines)  # type: ignore[attr-defined]
    assert all(r.getMessage().endswith("returned: worker stopping") for r in lines)
    storage.gate.set()
    pipeline._writers.shutdown(wait=True)  # the stuck write has run to its end
    assert storage.calls == 1 and events.published == []


def test_the_model_threads_are_named_daemons(tmp_path: Path) -> None:
    model = Gated()
    model.streams = 2
    pipeline, _ = pipeline_for(tmp_path, model)
    threads = pipeline.model_loop.threads
    assert [t.name for t in threads] == ["cutq-model-0", "cutq-model-1", "cutq-model-interactive"]
    assert all(t.daemon and t.is_alive() for t in threads)  # never hold the process's exit
    pipeline.close(time.monotonic() + 5)


def test_a_delivery_whose_slot_came_as_the_worker_stopped_is_held_and_nacked(
    tmp_path: Path,
) -> None:
    """The slot is taken, then the ledger closes before the task opens: the delivery must be
    held like any other that arrives while stopping, never dropped unsettled."""
    pipeline, _ = pipeline_for(tmp_path, Gated(), max_batch=1, max_in_flight=1)
    take_slot = pipeline.ledger.take_slot

    def stopping_meanwhile(timeout_s: float, lane: Lane) -> bool:
        taken = take_slot(timeout_s, lane)
        pipeline.stop_taking()
        return taken

    pipeline.ledger.take_slot = stopping_meanwhile  # type: ignore[method-assign]
    (path,) = make_photos(tmp_path, 1)
    item = message(path, tmp_path, "1")
    submitter = threading.Thread(target=pipeline.submit, args=(item,), daemon=True)
    submitter.start()
    deadline = time.monotonic() + 5
    while pipeline.held() < 1 and submitter.is_alive() and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    assert pipeline.held() == 1 and item.settled == []
    pipeline.release_held()
    submitter.join(5)
    assert item.settled == ["nack"] and pipeline.in_flight() == 0
    assert take_slot(0.0)  # its slot was given back
    pipeline.close(time.monotonic() + 5)


def test_the_batch_window_is_max_wait_ms(tmp_path: Path) -> None:
    pipeline, _ = pipeline_for(tmp_path, Gated(), max_wait_ms=250)
    assert pipeline.model_loop.max_wait_s == 0.25
    pipeline.close(time.monotonic() + 5)
