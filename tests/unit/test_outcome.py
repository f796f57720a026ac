"""How a job ended, as one value: one word per outcome in the stats, the job's log line and
the stop summary, and a follower that shares its leader's outcome."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from cutq.core.contract import OutputSpec, new_job
from cutq.core.errors import ShuttingDown, StorageUnavailable
from cutq.core.events import Event
from cutq.worker.joblog import log_job
from cutq.worker.ledger import Task
from cutq.worker.outcome import Ending, Outcome, Stats


def task(last_attempt: bool = False) -> Task:
    delivery = SimpleNamespace(
        message_id="m1", attributes={}, delivery_attempt=2, last_attempt=last_attempt
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
