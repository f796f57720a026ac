"""Where a submitter's jobs go: :class:`SubmitterConfig`, read from arguments or ``CUTQ_*``
variables once (:meth:`SubmitterConfig.from_env`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cutq.core.errors import ConfigError
from cutq.core.lanes import Lane
from cutq.core.storage import scheme_of

_ENV_NAMES = {
    "CUTQ_JOBS_TOPIC": "jobs_topic",
    "CUTQ_BULK_TOPIC": "bulk_topic",
    "CUTQ_EVENTS_TOPIC": "events_topic",
    "CUTQ_SUBMITTER_OUTPUT": "output",
    "CUTQ_SUBMITTER_STAGING": "staging",
    "CUTQ_CONTROL": "control",  # the same variable as the worker's
}


@dataclass(frozen=True)
class SubmitterConfig:
    """Where jobs go. Read from the environment once, by :meth:`from_env`."""

    jobs_topic: str  # projects/P/topics/T: the interactive lane's (or the only) jobs topic
    bulk_topic: str | None = None  # the bulk lane's; None: bulk jobs go to jobs_topic too
    output: str | None = None  # default output base URI for jobs that name none
    staging: str | None = None  # where local files and bytes are uploaded (gs:// or file://)
    events_topic: str | None = None  # completion events, for wait()/watch()
    control: str | None = None  # runs and cancellations; None: control_uri(output)
    max_in_flight: int = 1000  # unconfirmed publishes before publish() blocks
    prepare_threads: int = 8  # hashing/uploading/stat threads in submit_many
    batch_max_messages: int = 500
    batch_max_latency_ms: float = 10.0

    def __post_init__(self) -> None:
        for name in ("jobs_topic", "bulk_topic", "events_topic"):
            value = getattr(self, name)
            if value is not None and not _is_topic(value):
                raise ConfigError(f"{name}: expected projects/P/topics/T, got {value!r}")
        for name in ("output", "staging", "control"):
            value = getattr(self, name)
            if value is not None:
                scheme_of(value)  # rejects unknown schemes
        if self.max_in_flight < 1 or self.prepare_threads < 1:
            raise ConfigError("max_in_flight and prepare_threads must be at least 1")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> SubmitterConfig:
        """``CUTQ_JOBS_TOPIC``, ``CUTQ_BULK_TOPIC``, ``CUTQ_EVENTS_TOPIC``,
        ``CUTQ_SUBMITTER_OUTPUT``/``_STAGING``;
        non-None ``overrides`` win. An unknown ``CUTQ_SUBMITTER_*`` variable is an error."""
        values: dict[str, Any] = cls.read_env(env)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if not values.get("jobs_topic"):
            raise ConfigError("no jobs topic: pass --topic or set CUTQ_JOBS_TOPIC")
        return cls(**values)

    @staticmethod
    def read_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
        """The submitter's settings the environment sets, by field name (the one place they
        are read: also for ``cutq cancel``, which needs no topic). An unknown
        ``CUTQ_SUBMITTER_*`` variable is an error."""
        env = os.environ if env is None else env
        unknown = sorted(k for k in env if k.startswith("CUTQ_SUBMITTER_") and k not in _ENV_NAMES)
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; known: {_ENV_NAMES}")
        return {f: env[k] for k, f in _ENV_NAMES.items() if env.get(k)}

    def topic_for(self, lane: Lane) -> str:
        """Where a job in ``lane`` is published."""
        return self.bulk_topic if lane is Lane.BULK and self.bulk_topic else self.jobs_topic


def _is_topic(value: str) -> bool:
    parts = value.split("/")
    return len(parts) == 4 and parts[0] == "projects" and parts[2] == "topics" and all(parts)
