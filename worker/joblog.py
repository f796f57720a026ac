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

if TYPE_CHECKING:
    from cutq.submitter.contract import Event
    from cutq.worker.pipeline import WorkItem

log = logging.getLogger("cutq.worker.pipeline")


def trace_of(attributes: Mapping[str, str]) -> str | None:
    """Cloud Logging's trace name from a W3C ``traceparent`` message attribute, if any.

    Pub/Sub's OpenTelemetry integration sends ``googclient_traceparent``; clients may send
    ``traceparent`` themselves.
    """
    parent = attributes.get("googclient_traceparent") or attributes.get("traceparent")
    parts = parent.split("-") if parent else []
    if len(parts) != 4 or len(parts[1]) != 32:
        return None
    project = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("CUTQ_TRACE_PROJECT")
    return f"projects/{project}/traces/{parts[1]}" if project else parts[1]


def log_job(item: WorkItem, ack: bool, event: Event | None, error: BaseException | None) -> None:
    job_id = item.job.job_id if item.job else f"message-{item.delivery.message_id}"
    total = item.timings_ms.get("total", 0.0)
    stages = " ".join(
        f"{key}={value:.0f}" for key, value in item.timings_ms.items() if key != "total"
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
        "job_id": job_id,
        "status": status,
        "error_code": event.error_code if status == "failed" and event is not None else None,
        "timings_ms": dict(item.timings_ms),
        "batch_size": item.batch_size,
        "trace": trace_of(item.delivery.attributes),
    }
    if not ack:
        log.warning("%8.1fms ↺ %s retry: %s", total, job_id, error, extra=extra)
    elif event is not None and event.status == "failed":
        log.info(
            "%8.1fms ✗ %s %s: %s", total, job_id, event.error_code, event.error_message, extra=extra
        )
    elif event is not None and event.duplicate:
        log.info("%8.1fms = %s already done", total, job_id, extra=extra)
    else:
        log.info("%8.1fms ✓ %s batch=%s %s", total, job_id, item.batch_size, stages, extra=extra)
