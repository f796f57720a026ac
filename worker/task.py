"""A :class:`Task`: one delivery's life from :meth:`~cutq.worker.pipeline.Pipeline.submit`
to its ack or nack, with the timings each stage adds.

A leaf: it knows the delivery and the job, never the ledger that holds it nor the outcome
that ends it (:mod:`cutq.worker.ledger`, :mod:`cutq.worker.outcome` read it).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

from cutq.core.contract import Job, salvage_job_id
from cutq.core.lanes import Lane
from cutq.worker.sources import Delivery


@dataclass(eq=False)
class Task:
    """One delivery on its way through the stages, with the timings each stage adds."""

    delivery: Delivery
    lane: Lane = Lane.INTERACTIVE
    received: float = field(default_factory=time.monotonic)
    timings_ms: dict[str, float] = field(default_factory=dict)
    job: Job | None = None  # once admitted
    key: str | None = None  # the job's first result URI, once it leads or follows
    batch_size: int | None = None
    pixels: int = 0  # reserved from the pixel budget while its image is held
    followers: list[Task] = field(default_factory=list)
    emitting: bool = False  # its event is being published: it can no longer be nacked
    settled: bool = False  # acked or nacked (it stays open until that call has returned)
    ack_failed: bool = False  # the source refused the ack or nack: it may come back

    def mark(self, stage: str, since: float) -> float:
        now = time.monotonic()
        self.timings_ms[stage] = (now - since) * 1000.0
        return now

    def finish(self) -> dict[str, float]:
        """The timings with their ``total`` (set once: when the outcome is known)."""
        self.timings_ms.setdefault("total", (time.monotonic() - self.received) * 1000.0)
        return dict(self.timings_ms)

    @property
    def last_attempt(self) -> bool:
        """Whether a nack now is this delivery's end (its source knows how many it gets)."""
        return self.delivery.last_attempt

    @functools.cached_property
    def _salvaged(self) -> str | None:
        return salvage_job_id(self.delivery.data)

    @property
    def label(self) -> str:
        """The job id: the parsed job's, else the one an invalid message gave, else
        ``message-<message id>``."""
        if self.job is not None:
            return self.job.job_id
        return self._salvaged or f"message-{self.delivery.message_id}"
