"""Jobs from local files: the source behind ``cutq run`` (no cloud at all).

Each file becomes a v1 job with a ``file://`` input whose generation (and publish time) is the
file's mtime, so running twice over unchanged files, on any day, finds the results already
there and recomputes nothing.
A returned (nacked) job is delivered again, up to ``max_attempts`` times; a nack on the last
attempt is its end (the outcome ``exhausted``: ``cutq run`` reports it as a ``failed`` event
with code ``retries_exhausted``, the local stand-in for a dead-letter topic).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from PIL import Image

from cutq.core.contract import Identity, Options, OutputSpec, new_job
from cutq.core.renditions import Rendition
from cutq.worker.render.imaging import HEIF_SUFFIXES
from cutq.worker.sources import Intake, StopReason

# What Pillow reads, and HEIC/HEIF (read with the heic extra; without it they fail naming it).
IMAGE_SUFFIXES = frozenset(Image.registered_extensions()) | frozenset(HEIF_SUFFIXES)


def expand_paths(
    paths: Iterable[str | os.PathLike[str]], skipped: Callable[[Path, str], None] | None = None
) -> Iterator[Path]:
    """Files as given, plus image files found (recursively, in name order) in directories.

    ``skipped(path, reason)`` hears of each file a directory holds that is not taken for its
    extension (hidden files and folders are passed over without a word).
    """
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for directory, dirnames, filenames in os.walk(path):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if name.startswith("."):
                        continue
                    suffix = Path(name).suffix.lower()
                    if suffix in IMAGE_SUFFIXES:
                        yield Path(directory, name).absolute()
                    elif skipped is not None:
                        skipped(Path(directory, name), skip_reason(suffix))
        else:
            yield path.absolute()


def skip_reason(suffix: str) -> str:
    """Why a file with this (lower-case) suffix is not taken from a directory."""
    if not suffix:
        return "no extension"
    return f"{suffix}: not an image format this install reads"


@dataclass(eq=False)
class LocalDelivery:
    """A local job; ``on_settle(delivery, acked)`` is called once per ack or nack."""

    data: bytes
    message_id: str
    on_settle: Callable[[LocalDelivery, bool], None]
    max_attempts: int = 3
    attributes: dict[str, str] = field(default_factory=dict)
    publish_time: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    delivery_attempt: int | None = 1
    # When the run saw the file: its queue time runs from here (publish_time is the mtime).
    seen_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def last_attempt(self) -> bool:
        return (self.delivery_attempt or 1) >= self.max_attempts

    def ack(self) -> None:
        self.on_settle(self, True)

    def nack(self) -> None:
        self.on_settle(self, False)


class LocalSource:
    """Turns files into deliveries and tracks them until each is acked or given up on.

    A job's publish time is its file's modification time, so its results land in the same
    ``dt=`` partition whichever day the run happens: a rerun finds them and recomputes nothing.
    """

    def __init__(
        self,
        files: list[Path],
        output: OutputSpec,
        options: Options | None = None,
        model: str | None = None,
        max_attempts: int = 3,
        renditions: tuple[Rendition, ...] = (),
        names: Sequence[str] = (),
    ) -> None:
        self.files = files
        self.names = names  # each file's job name, in the order of files (none: no names)
        self.output = output
        self.options = options or Options()
        self.model = model
        self.renditions = renditions
        self.max_attempts = max_attempts
        self._intake: Intake | None = None
        self._lock = threading.Lock()
        self._settled = 0
        self._done = threading.Event()
        self._stopping = threading.Event()

    def deliveries(self) -> Iterator[LocalDelivery]:
        for index, path in enumerate(self.files):
            try:
                generation: int | None = path.stat().st_mtime_ns
            except OSError:
                generation = None  # the pipeline reports it as input_not_found
            job = new_job(
                path.as_uri(),
                self.output,
                input_generation=generation,
                model=self.model,
                options=self.options,
                renditions=self.renditions,
                identity=Identity(name=self.names[index] if self.names else None),
            )
            published = datetime.fromtimestamp((generation or 0) / 1e9, timezone.utc)
            yield LocalDelivery(
                data=job.to_message(),
                message_id=str(index),
                on_settle=self._on_settle,
                max_attempts=self.max_attempts,
                publish_time=published,
            )

    # --- the Source protocol ----------------------------------------------------------------

    def start(self, intake: Intake) -> None:
        self._intake = intake
        if not self.files:
            self._done.set()
        threading.Thread(target=self._feed, name="cutq-local", daemon=True).start()

    def _feed(self) -> None:
        assert self._intake is not None
        for delivery in self.deliveries():
            if self._stopping.is_set():
                return
            self._intake.submit(delivery)

    def ended(self) -> StopReason | None:
        """``DONE`` once every file is settled."""
        return StopReason.DONE if self._done.is_set() else None

    def stop_intake(self) -> None:
        """Offer no more files, and retry nothing more: a nack from now on is final."""
        self._stopping.set()

    def close(self, deadline: float) -> None:
        """Nothing to release: files are offered by this process."""

    def _on_settle(self, delivery: LocalDelivery, acked: bool) -> None:
        """Deliver a returned job again, unless that was its last attempt or the run stops;
        done once every file has ended."""
        intake = self._intake
        if not acked and self._stopping.is_set():
            return  # returned unfinished: a rerun picks it up
        if not acked and not delivery.last_attempt and intake is not None:
            delivery.delivery_attempt = (delivery.delivery_attempt or 1) + 1  # a redelivery
            threading.Thread(target=intake.submit, args=(delivery,), daemon=True).start()
            return
        with self._lock:
            self._settled += 1
            if self._settled == len(self.files):
                self._done.set()


def names_of(files: Sequence[Path], inputs: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Each file's job ``name`` (docs/identity.md): its path relative to the first given
    directory holding it; a file given itself (or outside them): its file name."""
    roots = [Path(raw).absolute() for raw in inputs if Path(raw).is_dir()]

    def name(path: Path) -> str:
        for root in roots:
            if path.is_relative_to(root):
                return path.relative_to(root).as_posix()
        return path.name

    return [name(path) for path in files]
