"""Jobs through a real pipeline without a real model or cloud, with gates the test opens.

:class:`Gated` is a numpy model (brightness as saliency, so torch is never imported) whose
batches wait for its ``gate``; :class:`GatedWrites` is local storage whose writes wait for
theirs; :class:`Message` records how it was settled. Tests decide when each stage may go on
by opening a gate, never by sleeping.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from cutq.core.contract import OutputSpec, new_job
from cutq.core.events import Event
from cutq.core.storage import Storage, Stores
from cutq.worker.config import WorkerConfig
from cutq.worker.joblog import JobLog
from cutq.worker.models.base import Model
from cutq.worker.pipeline import Pipeline
from cutq.worker.runtime.inference import Runner
from cutq.worker.service import Service


class Gated(Model):
    """Brightness as saliency; each batch waits for ``gate`` and is recorded."""

    name = "gated"
    version = "test"
    engine = "numpy"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.batches: list[int] = []
        self.entered = threading.Semaphore(0)
        self.fail_next: BaseException | None = None
        self.during: list[object] = []
        self.probe = lambda: None

    def setup(self, device: object) -> None:
        pass

    def input_size(self, height: int, width: int, resize: str) -> tuple[int, int]:
        return (32, 32)

    def preprocess(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        resized = Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.BILINEAR)
        return np.asarray(resized, np.float32).transpose(2, 0, 1) / 255

    def predict(self, batch: np.ndarray, urgent: bool = False) -> np.ndarray:
        self.entered.release()
        self.during.append(self.probe())
        self.gate.wait(30)
        self.batches.append(len(batch))
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        return batch.mean(axis=1, keepdims=True)


class Message:
    """A delivery that records how it was settled."""

    def __init__(self, data: bytes, message_id: str, attributes: dict | None = None) -> None:
        self.data = data
        self.message_id = message_id
        self.attributes = attributes or {}
        self.publish_time = datetime(2026, 11, 29, tzinfo=timezone.utc)
        self.delivery_attempt = 1
        self.last_attempt = False
        self.settled: list[str] = []
        self.done = threading.Event()

    def ack(self) -> None:
        self.settled.append("ack")
        self.done.set()

    def nack(self) -> None:
        self.settled.append("nack")
        self.done.set()


class GatedStores(Stores):
    """Local storage whose ``method`` calls (``write`` or ``read``) are counted, then wait for
    ``gate`` (open at first; at most ``wait_s``) and raise ``fail`` when it is set."""

    def __init__(self, method: str = "write", wait_s: float = 30, fail: Exception | None = None):
        super().__init__()
        self.method, self.wait_s, self.fail = method, wait_s, fail
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Semaphore(0)
        self.calls = 0

    def open(self, uri: str) -> Storage:
        backend, stores = super().open(uri), self

        class Gate:
            def __getattr__(self, name: str) -> object:
                attribute = getattr(backend, name)
                if name != stores.method:
                    return attribute

                def gated(*args: object, **kwargs: object) -> object:
                    stores.calls += 1
                    stores.entered.release()
                    stores.gate.wait(stores.wait_s)
                    if stores.fail is not None:
                        raise stores.fail
                    return attribute(*args, **kwargs)

                return gated

        return Gate()  # type: ignore[return-value]


GatedWrites = GatedStores


class Events:
    def __init__(self) -> None:
        self.published: list[Event] = []

    def publish(self, event: Event) -> None:
        self.published.append(event)

    def close(self) -> None:
        pass


def make_photos(directory: Path, count: int, size: tuple[int, int] = (40, 30)) -> list[Path]:
    """``count`` small PNGs in ``directory/in``, each a different colour."""
    paths = []
    for index in range(count):
        path = directory / "in" / f"{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (index * 20 % 256, 80, 160)).save(path)
        paths.append(path)
    return paths


def pipeline_for(
    tmp_path: Path, model: Gated, storage: Stores | None = None, **config: object
) -> tuple[Pipeline, Events]:
    settings: dict[str, object] = dict(
        output=(tmp_path / "out").as_uri(), warmup=False, max_batch=4, max_wait_ms=5, io_threads=2
    )
    settings.update(config)
    events = Events()
    pipeline = Pipeline(
        WorkerConfig(**settings),  # type: ignore[arg-type]
        Runner(model, "cpu"),
        events,
        storage,
        observers=[JobLog()],
    )
    pipeline.start()
    return pipeline, events


def message(path: Path, tmp_path: Path, message_id: str, **attributes: str) -> Message:
    job = new_job(path.as_uri(), OutputSpec((tmp_path / "out").as_uri()))
    return Message(job.to_message(), message_id, attributes)


def settle_all(messages: list[Message], timeout_s: float = 10) -> None:
    """Wait for each message's ack or nack: a job that never settles fails the test (in 10 s,
    well within what a mutation run allows a test before calling it a hang)."""
    for item in messages:
        assert item.done.wait(timeout_s), f"message {item.message_id} never settled"


def service_for(tmp_path: Path, model: Gated, **config: object) -> tuple[Service, Events]:
    settings: dict[str, object] = dict(
        output=(tmp_path / "out").as_uri(), warmup=False, max_batch=1, io_threads=2
    )
    settings.update(config)
    events = Events()
    service = Service(WorkerConfig(**settings), Runner(model, "cpu"), events, ready_s=0)  # type: ignore[arg-type]
    service.pipeline.start()
    return service, events
