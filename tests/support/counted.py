"""A ledger as the pipeline composes it: :class:`~cutq.worker.outcome.Stats` told first of
each settle, then the test's own observers."""

from __future__ import annotations

from collections.abc import Sequence

from cutq.worker.lane_policy import LanePolicy
from cutq.worker.ledger import Ledger
from cutq.worker.outcome import Observer, Stats


class Counted(Ledger):
    def __init__(
        self,
        max_in_flight: int,
        max_pixels: int,
        interactive_reserve: int = 0,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.stats = Stats()
        policy = LanePolicy(max_in_flight, interactive_reserve)
        super().__init__(policy, max_pixels, (self.stats, *observers))
