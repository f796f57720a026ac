"""The service's own duties, for any source: the wait loop, drain-on-idle, stop reasons and
their exit codes, and a close that runs once. A listed source and the gated model stand in
for the cloud; the tests wait on the loop's own polls, never on the clock."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from cutq.worker.service import Service
from cutq.worker.sources import Intake, StopReason
from tests.support.gated import Gated, Message, make_photos, message, service_for


class ListedSource:
    """Delivers its messages on start; each poll of :meth:`ended` is counted."""

    def __init__(self, messages: list[Message]) -> None:
        self.messages = messages
        self.polls = threading.Semaphore(0)
        self.calls: list[str] = []
        self.end: StopReason | None = None

    def start(self, intake: Intake) -> None:
        for item in self.messages:
            intake.submit(item)

    def ended(self) -> StopReason | None:
        self.polls.release()
        return self.end

    def stop_intake(self) -> None:
        self.calls.append("stop_intake")

    def close(self, deadline: float) -> None:
        self.calls.append("close")


def run_in_thread(service: Service, source: ListedSource, **kwargs: object) -> dict:
    outcome: dict = {}

    def run() -> None:
        outcome["reason"] = service.run(source, handle_signals=False, **kwargs)  # type: ignore[arg-type]

    outcome["thread"] = thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return outcome


def test_drain_on_idle_waits_for_a_long_job_still_in_flight(tmp_path: Path) -> None:
    """With ``drain_idle_s=0`` the worker may exit the moment nothing is in flight, and must
    not while one job is still in the model, however long it takes."""
    model = Gated()
    model.gate.clear()
    service, events = service_for(tmp_path, model, drain_idle_s=0)
    (path,) = make_photos(tmp_path, 1)
    item = message(path, tmp_path, "1")
    source = ListedSource([item])
    running = run_in_thread(service, source)
    assert model.entered.acquire(timeout=10)  # the job is in the model
    for _ in range(3):  # three looks at the worker while the job runs
        assert source.polls.acquire(timeout=10), "the wait loop ended with a job in flight"
    assert "reason" not in running and item.settled == []
    model.gate.set()
    running["thread"].join(10)
    assert running["reason"] is StopReason.IDLE
    assert item.settled == ["ack"] and [e.status for e in events.published] == ["completed"]


def test_the_source_s_end_and_a_stop_are_reasons_with_one_exit_code_each(tmp_path: Path) -> None:
    service, _ = service_for(tmp_path, Gated())
    source = ListedSource([])
    source.end = StopReason.SOURCE_FAILED
    running = run_in_thread(service, source)
    running["thread"].join(10)
    assert running["reason"] is StopReason.SOURCE_FAILED
    assert source.calls == ["stop_intake", "close"]
    service, _ = service_for(tmp_path / "b", Gated())
    running = run_in_thread(service, ListedSource([]))
    service.stop()
    running["thread"].join(10)
    assert running["reason"] is StopReason.SIGNAL
    assert {reason: reason.exit_code for reason in StopReason} == {
        StopReason.SIGNAL: 0,
        StopReason.IDLE: 0,
        StopReason.DONE: 0,
        StopReason.SOURCE_FAILED: 1,
        StopReason.MODEL_FAILED: 1,
    }


def test_close_runs_once_and_nacks_held_deliveries_after_the_source_stopped_intake(
    tmp_path: Path,
) -> None:
    """A delivery arriving while the worker stops is held, and nacked only once the source
    asks for nothing more: a nack frees room, and the source must not fill it."""
    service, _ = service_for(tmp_path, Gated())
    (path,) = make_photos(tmp_path, 1)
    late = message(path, tmp_path, "late")
    order: list[str] = []
    late.nack = lambda: order.append("nack")  # type: ignore[method-assign]

    class Recording(ListedSource):
        def stop_intake(self) -> None:
            order.append("stop_intake")

        def close(self, deadline: float) -> None:
            order.append("close")

    source = Recording([])
    service.pipeline.stop_taking()
    held = threading.Thread(target=service.pipeline.submit, args=(late,), daemon=True)
    held.start()
    while service.pipeline.held() < 1:  # the delivery has reached the pipeline's hold
        assert held.is_alive(), "the delivery was not held"
        threading.Event().wait(0.01)
    service.close(source)
    held.join(10)
    service.close(source)  # a second close does nothing
    assert order == ["stop_intake", "nack", "close"]
    assert not service.ready()


def test_a_dead_model_thread_stops_the_service_with_its_own_reason(tmp_path: Path) -> None:
    class Fatal(BaseException):
        pass

    model = Gated()
    model.fail_next = Fatal()
    service, _ = service_for(tmp_path, model, grace_period_s=1.0)
    (path,) = make_photos(tmp_path, 1)
    item = message(path, tmp_path, "1")
    running = run_in_thread(service, ListedSource([item]))
    running["thread"].join(10)
    assert running["reason"] is StopReason.MODEL_FAILED
    assert item.settled == ["nack"]  # its job went back to the queue within the grace period


@pytest.mark.parametrize(
    ("drain_idle_s", "expected"), [(5.0, StopReason.IDLE), (None, StopReason.DONE)]
)
def test_drain_on_idle_counts_from_the_threshold_itself(
    tmp_path: Path, drain_idle_s: float | None, expected: StopReason
) -> None:
    """Idle for exactly ``drain_idle_s`` is idle enough; without ``drain_idle_s`` idleness
    never stops the worker (the source's end does, some polls later)."""
    service, _ = service_for(tmp_path, Gated(), drain_idle_s=drain_idle_s)
    service.pipeline.idle_s = lambda: 5.0  # type: ignore[method-assign]
    source = ListedSource([])
    looks = iter(range(100))
    source.ended = lambda: StopReason.DONE if next(looks) >= 3 else None  # type: ignore[method-assign]
    running = run_in_thread(service, source)
    running["thread"].join(10)
    assert running["reason"] is expected
