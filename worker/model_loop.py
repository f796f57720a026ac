"""The model threads: one per stream of the model, each forming and running batches.

A :class:`ModelLoop` takes loaded inputs (:meth:`ModelLoop.put`), groups them into batches
of same-sized inputs (:func:`~cutq.worker.batcher.get_batch`: at ``max_batch`` items or
``max_wait_ms`` after the first), lets ``screen`` drop the inputs no longer wanted (cancelled,
past their deadline) and runs the rest through the runner. It reads the lane policy
(:class:`~cutq.worker.lane_policy.LanePolicy`) for three of its mechanisms: its queue is
ranked by lane (:class:`~cutq.worker.batcher.RankedQueue`): interactive inputs go first into
every batch, bulk inputs fill the rest; with several streams (onnxruntime on a CPU) one more
thread takes interactive inputs only, so an interactive job never waits for a bulk forward to
end, and its forwards are urgent (``Runner.run(urgent=True)``: the wide session at once); a
stream that runs bulk work lowers its CPU priority (:mod:`cutq.worker.priority`): while an
interactive forward runs it has most of every core, and bulk has them all the rest of the time.
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
from cutq.worker.batcher import STOP, RankedQueue, RankView, get_batch
from cutq.worker.lane_policy import LanePolicy
from cutq.worker.priority import yield_to_interactive
from cutq.worker.runtime.inference import Prediction, Runner

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


class ModelLoop(Generic[T]):
    """Batches from a queue through one model, on one thread per stream."""

    def __init__(
        self,
        runner: Runner,
        policy: LanePolicy,
        *,
        max_batch: int,
        max_wait_ms: float,
        inferred: Callable[[list[T], Prediction, float], None],
        failed: Callable[[T, BaseException], None],
        screen: Callable[[list[T]], list[T]] | None = None,
    ) -> None:
        self.runner = runner
        self.policy = policy
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.failure: BaseException | None = None  # why a model thread died, if one did
        self._inferred = inferred  # (the batch's inputs, its prediction, when it started)
        self._failed = failed
        self._screen = screen  # as a batch would start: the inputs still to compute
        self._queue = RankedQueue(lambda item: policy.rank(item.lane))  # type: ignore[attr-defined]
        streams = max(1, runner.model.streams)
        self.threads = [
            threading.Thread(
                target=self._run, args=(self._queue, False), name=f"cutq-model-{n}", daemon=True
            )
            for n in range(streams)
        ]
        # Several streams share the CPU's cores: one more thread, for interactive jobs only, so
        # that one never waits for a bulk forward to end (see the module's docstring).
        # It takes an interactive job only while a bulk forward runs: otherwise the streams
        # are free for it, and interactive traffic alone keeps the streams' shape.
        self.interactive_thread = policy.interactive_thread(streams)
        self._bulk_forwards = 0  # running now, on the streams
        self._counting = threading.Lock()
        if self.interactive_thread:
            interactive = self._queue.view(
                max_rank=policy.rank(Lane.INTERACTIVE), when=lambda: self._bulk_forwards > 0
            )
            self.threads.append(
                threading.Thread(
                    target=self._run,
                    args=(interactive, True),
                    name="cutq-model-interactive",
                    daemon=True,
                )
            )

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

    def _run(self, source: RankedQueue | RankView, interactive_only: bool) -> None:
        """One thread: batches from ``source`` until STOP. An error fails its batch, never
        the thread."""
        urgent = self.policy.urgent(interactive_only)
        shares_cores = self.interactive_thread and not interactive_only
        try:
            while (batch := get_batch(source, self.max_batch, self.max_wait_s)) is not None:
                groups: dict[tuple[int, int], list[T]] = defaultdict(list)
                for item in batch:
                    groups[item.input_size].append(item)
                del batch
                for group in groups.values():
                    if self.policy.lowers([item.lane for item in group], shares_cores):
                        yield_to_interactive()  # once: the thread stays low afterwards
                        with self._bulk_forward():
                            self._infer(group, urgent)
                    else:
                        self._infer(group, urgent)
        except BaseException as error:  # _infer catches every Exception: this is worse
            self.failure = error
            log.critical("the model thread died: the worker is no longer healthy", exc_info=True)

    @contextlib.contextmanager
    def _bulk_forward(self) -> Iterator[None]:
        """Count a bulk batch on a stream while it runs; the interactive thread may take work
        only then."""
        with self._counting:
            self._bulk_forwards += 1
        self._queue.wake()
        try:
            yield
        finally:
            with self._counting:
                self._bulk_forwards -= 1
            self._queue.wake()

    def _infer(self, group: list[T], urgent: bool) -> None:
        group = self._screened(group)  # as the batch starts
        if not group:
            return
        started = time.monotonic()
        try:
            prediction = self.runner.run([item.tensor for item in group], urgent=urgent)
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
