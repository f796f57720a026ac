"""Endings reported once (issue 31): a redelivered failed, expired or cancelled job says
``duplicate: true`` on any worker; a run id the worker accepts is one ``cutq cancel`` takes;
the log names the job id an invalid message gave.

Two pipelines sharing one ``file://`` store stand for two workers; the create-only mark in
the control prefix (:mod:`cutq.worker.ending_marks`) decides which delivery reports news.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cutq.core.contract import OutputSpec, new_job
from cutq.core.control import RUN_ID_ATTRIBUTE, cancel, control_uri, run_id_of
from cutq.core.errors import AccessDenied, AlreadyExists, InvalidJob, PublishFailed
from cutq.core.events import Event
from cutq.core.storage import Storage, Stores, open_storage
from cutq.worker.cancellations import CancelWatch
from cutq.worker.config import WorkerConfig
from cutq.worker.ending_marks import EndingMarks
from cutq.worker.joblog import JobLog
from cutq.worker.pipeline import Pipeline
from cutq.worker.runtime.inference import Runner
from tests.support.gated import Events, Gated, Message, make_photos, settle_all


class FlakyEvents(Events):
    """Events whose next ``fail`` publishes raise :class:`PublishFailed`."""

    def __init__(self, fail: int = 0) -> None:
        super().__init__()
        self.fail = fail

    def publish(self, event: Event) -> None:
        if self.fail:
            self.fail -= 1
            raise PublishFailed("topic unavailable")
        super().publish(event)


def worker(tmp_path: Path, events: Events | None = None) -> tuple[Pipeline, Events, CancelWatch]:
    config = WorkerConfig(
        output=(tmp_path / "out").as_uri(), warmup=False, max_batch=1, max_wait_ms=0, io_threads=2
    )
    stores = Stores()
    watch = CancelWatch(stores, config.control_uri, refresh_s=3600)
    events = events or Events()
    observers = (JobLog(config.trace_project),)  # the job log line, as the Service composes it
    pipeline = Pipeline(config, Runner(Gated(), "cpu"), events, stores, watch, observers=observers)
    pipeline.start()
    return pipeline, events, watch


def delivery(data: bytes, message_id: str, attempt: int = 1, **attributes: str) -> Message:
    item = Message(data, message_id, attributes)
    item.publish_time = datetime.now(timezone.utc)
    item.delivery_attempt = attempt
    return item


def run(pipeline: Pipeline, item: Message) -> list[str]:
    pipeline.submit(item)
    settle_all([item])
    return item.settled


def news_per_job(*sinks: Events) -> Counter:
    return Counter(e.job_id for sink in sinks for e in sink.published if not e.duplicate)


def test_a_cancelled_job_delivered_to_two_workers_is_news_once(tmp_path: Path) -> None:
    (a, a_events, a_watch), (b, b_events, b_watch) = worker(tmp_path), worker(tmp_path)
    photos = make_photos(tmp_path, 3)
    jobs = [new_job(p.as_uri(), OutputSpec((tmp_path / "out").as_uri())) for p in photos]
    control = control_uri((tmp_path / "out").as_uri())
    cancel(open_storage(control), control, job_ids=[job.job_id for job in jobs])
    assert a_watch.refresh() and b_watch.refresh()
    for index, job in enumerate(jobs):  # each job: worker A, worker B, A again (a 2nd publish)
        for pipeline, message_id in ((a, "1"), (b, "1"), (a, "2")):
            assert run(pipeline, delivery(job.to_message(), f"{index}-{message_id}")) == ["ack"]
    a.close(time.monotonic() + 10)
    b.close(time.monotonic() + 10)
    endings = [e for sink in (a_events, b_events) for e in sink.published]
    assert {e.status for e in endings} == {"cancelled"} and len(endings) == 9
    assert news_per_job(a_events, b_events) == {job.job_id: 1 for job in jobs}
    assert [e.duplicate for e in a_events.published[:2]] == [False, True]


def test_an_invalid_job_redelivered_is_news_once_and_its_log_names_its_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline, events, _ = worker(tmp_path)
    data = json.dumps({"job_id": "sku-1234", "input": 5}).encode()
    with caplog.at_level(logging.INFO, logger="cutq.worker.joblog"):
        for attempt in (1, 2, 3):
            assert run(pipeline, delivery(data, "m1", attempt)) == ["ack"]
    pipeline.close(time.monotonic() + 10)
    assert [(e.job_id, e.error_code, e.duplicate) for e in events.published] == [
        ("sku-1234", "invalid_job", False),
        ("sku-1234", "invalid_job", True),
        ("sku-1234", "invalid_job", True),
    ]
    lines = [r.getMessage() for r in caplog.records if r.name == "cutq.worker.joblog"]
    assert len(lines) == 3 and all("sku-1234" in line for line in lines), lines
    assert not any("message-m1" in line for line in lines)


def test_a_run_id_cutq_cancel_refuses_fails_the_job_once_naming_the_attribute(
    tmp_path: Path,
) -> None:
    pipeline, events, _ = worker(tmp_path)
    (photo,) = make_photos(tmp_path, 1)
    job = new_job(photo.as_uri(), OutputSpec((tmp_path / "out").as_uri()), job_id="sku-9")
    item = delivery(job.to_message(), "m1", **{RUN_ID_ATTRIBUTE: "../../x"})
    assert run(pipeline, item) == ["ack"]
    pipeline.close(time.monotonic() + 10)
    (event,) = events.published
    assert (event.job_id, event.status, event.error_code) == ("sku-9", "failed", "invalid_job")
    assert "cutq.run_id" in (event.error_message or "")
    assert not list((tmp_path / "out").rglob("*.png")), "computed although it can't be cancelled"


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    value=st.text(max_size=140)
    | st.from_regex(r"[A-Za-z0-9_.=-]{1,130}", fullmatch=True)
    | st.sampled_from(["../../x", "", "run-1", "a" * 128, "a" * 129, "run-1\n", ".x", "-x"])
)
def test_the_worker_takes_exactly_the_run_ids_cutq_cancel_takes(tmp_path: Path, value: str) -> None:
    control = (tmp_path / "control").as_uri()
    try:
        cancel(open_storage(control), control, run_ids=[value])
        cancellable = True
    except InvalidJob:
        cancellable = False
    try:
        accepted = run_id_of({RUN_ID_ATTRIBUTE: value}) == value
    except InvalidJob:
        accepted = False
    assert accepted == cancellable


def test_an_ending_whose_publish_failed_is_news_on_its_redelivery(tmp_path: Path) -> None:
    events = FlakyEvents(fail=1)
    pipeline, _, _ = worker(tmp_path, events)
    data = json.dumps({"job_id": "sku-7", "input": "gs://b/x", "deadline": "tomorrow"}).encode()
    assert run(pipeline, delivery(data, "m1", 1)) == ["nack"]  # the publish failed: retried
    assert run(pipeline, delivery(data, "m1", 2)) == ["ack"]
    assert run(pipeline, delivery(data, "m1", 3)) == ["ack"]
    pipeline.close(time.monotonic() + 10)
    assert [(e.attempt, e.duplicate) for e in events.published] == [(2, False), (3, True)]


def test_a_completion_whose_publish_failed_is_news_on_its_redelivery_once(tmp_path: Path) -> None:
    events = FlakyEvents(fail=1)
    pipeline, _, _ = worker(tmp_path, events)
    (photo,) = make_photos(tmp_path, 1)
    data = new_job(photo.as_uri(), OutputSpec((tmp_path / "out").as_uri())).to_message()
    assert run(pipeline, delivery(data, "m1", 1)) == ["nack"]  # written, but no news published
    for attempt in (2, 3):
        assert run(pipeline, delivery(data, "m1", attempt)) == ["ack"]
    pipeline.close(time.monotonic() + 10)
    assert [(e.status, e.attempt, e.duplicate) for e in events.published] == [
        ("completed", 2, False),  # the IOU settled: the news, at last
        ("completed", 3, True),
    ]
    assert len(list((tmp_path / "out").rglob("*.png"))) == 1
    assert not list((tmp_path / "out" / "_cutq").rglob("unreported/*"))  # the IOU is gone


class Marks(Stores):
    """Local storage whose create-only ``write`` of a mark lands and then (like a retried
    create whose first try landed) answers :class:`AlreadyExists`, or refuses it."""

    def __init__(self, refuse: bool = False) -> None:
        super().__init__()
        self.refuse = refuse

    def open(self, uri: str) -> Storage:
        backend, refuse = super().open(uri), self.refuse

        class Retried:
            def __getattr__(self, name: str) -> Any:
                return getattr(backend, name)

            def write(self, uri: str, data: bytes, **kwargs: Any) -> Any:
                if refuse:
                    raise AccessDenied(f"{uri}: 403")
                backend.write(uri, data, **kwargs)
                raise AlreadyExists(f"{uri} already exists")

        return Retried()  # type: ignore[return-value]


def test_marks_tell_news_from_a_repeat_and_never_withhold_an_event(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    control = (tmp_path / "control").as_uri()
    failed = Event.failed("sku-1", None, "invalid_job", "no")
    retried = EndingMarks(Marks(), control).claim(failed)  # our own create, answered 412
    assert not retried.event.duplicate and retried.claim is not None
    marks = EndingMarks(Stores(), control)
    assert marks.claim(failed).event.duplicate  # the mark is there: a repeat
    completed = Event(job_id="sku-2", status="completed", input=None)
    assert marks.claim(completed).event is completed  # its result object decides
    assert marks.uri("message-x/../y") is None  # never a path outside the prefix
    first = marks.claim(Event.failed("sku-3", None, "invalid_job", "no"))
    marks.release(first.claim)  # its event could not be published: taken back
    assert not marks.claim(Event.failed("sku-3", None, "invalid_job", "no")).event.duplicate
    with caplog.at_level(logging.ERROR, logger="cutq.worker.ending_marks"):
        refused = EndingMarks(Marks(refuse=True), control).claim(failed)
    assert not refused.event.duplicate and refused.claim is None  # published, never withheld
    assert "could not mark the ending of sku-1" in caplog.text
