"""The pipeline's stages and settling, with an in-test model, file:// storage and no cloud.

What each test pins: one computation per job (a second delivery follows the first; a racing
worker's create-only write loses and reports a duplicate), shutdown that holds new deliveries
and nacks each once, a grace period that is never overrun and never followed by an event, a
model thread that survives bad batches, and memory bounded by a pixel budget.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cutq.core.contract import OutputSpec, new_job
from cutq.core.errors import StorageUnavailable
from cutq.core.lanes import Lane
from tests.support.gated import (
    Gated,
    GatedWrites,
    Message,
    make_photos,
    message,
    pipeline_for,
    settle_all,
)


@pytest.fixture
def photos(tmp_path: Path):  # type: ignore[no-untyped-def]
    return lambda count, size=(40, 30): make_photos(tmp_path, count, size)


def test_a_second_delivery_of_a_running_job_follows_it_and_is_not_computed(
    tmp_path: Path, photos
) -> None:  # type: ignore[no-untyped-def]
    model = Gated()
    model.gate.clear()
    pipeline, events = pipeline_for(tmp_path, model)
    (path,) = photos(1)
    first, second = message(path, tmp_path, "1"), message(path, tmp_path, "2")
    lead, followed = pipeline.ledger.lead, threading.Event()

    def leads(task: object, key: str) -> bool:
        running = lead(task, key)  # type: ignore[arg-type]
        if not running:
            followed.set()
        return running

    pipeline.ledger.lead = leads  # type: ignore[method-assign]
    pipeline.submit(first)
    assert model.entered.acquire(timeout=10)  # the first delivery is in the model
    pipeline.submit(second)
    assert followed.wait(10), "the second delivery did not follow the running first"
    model.gate.set()
    settle_all([first, second])
    pipeline.close(time.monotonic() + 5)
    assert model.batches == [1]
    assert first.settled == ["ack"] and second.settled == ["ack"]
    assert sorted(e.duplicate for e in events.published) == [False, True]
    assert {e.status for e in events.published} == {"completed"}
    assert len(list((tmp_path / "out").rglob("*.png"))) == 1


def test_of_two_workers_racing_on_one_job_the_create_only_write_decides(
    tmp_path: Path, photos
) -> None:  # type: ignore[no-untyped-def]
    slow_model, fast_model = Gated(), Gated()
    slow_model.gate.clear()
    slow, slow_events = pipeline_for(tmp_path, slow_model)
    fast, fast_events = pipeline_for(tmp_path, fast_model)
    (path,) = photos(1)
    loser, winner = message(path, tmp_path, "a"), message(path, tmp_path, "b")
    slow.submit(loser)
    assert slow_model.entered.acquire(timeout=10)  # past "skip if done": nothing existed yet
    fast.submit(winner)
    settle_all([winner])
    (result,) = (tmp_path / "out").rglob("*.png")
    written = result.stat()
    slow_model.gate.set()
    settle_all([loser])
    for pipeline in (slow, fast):
        pipeline.close(time.monotonic() + 5)
    assert [e.duplicate for e in fast_events.published] == [False]
    assert [e.duplicate for e in slow_events.published] == [True]
    assert (result.stat().st_ino, result.stat().st_mtime_ns) == (
        written.st_ino,
        written.st_mtime_ns,
    )
    assert loser.settled == ["ack"] and winner.settled == ["ack"]


def test_shutdown_holds_new_deliveries_and_nacks_each_exactly_once(tmp_path: Path, photos) -> None:  # type: ignore[no-untyped-def]
    model = Gated()
    model.gate.clear()
    pipeline, events = pipeline_for(tmp_path, model, max_batch=2, max_in_flight=2)
    paths = photos(6)
    running = [message(p, tmp_path, str(i)) for i, p in enumerate(paths[:2])]
    for item in running:
        pipeline.submit(item)
    assert model.entered.acquire(timeout=10)
    closer = threading.Thread(target=pipeline.close, args=(time.monotonic() + 20,))
    closer.start()
    time.sleep(0.2)
    late = [message(p, tmp_path, f"late-{i}") for i, p in enumerate(paths[2:])]
    submitters = [threading.Thread(target=pipeline.submit, args=(item,)) for item in late]
    for thread in submitters:
        thread.start()
    time.sleep(0.3)
    assert all(item.settled == [] for item in late), "held deliveries must not be nacked yet"
    model.gate.set()
    closer.join(20)
    assert not closer.is_alive()
    assert all(item.settled == ["ack"] for item in running)
    assert all(item.settled == [] for item in late)
    pipeline.release_held()
    for thread in submitters:
        thread.join(5)
    assert all(item.settled == ["nack"] for item in late)
    assert len(events.published) == 2 and model.batches == [2]


def test_grace_over_nacks_running_jobs_once_and_no_event_follows(tmp_path: Path, photos) -> None:  # type: ignore[no-untyped-def]
    model = Gated()
    model.gate.clear()
    pipeline, events = pipeline_for(tmp_path, model, max_batch=2)
    items = [message(p, tmp_path, str(i)) for i, p in enumerate(photos(2))]
    for item in items:
        pipeline.submit(item)
    assert model.entered.acquire(timeout=10)
    started = time.monotonic()
    closer = threading.Thread(target=pipeline.close, args=(started + 0.5,), daemon=True)
    closer.start()
    closer.join(3)  # a close that waits on the stuck batch fails here, not at the gate's 30 s
    assert not closer.is_alive() and time.monotonic() - started < 1.0, "close() overran"
    assert all(item.settled == ["nack"] for item in items)
    model.gate.set()  # the batch finishes after its messages went back to the queue
    time.sleep(1.0)
    assert events.published == []
    assert all(item.settled == ["nack"] for item in items)


def test_a_failed_batch_goes_back_to_the_queue_and_the_model_thread_serves_on(
    tmp_path: Path, photos
) -> None:  # type: ignore[no-untyped-def]
    model = Gated()
    model.fail_next = RuntimeError("a bug in the model")
    pipeline, _ = pipeline_for(tmp_path, model, max_batch=1)
    first, second = (message(p, tmp_path, str(i)) for i, p in enumerate(photos(2)))
    pipeline.submit(first)
    settle_all([first])
    pipeline.submit(second)
    settle_all([second])
    pipeline.close(time.monotonic() + 5)
    assert first.settled == ["nack"] and second.settled == ["ack"]
    assert pipeline.healthy
    assert pipeline.stats.returned == 1 and pipeline.stats.completed == 1


def test_a_model_thread_that_dies_anyway_makes_the_pipeline_unhealthy(
    tmp_path: Path, photos
) -> None:  # type: ignore[no-untyped-def]
    class Fatal(BaseException):
        pass

    model = Gated()
    model.fail_next = Fatal()
    pipeline, _ = pipeline_for(tmp_path, model, max_batch=1)
    assert pipeline.healthy
    (path,) = photos(1)
    pipeline.submit(message(path, tmp_path, "1"))
    deadline = time.monotonic() + 10
    while pipeline.healthy and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pipeline.healthy and isinstance(pipeline.failure, Fatal)
    pipeline.close(time.monotonic() + 1)


def test_attributes_that_are_not_strings_never_take_a_thread_down(tmp_path: Path, photos) -> None:  # type: ignore[no-untyped-def]
    model = Gated()
    pipeline, events = pipeline_for(tmp_path, model)
    (path,) = photos(1)
    item = message(path, tmp_path, "1")
    item.attributes = {"traceparent": 7, "googclient_traceparent": None}  # type: ignore[dict-item]
    pipeline.submit(item)
    settle_all([item])
    pipeline.close(time.monotonic() + 5)
    assert item.settled == ["ack"] and pipeline.healthy
    assert [e.status for e in events.published] == ["completed"]


def test_decoded_pixels_in_flight_stay_within_the_budget(tmp_path: Path, photos) -> None:  # type: ignore[no-untyped-def]
    model = Gated()
    pixels = 40 * 30
    pipeline, events = pipeline_for(
        tmp_path,
        model,
        max_batch=8,
        max_in_flight=16,
        io_threads=4,
        max_pixels=pixels,
        max_in_flight_pixels=2 * pixels,
    )
    model.probe = lambda: pipeline.ledger.pixels.used
    items = [message(p, tmp_path, str(i)) for i, p in enumerate(photos(8))]
    for item in items:
        pipeline.submit(item)
    settle_all(items)
    pipeline.close(time.monotonic() + 5)
    assert Counter(e.status for e in events.published) == {"completed": 8}
    assert max(model.during) <= 2 * pixels  # type: ignore[type-var]
    assert max(model.batches) <= 2, "only two images' pixels may be held, so batches of ≤ 2"
    assert pipeline.ledger.pixels.used == 0


def test_salient_pixels_under_the_inputs_alpha_zero_stay_transparent(tmp_path: Path) -> None:
    # A white image (salient everywhere for the brightness model) whose top half the input
    # itself made fully transparent: the model's mask alone would make it opaque again.
    rgba = np.full((30, 40, 4), 255, np.uint8)
    rgba[:15, :, 3] = 0
    rgba[15:20, :, 3] = 128
    path = tmp_path / "in" / "window.png"
    path.parent.mkdir()
    Image.fromarray(rgba, "RGBA").save(path)
    pipeline, events = pipeline_for(tmp_path, Gated())
    job = new_job(path.as_uri(), OutputSpec((tmp_path / "out").as_uri(), kind="both"))
    item = Message(job.to_message(), "1")
    pipeline.submit(item)
    settle_all([item])
    pipeline.close(time.monotonic() + 5)
    assert item.settled == ["ack"] and [e.status for e in events.published] == ["completed"]
    results = {o.kind: o.uri for o in events.published[0].outputs}
    with Image.open(Path(results["cutout"].removeprefix("file://"))) as cutout:
        alpha = np.asarray(cutout.getchannel("A"))
    assert (alpha[:15] == 0).all(), "the input's transparent rows came back opaque"
    assert (alpha[15:20] == 128).all() and (alpha[20:] == 255).all()


def test_the_pipeline_is_idle_only_once_the_ack_has_been_sent_and_counted(
    tmp_path: Path, photos
) -> None:  # type: ignore[no-untyped-def]
    """Shutdown cancels the stream once the pipeline is idle: an ack still on its way would be
    lost, and a summary read then would miss the job."""
    pipeline, _ = pipeline_for(tmp_path, Gated())
    (path,) = photos(1)
    item = message(path, tmp_path, "1")
    in_ack, release = threading.Event(), threading.Event()
    acked = item.ack

    def slow_ack() -> None:
        in_ack.set()
        release.wait(10)
        acked()

    item.ack = slow_ack  # type: ignore[method-assign]
    pipeline.submit(item)
    assert in_ack.wait(30)
    assert not pipeline.wait_idle(0.3)  # the ack has not returned yet
    release.set()
    assert pipeline.wait_idle(10)
    assert item.settled == ["ack"] and pipeline.stats.completed == 1
    pipeline.close(time.monotonic() + 5)


def test_a_model_with_two_lanes_runs_two_batches_at_once_and_close_stops_both(
    tmp_path: Path, photos
) -> None:  # type: ignore[no-untyped-def]
    """Streams are model threads: with two, a second batch enters predict while the first is
    still inside it; with one, it waits. Closing ends every model thread."""
    for streams, overlapping in ((2, True), (1, False)):
        model = Gated()
        model.streams = streams
        model.gate.clear()
        out = tmp_path / f"streams-{streams}"
        pipeline, events = pipeline_for(out, model, max_batch=1)
        items = [message(p, out, f"{streams}-{i}") for i, p in enumerate(photos(2))]
        for item in items:
            pipeline.submit(item)
        assert model.entered.acquire(timeout=10)
        assert model.entered.acquire(timeout=1.0) is overlapping
        model.gate.set()
        settle_all(items)
        assert [e.status for e in events.published] == ["completed"] * 2
        threads = list(pipeline.model_loop.threads)
        assert len(threads) == streams + (streams > 1)  # and the interactive thread
        pipeline.close(time.monotonic() + 5)
        assert not any(thread.is_alive() for thread in threads)


def test_grace_over_while_a_job_writes_its_result_nacks_it_and_no_event_follows(
    tmp_path: Path, photos
) -> None:  # type: ignore[no-untyped-def]
    """Past the model, in the writers pool: the grace period's nack still wins over the event
    the write would publish when it finally returns."""
    storage = GatedWrites()
    storage.gate.clear()
    pipeline, events = pipeline_for(tmp_path, Gated(), storage)
    (path,) = photos(1)
    item = message(path, tmp_path, "1")
    pipeline.submit(item)
    assert storage.entered.acquire(timeout=10)  # the job is in the write stage
    pipeline.close(time.monotonic() + 0.2)
    assert item.settled == ["nack"]
    storage.gate.set()  # the write lands after its message went back to the queue
    pipeline._writers.shutdown(wait=True)  # the write stage has run to its end
    assert events.published == []
    assert item.settled == ["nack"] and pipeline.stats.returned == 1


@pytest.mark.parametrize("where", ["model", "write"])
def test_a_job_failing_after_decoding_gives_its_pixels_back(
    tmp_path: Path, photos, where: str
) -> None:  # type: ignore[no-untyped-def]
    """Room for exactly one image: a job that fails in the model or in the write must free
    it, or every later job waits for pixels for ever."""
    model, storage = Gated(), GatedWrites()
    if where == "model":
        model.fail_next = RuntimeError("a bug in the model")
    else:
        storage.fail = StorageUnavailable("storage is down")
    pixels = 40 * 30
    pipeline, events = pipeline_for(
        tmp_path, model, storage, max_batch=1, max_pixels=pixels, max_in_flight_pixels=pixels
    )
    first, second = (message(p, tmp_path, str(i)) for i, p in enumerate(photos(2)))
    pipeline.submit(first)
    settle_all([first])
    assert first.settled == ["nack"]
    assert pipeline.ledger.pixels.used == 0
    storage.fail = None
    pipeline.submit(second)
    settle_all([second], timeout_s=10)
    pipeline.close(time.monotonic() + 5)
    assert second.settled == ["ack"] and [e.status for e in events.published] == ["completed"]


def test_an_interactive_job_overtakes_a_bulk_backlog_by_slot_and_by_batch(
    tmp_path: Path, photos
) -> None:  # type: ignore[no-untyped-def]
    """Bulk jobs fill every slot they may and the model's queue; an interactive job that
    arrives then is admitted at once (the reserved slot) and runs in the very next batch.

    Plausible bugs this catches: no reserved slot (``interactive_reserve=0``, or slots not
    counted by lane): the interactive submit blocks behind the backlog; a FIFO model queue:
    it runs after the bulk jobs queued before it."""
    model = Gated()
    model.gate.clear()
    ran: list[int] = []  # each batch's photo, by its colour (make_photos: red = index * 20)
    predict = model.predict

    def recording(batch: np.ndarray, urgent: bool = False) -> np.ndarray:
        ran.append(round(float(batch[0, 0].mean()) * 255 / 20))
        return predict(batch, urgent)

    model.predict = recording  # type: ignore[method-assign]
    pipeline, _ = pipeline_for(tmp_path, model, max_batch=1, max_in_flight=4, interactive_reserve=1)
    paths = photos(6)
    bulk = [message(p, tmp_path, f"b{i}", **{"cutq.lane": "bulk"}) for i, p in enumerate(paths[:5])]
    urgent = message(paths[5], tmp_path, "i")  # no attribute: interactive
    for item in bulk:
        threading.Thread(target=pipeline.submit, args=(item,), daemon=True).start()
    assert model.entered.acquire(timeout=10)  # a bulk job is in the model, the gate shut
    deadline = time.monotonic() + 10
    while pipeline.model_loop._queue.qsize() < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pipeline.ledger.slots.held(Lane.BULK) == 3  # two more wait in submit
    submitted = threading.Thread(target=pipeline.submit, args=(urgent,), daemon=True)
    submitted.start()
    submitted.join(5)
    assert not submitted.is_alive(), "the interactive job waited for a slot behind bulk jobs"
    while pipeline.model_loop._queue.qsize() < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    model.gate.set()
    settle_all([*bulk, urgent])
    pipeline.close(time.monotonic() + 5)
    assert ran[1] == 5, f"batches ran in the order {ran}: the interactive job (5) is not next"
    assert sorted(ran) == [0, 1, 2, 3, 4, 5]
    assert all(item.settled == ["ack"] for item in [*bulk, urgent])
