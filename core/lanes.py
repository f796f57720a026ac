"""Lanes: which of a worker's two queues a job waits in.

* ``interactive``: someone waits for this one job (a shopper-facing backend). It goes first
  into every batch and has slots kept free for it, so a bulk backlog delays it by about one
  batch at most.
* ``bulk``: a backlog that wants throughput (``cutq submit`` of a folder or a prefix,
  :meth:`~cutq.submitter.client.Submitter.submit_many`). It uses whatever capacity the
  interactive lane leaves: with no interactive traffic, all of it.

The one source of truth for a job's lane is its Pub/Sub message attribute
:data:`LANE_ATTRIBUTE` (``cutq.lane``), set by the publisher; absent means interactive. It is
not a field of the job body, so a job's id and result paths do not depend on its lane: the same
image submitted in either lane is the same job. Each lane has its own topic and subscription
(Google's emulator stores subscription filters but does not apply them, so one topic with two
filtered subscriptions could not be tested here); the publisher sends a job to its lane's topic,
and a worker pulling from two subscriptions knows each delivery's lane by the one it came
from, which for every message a cutq client publishes is also what its attribute says.
Sources with one way in (push, local files) read the attribute.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from cutq.core.errors import InvalidJob

LANE_ATTRIBUTE = "cutq.lane"


class Lane(str, enum.Enum):
    """A job's lane; :attr:`rank` orders them (interactive first)."""

    INTERACTIVE = "interactive"
    BULK = "bulk"

    @property
    def rank(self) -> int:
        """0 for interactive, 1 for bulk: a lower rank is served first."""
        return 0 if self is Lane.INTERACTIVE else 1

    @classmethod
    def parse(cls, value: str) -> Lane:
        """The lane named ``value``; :class:`InvalidJob` for anything else."""
        try:
            return cls(value.strip().lower())
        except ValueError:
            raise InvalidJob(
                f"lane must be one of {', '.join(lane.value for lane in cls)}, got {value!r}"
            ) from None


def lane_of(attributes: Mapping[str, str]) -> Lane:
    """The lane a message's attributes name; interactive when they name none or an unknown
    one (a lane is a scheduling hint: a job is never failed for it)."""
    value = attributes.get(LANE_ATTRIBUTE)
    if value is None:
        return Lane.INTERACTIVE
    try:
        return Lane.parse(value)
    except InvalidJob:
        return Lane.INTERACTIVE


def lane_attributes(lane: Lane) -> dict[str, str]:
    """The message attributes that put a job in ``lane``."""
    return {LANE_ATTRIBUTE: lane.value}
