"""One log line per job, with its timings, in the shape arq made readable.

``  123.4ms ✓ <job_id> batch=8 queue=3 download=12 …``; in JSON mode the same line carries
``job_id``, ``timings_ms``, ``batch_size`` and, when the message had a W3C ``traceparent``,
Cloud Logging's ``trace`` so the log links to the publisher's trace.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from cutq.core.errors import error_code

if TYPE_CHECKING:
    from cutq.core.events import Event
    from cutq.worker.ledger import Task

log = logging.getLogger(__name__)


def trace_of(attributes: Mapping[str, str]) -> str | None:
    """Cloud Logging's trace name from a W3C ``traceparent`` message attribute, if any.

    Pub/Sub's OpenTelemetry integration sends ``googclient_traceparent``; clients may send
    ``traceparent`` themselves.
    """
    parent = attributes.get("googclient_traceparent") or attributes.get("traceparent")
    parts = parent.split("-") if isinstance(parent, str) else []
    if len(parts) != 4 or len(parts[1]) != 32:
        return None
    project = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("CUTQ_TRACE_PROJECT")
    return f"projects/{project}/traces/{parts[1]}" if project else parts[1]


def log_job(task: Task, ack: bool, event: Event | None, error: BaseException | None) -> None:
    """The job's one line. ``status`` is completed, failed, duplicate or retry."""
    total = task.timings_ms.get("total", 0.0)
    stages = " ".join(
        f"{key}={value:.0f}" for key, value in task.timings_ms.items() if key != "total"
    )
    # status and error_code are fields (not only words in the message) so that the
    # log-based metrics in infra/terraform/modules/cutq/monitoring.tf can count by them.
    if not ack:
        status = "retry"
    elif event is not None and event.status == "failed":
        status = "failed"
    elif event is not None and event.duplicate:
        status = "duplicate"
    else:
        status = "completed"
    extra = {
        "job_id": task.label,
        "status": status,
        "error_code": None,
        "timings_ms": dict(task.timings_ms),
        "batch_size": task.batch_size,
        "trace": trace_of(task.delivery.attributes),
    }
    if status == "retry":
        extra["error_code"] = error_code(error) if error is not None else "internal"
        log.warning("%8.1fms ↺ %s retry: %s", total, task.label, error, extra=extra)
    elif status == "failed":
        assert event is not None
        extra["error_code"] = event.error_code
        log.info(
            "%8.1fms ✗ %s %s: %s",
            total,
            task.label,
            event.error_code,
            event.error_message,
            extra=extra,
        )
    elif status == "duplicate":
        log.info("%8.1fms = %s already done", total, task.label, extra=extra)
    else:
        log.info(
            "%8.1fms ✓ %s batch=%s %s", total, task.label, task.batch_size, stages, extra=extra
        )
