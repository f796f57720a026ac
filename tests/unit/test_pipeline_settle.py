"""How the pipeline ends a job, one path at a time: the ``failed`` event of a message that is
not a job (named by the id it carries, or its message), a publish that fails returns the job,
a stage that raises or finds its pool shut settles its job instead of a thread, a delivery
arriving after the held ones were nacked is nacked at once, and one nack that fails does not
keep the others back. Then the model loop: inputs of different sizes run as separate
forwards, a model answering with the wrong number of maps fails each job on its own, and
the jobs of a failed batch end on the writers while the model thread runs the next batch."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cutq.core.contract import OutputSpec, new_job
from cutq.core.errors import ModelOutputNotFinite, StorageUnavailable
from cutq.core.events import Event
from cutq.worker.runtime.inference import Prediction
from tests.support.gated import (
    Gated,
    GatedStores,
    Message,
    make_photos,
    message,
    pipeline_for,
    settle_all,
)


class Refusing:
    """An event sink whose publish fails."""

    def __init__(self) -> None:
        self.published: list[Event] = []

    def publish(self, event: Event) -> None:
        raise StorageUnavailable("topic unavailable")

    def close(self) -> None:
        pass


def test_a_message_that_is_not_a_job_fails_under_the_id_it_carries_or_its_message_id(
    tmp_path: Path,
) -> None:
    pipeline, events = pipeline_for(tmp_path, Gated())
    named = Message(json.dumps({"job_id": "client-7", "input": 5}).encode(), "1")
    named.delivery_attempt = 4
    anonymous = Message(b"\xff not json", "2")
    pipeline.submit(named)
    pipeline.submit(anonymous)
    settle_all([named, anonymous])
    pipeline.close(time.monotonic() + 5)
    assert named.settled == ["ack"] and anonymous.settled == ["ack"]
    by_id = {event.job_id: event for event in events.published}
    assert set(by_id) == {"client-7", "message-2"}
    event = by_id["client-7"]
    assert event.status == "failed" and event.error_code == "invalid_job"
    assert event.attempt == 4 and event.input is None and event.attributes == {}
    assert event.model == {"name": "gated", "version": "test"}
    assert "total" in event.timings_ms
    assert event.error_message == "input: expected a non-empty URI string, got 5"
    assert by_id["message-2"].error_code == "invalid_message"
    assert pipeline.stats.failed == 2 and pipeline.stats.failures == {
        "invalid_job": 1,
        "invalid_message": 1,
    }


def test_a_job_failing_after_admission_names_its_input_and_echoes_its_attributes(
    tmp_path: Path,
) -> None:
    pipeline, events = pipeline_for(tmp_path, Gated())
    missing = (tmp_path / "in" / "missing.png").as_uri()
    job = new_job(missing, OutputSpec((tmp_path / "out").as_uri()), attributes={"trace": "t-1"})
    item = Message(job.to_message(), "1")
    pipeline.submit(item)
    settle_all([item])
    pipeline.close(time.monotonic() + 5)
    (event,) = events.published
    assert item.settled == ["ack"] and event.status == "failed"
    assert event.error_code == "input_not_found"
    assert event.input == missing
    assert event.attributes == {"trace": "t-1"}


def test_a_job_returned_by_a_transient_error_is_logged_with_that_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = GatedStores("write", fail=StorageUnavailable("bucket unavailable"))
    pipeline, events = pipeline_for(tmp_path, Gated(), storage)
    (path,) = make_photos(tmp_path, 1)
    item = message(path, tmp_path, "1")
    with caplog.at_level(logging.INFO, logger="cutq.worker.joblog"):
        pipeline.submit(item)
        settle_all([item])
    pipeline.close(time.monotonic() + 5)
    assert item.settled == ["nack"] and events.published == []
    (line,) = [r for r in caplog.records if r.name == "cutq.worker.joblog"]
    assert line.error_code == "storage_unavailable"  # type: ignore[attr-defined]
    assert line.getMessage().endswith("returned: bucket unavailable")


@pytest.mark.parametrize("last_attempt", [False, True])
def test_a_job_whose_event_cannot_be_published_goes_back_to_the_queue(
    tmp_path: Path, last_attempt: bool, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline, _ = pipeline_for(tmp_path, Gated())
    pipeline.events = Refusing()
    (path,) = make_photos(tmp_path, 1)
    item = message(path, tmp_path, "1")
    item.last_attempt = last_attempt
    with caplog.at_level(logging.INFO, logger="cutq.worker.joblog"):
        pipeline.submit(item)
        settle_all([item])
    pipeline.close(time.monotonic() + 5)
    assert item.settled == ["nack"]
    (line,) = [r for r in caplog.records if r.name == "cutq.worker.joblog"]
    expected_code = "retries_exhausted" if last_attempt else "storage_unavailable"
    assert line.error_code == expected_code  # type: ignore[attr-defined]
    assert line.getMessage().endswith(": topic unavailable")
    stats = pipeline.stats
    expected = (0, 1) if last_attempt else (1, 0)
    assert (stats.returned, stats.exhausted, stats.completed) == (*expected, 0)


def test_an_unexpected_error_in_a_stage_returns_the_job_and_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline, events = pipeline_for(tmp_path, Gated())
    (path,) = make_photos(tmp_path, 1)
    pipeline.runner.to_mask = lambda *args: 1 / 0  # type: ignore[method-assign]
    item = message(path, tmp_path, "1")
    item.last_attempt = True
    pipeline.submit(item)
    settle_all([item])
    pipeline.close(time.monotonic() + 5)
    assert item.settled == ["nack"]
    # its last attempt: the end is told by a `failed` event, published before the nack
    (event,) = events.published
    assert (event.status, event.error_code, event.attempt) == ("failed", "retries_exhausted", 1)
    assert pipeline.stats.exhausted == 1 and pipeline.stats.failures == {"retries_exhausted": 1}
    assert any("unexpected ZeroDivisionError" in r.getMessage() for r in caplog.records)


def test_a_job_handed_to_a_pool_already_shut_down_goes_back_to_the_queue(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline, events = pipeline_for(tmp_path, Gated())
    pipeline._loaders.shutdown()
    (path,) = make_photos(tmp_path, 1)
    item = message(path, tmp_path, "1")
    item.last_attempt = True  # shutting down is never a job's last attempt
    with caplog.at_level(logging.INFO, logger="cutq.worker.joblog"):
        pipeline.submit(item)
        settle_all([item])
    pipeline.close(time.monotonic() + 5)
    assert item.settled == ["nack"] and events.published == []
    assert pipeline.stats.returned == 1 and pipeline.stats.exhausted == 0
    (line,) = [r for r in caplog.records if r.name == "cutq.worker.joblog"]
    assert line.error_code == "shutting_down"  # type: ignore[attr-defined]
    assert line.getMessage().endswith("returned: worker stopping")


def test_after_the_held_deliveries_are_nacked_a_late_one_is_nacked_at_once(
    tmp_path: Path,
) -> None:
    pipeline, _ = pipeline_for(tmp_path, Gated())
    pipeline.close(time.monotonic() + 5)
    assert pipeline.held() == 0
    pipeline.release_held()
    (path,) = make_photos(tmp_path, 1)
    late = message(path, tmp_path, "late")
    pipeline.submit(late)  # returns: nothing is left to release it
    assert late.settled == ["nack"] and pipeline.held() == 0


def test_a_held_delivery_whose_nack_fails_does_not_keep_the_others_back(tmp_path: Path) -> None:
    pipeline, _ = pipeline_for(tmp_path, Gated())
    pipeline.stop_taking()
    paths = make_photos(tmp_path, 2)
    broken, fine = message(paths[0], tmp_path, "1"), message(paths[1], tmp_path, "2")

    def refuse() -> None:
        raise RuntimeError("transport closed")

    broken.nack = refuse  # type: ignore[method-assign]
    pipeline._held.extend([broken, fine])  # as two submits would have left them
    assert pipeline.held() == 2
    pipeline.release_held()
    assert fine.settled == ["nack"] and pipeline.held() == 0
    pipeline.close(time.monotonic() + 5)


class TwoSizes(Gated):
    """Wide images get a wider model input: a batch may hold two sizes."""

    def input_size(self, height: int, width: int, resize: str) -> tuple[int, int]:
        return (32, 64) if width > 50 else (32, 32)


def test_inputs_of_different_sizes_in_one_batch_run_as_separate_forwards(
    tmp_path: Path,
) -> None:
    model = TwoSizes()
    model.gate.clear()
    pipeline, events = pipeline_for(tmp_path, model, max_batch=4, max_wait_ms=10_000)
    narrow = make_photos(tmp_path / "n", 2, size=(40, 30))
    wide = make_photos(tmp_path / "w", 2, size=(80, 30))
    items = [message(p, tmp_path, str(i)) for i, p in enumerate(narrow + wide)]
    for item in items:
        pipeline.submit(item)
    model.gate.set()
    settle_all(items)
    pipeline.close(time.monotonic() + 5)
    assert sorted(model.batches) == [2, 2]  # four in one batch (max_batch), two forwards
    assert [e.batch_size for e in events.published] == [2, 2, 2, 2]


def test_a_model_returning_the_wrong_number_of_maps_fails_each_job_of_the_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline, events = pipeline_for(tmp_path, Gated(), max_batch=2, max_wait_ms=10_000)
    # (the runner checks a model's output shape itself: this is the loop's own check)
    one_map = Prediction(maps=[np.zeros((1, 32, 32), np.float32)])
    pipeline.runner.run = lambda tensors, urgent=False: one_map  # type: ignore[method-assign]
    items = [message(p, tmp_path, str(i)) for i, p in enumerate(make_photos(tmp_path, 2))]
    with caplog.at_level(logging.INFO, logger="cutq.worker.joblog"):
        for item in items:
            pipeline.submit(item)
        settle_all(items)
    pipeline.close(time.monotonic() + 5)
    assert all(item.settled == ["nack"] for item in items) and events.published == []
    lines = [r.getMessage() for r in caplog.records if r.name == "cutq.worker.joblog"]
    assert len(lines) == 2 and all(m.endswith("returned: 1 maps for 2 inputs") for m in lines)
    assert pipeline.healthy and pipeline.stats.returned == 2


def test_a_model_without_lanes_still_gets_one_thread(tmp_path: Path) -> None:
    model = Gated()
    model.lanes = 0
    pipeline, _ = pipeline_for(tmp_path, model)
    (path,) = make_photos(tmp_path, 1)
    item = message(path, tmp_path, "1")
    pipeline.submit(item)
    settle_all([item])
    assert len(pipeline.model_loop.threads) == 1
    pipeline.close(time.monotonic() + 5)
    assert item.settled == ["ack"] and not pipeline.model_loop.threads[0].is_alive()


class GatedSink:
    """An event sink whose publish waits for ``gate``."""

    def __init__(self) -> None:
        self.gate, self.entered = threading.Event(), threading.Event()
        self.published: list[Event] = []

    def publish(self, event: Event) -> None:
        self.entered.set()
        assert self.gate.wait(30)
        self.published.append(event)

    def close(self) -> None:
        pass


def test_a_job_publishing_its_event_when_grace_ends_is_acked_not_returned(
    tmp_path: Path,
) -> None:
    """Its event is going out: a nack now would make a second, conflicting ending."""
    pipeline, _ = pipeline_for(tmp_path, Gated())
    pipeline.events = sink = GatedSink()
    (path,) = make_photos(tmp_path, 1)
    item = message(path, tmp_path, "1")
    pipeline.submit(item)
    assert sink.entered.wait(10)
    started = time.monotonic()
    pipeline.close(started + 0.3)
    assert time.monotonic() - started < 0.8 and item.settled == []  # its deadline, no more
    sink.gate.set()
    settle_all([item])
    assert item.settled == ["ack"] and [e.status for e in sink.published] == ["completed"]


def test_close_leaves_a_stuck_load_behind_and_starts_none_of_the_queued_ones(
    tmp_path: Path,
) -> None:
    storage = GatedStores("read")
    storage.gate.clear()
    pipeline, events = pipeline_for(tmp_path, Gated(), storage, io_threads=1)
    items = [message(p, tmp_path, str(i)) for i, p in enumerate(make_photos(tmp_path, 2))]
    for item in items:
        pipeline.submit(item)
    assert storage.entered.acquire(timeout=10)  # the first reads; the second waits its turn
    started = time.monotonic()
    pipeline.close(started + 0.3)
    assert time.monotonic() - started < 2.0, "close() waited for a stuck read"
    assert all(item.settled == ["nack"] for item in items)
    storage.gate.set()
    pipeline._loaders.shutdown(wait=True)  # the stuck load has run to its end
    assert storage.calls == 1 and events.published == []


@pytest.mark.parametrize("how", ["batch raised", "maps not finite"])
def test_a_failed_batch_of_8_ends_on_the_writers_while_the_model_runs_the_next(
    tmp_path: Path, how: str
) -> None:
    """The model thread only computes: the 8 ``failed`` events of a failed batch (each a
    publish that here blocks until the test opens the sink) never hold it from the next
    batch. Plausible bug this catches: ending the failed jobs on the model thread, as a
    batch's failure or as a prediction's ``failed`` maps (8 sequential publishes and acks
    while the GPU waits): the second batch would never start while the sink is shut."""
    model = Gated()
    pipeline, _ = pipeline_for(
        tmp_path, model, max_batch=8, max_wait_ms=10_000, max_in_flight=16, io_threads=2
    )
    pipeline.events = sink = GatedSink()
    error = ModelOutputNotFinite("the model returned NaN")
    if how == "batch raised":
        model.fail_next = error
    else:
        run = pipeline.runner.run
        first = threading.Event()

        def not_finite(tensors: list, urgent: bool = False) -> Prediction:
            prediction = run(tensors, urgent)
            if not first.is_set():
                first.set()
                prediction.failed = dict.fromkeys(range(len(tensors)), error)
            return prediction

        pipeline.runner.run = not_finite  # type: ignore[method-assign]
    items = [message(p, tmp_path, str(i)) for i, p in enumerate(make_photos(tmp_path, 16))]
    for item in items:
        pipeline.submit(item)
    assert model.entered.acquire(timeout=10)  # the first batch (it fails)
    assert sink.entered.wait(10)  # a failed job's event is publishing, and stays so
    assert model.entered.acquire(timeout=10), "the model thread waited for the publishes"
    assert sink.published == [] and all(item.settled == [] for item in items)
    sink.gate.set()
    settle_all(items)
    pipeline.close(time.monotonic() + 5)
    assert model.batches == [8, 8] and all(item.settled == ["ack"] for item in items)
    statuses = [(e.status, e.error_code) for e in sink.published]
    assert (
        sorted(statuses, key=str)
        == [("completed", None)] * 8 + [("failed", "model_output_not_finite")] * 8
    )
