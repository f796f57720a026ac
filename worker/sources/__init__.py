"""Where jobs come from: one small protocol, several sources.

A source hands :class:`Delivery` objects to :meth:`cutq.worker.pipeline.Pipeline.submit`.
The pipeline calls exactly one of ``ack`` or ``nack`` on each, once its result and event are
durable (ack), or once it must be retried (nack).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol


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
