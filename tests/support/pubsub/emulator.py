"""Where a test session's Pub/Sub is: Google's emulator or a LocalPubSubServer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from .server import LocalPubSubServer


@dataclass(frozen=True)
class PubSubEmulator:
    """The PUBSUB_EMULATOR_HOST in use; `server` is None when it runs outside this process."""

    host: str
    project: str
    server: LocalPubSubServer | None

    def topic_path(self, prefix: str = "topic") -> str:
        """A fresh topic name (a session shares one server, so names must not collide)."""
        return f"projects/{self.project}/topics/{_unique(prefix)}"

    def subscription_path(self, prefix: str = "sub") -> str:
        """A fresh subscription name."""
        return f"projects/{self.project}/subscriptions/{_unique(prefix)}"


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
