"""The ledger's promises one by one, each pinned so a plausible slip fails a test: timings in
milliseconds on a fake clock, the pixel budget's edges and its cancellation, slots that bound
the tasks held, a settle that survives a refused ack and a broken observer, and idleness."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from cutq.core.errors import StorageUnavailable
from cutq.worker import ledger as ledger_module
from cutq.worker import task as task_module
from cutq.worker.ledger import Ledger, PixelBudget
from cutq.worker.outcome import Ending, Outcome, Stats
from cutq.worker.task import Task
from tests.support.counted import Counted
from tests.support.gated import Message


class Clock:
    """``time`` as the ledger and task modules see it: monotonic() reads ``now``."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(ledger_module, "time", fake)
    monkeypatch.setattr(task_module, "time", fake)
    return fake


def within(call: Callable[[], Any], seconds: float = 5.0) -> Any:
    """``call()``'s result, failing (not hanging) when it does not return in ``seconds``."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert result, f"did not return within {seconds}s"
    return result[0]


def opened(ledger: Ledger, message_id: str) -> Task:
    assert within(lambda: ledger.take_slot(0.0))
    task = ledger.open(Message(b"{}", message_id))
    assert task is not None
    return task


RETURNED = Outcome.returned(StorageUnavailable("down"))


def test_stage_timings_are_milliseconds_and_the_total_is_fixed_when_first_asked(
    clock: Clock,
) -> None:
    task = Task(Message(b"{}", "7"))
    task.received = 100.0
    clock.now = 100.25
    assert task.mark("download", 100.0) == 100.25
    clock.now = 101.0
    assert task.finish() == {"download": 250.0, "total": 1000.0}
    clock.now = 105.0
    copy = task.finish()
    assert copy == {"download": 250.0, "total": 1000.0}  # the outcome's moment, not later
    copy["extra"] = 1.0
    assert "extra" not in task.timings_ms  # callers get a copy


def test_a_task_is_named_by_its_job_or_else_by_its_message() -> None:
    task = Task(Message(b"{}", "7"))
    assert task.label == "message-7"
    task.job = SimpleNamespace(job_id="j1")  # type: ignore[assignment]
    assert task.label == "j1"
    task.delivery.last_attempt = True  # type: ignore[misc]
    assert task.last_attempt is True


def test_the_pixel_budget_fills_exactly_and_an_oversized_image_runs_alone() -> None:
    budget = PixelBudget(100)
    stopping = lambda: True  # noqa: E731 - any wait would end at once, refused
    assert budget.reserve(60, cancelled=stopping) and budget.reserve(40, cancelled=stopping)
    assert budget.used == 100  # exactly full fits, without waiting
    assert budget.reserve(1, cancelled=stopping) is False and budget.used == 100
    budget.release(60)
    assert budget.used == 40
    assert budget.reserve(500, cancelled=stopping) is False  # it needs the whole budget
    budget.release(40)
    assert budget.reserve(500, cancelled=stopping) is True and budget.used == 100
    budget.release(500)
    assert budget.used == 0


def test_a_reservation_waits_for_room_and_a_release_lets_it_in() -> None:
    budget = PixelBudget(10)
    assert budget.reserve(10, cancelled=lambda: False)
    asked = threading.Event()

    def waiting() -> bool:
        asked.set()
        return False

    waiter = threading.Thread(target=budget.reserve, args=(4, waiting), daemon=True)
    waiter.start()
    assert asked.wait(5)  # it found no room and waits
    budget.release(10)
    waiter.join(5)
    assert not waiter.is_alive() and budget.used == 4


def test_a_waiting_reservation_gives_up_soon_after_the_worker_starts_stopping() -> None:
    """The stop flag is looked at while waiting: shutdown must not wait for pixels."""
    budget = PixelBudget(10)
    assert budget.reserve(10, cancelled=lambda: False)
    first_look, stop = threading.Event(), threading.Event()

    def cancelled() -> bool:
        if not first_look.is_set():
            first_look.set()
            return False  # the first look finds it running: it waits
        return stop.is_set()

    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(budget.reserve(5, cancelled)))
    waiter.daemon = True
    waiter.start()
    assert first_look.wait(5)
    stop.set()
    waiter.join(0.9)  # it looks again every 0.1 s
    assert result == [False] and budget.used == 10


def test_slots_bound_the_open_tasks_and_a_closed_ledger_gives_the_slot_back() -> None:
    ledger = Counted(max_in_flight=2, max_pixels=10)
    first, second = opened(ledger, "1"), opened(ledger, "2")
    assert within(lambda: ledger.take_slot(0.0)) is False
    assert ledger.in_flight() == 2 and set(ledger.unsettled()) == {first, second}
    ledger.settle(first, RETURNED)
    assert ledger.in_flight() == 1 and ledger.unsettled() == [second]
    ledger.close()
    assert within(lambda: ledger.take_slot(0.0))
    assert ledger.open(Message(b"{}", "3")) is None  # closed: the slot goes back
    assert within(lambda: ledger.take_slot(0.0)) and ledger.in_flight() == 1


def test_idle_is_measured_from_the_last_settle_and_waiting_for_it_is_woken(clock: Clock) -> None:
    ledger = Counted(max_in_flight=2, max_pixels=10)
    clock.now = 103.0
    assert ledger.idle_s() == 3.0  # a worker that never had a job is idle since its start
    clock.now = 200.0
    task = opened(ledger, "1")
    assert ledger.idle_s() is None and within(lambda: ledger.wait_idle(0)) is False
    done: list[bool] = []
    waiter = threading.Thread(target=lambda: done.append(ledger.wait_idle(10)), daemon=True)
    waiter.start()
    clock.now = 210.0
    ledger.settle(task, RETURNED)
    waiter.join(5)
    assert done == [True] and ledger.wait_idle(0) is True
    clock.now = 212.5
    assert ledger.idle_s() == 2.5


def test_a_task_whose_event_is_publishing_is_still_settled_by_its_own_end() -> None:
    ledger = Counted(max_in_flight=1, max_pixels=10)
    task = opened(ledger, "1")
    assert ledger.begin_emit(task) and task.emitting
    assert ledger.settle(task, Outcome(Ending.COMPLETED)) == []
    assert task.delivery.settled == ["ack"]  # type: ignore[attr-defined]
    assert ledger.stats.completed == 1 and ledger.in_flight() == 0


def test_a_refused_ack_and_a_broken_observer_still_free_the_slot_and_are_counted() -> None:
    told: list[str] = []

    class Broken:
        def settled(self, task: Task, outcome: Outcome) -> None:
            raise RuntimeError("observer bug")

    class Recording:
        def settled(self, task: Task, outcome: Outcome) -> None:
            told.append(task.delivery.message_id)

    ledger = Counted(max_in_flight=1, max_pixels=10, observers=[Broken(), Recording()])
    for message_id in ("1", "2"):
        task = opened(ledger, message_id)

        def refuse() -> None:
            raise RuntimeError("ack refused")

        task.delivery.ack = refuse  # type: ignore[method-assign]
        assert ledger.pixels.reserve(10, cancelled=lambda: False)
        task.pixels = 10
        ledger.settle(task, Outcome(Ending.COMPLETED))
        assert task.ack_failed is True and task.pixels == 0 and task.settled
        assert ledger.pixels.used == 0 and ledger.in_flight() == 0
    assert told == ["1", "2"]  # the broken observer before it stopped no one
    assert ledger.stats.ack_failures == 2 and ledger.stats.completed == 2


def test_an_accepted_ack_is_not_counted_as_failed() -> None:
    ledger = Counted(max_in_flight=1, max_pixels=10)
    task = opened(ledger, "1")
    ledger.settle(task, Outcome(Ending.COMPLETED))
    assert task.ack_failed is False and ledger.stats.ack_failures == 0


def test_batches_are_counted_with_their_sizes_and_fp32_reruns() -> None:
    stats = Stats()
    stats.count_batch(3)
    stats.count_batch(2, fp32_reruns=1)
    stats.count_batch(1, fp32_reruns=2)
    assert (stats.batches, stats.batch_items, stats.fp32_reruns) == (3, 6, 3)
