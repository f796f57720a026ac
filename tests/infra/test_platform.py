"""Issue 24: the module read line by line against Google's documentation, one test per item.

Variable validations are fed values through ``tfeval`` (the module's own conditions,
evaluated offline); everything else is asserted on the parsed module.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from tests.infra.tfconfig import ROOT, TerraformConfig
from tests.infra.tfeval import valid

# --- 1. subscriptions keep jobs up to Pub/Sub's 31-day maximum ------------------------------

THIRTY_ONE_DAYS_S = 31 * 24 * 3600  # provider doc: "Cannot be more than 31 days ("2678400s")"


@pytest.mark.parametrize(
    ("seconds", "ok"),
    [
        (599, False),
        (600, True),
        (604800, True),  # Pub/Sub's default, 7 days
        (THIRTY_ONE_DAYS_S, True),
        (THIRTY_ONE_DAYS_S + 1, False),
    ],
)
def test_message_retention_allows_pubsubs_31_days(
    module: TerraformConfig, seconds: int, ok: bool
) -> None:
    values = {"message_retention_seconds": seconds}
    assert valid(module.variables, "message_retention_seconds", values) is ok


def test_jobs_and_dead_letters_are_kept_31_days_by_default(module: TerraformConfig) -> None:
    assert module.variables["message_retention_seconds"]["default"] == THIRTY_ONE_DAYS_S
    for rtype, name, subscription in module.all_resources():
        if rtype == "google_pubsub_subscription" and not name.startswith("events"):
            retention = subscription["message_retention_duration"]
            assert retention == "${var.message_retention_seconds}s", name


# --- 2. CPU-only shapes: Cloud Run's whole vCPU/memory table ---------------------------------

# Cloud Run, "Configure CPU limits for worker pools", vCPU and memory table:
# 1 vCPU: up to 4 GiB; 2: up to 8; 4: 2 to 16; 6: 4 to 24; 8: 4 to 32 (the module takes whole Gi).
CPU_MEMORY_GIB = {"1": (1, 4), "2": (1, 8), "4": (2, 16), "6": (4, 24), "8": (4, 32)}


def cpu_only_shape_valid(module: TerraformConfig, cpu: str, memory: str) -> bool:
    values = {"cpu_only_cpu": cpu, "cpu_only_memory": memory}
    return valid(module.variables, "cpu_only_cpu", values) and valid(
        module.variables, "cpu_only_memory", values
    )


@pytest.mark.parametrize(
    ("cpu", "gib", "ok"),
    [
        (cpu, gib, ok)
        for cpu, (low, high) in CPU_MEMORY_GIB.items()
        for gib, ok in ((low - 1, False), (low, True), (high, True), (high + 1, False))
    ],
)
def test_cpu_only_memory_follows_cloud_runs_table(
    module: TerraformConfig, cpu: str, gib: int, ok: bool
) -> None:
    assert cpu_only_shape_valid(module, cpu, f"{gib}Gi") is ok


def test_cpu_only_default_is_a_cloud_run_shape(module: TerraformConfig) -> None:
    cpu = module.variables["cpu_only_cpu"]["default"]
    memory = module.variables["cpu_only_memory"]["default"]
    assert cpu_only_shape_valid(module, cpu, memory)


# --- 5. what wakes the pool: CREMA's arithmetic, not an activation value ---------------------


def crema_instances(backlog: float, threshold: float, current: int, low: int, high: int) -> int:
    """CREMA 1.2's instance count for one average-value trigger: ceil(backlog / threshold)
    (TargetAverageValueScaling.makeRecommendation; a zero target keeps the current count),
    any positive recommendation at 0 instances becomes 1 (ScalingStabilizer), then the
    result is clamped to [minReplicaCount, maxReplicaCount]."""
    wanted = current if threshold == 0 else math.ceil(backlog / threshold)
    if current == 0 and wanted > 0:
        wanted = 1
    return min(max(wanted, low), high)


def scaled_object(module: TerraformConfig) -> dict[str, Any]:
    return module.locals["autoscaler_config"]["spec"]["scaledObjects"][0]["spec"]


@pytest.mark.parametrize(
    ("backlog", "from_zero", "from_one"), [(0, 0, 0), (1, 1, 1), (50, 1, 1), (51, 1, 2)]
)
def test_any_backlog_wakes_the_pool_by_rounding_up(
    module: TerraformConfig, backlog: int, from_zero: int, from_one: int
) -> None:
    scaled = scaled_object(module)
    (trigger,) = scaled["triggers"]
    threshold = float(module.variables["autoscaler_backlog_per_instance"]["default"])
    assert trigger["metadata"]["threshold"] == "${tostring(var.autoscaler_backlog_per_instance)}"
    assert threshold == 50
    low, high = scaled["minReplicaCount"], module.variables["max_instances"]["default"]
    assert low == 0 and scaled["maxReplicaCount"] == "${var.max_instances}"
    assert crema_instances(backlog, threshold, 0, low, high) == from_zero
    assert crema_instances(backlog, threshold, 1, low, high) == from_one


def test_no_activation_setting_pretends_to_wake_the_pool(module: TerraformConfig) -> None:
    """CREMA never reads KEDA's activity flag, so an activation value would only mislead."""
    (trigger,) = scaled_object(module)["triggers"]
    assert not [key for key in trigger["metadata"] if key.lower().startswith("activation")]
    readme = (ROOT / "infra" / "README.md").read_text(encoding="utf-8")
    assert "activationValue" not in readme.replace("never uses `activationValue`", "")


@pytest.mark.parametrize(("threshold", "ok"), [(0, False), (1, True), (50, True)])
def test_a_zero_target_that_never_wakes_is_refused(
    module: TerraformConfig, threshold: int, ok: bool
) -> None:
    values = {"autoscaler_backlog_per_instance": threshold}
    assert valid(module.variables, "autoscaler_backlog_per_instance", values) is ok
    assert (crema_instances(10, threshold, 0, 0, 3) > 0) is ok


# --- 6. KEDA's deprecated gcp-pubsub scaler replaced by its Prometheus scaler -----------------


def test_backlog_is_read_with_kedas_prometheus_scaler(module: TerraformConfig) -> None:
    """KEDA's blog of 2025-09-15 deprecates the MQL-based gcp-pubsub scaler and maps it to the
    prometheus scaler on Cloud Monitoring's PromQL endpoint (`value` → `threshold`)."""
    (trigger,) = scaled_object(module)["triggers"]
    assert trigger["type"] == "prometheus"
    metadata = trigger["metadata"]
    assert metadata["serverAddress"] == (
        "https://monitoring.googleapis.com/v1/projects/${var.project_id}/location/global/prometheus"
    )
    assert not {"subscriptionName", "mode", "value", "valueIfNull"} & set(metadata)
    assert metadata["ignoreNullValues"] == "true"  # no sample: an empty backlog, not an error
    series = module.locals["autoscaler_backlog_series"].replace('\\"', '"')
    # Cloud Monitoring → PromQL names: the first "/" becomes ":", other "." and "/" become "_".
    name = "pubsub.googleapis.com/subscription/num_undelivered_messages"
    domain, path = name.split("/", 1)
    promql = domain.replace(".", "_") + ":" + path.replace("/", "_").replace(".", "_")
    assert series.startswith(promql + "{")
    labels = dict(pair.split("=", 1) for pair in series[len(promql) + 1 : -1].split(","))
    assert labels == {
        "monitored_resource": '"pubsub_subscription"',
        "project_id": '"${var.project_id}"',
        "subscription_id": '"${var.name_prefix}-jobs-pull"',
    }
    # The subscription it names is the pool's.
    pull = module.per_lane("google_pubsub_subscription", "jobs_pull")["interactive"]
    assert pull["name"] == "${var.name_prefix}-jobs-pull"
    assert trigger["authenticationRef"]["name"] == "adc"


# --- 3. every Monitoring filter names its resource.type ---------------------------------------

RUN_TYPES = {"pool": ["cloud_run_worker_pool", "cloud_run_job"], "service": ["cloud_run_revision"]}


FILTER_IN_EXPRESSION = re.compile(r'\bfilter = "((?:[^"\\]|\\.)*)"')


def filters(node: Any) -> list[str]:
    """Every alert or chart filter in a parsed block, also those inside ``for`` expressions
    (python-hcl2 leaves those as strings), with HCL's escaped quotes made plain."""
    found: list[str] = []
    if isinstance(node, str):
        found += [text.replace('\\"', '"') for text in FILTER_IN_EXPRESSION.findall(node)]
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in ("filter", "denominator_filter") and isinstance(value, str):
                found.append(value.replace('\\"', '"'))
            else:
                found += filters(value)
    elif isinstance(node, list):
        for item in node:
            found += filters(item)
    return found


def test_every_alert_and_chart_filter_restricts_resource_type(module: TerraformConfig) -> None:
    """The Monitoring API refuses a time-series filter without a resource.type restriction
    (terraform-provider-google#7179, googleapis/nodejs-monitoring#46)."""
    policies = module.resources["google_monitoring_alert_policy"]
    found = filters(list(policies.values())) + filters(module.locals["dashboard_charts"])
    assert len(found) >= 15
    local_types = {
        "${local.subscription_filter}": 'resource.type="pubsub_subscription"',
        "${local.dead_letter_filter}": 'resource.type="pubsub_subscription"',
        "${local.bulk_dead_letter_filter}": 'resource.type="pubsub_subscription"',
        "${local.bulk_subscription_filter}": 'resource.type="pubsub_subscription"',
        "${local.run_metric_resource}": "resource.type=",
    }
    for text in found:
        for reference, restriction in local_types.items():
            if reference in text:
                assert restriction in module.locals[reference[8:-1]].replace('\\"', '"'), text
                text = text.replace(reference, restriction)
        assert "resource.type=" in text, text


@pytest.mark.parametrize("name", ["failure_ratio", "worker_restarts"])
def test_log_metric_alerts_have_one_condition_per_resource_type(
    module: TerraformConfig, name: str
) -> None:
    """The jobs and exits metrics have series on the worker pool and on the drain job (pool
    shape) or on the service's revisions: one condition per type, so none goes unwatched."""
    policy = module.resource("google_monitoring_alert_policy", name)
    assert policy["combiner"] == "OR"
    (entry,) = policy["dynamic"]
    assert entry["conditions"]["for_each"] == "${local.run_resource_types}"
    condition = entry["conditions"]["content"][0]["condition_threshold"][0]
    assert 'resource.type=\\"${conditions.value}\\"' in condition["filter"]
    if "denominator_filter" in condition:
        assert 'resource.type=\\"${conditions.value}\\"' in condition["denominator_filter"]
    types = module.locals["run_resource_types"]
    pool, service = (", ".join(f'"{t}"' for t in RUN_TYPES[shape]) for shape in RUN_TYPES)
    assert types == f"${{local.use_pool ? [{pool}] : [{service}]}}"


def test_log_metrics_read_the_resources_the_types_name(module: TerraformConfig) -> None:
    """The per-type conditions cover exactly the resources the log-based metrics read."""
    resources = module.locals["run_log_resources"].replace('\\"', '"')
    for shape_types in RUN_TYPES.values():
        for resource_type in shape_types:
            assert f'resource.type="{resource_type}"' in resources


# --- 7. soft delete decided per bucket ---------------------------------------------------------

# Provider doc, storage_bucket soft_delete_policy.retention_duration_seconds: 604800 (7 days)
# to 7776000 (90 days), or 0 to turn soft delete off; without the block the server's 7 days.
SOFT_DELETE_S = {"inputs": 0, "build": 0, "results": 604800, "models": 604800}


@pytest.mark.parametrize(("bucket", "seconds"), sorted(SOFT_DELETE_S.items()))
def test_soft_delete_is_set_on_every_bucket(
    module: TerraformConfig, bucket: str, seconds: int
) -> None:
    body = module.resource("google_storage_bucket", bucket)
    (policy,) = body["soft_delete_policy"]
    value = policy["retention_duration_seconds"]
    if value == "${local.soft_delete_week_s}":
        assert module.locals["soft_delete_week_s"] == "${7 * 24 * 3600}"
        value = 7 * 24 * 3600
    assert value == seconds
    assert value == 0 or 604800 <= value <= 7776000


def test_every_bucket_has_a_soft_delete_decision(module: TerraformConfig) -> None:
    assert set(module.resources["google_storage_bucket"]) == set(SOFT_DELETE_S)
