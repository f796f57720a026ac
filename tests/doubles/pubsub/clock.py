"""Clocks for the local Pub/Sub state: the system clock, and a fake one that tests advance."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Seconds since the Unix epoch; must never go backwards."""

    def now(self) -> float: ...


class SystemClock:
    """Wall-clock time that advances monotonically (immune to NTP steps after start-up)."""

    def __init__(self) -> None:
        self._wall_at_start = time.time()
        self._mono_at_start = time.monotonic()

    def now(self) -> float:
        return self._wall_at_start + (time.monotonic() - self._mono_at_start)


class FakeClock:
    """A clock that only moves when `advance` is called (thread-safe)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError(f"a clock cannot go backwards (advance by {seconds} s)")
        with self._lock:
            self._now += seconds
            return self._now
