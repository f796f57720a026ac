"""The model loop with two streams: an interactive job behind bulk forwards starts at once on the
thread kept for it, which never takes bulk work and stays idle without bulk work; bulk uses
every stream and runs at a lower CPU priority than interactive forwards.

A fake runner records each forward and holds it until the test opens that input's gate, so
the order is decided by the test, never by timing. A forward that must *not* have started is
checked over a short window (a wrong implementation starts it at once)."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from cutq.core.lanes import Lane
from cutq.worker.lane_policy import LanePolicy
from cutq.worker.model_loop import ModelLoop
from cutq.worker.priority import BULK_NICE
from cutq.worker.runtime.inference import Prediction

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
        self.thread: dict[str, str] = {}  # the model thread each ran on
        self.nice: dict[str, int] = {}  # that thread's nice value while it ran

    def prepare(self, *names: str) -> None:
        for name in names:
            self.started[name], self.gates[name] = threading.Event(), threading.Event()

    def run(self, tensors: list[str], urgent: bool = False) -> Prediction:
        (name,) = tensors
        with self.lock:
            self.beside[name] = set(self.running)
            self.running.add(name)
            self.thread[name] = threading.current_thread().name
            self.nice[name] = os.getpriority(os.PRIO_PROCESS, 0)  # this thread's, on Linux
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
        LanePolicy(max_in_flight=4),
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


def test_an_interactive_job_behind_bulk_forwards_starts_at_once(loop) -> None:
    model_loop, runner, _ = loop
    runner.prepare("bulk-1", "bulk-2", "interactive", "bulk-3")
    for name in ("bulk-1", "bulk-2"):
        model_loop.put(Item(name, Lane.BULK))
        started(runner, name)
    model_loop.put(Item("interactive", Lane.INTERACTIVE))
    started(runner, "interactive")  # no wait for either bulk forward to end
    assert runner.beside["interactive"] == {"bulk-1", "bulk-2"}
    assert runner.thread["interactive"] == "cutq-model-interactive"
    model_loop.put(Item("bulk-3", Lane.BULK))
    not_started(runner, "bulk-3")  # the interactive thread never takes bulk work
    runner.gates["bulk-1"].set()
    started(runner, "bulk-3")
    assert runner.thread["bulk-3"] == runner.thread["bulk-1"]


def test_interactive_traffic_alone_runs_on_the_streams_only(loop) -> None:
    """Without bulk work the interactive thread stays idle: interactive traffic keeps the
    streams' shape (two forwards at once on a CPU, not three)."""
    model_loop, runner, _ = loop
    runner.prepare("interactive-1", "interactive-2", "interactive-3")
    for name in ("interactive-1", "interactive-2"):
        model_loop.put(Item(name, Lane.INTERACTIVE))
        started(runner, name)
    model_loop.put(Item("interactive-3", Lane.INTERACTIVE))
    not_started(runner, "interactive-3")
    runner.gates["interactive-1"].set()
    started(runner, "interactive-3")
    streams = {runner.thread[f"interactive-{n}"] for n in (1, 2, 3)}
    assert streams == {"cutq-model-0", "cutq-model-1"}


def test_after_bulk_ends_the_interactive_thread_waits_again(loop) -> None:
    model_loop, runner, _ = loop
    runner.prepare("bulk", "interactive-1", "interactive-2", "interactive-3")
    model_loop.put(Item("bulk", Lane.BULK))
    started(runner, "bulk")
    runner.gates["bulk"].set()
    deadline = time.monotonic() + 5
    while model_loop._bulk_forwards and time.monotonic() < deadline:
        time.sleep(0.01)
    for name in ("interactive-1", "interactive-2"):
        model_loop.put(Item(name, Lane.INTERACTIVE))
        started(runner, name)
    model_loop.put(Item("interactive-3", Lane.INTERACTIVE))
    not_started(runner, "interactive-3")  # the bulk forward's end was counted


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_bulk_forwards_run_below_interactive_ones(loop) -> None:
    model_loop, runner, _ = loop
    base = os.getpriority(os.PRIO_PROCESS, 0)
    runner.prepare("interactive-1", "bulk-1", "bulk-2", "interactive-2")
    model_loop.put(Item("interactive-1", Lane.INTERACTIVE))  # on a stream, nothing else queued
    started(runner, "interactive-1")
    runner.gates["interactive-1"].set()
    assert runner.nice["interactive-1"] == base  # no bulk work yet: nothing lowered
    for name in ("bulk-1", "bulk-2"):
        model_loop.put(Item(name, Lane.BULK))
        started(runner, name)
    model_loop.put(Item("interactive-2", Lane.INTERACTIVE))
    started(runner, "interactive-2")
    assert runner.nice["bulk-1"] == runner.nice["bulk-2"] == min(19, base + BULK_NICE)
    assert runner.nice["interactive-2"] == base
