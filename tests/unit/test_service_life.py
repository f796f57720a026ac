"""The service's start and end: one warm-up at the batch sizes the batcher will close, a
failed start that closes what it was given, signals that stop the service only while it runs,
a close that runs its steps in order within the grace period (a stuck step never holds the
exit), and the exit status, forced when a thread is still stuck."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cutq.core.errors import WarmupFailed
from cutq.worker import service as service_module
from cutq.worker.config import WorkerConfig
from cutq.worker.service import Service, exit_code
from cutq.worker.sinks import LogEventSink
from cutq.worker.sources import Intake, StopReason
from tests.support.gated import Events, Gated, service_for


class Sink(Events):
    def __init__(self, gate: threading.Event | None = None) -> None:
        super().__init__()
        self.closed = 0
        self.gate = gate

    def close(self) -> None:
        self.closed += 1
        if self.gate is not None:
            self.gate.wait(5)  # stuck, for longer than any grace period here


def start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **config: Any) -> tuple[Service, Gated]:
    model = Gated()
    monkeypatch.setattr(service_module, "create_model", lambda config, storage: model)
    settings: dict[str, Any] = dict(output=(tmp_path / "out").as_uri(), io_threads=1)
    settings.update(config)
    batch_sizes = settings.pop("warmup_batch_sizes", None)
    service = Service.warmed_up(WorkerConfig(**settings), Sink(), warmup_batch_sizes=batch_sizes)
    return service, model


def test_warm_up_runs_one_image_and_the_largest_batch_then_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, model = start(tmp_path, monkeypatch, max_batch=3)
    try:
        assert model.batches == [1, 3] and 0 <= service.ready_s < 30 and service.ready()
        assert all(thread.is_alive() for thread in service.pipeline.model_loop.threads)
        assert service.pipeline.storage is service.storage and service.runner.model is model
    finally:
        service.close(grace_s=1)
    service, model = start(tmp_path, monkeypatch, warmup_batch_sizes=[4, 2, 2])
    service.close(grace_s=1)
    assert model.batches == [2, 4]  # the sizes asked for, each once, smallest first
    service, model = start(tmp_path, monkeypatch, warmup=False)
    service.close(grace_s=1)
    assert model.batches == []


def test_the_runner_is_built_as_configured_and_warmed_up_at_the_configured_resize(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Resizes(Gated):
        def __init__(self) -> None:
            super().__init__()
            self.resizes: list[str] = []

        def input_size(self, height: int, width: int, resize: str) -> tuple[int, int]:
            self.resizes.append(resize)
            return (32, 32)

    model, built, asked = Resizes(), [], []
    monkeypatch.setattr(
        service_module, "create_model", lambda config, storage: asked.append(config) or model
    )
    real = service_module.Runner

    def runner(model: Gated, device: str, precision: str, *, platform: object) -> object:
        built.append((device, precision, platform))
        return real(model, device, precision, platform=platform)  # type: ignore[arg-type]

    monkeypatch.setattr(service_module, "Runner", runner)
    config = WorkerConfig(output=(tmp_path / "out").as_uri(), resize="dynamic", device="cpu")
    service = Service.warmed_up(config, Sink())
    service.close(grace_s=1)
    assert asked == [config] and built == [("cpu", config.precision, config.platform)]
    assert model.resizes and set(model.resizes) == {"dynamic"}


def test_on_a_gpu_every_batch_size_the_batcher_can_close_is_warmed_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cuDNN autotunes each new batch shape: warm-up runs them all, never a job."""
    model = Gated()
    monkeypatch.setattr(service_module, "create_model", lambda config, storage: model)
    real = service_module.Runner

    def on_cuda(*args: object, **kwargs: object) -> object:
        built = real(*args, **kwargs)  # type: ignore[arg-type]
        built.cuda = True  # as on a GPU (the model itself runs on the CPU here)
        return built

    monkeypatch.setattr(service_module, "Runner", on_cuda)
    config = WorkerConfig(output=(tmp_path / "out").as_uri(), max_batch=3, resize="static")
    Service.warmed_up(config, Sink()).close(grace_s=1)
    assert model.batches == [1, 2, 3]


def test_without_a_sink_events_go_to_the_topic_or_else_to_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module, "create_model", lambda config, storage: Gated())
    topics: list[str] = []

    class Topic(Sink):
        def __init__(self, topic: str) -> None:
            super().__init__()
            topics.append(topic)

    monkeypatch.setattr(service_module, "PubSubEventSink", Topic)
    out = (tmp_path / "out").as_uri()
    service = Service.warmed_up(WorkerConfig(output=out, warmup=False, events_topic="t/x"))
    service.close(grace_s=1)
    assert topics == ["t/x"] and isinstance(service.events, Topic)
    service = Service.warmed_up(WorkerConfig(output=out, warmup=False))
    service.close(grace_s=1)
    assert isinstance(service.events, LogEventSink) and topics == ["t/x"]


def test_a_failed_warm_up_raises_and_closes_the_sink_it_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = Gated()
    model.fail_next = WarmupFailed("the disc was not found")
    monkeypatch.setattr(service_module, "create_model", lambda config, storage: model)
    sink = Sink()
    config = WorkerConfig(output=(tmp_path / "out").as_uri())
    with pytest.raises(WarmupFailed):
        Service.warmed_up(config, sink)
    assert sink.closed == 1
    model.fail_next = WarmupFailed("again")
    with pytest.raises(WarmupFailed):
        Service.warmed_up(config)  # no sink of its own yet: nothing to close


class Source:
    """Raises SIGTERM (or SIGINT) in the main thread as it starts, as the platform would."""

    def __init__(self, number: signal.Signals | None) -> None:
        self.number = number
        self.during: Any = None
        self.intake: Intake | None = None

    def start(self, intake: Intake) -> None:
        self.intake = intake
        self.during = signal.getsignal(signal.SIGTERM)
        if self.number is not None:
            signal.raise_signal(self.number)

    def ended(self) -> StopReason | None:
        return StopReason.DONE

    def stop_intake(self) -> None:
        pass

    def close(self, deadline: float) -> None:
        pass


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_running_stops_the_service_and_the_old_handlers_come_back(
    tmp_path: Path, number: signal.Signals
) -> None:
    caught: list[int] = []
    previous = {n: signal.signal(n, lambda n, f: caught.append(n)) for n in (number,)}
    try:
        mine = signal.getsignal(number)
        service, _ = service_for(tmp_path, Gated())
        source = Source(number)
        assert service.run(source) is StopReason.SIGNAL  # type: ignore[arg-type]
        assert caught == [] and signal.getsignal(number) is mine
        assert source.intake is not None and source.intake.in_flight() == 0
        assert source.intake.ready() is False  # stopped: no longer ready
    finally:
        for n, handler in previous.items():
            signal.signal(n, handler)


def test_signals_are_left_alone_when_not_wanted_or_off_the_main_thread(tmp_path: Path) -> None:
    default = signal.getsignal(signal.SIGTERM)
    service, _ = service_for(tmp_path, Gated())
    source = Source(None)
    assert service.run(source, handle_signals=False) is StopReason.DONE  # type: ignore[arg-type]
    assert source.during is default
    service, _ = service_for(tmp_path / "b", Gated())
    source, reasons = Source(None), []
    thread = threading.Thread(target=lambda: reasons.append(service.run(source)))  # type: ignore[arg-type]
    thread.start()
    thread.join(30)
    assert reasons == [StopReason.DONE] and source.during is default


def test_a_source_that_fails_to_start_still_gets_the_service_closed(tmp_path: Path) -> None:
    service, _ = service_for(tmp_path, Gated())
    service.events = sink = Sink()

    class Broken(Source):
        def start(self, intake: Intake) -> None:
            raise OSError("port in use")

    with pytest.raises(OSError, match="port in use"):
        service.run(Broken(None), handle_signals=False)  # type: ignore[arg-type]
    assert not service.ready() and sink.closed == 1


def test_the_exit_status_is_the_reason_s_and_is_forced_past_a_stuck_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only a live, non-daemon thread other than the main one holds the exit (the threads
    are listed here, so other tests' threads cannot change the answer)."""
    forced: list[int] = []
    monkeypatch.setattr(os, "_exit", forced.append)
    release = threading.Event()
    daemon = threading.Thread(target=release.wait, args=(30,), daemon=True)
    stuck = threading.Thread(target=release.wait, args=(30,), name="cutq-write_0")
    finished = threading.Thread(target=lambda: None)
    for thread in (daemon, stuck, finished):
        thread.start()
    finished.join()
    threads = [threading.main_thread(), daemon, finished]
    monkeypatch.setattr(threading, "enumerate", lambda: threads)
    try:
        assert exit_code(StopReason.MODEL_FAILED) == 1 and exit_code(StopReason.IDLE) == 0
        assert forced == []
        threads.append(stuck)
        exit_code(StopReason.SOURCE_FAILED)
        exit_code(StopReason.SIGNAL)
        assert forced == [1, 0]
    finally:
        release.set()
        stuck.join()


def test_close_runs_its_steps_in_order_within_the_grace_period(tmp_path: Path) -> None:
    service, _ = service_for(tmp_path, Gated())
    sink = Sink()
    service.events = sink
    steps: list[str] = []
    deadlines: dict[str, float] = {}
    pipeline = service.pipeline
    close, release_held = pipeline.close, pipeline.release_held

    def closing(deadline: float) -> None:
        steps.append(f"pipeline.close ready={service.ready()}")
        deadlines["pipeline"] = deadline
        close(deadline)

    pipeline.close = closing  # type: ignore[method-assign]
    pipeline.release_held = lambda: (steps.append("release_held"), release_held())[0]  # type: ignore[method-assign]

    class Recording(Source):
        def stop_intake(self) -> None:
            steps.append("stop_intake")

        def close(self, deadline: float) -> None:
            steps.append("source.close")
            deadlines["source"] = deadline

    sink.close = lambda: steps.append("events.close")  # type: ignore[method-assign]
    before = time.monotonic()
    service.close(Recording(None), grace_s=2.0)  # type: ignore[arg-type]
    assert steps == [
        "pipeline.close ready=False",
        "stop_intake",
        "release_held",
        "source.close",
        "events.close",
    ]
    assert before + 2.0 <= deadlines["source"] <= time.monotonic() + 2.0
    assert deadlines["source"] - deadlines["pipeline"] == pytest.approx(0.5)  # a quarter
    service, _ = service_for(tmp_path / "b", Gated(), grace_period_s=8.0)
    service.pipeline.close = closing  # type: ignore[method-assign]
    service.close(Recording(None))  # type: ignore[arg-type]
    assert deadlines["source"] - deadlines["pipeline"] == pytest.approx(1.0)  # at most 1 s
    assert deadlines["source"] >= before + 8.0


def test_a_stuck_event_sink_or_source_never_holds_the_exit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gate = threading.Event()
    service, _ = service_for(tmp_path, Gated())
    service.events = Sink(gate)

    class Stuck(Source):
        def close(self, deadline: float) -> None:
            gate.wait(5)

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="cutq.worker.service"):
        service.close(Stuck(None), grace_s=0.6)  # type: ignore[arg-type]
    took = time.monotonic() - started
    left = [t for t in threading.enumerate() if t.name == "cutq-close"]
    gate.set()
    assert took < 1.5, f"close took {took:.1f}s with a grace period of 0.6s"
    assert left and all(t.daemon for t in left)  # they never hold the process's exit
    warnings = [r.getMessage() for r in caplog.records if r.name == "cutq.worker.service"]
    assert warnings == [
        "the source took longer than the grace period; not waiting for it",
        "closing the event sink took longer than the grace period; not waiting for it",
    ]


def test_a_failing_source_or_sink_close_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service, _ = service_for(tmp_path, Gated())

    def broken() -> None:
        raise RuntimeError("flush failed")

    service.events.close = broken  # type: ignore[method-assign]

    class Failing(Source):
        def close(self, deadline: float) -> None:
            raise OSError("socket gone")

    with caplog.at_level(logging.INFO, logger="cutq.worker.service"):
        service.close(Failing(None), grace_s=1)  # type: ignore[arg-type]
    messages = [r.getMessage() for r in caplog.records if r.name == "cutq.worker.service"]
    assert "the source failed" in messages and "closing the event sink failed" in messages
    assert not any("took longer" in m for m in messages)
