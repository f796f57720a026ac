"""The ledger on its own: slots, the pixel budget, leaders and followers, and one settle per
task that acks or nacks by the outcome and tells the observers — no threads of the pipeline."""

from __future__ import annotations

import threading

from cutq.core.errors import StorageUnavailable
from cutq.core.lanes import Lane
from cutq.worker.ledger import Ledger
from cutq.worker.outcome import Ending, Outcome
from cutq.worker.task import Task
from tests.support.counted import Counted
from tests.support.gated import Message


class Seen:
    def __init__(self) -> None:
        self.outcomes: list[tuple[str, Ending]] = []

    def settled(self, task: Task, outcome: Outcome) -> None:
        self.outcomes.append((task.delivery.message_id, outcome.ending))


def opened(ledger: Ledger, message_id: str) -> Task:
    assert ledger.take_slot(1.0)
    task = ledger.open(Message(b"{}", message_id))
    assert task is not None
    return task


def test_a_task_is_settled_once_frees_its_slot_and_pixels_and_tells_observers() -> None:
    seen = Seen()
    ledger = Counted(max_in_flight=1, max_pixels=100, observers=[seen])
    task = opened(ledger, "1")
    assert ledger.pixels.reserve(100, cancelled=lambda: False)
    task.pixels = 100
    assert not ledger.take_slot(0.0)  # the one slot is held
    returned = Outcome.returned(StorageUnavailable("down"))
    assert ledger.settle(task, returned) == []
    assert ledger.settle(task, returned) == []  # a second settle does nothing
    assert task.delivery.settled == ["nack"] and seen.outcomes == [("1", Ending.RETURNED)]  # type: ignore[attr-defined]
    assert ledger.pixels.used == 0 and ledger.in_flight() == 0 and ledger.idle_s() is not None
    assert "total" in task.timings_ms and ledger.stats.returned == 1
    assert ledger.take_slot(0.0)


def test_a_second_delivery_of_a_running_job_follows_and_is_handed_back_at_settle() -> None:
    ledger = Counted(max_in_flight=2, max_pixels=100)
    leader, follower = opened(ledger, "1"), opened(ledger, "2")
    assert ledger.lead(leader, "gs://b/r.png") is True
    assert ledger.lead(follower, "gs://b/r.png") is False
    assert ledger.idle_s() is None
    assert ledger.settle(leader, Outcome.returned(StorageUnavailable("x"))) == [follower]
    third = opened(ledger, "3")
    assert ledger.lead(third, "gs://b/r.png") is True  # the job is free to run again


def test_a_task_being_published_is_not_nacked_by_the_grace_period() -> None:
    done = threading.Event()
    ledger = Counted(max_in_flight=1, max_pixels=100, observers=[Done(done)])
    task = opened(ledger, "1")
    assert ledger.begin_emit(task)
    stopping = Outcome.returned(StorageUnavailable("stop"))
    assert ledger.settle(task, stopping, unless_emitting=True) == []
    assert task.delivery.settled == []  # type: ignore[attr-defined]
    other = opened_after(ledger, task, done)
    assert ledger.settle(other, stopping) == [] and not ledger.begin_emit(other)


class Done:
    def __init__(self, done: threading.Event) -> None:
        self.done = done

    def settled(self, task: Task, outcome: Outcome) -> None:
        self.done.set()


def opened_after(ledger: Ledger, task: Task, done: threading.Event) -> Task:
    """A task opened once ``task`` settles (the one slot is its)."""
    ledger.settle(task, Outcome.returned(StorageUnavailable("x")))
    assert done.wait(5)
    return opened(ledger, "2")


def test_bulk_tasks_never_take_the_slots_kept_for_interactive_ones() -> None:
    """Plausible bug this catches: one shared pool of slots (no reserve) lets a bulk backlog
    fill every slot, so an interactive delivery waits for a bulk job to settle."""
    ledger = Counted(max_in_flight=3, max_pixels=100, interactive_reserve=1)
    bulk = []
    for index in range(2):
        assert ledger.take_slot(0.0, Lane.BULK)
        task = ledger.open(Message(b"{}", f"b{index}"), Lane.BULK)
        assert task is not None and task.lane is Lane.BULK
        bulk.append(task)
    assert not ledger.take_slot(0.0, Lane.BULK)  # the last slot is kept
    assert ledger.take_slot(0.0, Lane.INTERACTIVE)  # ... for this one
    interactive = ledger.open(Message(b"{}", "i0"), Lane.INTERACTIVE)
    assert interactive is not None
    assert not ledger.take_slot(0.0, Lane.INTERACTIVE)  # every slot is held now
    ledger.settle(interactive, Outcome.returned(StorageUnavailable("x")))
    assert not ledger.take_slot(0.0, Lane.BULK)  # the reserve is free again, still not bulk's
    ledger.settle(bulk[0], Outcome.returned(StorageUnavailable("x")))
    assert ledger.take_slot(0.0, Lane.BULK)  # a bulk slot freed: bulk may take it
    assert ledger.slots.held(Lane.BULK) == 2 and ledger.slots.held(Lane.INTERACTIVE) == 0


def test_interactive_tasks_may_use_every_slot() -> None:
    """With no bulk work the interactive lane has the whole worker (and bulk, with no
    interactive work, all but the reserve)."""
    ledger = Counted(max_in_flight=3, max_pixels=100, interactive_reserve=1)
    assert all(ledger.take_slot(0.0, Lane.INTERACTIVE) for _ in range(3))
    assert not ledger.take_slot(0.0, Lane.INTERACTIVE)
