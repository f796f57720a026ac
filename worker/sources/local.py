"""Jobs from local files: the source behind ``cutq run`` (no cloud at all).

Each file becomes a v1 job with a ``file://`` input whose generation is the file's mtime, so
running twice over unchanged files finds the results already there and recomputes nothing.
A nacked job is retried up to ``max_attempts`` times, then reported as a ``failed`` event with
code ``retries_exhausted`` (the local stand-in for a dead-letter topic).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from PIL import Image

from cutq.submitter.contract import Options, OutputSpec, new_job

IMAGE_SUFFIXES = frozenset(Image.registered_extensions())


def expand_paths(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Files as given, plus image files found (recursively, in name order) in directories."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for directory, dirnames, filenames in os.walk(path):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                        yield Path(directory, name).absolute()
        else:
            yield path.absolute()


@dataclass(eq=False)
class LocalDelivery:
    """A local job; ``on_settle(delivery, acked)`` is called once per ack or nack."""

    data: bytes
    message_id: str
    on_settle: Callable[[LocalDelivery, bool], None]
    attributes: dict[str, str] = field(default_factory=dict)
    publish_time: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    delivery_attempt: int | None = 1

    def ack(self) -> None:
        self.on_settle(self, True)

    def nack(self) -> None:
        self.on_settle(self, False)


class LocalSource:
    """Turns files into deliveries and tracks them until each is acked or given up on."""

    def __init__(
        self,
        files: list[Path],
        output: OutputSpec,
        options: Options | None = None,
        model: str | None = None,
        max_attempts: int = 3,
    ) -> None:
        self.files = files
        self.output = output
        self.options = options or Options()
        self.model = model
        self.max_attempts = max_attempts
        self.exhausted: list[LocalDelivery] = []
        self.retry: Callable[[LocalDelivery], None] | None = None
        self.settled: Callable[[LocalDelivery, bool], None] | None = None
        self._lock = threading.Lock()

    def deliveries(self) -> Iterator[LocalDelivery]:
        started = datetime.now(timezone.utc)  # one date partition for the whole run
        for index, path in enumerate(self.files):
            try:
                generation = path.stat().st_mtime_ns
            except OSError:
                generation = None  # the pipeline reports it as input_not_found
            job = new_job(
                path.as_uri(),
                self.output,
                input_generation=generation,
                model=self.model,
                options=self.options,
            )
            yield LocalDelivery(
                data=job.to_message(),
                message_id=str(index),
                on_settle=self._on_settle,
                publish_time=started,
            )

    def _on_settle(self, delivery: LocalDelivery, acked: bool) -> None:
        attempt = delivery.delivery_attempt or 1
        if not acked and attempt < self.max_attempts and self.retry is not None:
            delivery.delivery_attempt = attempt + 1
            threading.Thread(target=self.retry, args=(delivery,), daemon=True).start()
            return
        if not acked:
            with self._lock:
                self.exhausted.append(delivery)
        if self.settled is not None:
            self.settled(delivery, acked)
