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
    items: queue.Queue | RankedQueue,
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
        self._changed = threading.Condition()

    def put(self, item: object) -> None:
        rank = len(self._ranks) - 1 if item is STOP else self._rank_of(item)
        with self._changed:
            self._ranks[rank].append(item)
            self._changed.notify()

    def get(self, block: bool = True, timeout: float | None = None) -> object:
        """The first item of the lowest non-empty rank; ``queue.Empty`` as :class:`queue.Queue`."""
        with self._changed:
            if not self._changed.wait_for(self.qsize, timeout if block else 0):
                raise queue.Empty
            return next(fifo for fifo in self._ranks if fifo).popleft()

    def qsize(self) -> int:
        return sum(len(fifo) for fifo in self._ranks)
