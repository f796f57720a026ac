"""Bulk streams' lowered CPU priority stays theirs: lowered once, never passed on to the I/O
threads they feed (a pool started lazily from a lowered thread would inherit it)."""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from cutq.worker.priority import BULK_NICE, started_pool, yield_to_interactive

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="per-thread nice is Linux's"
)


def nice_here() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)  # the calling thread's, on Linux


def from_a_bulk_stream(pool: ThreadPoolExecutor) -> dict[str, object]:
    seen: dict[str, object] = {}

    def stream() -> None:
        seen["lowered"] = yield_to_interactive() and yield_to_interactive()
        seen["stream"] = nice_here()
        seen["pool"] = {pool.submit(nice_here).result() for _ in range(4)}

    thread = threading.Thread(target=stream)
    thread.start()
    thread.join(10)
    pool.shutdown()
    return seen


def test_a_stream_is_lowered_once_and_a_started_pool_keeps_its_creators_priority() -> None:
    base = nice_here()
    seen = from_a_bulk_stream(started_pool(2, "test-pool"))
    assert seen["lowered"] is True
    assert seen["stream"] == min(19, base + BULK_NICE)  # once, not twice
    assert seen["pool"] == {base}


def test_a_lazily_started_pool_would_inherit_the_streams_priority() -> None:
    """The control: what started_pool prevents happens with a plain pool."""
    base = nice_here()
    seen = from_a_bulk_stream(ThreadPoolExecutor(2))
    assert seen["pool"] == {min(19, base + BULK_NICE)}
