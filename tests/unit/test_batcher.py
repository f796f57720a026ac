"""The batcher over pre-filled queues and a fake clock: no model, no GPU, no sleeping."""

from __future__ import annotations

import queue
import threading

import pytest

from cutq.worker.batcher import STOP, RankedQueue, get_batch


def filled(*items: object) -> queue.Queue:
    q: queue.Queue = queue.Queue()
    for item in items:
        q.put(item)
    return q


def test_closes_at_max_batch() -> None:
    q = filled(*range(10))
    assert get_batch(q, 4, 10.0) == [0, 1, 2, 3]
    assert get_batch(q, 4, 10.0) == [4, 5, 6, 7]


def test_past_the_deadline_it_never_blocks() -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 0.6  # each look at the clock costs 0.6 s of fake time
        return now[0]

    q = filled(1)  # nothing else will come: a blocking get would hang the test
    assert get_batch(q, 8, 0.5, clock) == [1]


@pytest.mark.timeout(5)  # a deadline computed wrong would block here for good
def test_zero_wait_takes_only_what_is_already_queued() -> None:
    q = filled(1, 2, 3)
    assert get_batch(q, 8, 0.0) == [1, 2, 3]


def test_stop_ends_a_batch_and_the_next_call() -> None:
    q = filled(1, 2, STOP)
    assert get_batch(q, 8, 10.0) == [1, 2]
    assert get_batch(q, 8, 10.0) is None
    assert get_batch(q, 8, 10.0) is None


def test_blocks_for_the_first_item_then_waits_for_more() -> None:
    q: queue.Queue = queue.Queue()
    result: list = []
    thread = threading.Thread(target=lambda: result.append(get_batch(q, 2, 5.0)))
    thread.start()
    q.put("a")
    q.put("b")
    thread.join(timeout=5)
    assert result == [["a", "b"]]


class Arrivals:
    """A queue whose items arrive at given times on a fake clock: ``get`` waits in fake time."""

    def __init__(self, times: list[float]) -> None:
        self.now = 0.0
        self.times = list(times)
        self.taken = 0

    def clock(self) -> float:
        return self.now

    def get(self, block: bool = True, timeout: float | None = None) -> object:
        arrives = self.times[self.taken]
        if arrives > self.now:
            if not block or (timeout is not None and arrives > self.now + timeout):
                self.now += timeout if block and timeout is not None else 0.0
                raise queue.Empty
            self.now = arrives
        self.taken += 1
        return self.taken - 1

    def put(self, item: object) -> None:  # pragma: no cover - STOP never arrives here
        raise AssertionError("nothing is put back")


def test_items_arriving_over_time_close_the_batch_max_wait_after_the_first() -> None:
    # One item every 0.1 s from t = 0.1: max_wait 0.2 s closes the batch at t = 0.3 with the
    # three items that arrived by then, never restarting the wait at each new item.
    arrivals = Arrivals([round(0.1 * k, 6) for k in range(1, 200)])
    batch = get_batch(arrivals, 100, 0.2, arrivals.clock)  # type: ignore[arg-type]
    assert batch == [0, 1, 2]
    assert arrivals.now == pytest.approx(0.3)
    assert get_batch(arrivals, 100, 0.2, arrivals.clock) == [3, 4, 5]  # type: ignore[arg-type]
    assert arrivals.now == pytest.approx(0.6)


def test_stop_reads_as_stop_in_logs_and_reprs() -> None:
    assert repr(STOP) == "STOP" and repr([1, STOP]) == "[1, STOP]"


class Job:
    def __init__(self, name: str, rank: int) -> None:
        self.name, self.rank = name, rank

    def __repr__(self) -> str:
        return self.name


def ranked(*items: Job) -> RankedQueue:
    q = RankedQueue(lambda item: item.rank)  # type: ignore[attr-defined]
    for item in items:
        q.put(item)
    return q


def test_a_ranked_queue_puts_interactive_items_first_into_every_batch() -> None:
    """Plausible bug this catches: a plain FIFO, where an interactive job waits behind every
    bulk job queued before it (here the interactive one would come 6th, in the second batch)."""
    bulk = [Job(f"b{i}", 1) for i in range(5)]
    interactive = [Job("i0", 0), Job("i1", 0)]
    q = ranked(*bulk, interactive[0], interactive[1])
    first = get_batch(q, 4, 0.0)
    assert [repr(item) for item in first] == ["i0", "i1", "b0", "b1"]  # type: ignore[union-attr]
    assert [repr(item) for item in get_batch(q, 4, 0.0)] == ["b2", "b3", "b4"]  # type: ignore[union-attr]


def test_a_ranked_queue_keeps_each_rank_in_order_and_stop_behind_all() -> None:
    q = ranked(Job("b0", 1), Job("i0", 0))
    q.put(STOP)
    q.put(Job("i1", 0))  # arrives after STOP: still served before it
    assert [repr(item) for item in get_batch(q, 8, 0.0)] == ["i0", "i1", "b0"]  # type: ignore[union-attr]
    assert get_batch(q, 8, 0.0) is None
    assert get_batch(q, 8, 0.0) is None  # STOP stays for the next thread


@pytest.mark.timeout(5)
def test_a_ranked_queue_blocks_like_a_queue() -> None:
    q = RankedQueue(lambda item: 0)
    with pytest.raises(queue.Empty):
        q.get(block=False)
    with pytest.raises(queue.Empty):
        q.get(timeout=0.05)
    threading.Timer(0.05, q.put, args=("late",)).start()
    assert q.get() == "late"


def test_a_view_takes_only_its_ranks_and_sees_stop_without_taking_it() -> None:
    q = ranked(Job("b0", 1), Job("i0", 0))
    view = q.view(max_rank=0)
    assert [repr(item) for item in get_batch(view, 8, 0.0)] == ["i0"]  # type: ignore[union-attr]
    with pytest.raises(queue.Empty):
        view.get(timeout=0.05)  # b0 is not the view's
    q.put(STOP)
    assert get_batch(view, 8, 0.0) is None
    assert get_batch(view, 8, 0.0) is None  # seen, not taken: and putting it back added none
    assert [repr(item) for item in get_batch(q, 8, 0.0)] == ["b0"]  # type: ignore[union-attr]
    assert get_batch(q, 8, 0.0) is None
    assert q.qsize() == 1  # one STOP, put back for the next thread: the view added none


@pytest.mark.timeout(5)
def test_a_view_takes_only_while_its_condition_holds() -> None:
    allowed = threading.Event()
    q = ranked(Job("i0", 0))
    view = q.view(max_rank=0, when=allowed.is_set)
    with pytest.raises(queue.Empty):
        view.get(timeout=0.05)
    threading.Timer(0.05, lambda: (allowed.set(), q.wake())).start()
    assert repr(view.get(timeout=2)) == "i0"


@pytest.mark.timeout(5)
def test_a_put_wakes_the_general_reader_while_a_view_also_waits() -> None:
    """Plausible bug: ``notify()`` wakes only the first waiter; here that is the view, which
    cannot take a bulk item, and the reader that can would sleep on with work queued."""
    q = RankedQueue(lambda item: item.rank)  # type: ignore[attr-defined]
    view, taken = q.view(max_rank=0), queue.Queue()
    viewer = threading.Thread(target=lambda: taken.put(("view", view.get(timeout=3))))
    viewer.start()
    threading.Event().wait(0.1)  # the view waits first
    reader = threading.Thread(target=lambda: taken.put(("all", q.get(timeout=3))))
    reader.start()
    threading.Event().wait(0.1)
    q.put(Job("b0", 1))
    who, item = taken.get(timeout=2)
    assert (who, repr(item)) == ("all", "b0")
    q.put(Job("i0", 0))
    assert taken.get(timeout=2)[0] == "view"
    viewer.join(2)
    reader.join(2)
