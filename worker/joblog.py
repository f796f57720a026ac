"""One log line per job, with its timings, in the shape arq made readable.

``  123.4ms ✓ <job_id> batch=8 queue=3 download=12 …``; in JSON mode the same line carries
``job_id``, ``timings_ms``, ``batch_size``, ``lane`` and, when the message had a W3C
``traceparent``, Cloud Logging's ``trace`` so the log links to the publisher's trace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from cutq.worker.outcome import Ending, Outcome

if TYPE_CHECKING:
    from cutq.worker.task import Task

log = logging.getLogger(__name__)


def trace_of(attributes: Mapping[str, str], project: str | None = None) -> str | None:
    """Cloud Logging's trace name from a W3C ``traceparent`` message attribute, if any, in
    ``project`` (the worker's ``trace_project`` setting).

    Pub/Sub's OpenTelemetry integration sends ``googclient_traceparent``; clients may send
    ``traceparent`` themselves.
    """
    parent = attributes.get("googclient_traceparent") or attributes.get("traceparent")
    parts = parent.split("-") if isinstance(parent, str) else []
    if len(parts) != 4 or len(parts[1]) != 32:
        return None
    return f"projects/{project}/traces/{parts[1]}" if project else parts[1]


class JobLog:
    """The observer that writes each settled job's line; traces name ``trace_project``."""

    def __init__(self, trace_project: str | None = None) -> None:
        self.trace_project = trace_project

    def settled(self, task: Task, outcome: Outcome) -> None:
        log_job(task, outcome, self.trace_project)


def log_job(task: Task, outcome: Outcome, trace_project: str | None = None) -> None:
    """The job's one line; its ``status`` is the outcome's word."""
    total = task.timings_ms.get("total", 0.0)
    stages = " ".join(
        f"{key}={value:.0f}" for key, value in task.timings_ms.items() if key != "total"
    )
    # status and error_code are fields (not only words in the message) so that the
    # log-based metrics in infra/terraform/modules/cutq/monitoring.tf can count by them.
    ending = outcome.ending
    job = task.job
    ref, name = (job.ref, job.name) if job is not None else (None, None)
    # The product a line is about, after the job id: " ref=SKU-1 name=SKU-1/front.jpg".
    who = "".join(f" {key}={value}" for key, value in (("ref", ref), ("name", name)) if value)
    extra = {
        "job_id": task.label,
        "ref": ref,
        "source_name": name,  # "name" is the logger's own field on a LogRecord
        "status": ending.value,
        "error_code": outcome.error_code,
        "timings_ms": dict(task.timings_ms),
        "batch_size": task.batch_size,
        "trace": trace_of(task.delivery.attributes, trace_project),
        "ack_failed": task.ack_failed,  # exactly-once delivery refused the ack: it may come back
        "lane": task.lane.value,  # interactive | bulk (docs/lanes.md)
    }
    if ending is Ending.COMPLETED:
        log.info(
            "%8.1fms ✓ %s%s batch=%s %s",
            total,
            task.label,
            who,
            task.batch_size,
            stages,
            extra=extra,
        )
    elif ending is Ending.DUPLICATE:
        log.info("%8.1fms = %s%s already done", total, task.label, who, extra=extra)
    elif ending is Ending.CANCELLED:
        log.info("%8.1fms ⊘ %s%s cancelled", total, task.label, who, extra=extra)
    elif ending in (Ending.FAILED, Ending.EXPIRED):
        assert outcome.event is not None
        log.info(
            "%8.1fms ✗ %s%s %s: %s",
            total,
            task.label,
            who,
            outcome.error_code,
            outcome.event.error_message,
            extra=extra,
        )
    else:  # returned, exhausted
        extra["error_code"] = extra["error_code"] or "internal"
        log.warning(
            "%8.1fms ↺ %s%s %s: %s",
            total,
            task.label,
            who,
            ending.value,
            outcome.error,
            extra=extra,
        )
