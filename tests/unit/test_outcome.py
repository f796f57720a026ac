"""How a job ended, as one value: one word per outcome in the stats, the job's log line and
the stop summary, and a follower that shares its leader's outcome."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from cutq.core.contract import OutputSpec, new_job
from cutq.core.errors import ShuttingDown, StorageUnavailable
from cutq.core.events import Event
from cutq.worker.joblog import log_job
from cutq.worker.outcome import Ending, Outcome, Stats
from cutq.worker.task import Task


def task(last_attempt: bool = False) -> Task:
    delivery = SimpleNamespace(
        data=b"{}", message_id="m1", attributes={}, delivery_attempt=2, last_attempt=last_attempt
    )
    return Task(delivery)  # type: ignore[arg-type]


def event(status: str, duplicate: bool = False, code: str = "not_an_image") -> Event:
    if status == "failed":
        return Event.failed("j1", "gs://b/in.png", code, "no", attributes={})
    if status == "cancelled":
        return Event.cancelled(new_job("gs://bucket/in.png", OutputSpec("gs://bucket/o")), "run x")
    return Event(
        job_id="j1",
        status="completed",
        input="gs://b/in.png",
        time=datetime(2026, 12, 1, tzinfo=timezone.utc),
        duplicate=duplicate,
    )


OUTCOMES = {
    Ending.COMPLETED: lambda: Outcome.published(event("completed")),
    Ending.DUPLICATE: lambda: Outcome.published(event("completed", duplicate=True)),
    Ending.FAILED: lambda: Outcome.published(event("failed")),
    Ending.EXPIRED: lambda: Outcome.published(event("failed", code="deadline_exceeded")),
    Ending.CANCELLED: lambda: Outcome.published(event("cancelled")),
    Ending.RETURNED: lambda: Outcome.returned(StorageUnavailable("down")),
    Ending.EXHAUSTED: lambda: Outcome.returned(StorageUnavailable("down"), last_attempt=True),
}


@pytest.mark.parametrize("ending", list(Ending))
def test_each_outcome_has_one_word_in_the_stats_and_the_job_log(
    ending: Ending, caplog: pytest.LogCaptureFixture
) -> None:
    outcome = OUTCOMES[ending]()
    assert outcome.ending is ending
    assert outcome.acked is (ending not in (Ending.RETURNED, Ending.EXHAUSTED))
    stats, item = Stats(), task()
    item.finish()
    stats.settled(item, outcome)
    counted = {
        "completed": stats.completed,
        "duplicate": stats.duplicates,
        "failed": stats.failed,
        "expired": stats.expired,
        "cancelled": stats.cancelled,
        "returned": stats.returned,
        "exhausted": stats.exhausted,
    }
    assert counted == {word: int(word == ending.value) for word in counted}
    assert f"1 {ending.value}" in stats.summary().replace("duplicates", "duplicate")
    with caplog.at_level(logging.INFO, logger="cutq.worker.joblog"):
        log_job(item, outcome)
    (record,) = caplog.records
    assert record.status == ending.value  # type: ignore[attr-defined]
    assert record.error_code == outcome.error_code  # type: ignore[attr-defined]


def test_each_outcome_is_counted_every_time() -> None:
    stats = Stats()
    for ending in [*Ending, *Ending]:
        stats.settled(task(), OUTCOMES[ending]())
    assert (stats.completed, stats.duplicates, stats.failed) == (2, 2, 2)
    assert (stats.expired, stats.cancelled) == (2, 2)
    assert (stats.returned, stats.exhausted, stats.settled_count) == (2, 2, 2 * len(Ending))
    assert stats.failures == {"not_an_image": 2, "retries_exhausted": 2, "deadline_exceeded": 2}


def test_error_codes_by_outcome() -> None:
    assert Outcome.published(event("failed")).error_code == "not_an_image"
    assert Outcome.returned(ShuttingDown("stop")).error_code == "shutting_down"
    assert Outcome.returned(ValueError("bug")).error_code == "internal"
    exhausted = Outcome.returned(StorageUnavailable("down"), last_attempt=True)
    assert exhausted.error_code == "retries_exhausted"
    stats = Stats()
    stats.settled(task(), exhausted)
    assert stats.failures == {"retries_exhausted": 1}


def test_a_follower_shares_its_leader_s_outcome_with_its_own_attempt_and_timings() -> None:
    follower = task(last_attempt=True)
    follower.job = SimpleNamespace(attributes={"k": "v"})  # type: ignore[assignment]
    shared = Outcome.published(event("completed")).for_follower(follower)
    assert shared.ending is Ending.DUPLICATE and shared.event is not None
    assert shared.event.attempt == 2 and shared.event.attributes == {"k": "v"}
    assert "total" in shared.event.timings_ms
    back = Outcome.returned(StorageUnavailable("down")).for_follower(follower)
    assert back.ending is Ending.EXHAUSTED  # the follower's own last attempt decides


def test_the_summary_line_gives_each_count_and_the_mean_batch() -> None:
    stats = Stats(completed=7, failed=2, duplicates=3, returned=4, exhausted=1)
    stats.expired, stats.cancelled = 8, 9
    stats.batches, stats.batch_items, stats.fp32_reruns, stats.ack_failures = 1, 3, 5, 6
    assert stats.summary() == (
        "7 completed, 2 failed, 8 expired, 9 cancelled, 3 duplicates, 4 returned, "
        "1 exhausted, 1 batches (mean size 3.0, 5 re-run in fp32), 6 acks failed"
    )
    assert stats.settled_count == 34
    assert Stats().mean_batch == 0.0


def test_a_failure_without_a_code_is_counted_as_internal() -> None:
    stats = Stats()
    stats.settled(task(), Outcome(Ending.FAILED))
    assert stats.failed == 1 and stats.failures == {"internal": 1}
    assert Outcome(Ending.COMPLETED).error_code is None


def test_a_follower_of_a_failed_job_fails_too_as_a_repeat_and_one_of_a_returned_job_goes_back() -> (
    None
):
    follower = task()
    follower.job = SimpleNamespace(attributes={"k": "v"})  # type: ignore[assignment]
    failed = Outcome.published(event("failed")).for_follower(follower)
    assert failed.ending is Ending.FAILED and failed.event is not None
    # The leader reported the ending: the follower's event is a repeat (issue 31).
    assert failed.event.duplicate is True and failed.event.batch_size is None
    assert failed.event.error_code == "not_an_image"
    leader = dataclasses.replace(event("completed"), batch_size=4)
    shared = Outcome.published(leader).for_follower(follower)
    assert shared.event is not None and shared.event.time > leader.time  # its own moment
    assert shared.event.batch_size is None  # it was not in the batch
    back = Outcome(Ending.RETURNED).for_follower(follower)
    assert back.ending is Ending.RETURNED and isinstance(back.error, RuntimeError)
    assert str(back.error) == "leader returned"  # what the follower's log line says
    down = StorageUnavailable("down")
    assert Outcome.returned(down).for_follower(follower).error is down
    unadmitted = task()  # no job: it cannot carry the leader's event
    assert Outcome.published(leader).for_follower(unadmitted).ending is Ending.RETURNED


def test_a_follower_of_a_job_exhausted_with_its_event_goes_back_and_is_never_failed() -> None:
    """The leader's ``retries_exhausted`` event (published before its nack) is its own end:
    a follower still has attempts left, so it goes back to the queue. Plausible bug this
    catches: sharing every outcome that carries an event, which would ack the follower
    with a ``failed`` event it never earned."""
    leader_end = Outcome.returned(StorageUnavailable("down"), last_attempt=True)
    told = leader_end.announced(event("failed", code="retries_exhausted"))
    assert told.ending is Ending.EXHAUSTED and not told.acked
    assert told.error_code == "retries_exhausted"
    follower = task()
    follower.job = SimpleNamespace(attributes={})  # type: ignore[assignment]
    back = told.for_follower(follower)
    assert back.ending is Ending.RETURNED and back.event is None
