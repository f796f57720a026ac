"""Where jobs come from: one small protocol for a message, one for a source of them.

A :class:`Source` only delivers: it hands each :class:`Delivery` to :attr:`Intake.submit`
(:meth:`cutq.worker.pipeline.Pipeline.submit`), which calls exactly one of ``ack`` or
``nack`` on it, once its result and event are durable (ack) or once it must be retried (nack).
Everything around delivering — the wait loop, health, drain-on-idle, why the worker stops,
the deliveries held while it stops — belongs to the :class:`~cutq.worker.service.Service`,
which drives every source through the same life: ``start``, ``ended`` (polled),
``stop_intake``, ``close``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cutq.core.lanes import Lane, lane_of


class Delivery(Protocol):
    """One message, from Pub/Sub, a push request or a local file. A delivery may also say
    its ``lane`` (one from a lane's own subscription does): see :func:`lane_of_delivery`."""

    @property
    def data(self) -> bytes: ...

    @property
    def attributes(self) -> Mapping[str, str]: ...

    @property
    def publish_time(self) -> datetime: ...

    @property
    def delivery_attempt(self) -> int | None: ...

    @property
    def message_id(self) -> str: ...

    @property
    def last_attempt(self) -> bool:
        """A nack now is its end (it will not come back): known to the local source only;
        Pub/Sub's dead-letter policy decides that out of sight of the worker."""
        ...

    def ack(self) -> None: ...

    def nack(self) -> None: ...


def lane_of_delivery(delivery: Delivery) -> Lane:
    """The lane of the subscription ``delivery`` came from, when its source pulls one lane;
    else the lane its ``cutq.lane`` attribute names (:func:`cutq.core.lanes.lane_of`)."""
    lane = getattr(delivery, "lane", None)
    return lane if isinstance(lane, Lane) else lane_of(delivery.attributes)


class StopReason(enum.Enum):
    """Why a worker stopped; :attr:`exit_code` is the one place it becomes an exit status."""

    SIGNAL = "signal"  # SIGTERM/SIGINT (or :meth:`Service.stop`)
    IDLE = "idle"  # drain-on-idle: nothing in flight for ``drain_idle_s``
    DONE = "done"  # the source has nothing more (local files: every one settled)
    SOURCE_FAILED = "source-failed"  # the source broke (the Pub/Sub stream ended)
    MODEL_FAILED = "model-failed"  # a model thread died

    @property
    def exit_code(self) -> int:
        return 1 if self in (StopReason.SOURCE_FAILED, StopReason.MODEL_FAILED) else 0


@dataclass(frozen=True)
class Intake:
    """What a source is given: where deliveries go, and the worker's health to report."""

    submit: Callable[[Delivery], None]  # blocks while the worker is full (back-pressure)
    ready: Callable[[], bool]  # warmed up, healthy and not stopping
    in_flight: Callable[[], int]


class Source(Protocol):
    """Pub/Sub pull, Pub/Sub push, or local files, as the service sees them."""

    def start(self, intake: Intake) -> None:
        """Begin handing deliveries to ``intake.submit``."""

    def ended(self) -> StopReason | None:
        """``DONE`` or ``SOURCE_FAILED`` once the source can deliver nothing more, else None."""

    def stop_intake(self) -> None:
        """Ask for no more deliveries. Called once the pipeline has finished or returned what
        it ran, before the service nacks the deliveries it held: a nack must not make room
        for the next one."""

    def close(self, deadline: float) -> None:
        """Release the transport by ``deadline`` (monotonic), letting the held deliveries'
        nacks through first. Idempotent."""


class Sources:
    """Several sources served as one (the interactive and the bulk lane's subscriptions):
    each step of the life goes to every one of them, in order."""

    def __init__(self, sources: Sequence[Source]) -> None:
        self.sources = tuple(sources)

    def start(self, intake: Intake) -> None:
        for source in self.sources:
            source.start(intake)

    def ended(self) -> StopReason | None:
        """The first source's end: the worker stops when any of its lanes breaks."""
        return next((r for s in self.sources if (r := s.ended()) is not None), None)

    def stop_intake(self) -> None:
        for source in self.sources:
            source.stop_intake()

    def close(self, deadline: float) -> None:
        for source in self.sources:
            source.close(deadline)
