"""Dynamic batching: a short pure function over a queue, testable with no model and no GPU."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class _Stop:
    """Put :data:`STOP` on the queue to make :func:`get_batch` return None."""

    def __repr__(self) -> str:
        return "STOP"


STOP = _Stop()


def get_batch(
    items: queue.Queue,
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
