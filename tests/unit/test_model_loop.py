"""The model loop's precedence with two streams: an interactive forward waits for the bulk
forwards already running and then runs alone (no bulk forward starts beside it); bulk alone
uses every stream; interactive forwards do not wait for each other.

A fake runner records each forward and holds it until the test opens that input's gate, so
the order is decided by the test, never by timing. A forward that must *not* have started is
checked over a short window (a wrong implementation starts it at once)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from cutq.core.lanes import Lane
from cutq.worker.inference import Prediction
from cutq.worker.model_loop import ModelLoop

NOT_STARTED_S = 0.3  # how long a held-back forward is watched for a wrong start


@dataclass(frozen=True)
class Item:
    tensor: str
    lane: Lane
    input_size: tuple[int, int] = (1, 1)


class Runner:
    """Two streams; each forward is recorded, then waits for its input's gate."""

    def __init__(self) -> None:
        self.model = SimpleNamespace(streams=2)
        self.lock = threading.Lock()
        self.running: set[str] = set()
        self.started: dict[str, threading.Event] = {}
        self.gates: dict[str, threading.Event] = {}
        self.beside: dict[str, set[str]] = {}  # what else was running when each started

    def prepare(self, *names: str) -> None:
        for name in names:
            self.started[name], self.gates[name] = threading.Event(), threading.Event()

    def run(self, tensors: list[str]) -> Prediction:
        (name,) = tensors
        with self.lock:
            self.beside[name] = set(self.running)
            self.running.add(name)
        self.started[name].set()
        self.gates[name].wait(10)
        with self.lock:
            self.running.discard(name)
        return Prediction(maps=[name])


@pytest.fixture
def loop() -> Iterator[tuple[ModelLoop, Runner, list[str]]]:
    runner = Runner()
    done: list[str] = []
    model_loop: ModelLoop = ModelLoop(
        runner,  # type: ignore[arg-type]
        max_batch=1,
        max_wait_ms=0,
        inferred=lambda group, prediction, started: done.extend(i.tensor for i in group),
        failed=lambda item, error: pytest.fail(f"{item} failed: {error}"),
    )
    model_loop.start()
    yield model_loop, runner, done
    for gate in runner.gates.values():
        gate.set()
    model_loop.stop(deadline=time.monotonic() + 10)


def started(runner: Runner, name: str) -> None:
    assert runner.started[name].wait(5), f"{name} never started"


def not_started(runner: Runner, name: str) -> None:
    assert not runner.started[name].wait(NOT_STARTED_S), f"{name} started too early"


def test_an_interactive_forward_waits_for_running_bulk_then_runs_alone(loop) -> None:
    model_loop, runner, done = loop
    runner.prepare("bulk-1", "interactive", "bulk-2")
    model_loop.put(Item("bulk-1", Lane.BULK))
    started(runner, "bulk-1")
    model_loop.put(Item("interactive", Lane.INTERACTIVE))  # the free stream takes it
    not_started(runner, "interactive")  # … and waits for bulk-1 instead of running beside it
    model_loop.put(Item("bulk-2", Lane.BULK))
    runner.gates["bulk-1"].set()
    started(runner, "interactive")
    assert runner.beside["interactive"] == set()  # alone: every core is its
    not_started(runner, "bulk-2")  # no bulk forward starts while it runs
    runner.gates["interactive"].set()
    started(runner, "bulk-2")
    runner.gates["bulk-2"].set()
    model_loop.stop(deadline=time.monotonic() + 10)
    assert done == ["bulk-1", "interactive", "bulk-2"]


def test_bulk_alone_runs_on_every_stream(loop) -> None:
    model_loop, runner, _ = loop
    runner.prepare("bulk-1", "bulk-2")
    model_loop.put(Item("bulk-1", Lane.BULK))
    model_loop.put(Item("bulk-2", Lane.BULK))
    started(runner, "bulk-1")
    started(runner, "bulk-2")
    assert runner.beside["bulk-1"] | runner.beside["bulk-2"] in ({"bulk-1"}, {"bulk-2"})


def test_interactive_forwards_do_not_wait_for_each_other(loop) -> None:
    model_loop, runner, _ = loop
    runner.prepare("interactive-1", "interactive-2")
    model_loop.put(Item("interactive-1", Lane.INTERACTIVE))
    started(runner, "interactive-1")
    model_loop.put(Item("interactive-2", Lane.INTERACTIVE))
    started(runner, "interactive-2")
    assert runner.beside["interactive-2"] == {"interactive-1"}
