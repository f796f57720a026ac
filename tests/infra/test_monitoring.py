"""Issue 15 item 7: log-based metrics, alert policies and a dashboard, all in the module.

The metrics read fields of the worker's JSON job lines, so the lines are rendered here with
the worker's real ``log_job`` and Cloud Logging formatter and every field a metric extracts
or filters on is looked up in them: a renamed log field fails this test, not production.
"""

from __future__ import annotations

import json
import logging
import re
from types import SimpleNamespace
from typing import Any

import pytest

from cutq.core.logs import CloudLoggingFormatter
from cutq.worker.joblog import log_job
from cutq.worker.outcome import Ending, Outcome
from cutq.worker.task import Task
from tests.infra.tfconfig import ROOT, TerraformConfig
from tests.infra.tfeval import valid

STAGES = ["queue", "download", "decode", "batch_wait", "infer", "encode", "upload"]
STATUSES = {"completed", "failed", "duplicate", "returned"}


def text(node: Any) -> str:
    """A parsed block as one string, with HCL's escaped quotes made plain."""
    return json.dumps(node).replace('\\\\\\"', '"').replace('\\"', '"')


def job_lines(caplog: pytest.LogCaptureFixture) -> dict[str, dict[str, Any]]:
    """One JSON job line per outcome, rendered by the worker's own code."""
    timings = {stage: float(i + 1) for i, stage in enumerate(STAGES)} | {"total": 99.0}
    item = Task(SimpleNamespace(message_id="m1", attributes={}), timings_ms=timings, batch_size=4)  # type: ignore[arg-type]
    item.job = SimpleNamespace(job_id="j1", ref="SKU-1", name="SKU-1/front.jpg")  # type: ignore[assignment]
    outcomes = {
        "completed": Outcome(Ending.COMPLETED, SimpleNamespace(error_code=None)),  # type: ignore[arg-type]
        "failed": Outcome(
            Ending.FAILED,
            SimpleNamespace(error_code="not_an_image", error_message="x"),  # type: ignore[arg-type]
        ),
        "duplicate": Outcome(Ending.DUPLICATE, SimpleNamespace(error_code=None)),  # type: ignore[arg-type]
        "returned": Outcome.returned(OSError("storage")),
    }
    formatter = CloudLoggingFormatter()
    lines = {}
    with caplog.at_level(logging.INFO, logger="cutq.worker.joblog"):
        for word, outcome in outcomes.items():
            caplog.clear()
            log_job(item, outcome)
            (record,) = caplog.records
            lines[word] = json.loads(formatter.format(record))
    return lines


def conditions(policy: dict[str, Any]) -> list[dict[str, Any]]:
    """A policy's condition blocks: written out, or the content of ``dynamic "conditions"``."""
    if "conditions" in policy:
        return policy["conditions"]
    return [entry["conditions"]["content"][0] for entry in policy["dynamic"]]


def lookup(entry: dict[str, Any], path: str) -> Any:
    node: Any = entry  # jsonPayload
    for part in path.split("."):
        assert isinstance(node, dict) and part in node, f"log line has no {path}"
        node = node[part]
    return node


def test_metrics_read_fields_the_worker_logs(
    module: TerraformConfig, caplog: pytest.LogCaptureFixture
) -> None:
    lines = job_lines(caplog)
    assert {line["status"] for line in lines.values()} == STATUSES
    assert lines["failed"]["error_code"] == "not_an_image"
    worker_logs = module.locals["worker_logs"].replace('\\"', '"')
    assert worker_logs.startswith("(${local.run_log_resources}) AND ")  # OR binds tighter
    for outcome, line in lines.items():
        assert line["logger"] == "cutq.worker.joblog", outcome
        for field in re.findall(r"jsonPayload\.([a-z_.]+):\*", worker_logs):
            lookup(line, field)
    metrics = module.resources["google_logging_metric"]
    for name, body in metrics.items():
        if name == "worker_exits":
            continue
        used = re.findall(r"jsonPayload\.([a-z_.]+)", text(body).replace("${each.value}", "infer"))
        assert used, name
        for field in used:
            lookup(lines["completed"], field)


def test_required_metrics_exist(module: TerraformConfig) -> None:
    metrics = module.resources["google_logging_metric"]
    jobs = metrics["jobs"]
    assert {label["key"] for label in jobs["metric_descriptor"][0]["labels"]} == {
        "status",
        "error_code",
    }
    assert jobs["label_extractors"]["error_code"] == "EXTRACT(jsonPayload.error_code)"
    assert metrics["job_latency"]["value_extractor"] == "EXTRACT(jsonPayload.timings_ms.total)"
    assert metrics["batch_size"]["value_extractor"] == "EXTRACT(jsonPayload.batch_size)"
    stage = metrics["stage_latency"]
    assert stage["value_extractor"] == "EXTRACT(jsonPayload.timings_ms.${each.value})"
    assert module.locals["stages"] == STAGES
    for name in ("job_latency", "stage_latency", "batch_size"):
        assert metrics[name]["metric_descriptor"][0]["value_type"] == "DISTRIBUTION", name
    assert "Container called exit" in text(metrics["worker_exits"]["filter"])


def test_every_referenced_log_metric_is_defined(module: TerraformConfig) -> None:
    names = {
        body["name"].replace("${var.name_prefix}_", "")
        for body in module.resources["google_logging_metric"].values()
    }
    names = {name.replace("stage_${each.value}", "") for name in names}
    names |= {f"stage_{stage}" for stage in STAGES}
    source = "".join(
        (ROOT / "infra/terraform/modules/cutq" / name).read_text(encoding="utf-8")
        for name in ("monitoring.tf", "dashboard.tf")
    )
    source = source.replace("${local.jobs_metric}", "${local.metric_prefix}_jobs")
    referenced = set(re.findall(r"\$\{local\.metric_prefix\}_([a-z_]+)", source))
    referenced |= {f"stage_{s}" for s in STAGES if "_stage_${stage}" in source}
    referenced.discard("stage_")
    assert referenced, "no metric referenced"
    assert referenced <= names, f"undefined log metrics: {sorted(referenced - names)}"


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("dead_letters", "-jobs-dead-letter-inspect"),
        ("oldest_job", "oldest_unacked_message_age"),
        ("failure_ratio", 'status="failed"'),
        ("worker_restarts", "_worker_exits"),
    ],
)
def test_alert_policies_notify_the_configured_channels(
    module: TerraformConfig, name: str, needle: str
) -> None:
    policy = module.resource("google_monitoring_alert_policy", name)
    assert policy["notification_channels"] == "${var.notification_channels}"
    assert policy["documentation"][0]["content"], name
    rendered = text(policy) + text(module.locals)
    assert needle in rendered, (name, needle)
    condition = conditions(policy)[0]["condition_threshold"][0]
    assert condition["threshold_value"].startswith("${var.alert_"), name


def test_failure_ratio_is_a_ratio(module: TerraformConfig) -> None:
    policy = module.resource("google_monitoring_alert_policy", "failure_ratio")
    threshold = conditions(policy)[0]["condition_threshold"][0]
    assert 'NOT metric.labels.status=\\"returned\\"' in threshold["denominator_filter"]
    assert threshold["denominator_aggregations"][0]["cross_series_reducer"] == "REDUCE_SUM"


@pytest.mark.parametrize(
    "needle",
    [
        "subscription/num_undelivered_messages",  # backlog
        "${local.jobs_metric}",  # throughput, by status (duplicates included)
        'in ["50", "95", "99"]',  # latency percentiles …
        "REDUCE_PERCENTILE_${p}",  # … as percentile reducers
        "_stage_${stage}",  # per-stage latency
        "_batch_size",  # batch sizes
        '"gpu/utilizations"',  # GPU utilisation (run.googleapis.com/container/…)
        "container/instance_count",  # instance count
    ],
)
def test_dashboard_shows_what_an_operator_needs(module: TerraformConfig, needle: str) -> None:
    assert needle in text(module.locals["dashboard_charts"]).replace('\\"', '"')
    dashboard = module.resource("google_monitoring_dashboard", "cutq")
    assert dashboard["dashboard_json"] == "${jsonencode(local.dashboard)}"


@pytest.mark.parametrize(
    ("name", "value", "ok"),
    [
        ("alert_failure_ratio", 0.05, True),
        ("alert_failure_ratio", 5, False),
        ("alert_failure_ratio", 0, False),
        ("alert_oldest_job_seconds", 1800, True),
        ("alert_oldest_job_seconds", 10, False),
        ("alert_worker_exits", 0, False),
        ("alert_dead_letter_threshold", -1, False),
    ],
)
def test_alert_thresholds_are_validated(
    module: TerraformConfig, name: str, value: float, ok: bool
) -> None:
    assert valid(module.variables, name, {name: value}) is ok


def test_examples_pass_notification_channels(examples: list[TerraformConfig]) -> None:
    for example in examples:
        assert example.modules["cutq"]["notification_channels"] == "${var.notification_channels}"
        assert "dashboard_url" in example.outputs
