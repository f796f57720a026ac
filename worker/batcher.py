"""Dynamic batching: a short pure function over a queue, testable with no model and no GPU."""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class _Stop:
    """Put :data:`STOP` on the queue to make :func:`get_batch` return None."""

    def __repr__(self) -> str:
        return "STOP"


STOP = _Stop()


def get_batch(
    items: queue.Queue | RankedQueue | RankView,
    max_batch: int,
    max_wait_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> list | None:
    """Block for one item, then take more until ``max_batch`` or ``max_wait_s`` after the first.

    Returns None once :data:`STOP` is the next item. A STOP met while filling a batch ends
    that batch and is put back, so the next call returns None (STOP is always put last).
    """
    first = items.get()
    if first is STOP:
        items.put(STOP)
        return None
    batch = [first]
    deadline = clock() + max_wait_s
    while len(batch) < max_batch:
        remaining = deadline - clock()
        try:
            item = items.get(block=remaining > 0, timeout=max(remaining, 0.0))
        except queue.Empty:
            break
        if item is STOP:
            items.put(STOP)
            break
        batch.append(item)
    return batch


class RankedQueue:
    """What :func:`get_batch` reads, with one FIFO per rank: :meth:`get` takes from the lowest
    rank that holds an item, so an interactive job (rank 0) goes first into the next batch
    however many bulk jobs (rank 1) wait. :data:`STOP` goes behind every rank."""

    def __init__(self, rank_of: Callable[[object], int], ranks: int = 2) -> None:
        self._rank_of = rank_of
        self._ranks: list[deque] = [deque() for _ in range(ranks)]
        self._stops = 0  # STOPs queued (always in the last rank)
        self._changed = threading.Condition()

    def put(self, item: object) -> None:
        rank = len(self._ranks) - 1 if item is STOP else self._rank_of(item)
        with self._changed:
            self._ranks[rank].append(item)
            if item is STOP:
                self._stops += 1
            self._changed.notify_all()  # a waiter for rank 0 only must not swallow the wake-up

    def get(self, block: bool = True, timeout: float | None = None) -> object:
        """The first item of the lowest non-empty rank; ``queue.Empty`` as :class:`queue.Queue`."""
        with self._changed:
            if not self._changed.wait_for(self.qsize, timeout if block else 0):
                raise queue.Empty
            item = next(fifo for fifo in self._ranks if fifo).popleft()
            if item is STOP:
                self._stops -= 1
            return item

    def qsize(self) -> int:
        return sum(len(fifo) for fifo in self._ranks)

    def view(self, max_rank: int, when: Callable[[], bool] = lambda: True) -> RankView:
        """What :func:`get_batch` reads to take only items of rank ≤ ``max_rank``, and only
        while ``when()`` holds (call :meth:`wake` when its answer may have changed): a model
        thread kept for interactive jobs. It sees :data:`STOP` as soon as one is queued."""
        return RankView(self, max_rank, when)

    def wake(self) -> None:
        """Make waiting views look at their ``when`` again."""
        with self._changed:
            self._changed.notify_all()

    def _get_up_to(
        self, max_rank: int, when: Callable[[], bool], block: bool, timeout: float | None
    ) -> object:
        with self._changed:

            def ready() -> bool:
                return self._stops > 0 or (any(self._ranks[: max_rank + 1]) and when())

            if not self._changed.wait_for(ready, timeout if block else 0):
                raise queue.Empty
            fifo = next((fifo for fifo in self._ranks[: max_rank + 1] if fifo), None)
            return STOP if fifo is None else fifo.popleft()  # STOP stays for the others


class RankView:
    """Items of rank ≤ ``max_rank`` of a :class:`RankedQueue`, taken while ``when()`` holds
    (:meth:`RankedQueue.view`).
    :data:`STOP` is seen, not taken, so putting it back is a no-op."""

    def __init__(self, ranked: RankedQueue, max_rank: int, when: Callable[[], bool]) -> None:
        self._ranked, self._max_rank, self._when = ranked, max_rank, when

    def get(self, block: bool = True, timeout: float | None = None) -> object:
        return self._ranked._get_up_to(self._max_rank, self._when, block, timeout)

    def put(self, item: object) -> None:
        if item is not STOP:
            self._ranked.put(item)
