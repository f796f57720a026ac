"""The ledger: every job held by the worker, and the one place a job is settled.

A :class:`~cutq.worker.task.Task` is one delivery's life from :meth:`Pipeline.submit` to ack
or nack. The :class:`Ledger` holds every open task and keeps the promises that span jobs:

* **bounded memory**: at most ``max_in_flight`` tasks (a slot each) and at most
  ``max_in_flight_pixels`` decoded pixels at once (:class:`PixelBudget`);
* **room for the interactive lane**: bulk tasks never hold the last ``interactive_reserve``
  slots (:class:`Slots`, reading :class:`~cutq.worker.lane_policy.LanePolicy`), so an
  interactive job never waits for a bulk one to settle before it can start;
* **one computation per job**: the first delivery of a job leads; another delivery of the same
  job (the same result object) while the leader runs becomes its follower and is settled when
  the leader is, never computed again;
* **settled once**: :meth:`Ledger.settle` acks or nacks each task exactly once by its
  :class:`~cutq.worker.outcome.Outcome`, then tells the observers its owner passed in (the
  :class:`~cutq.worker.service.Service` composes them: the stats, the job log, a progress
  bar); a task nacked at the end of the grace period can never publish an event afterwards
  (:meth:`Ledger.begin_emit`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from cutq.core.lanes import Lane
from cutq.worker.lane_policy import LanePolicy
from cutq.worker.outcome import Observer, Outcome
from cutq.worker.sources import Delivery
from cutq.worker.task import Task

log = logging.getLogger(__name__)


class Slots:
    """Slots for tasks: as many as the policy's ``max_in_flight``, of which each lane may
    hold at most its :meth:`~cutq.worker.lane_policy.LanePolicy.limit`."""

    def __init__(self, policy: LanePolicy) -> None:
        self.policy = policy
        self.total = policy.max_in_flight
        self._held = {lane: 0 for lane in Lane}
        self._changed = threading.Condition()

    def take(self, lane: Lane, timeout_s: float) -> bool:
        """Take a slot for a task in ``lane``; False when none frees up within ``timeout_s``."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._free(lane), timeout_s):
                return False
            self._held[lane] += 1
            return True

    def give_back(self, lane: Lane) -> None:
        with self._changed:
            if self._held[lane] <= 0:
                raise ValueError(f"no {lane.value} slot is held")
            self._held[lane] -= 1
            self._changed.notify_all()

    def held(self, lane: Lane) -> int:
        with self._changed:
            return self._held[lane]

    def _free(self, lane: Lane) -> bool:
        if sum(self._held.values()) >= self.total:
            return False
        return self._held[lane] < self.policy.limit(lane)


class PixelBudget:
    """Decoded pixels held at once, across all jobs: memory bounded in bytes, not job count."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._used = 0
        self._changed = threading.Condition()

    def reserve(self, pixels: int, cancelled: Callable[[], bool]) -> bool:
        """Block until ``pixels`` fit; False when ``cancelled()`` turns true while waiting."""
        pixels = min(pixels, self.total)  # one image larger than the budget still runs alone
        with self._changed:
            while self._used + pixels > self.total:
                if cancelled():
                    return False
                self._changed.wait(0.1)
            self._used += pixels
            return True

    def release(self, pixels: int) -> None:
        with self._changed:
            self._used -= min(pixels, self.total)
            self._changed.notify_all()

    @property
    def used(self) -> int:
        with self._changed:
            return self._used


class Ledger:
    """Open tasks, their slots and pixels, the job registry, and settling."""

    def __init__(
        self, policy: LanePolicy, max_pixels: int, observers: Sequence[Observer] = ()
    ) -> None:
        self._observers = tuple(observers)  # told of each settle, in this order
        self.pixels = PixelBudget(max_pixels)
        self.last_activity = time.monotonic()
        self.slots = Slots(policy)
        self._changed = threading.Condition()
        self._open: set[Task] = set()
        self._leaders: dict[str, Task] = {}
        self._closed = False

    # --- opening ----------------------------------------------------------------------------

    def take_slot(self, timeout_s: float, lane: Lane = Lane.INTERACTIVE) -> bool:
        return self.slots.take(lane, timeout_s)

    def open(self, delivery: Delivery, lane: Lane = Lane.INTERACTIVE) -> Task | None:
        """Hold a new task in a slot of ``lane`` already taken; None (slot given back) once
        closed."""
        task = Task(delivery, lane)
        with self._changed:
            if self._closed:
                self.slots.give_back(lane)
                return None
            self._open.add(task)
            self.last_activity = time.monotonic()
        return task

    def close(self) -> None:
        """Open no more tasks."""
        with self._changed:
            self._closed = True

    def lead(self, task: Task, key: str) -> bool:
        """True when ``task`` runs its job; False when it follows a running delivery of it."""
        with self._changed:
            task.key = key
            leader = self._leaders.get(key)
            if leader is None:
                self._leaders[key] = task
                return True
            leader.followers.append(task)
            return False

    def begin_emit(self, task: Task) -> bool:
        """Claim the right to publish ``task``'s event; False when it was already settled."""
        with self._changed:
            if task.settled:
                return False
            task.emitting = True
            return True

    # --- settling ---------------------------------------------------------------------------

    def settle(self, task: Task, outcome: Outcome, *, unless_emitting: bool = False) -> list[Task]:
        """Ack or nack ``task`` once, by ``outcome``; returns the followers now waiting on it.

        ``unless_emitting``: leave it alone if its event is being published (checked atomically
        with :meth:`begin_emit`, so a nacked task never publishes afterwards).
        """
        with self._changed:
            if task.settled or (unless_emitting and task.emitting):
                return []  # already settled (e.g. nacked at the end of the grace period)
            task.settled = True
            if task.key is not None and self._leaders.get(task.key) is task:
                del self._leaders[task.key]
            followers, task.followers = task.followers, []
        task.finish()
        try:
            task.delivery.ack() if outcome.acked else task.delivery.nack()
        except Exception as error:  # Pub/Sub redelivers on its own: counted, logged
            task.ack_failed = True
            log.warning(
                "could not %s %s: %s", "ack" if outcome.acked else "nack", task.label, error
            )
        finally:
            self.pixels.release(task.pixels)
            task.pixels = 0
            self.slots.give_back(task.lane)
            for observer in self._observers:
                try:
                    observer.settled(task, outcome)
                except Exception:  # an observer must never take a thread down with it
                    log.exception("%s failed on %s", type(observer).__name__, task.label)
            with self._changed:  # only now idle: the ack or nack went, the observers know
                self._open.discard(task)
                self.last_activity = time.monotonic()
                self._changed.notify_all()
        return followers

    # --- draining ---------------------------------------------------------------------------

    def in_flight(self) -> int:
        with self._changed:
            return len(self._open)

    def idle_s(self) -> float | None:
        """Seconds since the last task settled, with none open since; None while one is."""
        with self._changed:
            return None if self._open else time.monotonic() - self.last_activity

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Wait until no task is open; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._open, timeout_s)

    def unsettled(self) -> list[Task]:
        with self._changed:
            return list(self._open)
