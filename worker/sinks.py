"""Where completion events go: a JSONL file (local runs), a Pub/Sub topic, or only the log.

:meth:`EventSink.publish` returns only once the event is durable, so the caller may ack.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Protocol

from cutq.core.errors import PublishFailed
from cutq.core.events import Event
from cutq.core.tally import Tally

log = logging.getLogger(__name__)


class EventSink(Protocol):
    def publish(self, event: Event) -> None:
        """Make ``event`` durable or raise :class:`PublishFailed`."""

    def close(self) -> None:
        """Flush and release resources."""


class JsonlEventSink:
    """One CloudEvent per line, appended and flushed under a lock."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("ab")
        self._lock = threading.Lock()

    def publish(self, event: Event) -> None:
        line = event.to_json() + b"\n"
        try:
            with self._lock:
                self._handle.write(line)
                self._handle.flush()
                os.fsync(self._handle.fileno())
        except (OSError, ValueError) as error:  # ValueError: the file was closed
            raise PublishFailed(f"cannot append to {self.path}: {error}") from error

    def close(self) -> None:
        with self._lock:
            self._handle.close()


class TalliedSink:
    """Another sink's events, each counted by a :class:`~cutq.core.tally.Tally` once durable."""

    def __init__(self, sink: EventSink, tally: Tally) -> None:
        self.sink = sink
        self.tally = tally

    def publish(self, event: Event) -> None:
        self.sink.publish(event)
        self.tally.add(event)

    def close(self) -> None:
        self.sink.close()


class LogEventSink:
    """Events only in the log: for workers whose callers watch result objects instead."""

    def publish(self, event: Event) -> None:
        log.debug("event %s", json.dumps(event.to_cloudevent()))

    def close(self) -> None:
        pass


class PubSubEventSink:
    """Events on a Pub/Sub topic, with the job's id and status as filterable attributes."""

    def __init__(self, topic: str, timeout_s: float = 60.0) -> None:
        from google.cloud import pubsub_v1

        self.topic = topic
        self.timeout_s = timeout_s
        self._publisher = pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(max_latency=0.005)
        )

    def publish(self, event: Event) -> None:
        from google.api_core import exceptions as gexc

        try:
            future = self._publisher.publish(
                self.topic, event.to_json(), **event.message_attributes()
            )
            future.result(timeout=self.timeout_s)
        except (gexc.GoogleAPIError, TimeoutError, OSError) as error:
            raise PublishFailed(f"publish to {self.topic} failed: {error}") from error
        except Exception as error:  # the client wraps some failures in its own types
            if type(error).__module__.startswith("google."):
                raise PublishFailed(f"publish to {self.topic} failed: {error}") from error
            raise

    def close(self) -> None:
        self._publisher.stop()
