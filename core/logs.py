"""Logging set-up: readable lines on a terminal, Cloud Logging's JSON on Cloud Run.

In JSON mode each record is one line with ``severity``, ``message``, ``time``, the logger name
and any ``job_id`` / ``timings_ms`` / ``trace`` passed in ``extra=``; a ``trace`` of the form
``projects/P/traces/T`` becomes ``logging.googleapis.com/trace`` so Cloud Logging links it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cutq.core.errors import ConfigError

LOG_FORMATS = ("auto", "json", "text")
_EXTRA_FIELDS = (
    "job_id",
    "status",
    "error_code",
    "timings_ms",
    "batch_size",
    "queue_depth",
    "ack_failed",
    "lane",
    "ref",
    "source_name",
)


class CloudLoggingFormatter(logging.Formatter):
    """One JSON object per line in the shape Cloud Logging parses from stdout."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "logger": record.name,
        }
        for name in _EXTRA_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        trace = getattr(record, "trace", None)
        if trace:
            entry["logging.googleapis.com/trace"] = trace
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class StandardStreamHandler(logging.StreamHandler):
    """Writes to ``sys.stdout`` or ``sys.stderr`` as it is when a record is emitted, not as
    it was when the handler was made: a replaced stream (pytest's capture, a notebook's) is
    followed, and a worker thread never writes to one that was closed since."""

    def __init__(self, name: str) -> None:
        self.name_of_stream = name
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return getattr(sys, self.name_of_stream)

    @stream.setter
    def stream(self, value: Any) -> None:
        """``StreamHandler`` sets one at construction; the current one is always used."""


@dataclass(frozen=True)
class LogSettings:
    """How the process logs: ``CUTQ_LOG_FORMAT`` and ``CUTQ_LOG_LEVEL``, read once by the
    command line (:meth:`from_env`), its ``--log-format`` and ``--log-level`` winning."""

    format: str = "auto"  # auto (JSON on Cloud Run) | json | text
    level: str = "INFO"

    def __post_init__(self) -> None:
        if self.format not in LOG_FORMATS:
            raise ConfigError(
                f"log format must be one of {', '.join(LOG_FORMATS)}, not {self.format!r}"
            )
        if not isinstance(logging.getLevelName(self.level.upper()), int):
            raise ConfigError(
                f"unknown log level {self.level!r}; use DEBUG, INFO, WARNING or ERROR"
            )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], *, format: str | None = None, level: str | None = None
    ) -> LogSettings:
        return cls(
            format or environ.get("CUTQ_LOG_FORMAT") or "auto",
            level or environ.get("CUTQ_LOG_LEVEL") or "INFO",
        )

    def apply(self) -> None:
        setup_logging(self.format, self.level)


def setup_logging(fmt: str = "auto", level: str = "INFO") -> None:
    """Configure the root logger once; ``auto`` means JSON when running on Cloud Run.

    Raises :class:`ConfigError` for a format or level it does not know.
    """
    if fmt not in LOG_FORMATS:
        raise ConfigError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")
    if not isinstance(logging.getLevelName(level.upper()), int):
        raise ConfigError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING or ERROR")
    if fmt == "auto":
        on_cloud_run = bool(
            os.environ.get("K_SERVICE")
            or os.environ.get("CLOUD_RUN_JOB")
            or os.environ.get("CLOUD_RUN_WORKER_POOL")
        )
        fmt = "json" if on_cloud_run else "text"
    handler = StandardStreamHandler("stdout" if fmt == "json" else "stderr")
    if fmt == "json":
        handler.setFormatter(CloudLoggingFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("google", "urllib3", "grpc"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
