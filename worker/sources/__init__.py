"""Where jobs come from: one small protocol for a message, one for a source of them.

A :class:`Source` hands :class:`Delivery` objects to :meth:`cutq.worker.pipeline.Pipeline.submit`.
The pipeline calls exactly one of ``ack`` or ``nack`` on each, once its result and event are
durable (ack), or once it must be retried (nack). The :class:`~cutq.worker.service.Service`
drives every source through the same life: ``start``, ``wait``, ``stop_intake``, ``close``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from cutq.worker.pipeline import Pipeline


class Delivery(Protocol):
    """One message, from Pub/Sub, a push request or a local file."""

    @property
    def data(self) -> bytes: ...

    @property
    def attributes(self) -> Mapping[str, str]: ...

    @property
    def publish_time(self) -> datetime: ...

    @property
    def delivery_attempt(self) -> int | None: ...

    @property
    def message_id(self) -> str: ...

    def ack(self) -> None: ...

    def nack(self) -> None: ...


class Source(Protocol):
    """Pub/Sub pull, Pub/Sub push, or local files, as the service sees them."""

    def start(self, pipeline: Pipeline) -> None:
        """Begin handing deliveries to ``pipeline``."""

    def wait(self, stop: threading.Event) -> str:
        """Block until ``stop`` is set or the source ends; return why (``signal``, ``idle``…)."""

    def stop_intake(self) -> None:
        """The worker is draining: tell the platform to stop sending (e.g. not ready)."""

    def close(self, pipeline: Pipeline, deadline: float) -> None:
        """After the pipeline closed: stop the source by ``deadline`` (monotonic), nacking the
        deliveries the pipeline held (:meth:`~cutq.worker.pipeline.Pipeline.release_held`)
        while nacks can still reach the queue."""
