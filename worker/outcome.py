"""How a job ended, as one value, and the observers told of it.

An :class:`Outcome` is made once per delivery, where the pipeline knows how the job ended,
and handed to the pipeline's one ending (:meth:`cutq.worker.pipeline.Pipeline._end`), which
publishes its event, if it has one, then settles (:meth:`cutq.worker.ledger.Ledger.settle`):
ack or nack by it, then tell every :class:`Observer` the service composed: :class:`Stats`,
the job's log line, ``cutq run``'s progress bar. One word per ending, the same in code,
logs, summaries and the README: ``completed``, ``duplicate``, ``failed``, ``expired``,
``cancelled``, ``returned``, ``exhausted``.
"""

from __future__ import annotations

import dataclasses
import enum
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Protocol

from cutq.core.errors import DeadlineExceeded, error_code
from cutq.core.events import Event

if TYPE_CHECKING:
    from cutq.worker.task import Task


class Ending(enum.Enum):
    """The kinds of outcome. Acked: completed, duplicate, failed, expired, cancelled; nacked:
    the others."""

    COMPLETED = "completed"  # results written and their event published
    DUPLICATE = "duplicate"  # another delivery made the results: its event again
    FAILED = "failed"  # a permanent error: a ``failed`` event
    EXPIRED = "expired"  # past its deadline, never computed: ``failed``, deadline_exceeded
    CANCELLED = "cancelled"  # it or its run was cancelled, never computed: ``cancelled``
    RETURNED = "returned"  # a transient error or shutdown: back to the queue, to be redelivered
    EXHAUSTED = "exhausted"  # returned on its last attempt: dead-lettered

    @property
    def acked(self) -> bool:
        return self in (
            Ending.COMPLETED,
            Ending.DUPLICATE,
            Ending.FAILED,
            Ending.EXPIRED,
            Ending.CANCELLED,
        )


@dataclass(frozen=True)
class Outcome:
    """How one delivery ended: its kind, the event to publish before the ack, or the error
    that returned it."""

    ending: Ending
    event: Event | None = None
    error: BaseException | None = None

    @classmethod
    def published(cls, event: Event) -> Outcome:
        """Completed, duplicate, failed, expired or cancelled, as ``event`` says: acked once
        it is published."""
        if event.status == "cancelled":
            return cls(Ending.CANCELLED, event)
        if event.status == "failed":
            expired = event.error_code == DeadlineExceeded.code
            return cls(Ending.EXPIRED if expired else Ending.FAILED, event)
        return cls(Ending.DUPLICATE if event.duplicate else Ending.COMPLETED, event)

    @classmethod
    def returned(cls, error: BaseException, *, last_attempt: bool = False) -> Outcome:
        """Back to the queue because of ``error``; on the last attempt, that is the end."""
        return cls(Ending.EXHAUSTED if last_attempt else Ending.RETURNED, error=error)

    def announced(self, event: Event) -> Outcome:
        """This ``exhausted`` outcome with the ``failed`` event that tells its end where no
        dead-letter topic does (the local source), published before the nack."""
        assert self.ending is Ending.EXHAUSTED and event.error_code == "retries_exhausted"
        return dataclasses.replace(self, event=event)

    @property
    def acked(self) -> bool:
        return self.ending.acked

    @property
    def error_code(self) -> str | None:
        """The stable code of a failed, returned or exhausted job; None otherwise."""
        if self.event is not None:
            return self.event.error_code
        if self.ending is Ending.EXHAUSTED:
            return "retries_exhausted"
        return error_code(self.error) if self.error is not None else None

    def for_follower(self, follower: Task) -> Outcome:
        """This (leader's) outcome as a delivery that waited on it shares it: computed once,
        reported for each; a follower of a job that went back to the queue goes back too."""
        if self.event is None or not self.acked or follower.job is None:
            return Outcome.returned(
                self.error or RuntimeError("leader returned"),
                last_attempt=follower.last_attempt,
            )
        event = dataclasses.replace(
            self.event,
            attempt=follower.delivery.delivery_attempt,
            batch_size=None,
            timings_ms=follower.finish(),
            attributes=follower.job.attributes,
            duplicate=True,  # whatever the ending: the leader reported it
            time=datetime.now(timezone.utc),
        )
        return Outcome.published(event)


class Observer(Protocol):
    """Told of every settled delivery, once, after its ack or nack went to the source."""

    def settled(self, task: Task, outcome: Outcome) -> None: ...


@dataclass
class Stats:
    """Counts since start, by outcome; read by the CLI summary, health checks and logs. An
    :class:`Observer` of every settle; the model loop adds each batch (:meth:`count_batch`)."""

    completed: int = 0
    duplicates: int = 0
    failed: int = 0
    expired: int = 0  # past their deadline (also counted under failures: deadline_exceeded)
    cancelled: int = 0
    returned: int = 0
    exhausted: int = 0
    ack_failures: int = 0  # acks and nacks the source refused (exactly-once delivery)
    batches: int = 0
    batch_items: int = 0
    fp32_reruns: int = 0  # batches computed again in fp32 after NaN/inf at lower precision
    failures: Counter = field(default_factory=Counter)  # error code → count (failed, exhausted)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def settled(self, task: Task, outcome: Outcome) -> None:
        with self._lock:
            self._count(outcome)
            self.ack_failures += task.ack_failed

    def count_batch(self, size: int, fp32_reruns: int = 0) -> None:
        with self._lock:
            self.batches += 1
            self.batch_items += size
            self.fp32_reruns += fp32_reruns

    def _count(self, outcome: Outcome) -> None:
        ending = outcome.ending
        if ending is Ending.COMPLETED:
            self.completed += 1
        elif ending is Ending.DUPLICATE:
            self.duplicates += 1
        elif ending is Ending.RETURNED:
            self.returned += 1
        elif ending is Ending.CANCELLED:
            self.cancelled += 1
        else:
            if ending is Ending.FAILED:
                self.failed += 1
            elif ending is Ending.EXPIRED:
                self.expired += 1
            else:
                self.exhausted += 1
            self.failures[outcome.error_code or "internal"] += 1

    @property
    def settled_count(self) -> int:
        return (
            self.completed
            + self.duplicates
            + self.failed
            + self.expired
            + self.cancelled
            + self.returned
            + self.exhausted
        )

    @property
    def mean_batch(self) -> float:
        return self.batch_items / max(self.batches, 1)

    def summary(self) -> str:
        return (
            f"{self.completed} completed, {self.failed} failed, {self.expired} expired, "
            f"{self.cancelled} cancelled, {self.duplicates} duplicates, "
            f"{self.returned} returned, {self.exhausted} exhausted, {self.batches} batches "
            f"(mean size {self.mean_batch:.1f}, {self.fp32_reruns} re-run in fp32), "
            f"{self.ack_failures} acks failed"
        )
