"""The lane policy in one room: the numbers it derives for the slots and flow control, and
the urgency it gives a forward, which travels as an argument from the model loop through the
real :class:`~cutq.worker.runtime.inference.Runner` into ``model.predict`` and the wide session.

The model here counts forwards with the real :class:`~cutq.worker.models.onnx_engine.Streams`
(what the onnxruntime graphs use to pick the wide or the narrow session) and holds each until
the test opens its gate: which session a forward got is recorded, never timed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from cutq.core.lanes import Lane
from cutq.worker.lane_policy import LanePolicy, default_reserve
from cutq.worker.model_loop import ModelLoop
from cutq.worker.models.base import Model
from cutq.worker.models.onnx_engine import Streams
from cutq.worker.runtime.inference import Runner


def test_bulk_may_hold_all_but_the_reserve_and_interactive_everything() -> None:
    policy = LanePolicy(max_in_flight=10, interactive_reserve=3)
    assert (policy.limit(Lane.INTERACTIVE), policy.limit(Lane.BULK)) == (10, 7)
    assert LanePolicy(max_in_flight=4).limit(Lane.BULK) == 4  # no reserve: one lane
    assert policy.rank(Lane.INTERACTIVE) < policy.rank(Lane.BULK)
    with pytest.raises(ValueError, match="bulk jobs need at least one slot"):
        LanePolicy(max_in_flight=3, interactive_reserve=3)
    with pytest.raises(ValueError, match="must be 0 to"):
        LanePolicy(max_in_flight=3, interactive_reserve=-1)


def test_the_default_reserve_is_a_batch_leaving_bulk_a_batch() -> None:
    assert default_reserve(32, 8, two_lanes=True) == 8
    assert default_reserve(8, 8, two_lanes=True) == 1  # at least one
    assert default_reserve(12, 8, two_lanes=True) == 4  # what leaves bulk a batch
    assert default_reserve(32, 8, two_lanes=False) == 0  # one lane: nothing to keep
    assert default_reserve(1, 1, two_lanes=True) == 0  # one slot: bulk needs it


def test_only_shared_cores_make_a_spare_thread_and_a_lowered_bulk_stream() -> None:
    assert LanePolicy.interactive_thread(2) and not LanePolicy.interactive_thread(1)
    assert LanePolicy.urgent(True) and not LanePolicy.urgent(False)
    assert LanePolicy.lowers([Lane.INTERACTIVE, Lane.BULK], shared_cores=True)
    assert not LanePolicy.lowers([Lane.INTERACTIVE], shared_cores=True)
    assert not LanePolicy.lowers([Lane.BULK], shared_cores=False)


class Sessions(Model):
    """Two streams; each forward enters the shared :class:`Streams` with the urgency it was
    given, records whether it got the wide session, then waits for its gate."""

    name, version, engine = "sessions", "test", "numpy"
    streams = 2

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.busy = Streams()
        self.started = {name: threading.Event() for name in names}
        self.gates = {name: threading.Event() for name in names}
        self.wide: dict[str, bool] = {}

    def setup(self, device: object) -> None:
        pass

    def input_size(self, height: int, width: int, resize: str) -> tuple[int, int]:
        return (2, 2)

    def preprocess(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        raise NotImplementedError

    def predict(self, batch: np.ndarray, urgent: bool = False) -> np.ndarray:
        name = self.names[int(batch[0, 0, 0, 0])]
        with self.busy.enter(urgent) as wide:
            self.wide[name] = wide
            self.started[name].set()
            self.gates[name].wait(10)
        return batch[:, :1]


@dataclass(frozen=True)
class Item:
    tensor: np.ndarray
    lane: Lane
    input_size: tuple[int, int] = (2, 2)


NAMES = ["bulk-1", "bulk-2", "interactive"]


@pytest.fixture
def sessions() -> Iterator[tuple[ModelLoop, Sessions]]:
    model = Sessions(NAMES)
    loop: ModelLoop = ModelLoop(
        Runner(model, "cpu"),
        LanePolicy(max_in_flight=4),
        max_batch=1,
        max_wait_ms=0,
        inferred=lambda group, prediction, started: None,
        failed=lambda item, error: pytest.fail(f"{item.lane} failed: {error}"),
    )
    loop.start()
    yield loop, model
    for gate in model.gates.values():
        gate.set()
    loop.stop(deadline=time.monotonic() + 10)


def put(loop: ModelLoop, model: Sessions, name: str, lane: Lane) -> None:
    loop.put(Item(np.full((3, 2, 2), NAMES.index(name), np.float32), lane))
    assert model.started[name].wait(5), f"{name} never started"


def test_an_interactive_forward_beside_bulk_work_takes_the_wide_session(sessions) -> None:
    """Plausible bugs this catches: urgency inverted (the interactive thread's forwards not
    urgent, the streams' urgent), or lost on its way down (``Runner.run`` or
    ``model.predict`` dropping the argument): the interactive forward, starting beside two
    bulk ones, would get the narrow session and a bulk one the wide."""
    loop, model = sessions
    put(loop, model, "bulk-1", Lane.BULK)  # alone: wide, as any lone forward
    put(loop, model, "bulk-2", Lane.BULK)  # beside bulk-1: narrow
    put(loop, model, "interactive", Lane.INTERACTIVE)  # beside both, on its own thread
    assert model.wide == {"bulk-1": True, "bulk-2": False, "interactive": True}
