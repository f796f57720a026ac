"""The model threads: one per stream of the model, each forming and running batches.

A :class:`ModelLoop` takes loaded inputs (:meth:`ModelLoop.put`), groups them into batches
of same-sized inputs (:func:`~cutq.worker.batcher.get_batch`: at ``max_batch`` items or
``max_wait_ms`` after the first), lets ``screen`` drop the inputs no longer wanted (cancelled,
past their deadline) and runs the rest through the runner. Its queue is ranked by lane
(:class:`~cutq.worker.batcher.RankedQueue`): interactive inputs go first into every batch,
bulk inputs fill the rest; and with several streams an interactive batch runs alone
(:class:`Precedence`): it waits for the bulk forwards already running, and no bulk forward
starts while it waits or runs, so it gets every core instead of sharing them with bulk work.
A batch that raises fails each of its jobs on its own (``failed``), never the thread (an
input whose map is not finite, also in fp32, is in the prediction's ``failed``: the pipeline
fails it on its own); anything worse than an ``Exception`` kills the thread and is kept in
:attr:`ModelLoop.failure` (the worker is then unhealthy). Two streams run two single-threaded
forwards at once (onnxruntime on a CPU).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar

from cutq.core.lanes import Lane
from cutq.worker.batcher import STOP, RankedQueue, get_batch
from cutq.worker.inference import Prediction, Runner

log = logging.getLogger(__name__)


class Input(Protocol):
    """What the loop needs of a loaded job: its model input and that input's size."""

    @property
    def tensor(self) -> Any: ...

    @property
    def input_size(self) -> tuple[int, int]: ...

    @property
    def lane(self) -> Lane: ...


T = TypeVar("T", bound=Input)


class Precedence:
    """Interactive forwards run alone: one waits for the bulk forwards already running (at most
    one per other stream) and holds back new ones until it is done. Interactive forwards do
    not wait for each other, and with no interactive work bulk runs on every stream.

    On onnxruntime a forward that starts alone takes the wide session (every core), so behind
    a backlog an interactive image costs one residual bulk forward plus its own fast forward,
    instead of a slot wait plus a single-threaded forward slowed by the bulk one beside it."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._bulk_running = 0
        self._interactive = 0  # waiting for the model or running

    @contextlib.contextmanager
    def forward(self, interactive: bool) -> Iterator[None]:
        with self._changed:
            if interactive:
                self._interactive += 1
                self._changed.wait_for(lambda: self._bulk_running == 0)
            else:
                self._changed.wait_for(lambda: self._interactive == 0)
                self._bulk_running += 1
        try:
            yield
        finally:
            with self._changed:
                if interactive:
                    self._interactive -= 1
                else:
                    self._bulk_running -= 1
                self._changed.notify_all()


class ModelLoop(Generic[T]):
    """Batches from a queue through one model, on one thread per stream."""

    def __init__(
        self,
        runner: Runner,
        *,
        max_batch: int,
        max_wait_ms: float,
        inferred: Callable[[list[T], Prediction, float], None],
        failed: Callable[[T, BaseException], None],
        screen: Callable[[list[T]], list[T]] | None = None,
    ) -> None:
        self.runner = runner
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.failure: BaseException | None = None  # why a model thread died, if one did
        self._inferred = inferred  # (the batch's inputs, its prediction, when it started)
        self._failed = failed
        self._screen = screen  # as a batch would start: the inputs still to compute
        self._queue = RankedQueue(lambda item: item.lane.rank)  # type: ignore[attr-defined]
        self._precedence = Precedence()
        self.threads = [
            threading.Thread(target=self._run, name=f"cutq-model-{stream}", daemon=True)
            for stream in range(max(1, runner.model.streams))
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def put(self, item: T) -> None:
        self._queue.put(item)

    def stop(self, deadline: float) -> None:
        """Stop every thread once its batch is done; wait for them until ``deadline``."""
        self._queue.put(STOP)  # each thread puts it back for the next
        for thread in self.threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        """One stream: batches until STOP. An error fails its batch, never the thread."""
        try:
            while (batch := get_batch(self._queue, self.max_batch, self.max_wait_s)) is not None:
                groups: dict[tuple[int, int], list[T]] = defaultdict(list)
                for item in batch:
                    groups[item.input_size].append(item)
                del batch
                for group in groups.values():
                    self._infer(group)
        except BaseException as error:  # _infer catches every Exception: this is worse
            self.failure = error
            log.critical("the model thread died: the worker is no longer healthy", exc_info=True)

    def _infer(self, group: list[T]) -> None:
        interactive = any(item.lane is Lane.INTERACTIVE for item in group)
        with self._precedence.forward(interactive):
            group = self._screened(group)  # as the batch starts: after any wait for the model
            if not group:
                return
            started = time.monotonic()
            try:
                prediction = self.runner.run([item.tensor for item in group])
                if len(prediction.maps) != len(group):  # one map per input, or the batch fails
                    raise ValueError(f"{len(prediction.maps)} maps for {len(group)} inputs")
            except Exception as error:  # one bad batch fails each of its jobs on its own
                log.error("batch of %d failed: %s: %s", len(group), type(error).__name__, error)
                for item in group:
                    self._failed(item, error)
                return
        log.debug(
            "batch of %d at %s in %.0fms; %d waiting",
            len(group),
            group[0].input_size,
            (time.monotonic() - started) * 1000,
            self._queue.qsize(),
            extra={"batch_size": len(group), "queue_depth": self._queue.qsize()},
        )
        self._inferred(group, prediction, started)

    def _screened(self, group: list[T]) -> list[T]:
        if self._screen is None:
            return group
        try:
            return self._screen(group)
        except Exception:  # a screen that fails must not fail (or skip) the batch
            log.exception("screening a batch of %d failed; computing it", len(group))
            return group
