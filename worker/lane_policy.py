"""The lane policy, in one room: interactive jobs first, bulk jobs with whatever is left.

A job in the interactive lane has someone waiting for it; a bulk backlog wants throughput
(:mod:`cutq.core.lanes`). Six mechanisms keep that promise, each measured where it lives;
this module states the policy and derives the numbers they read, so none computes its own:

1. **ledger slots** (:class:`~cutq.worker.ledger.Slots`): bulk tasks never hold the last
   :attr:`LanePolicy.interactive_reserve` slots: :meth:`LanePolicy.limit`;
2. **Pub/Sub flow control** (:class:`~cutq.worker.sources.pubsub.PubSubSource`): the bulk
   subscription leases at most as many messages as bulk may hold slots, the interactive one
   every slot: :meth:`LanePolicy.limit` again, so the two can never disagree;
3. **batcher ranks** (:class:`~cutq.worker.batcher.RankedQueue`): interactive inputs go first
   into every batch: :meth:`LanePolicy.rank`;
4. **the spare model thread** (:class:`~cutq.worker.model_loop.ModelLoop`): with several
   streams, one more thread takes interactive inputs only, while bulk forwards run:
   :meth:`LanePolicy.interactive_thread`;
5. **per-thread nice** (:func:`~cutq.worker.priority.yield_to_interactive`): a stream that
   runs bulk work lowers its CPU priority by :data:`BULK_NICE`: :meth:`LanePolicy.lowers`;
6. **the wide ONNX session** (:class:`~cutq.worker.models.onnx_engine.Streams`): a forward
   on the interactive thread is *urgent* (:meth:`LanePolicy.urgent`), and that travels as an
   argument down ``Runner.run(urgent=…) → model.predict(urgent=…)``: an urgent forward takes
   the wide session even beside bulk forwards.

docs/architecture-engine.md ("The lane policy") draws the same list with the measurements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cutq.core.lanes import Lane

if TYPE_CHECKING:
    from cutq.worker.config import WorkerConfig

BULK_NICE = 10  # how far below the other threads a stream running bulk work runs


def default_reserve(max_in_flight: int, max_batch: int, two_lanes: bool) -> int:
    """The interactive reserve when none is configured: with two lanes, a batch, at most
    what leaves bulk a batch, at least 1 (and 0 when a single slot leaves no room); with one
    lane, 0 (nothing to keep)."""
    if not two_lanes or max_in_flight <= 1:
        return 0
    return max(1, min(max_batch, max_in_flight - max_batch))


@dataclass(frozen=True)
class LanePolicy:
    """``max_in_flight`` jobs at once, of which bulk jobs may hold all but
    ``interactive_reserve``."""

    max_in_flight: int
    interactive_reserve: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.interactive_reserve < self.max_in_flight:
            raise ValueError(
                f"interactive_reserve ({self.interactive_reserve}) must be 0 to max_in_flight "
                f"- 1 ({self.max_in_flight - 1}): bulk jobs need at least one slot"
            )

    @classmethod
    def of(cls, config: WorkerConfig) -> LanePolicy:
        """The policy of a worker configured by ``config`` (its reserve already resolved)."""
        assert config.max_in_flight is not None and config.interactive_reserve is not None
        return cls(config.max_in_flight, config.interactive_reserve)

    def limit(self, lane: Lane) -> int:
        """How many jobs of ``lane`` may be held at once (slots, and leased messages)."""
        if lane is Lane.INTERACTIVE:
            return self.max_in_flight
        return self.max_in_flight - self.interactive_reserve

    @staticmethod
    def rank(lane: Lane) -> int:
        """A batch's order: a lower rank goes first (interactive 0, bulk 1)."""
        return lane.rank

    @staticmethod
    def interactive_thread(streams: int) -> bool:
        """Whether the model loop keeps a thread for interactive inputs: only where several
        streams share the cores (with one, the ranked queue already puts them first)."""
        return streams > 1

    @staticmethod
    def urgent(interactive_thread: bool) -> bool:
        """Whether a forward is urgent (the wide session at once): it runs on the thread kept
        for interactive inputs."""
        return interactive_thread

    @staticmethod
    def lowers(lanes: list[Lane], shared_cores: bool) -> bool:
        """Whether a stream running a batch of ``lanes`` lowers its priority: it holds bulk
        work and shares the cores with an interactive thread."""
        return shared_cores and Lane.BULK in lanes
