"""Jobs the pipeline must not compute: past their deadline, or cancelled (with their run).

Each test counts what must not happen: downloads (reads of the input) and model batches. A
job is withdrawn at admission (before its download) and again when its batch would start
(after its download, before the model), and a job already done stays done.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cutq.core.contract import OutputSpec, new_job
from cutq.core.control import RUN_ID_ATTRIBUTE, Expiry, cancel, control_uri, register_run
from cutq.core.storage import Storage, Stores, open_storage
from cutq.worker.cancellations import CancelWatch
from cutq.worker.config import WorkerConfig
from cutq.worker.pipeline import Pipeline
from cutq.worker.runtime.inference import Runner
from tests.support.gated import Events, Gated, Message, make_photos, settle_all


class CountingStores(Stores):
    """Local storage that counts reads of each input (downloads)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: Counter = Counter()

    def open(self, uri: str) -> Storage:
        backend, stores = super().open(uri), self

        class Counting:
            def __getattr__(self, name: str) -> object:
                return getattr(backend, name)

            def read(self, uri: str, **kwargs: object) -> bytes:
                stores.reads[uri] += 1
                return backend.read(uri, **kwargs)  # type: ignore[arg-type]

        return Counting()  # type: ignore[return-value]


def setup(
    tmp_path: Path, model: Gated, *, cancellations: bool = False
) -> tuple[Pipeline, Events, CountingStores, CancelWatch | None]:
    config = WorkerConfig(
        output=(tmp_path / "out").as_uri(), warmup=False, max_batch=1, max_wait_ms=0, io_threads=2
    )
    stores = CountingStores()
    watch = CancelWatch(stores, config.control_uri, refresh_s=3600) if cancellations else None
    events = Events()
    pipeline = Pipeline(config, Runner(model, "cpu"), events, stores, watch)
    pipeline.start()
    return pipeline, events, stores, watch


def job_message(
    path: Path, tmp_path: Path, message_id: str, *, expiry: Expiry | None = None, **attributes: str
) -> Message:
    job = new_job(path.as_uri(), OutputSpec((tmp_path / "out").as_uri()), expiry=expiry)
    return Message(job.to_message(), message_id, attributes)


def now_published(message: Message) -> Message:
    message.publish_time = datetime.now(timezone.utc)
    return message


def test_jobs_past_their_deadline_in_the_queue_are_never_downloaded_nor_computed(
    tmp_path: Path,
) -> None:
    model = Gated()
    pipeline, events, stores, _ = setup(tmp_path, model)
    paths = make_photos(tmp_path, 5)
    # Published (Message.publish_time) days ago with a 30 s time-to-live, or a deadline past.
    stale = [
        job_message(p, tmp_path, f"ttl-{i}", expiry=Expiry(ttl_s=30))
        for i, p in enumerate(paths[:3])
    ]
    past = datetime(2026, 11, 30, tzinfo=timezone.utc)
    stale.append(job_message(paths[3], tmp_path, "deadline", expiry=Expiry(deadline=past)))
    fresh = now_published(job_message(paths[4], tmp_path, "fresh", expiry=Expiry(ttl_s=600)))
    for item in [*stale, fresh]:
        pipeline.submit(item)
    settle_all([*stale, fresh])
    # Redelivered (an ack that did not reach Pub/Sub): again no download, no model.
    for item in stale:
        item.done.clear()
        item.delivery_attempt = 2
        pipeline.submit(item)
    settle_all(stale)
    pipeline.close(pipeline_deadline())
    expired = [e for e in events.published if e.error_code == "deadline_exceeded"]
    assert len(expired) == 8 and {e.status for e in expired} == {"failed"}
    assert sorted(e.attempt for e in expired) == [1] * 4 + [2] * 4
    assert all(item.settled == ["ack", "ack"] for item in stale)
    assert [e.status for e in events.published if e.job_id not in {x.job_id for x in expired}] == [
        "completed"
    ]
    assert model.batches == [1], "only the fresh job ran the model"
    inputs = {uri: n for uri, n in stores.reads.items() if "/_cutq/" not in uri}
    assert sum(inputs.values()) == 1 and inputs[paths[4].as_uri()] == 1
    # Each expiry is news once: the redeliveries report it as a repeat (issue 31).
    by_attempt = sorted((e.attempt, e.duplicate) for e in expired)
    assert by_attempt == [(1, False)] * 4 + [(2, True)] * 4
    assert pipeline.stats.expired == 8 and pipeline.stats.failed == 0
    assert pipeline.stats.failures["deadline_exceeded"] == 8


def test_a_deadline_that_passes_while_the_job_waits_for_its_batch_skips_the_model(
    tmp_path: Path,
) -> None:
    model = Gated()
    model.gate.clear()
    pipeline, events, stores, _ = setup(tmp_path, model)
    first_path, second_path = make_photos(tmp_path, 2)
    first = now_published(job_message(first_path, tmp_path, "first"))
    second = now_published(job_message(second_path, tmp_path, "second", expiry=Expiry(ttl_s=0.5)))
    pipeline.submit(first)
    assert model.entered.acquire(timeout=10)  # the model is busy with the first job
    pipeline.submit(second)
    wait_for(lambda: stores.reads[second_path.as_uri()] == 1)  # admitted in time: loaded
    threading.Event().wait(0.8)  # its time-to-live passes while it waits for the model
    model.gate.set()
    settle_all([first, second])
    pipeline.close(pipeline_deadline())
    by_id = {e.job_id: e for e in events.published}
    assert model.batches == [1], "the expired job must not reach the model"
    assert by_id[job_id(second)].error_code == "deadline_exceeded"
    assert second.settled == ["ack"]


def test_a_cancellation_seen_while_a_job_waits_for_its_batch_skips_the_model(
    tmp_path: Path,
) -> None:
    """The check when a batch would start: with only the admission check (the plausible bug),
    a job loaded before the cancellation was seen is computed after it."""
    model = Gated()
    model.gate.clear()
    pipeline, events, stores, watch = setup(tmp_path, model, cancellations=True)
    assert watch is not None
    paths = make_photos(tmp_path, 3)
    run = {RUN_ID_ATTRIBUTE: "run-1"}
    items = [now_published(job_message(p, tmp_path, f"m{i}", **run)) for i, p in enumerate(paths)]
    for item in items:
        pipeline.submit(item)
    assert model.entered.acquire(timeout=10)  # one in the model, the others loaded, waiting
    wait_for(lambda: sum(stores.reads.values()) == 3)
    control = control_uri((tmp_path / "out").as_uri())
    storage = open_storage(control)
    register_run(storage, control, "run-1", {})
    assert cancel(storage, control, run_ids=["run-1"]).cancelled == ["run run-1"]
    assert watch.refresh()
    model.gate.set()
    settle_all(items)
    pipeline.close(pipeline_deadline())
    statuses = Counter(e.status for e in events.published)
    assert model.batches == [1] and statuses == {"completed": 1, "cancelled": 2}, statuses
    assert all(item.settled == ["ack"] for item in items)
    assert pipeline.stats.cancelled == 2
    cancelled = [e for e in events.published if e.status == "cancelled"]
    assert all(e.to_cloudevent()["data"]["reason"] == "run run-1 was cancelled" for e in cancelled)
    assert len(list((tmp_path / "out").rglob("*.png"))) == 1


def test_a_cancelled_job_is_never_downloaded_and_a_done_one_stays_done(tmp_path: Path) -> None:
    model = Gated()
    pipeline, events, stores, watch = setup(tmp_path, model, cancellations=True)
    assert watch is not None
    done_path, queued_path = make_photos(tmp_path, 2)
    done = now_published(job_message(done_path, tmp_path, "done"))
    pipeline.submit(done)
    settle_all([done])
    control = control_uri((tmp_path / "out").as_uri())
    queued = now_published(job_message(queued_path, tmp_path, "queued"))
    cancel(open_storage(control), control, job_ids=[job_id(done), job_id(queued)])
    assert watch.refresh()
    done.done.clear()
    for item in (done, queued):  # a redelivery of the done job, and a job still queued
        pipeline.submit(item)
    settle_all([done, queued])
    pipeline.close(pipeline_deadline())
    endings = [(e.job_id, e.status, e.duplicate) for e in events.published]
    assert sorted(endings) == sorted(
        [
            (job_id(done), "completed", False),
            (job_id(done), "completed", True),  # done stays done: its result exists
            (job_id(queued), "cancelled", False),
        ]
    )
    assert stores.reads[queued_path.as_uri()] == 0 and model.batches == [1]


# --- helpers -------------------------------------------------------------------------------


def job_id(message: Message) -> str:
    return json.loads(message.data)["job_id"]


def pipeline_deadline() -> float:
    return time.monotonic() + 10


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.01)
