"""Static checks of the Terraform: the properties the deployment's correctness rests on.

No terraform binary and no cloud: the .tf files are parsed with python-hcl2 and the parsed
blocks are asserted on. Expressions arrive as '${...}' strings.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import hcl2
import pytest

from cutq.core.control import CONTROL_DIR
from cutq.worker.config import _NOT_WORKER, ENV_PREFIX, WorkerConfig
from tests.infra.tfconfig import (
    LANE_MAPS,
    ROOT,
    TerraformConfig,
    all_tf_files,
    block,
    dynamic,
    load_tf,
    normalize,
)

PUBLIC_PRINCIPALS = ("allUsers", "allAuthenticatedUsers")
WORKER_SA = "google_service_account.worker"
PUBSUB_AGENT = "${local.pubsub_service_agent}"
WORKLOADS = (
    ("google_cloud_run_v2_worker_pool", "worker"),
    ("google_cloud_run_v2_service", "worker"),
)


def revision_template(rtype: str, body: dict[str, Any]) -> dict[str, Any]:
    """The revision/task template that holds containers, node_selector and the like."""
    template = block(body, "template")
    return block(template, "template") if rtype == "google_cloud_run_v2_job" else template


def all_workloads() -> tuple[tuple[str, str], ...]:
    return (*WORKLOADS, ("google_cloud_run_v2_job", "drain"))


def members_of(body: dict[str, Any]) -> list[str]:
    values = body.get("members", [])
    if "member" in body:
        values = [*values, body["member"]]
    return [str(value) for value in values]


# --- parsing and hygiene ----------------------------------------------------------------


def test_every_tf_file_parses() -> None:
    files = all_tf_files()
    assert len(files) >= 10
    for path in files:
        with path.open(encoding="utf-8") as handle:
            assert hcl2.load(handle), f"{path} parsed to nothing"


@pytest.mark.parametrize("path", all_tf_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_variable_has_description_and_type(path: Path) -> None:
    for entry in load_tf(path).get("variable", []):
        for name, body in entry.items():
            assert str(body.get("description", "")).strip(), f"variable {name}: no description"
            assert "type" in body, f"variable {name}: no type"


@pytest.mark.parametrize("path", all_tf_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_output_has_description(path: Path) -> None:
    for entry in load_tf(path).get("output", []):
        for name, body in entry.items():
            assert str(body.get("description", "")).strip(), f"output {name}: no description"


def test_module_pins_provider_and_terraform(module: TerraformConfig) -> None:
    versions = load_tf(module.directory / "versions.tf")["terraform"][0]
    assert versions["required_version"].startswith(">=")
    google = versions["required_providers"][0]["google"]
    assert google["source"] == "hashicorp/google"
    assert "<" in google["version"], "provider version needs an upper bound"


def test_examples_use_the_module(examples: list[TerraformConfig]) -> None:
    assert {example.directory.name for example in examples} >= {"basic", "service"}
    for example in examples:
        assert example.modules["cutq"]["source"] == "../../modules/cutq"


# --- scale to zero and the worker's shapes --------------------------------------------------


def test_worker_pool_starts_at_zero_and_leaves_count_to_autoscaler(
    module: TerraformConfig,
) -> None:
    pool = module.resource("google_cloud_run_v2_worker_pool", "worker")
    scaling = block(pool, "scaling")
    assert scaling["scaling_mode"] == "MANUAL"
    assert scaling["manual_instance_count"] == 0
    ignored = block(pool, "lifecycle")["ignore_changes"]
    assert "${scaling[0].manual_instance_count}" in ignored


def test_service_scales_to_zero(module: TerraformConfig) -> None:
    service = module.resource("google_cloud_run_v2_service", "worker")
    scaling = block(block(service, "template"), "scaling")
    assert scaling["min_instance_count"] == 0
    assert scaling["max_instance_count"] == "${var.max_instances}"
    assert "scaling" not in service, "no service-level minimum instances"


def test_autoscaler_scales_to_zero_on_backlog(module: TerraformConfig) -> None:
    spec = module.locals["autoscaler_config"]["spec"]
    scaled = spec["scaledObjects"][0]["spec"]
    assert scaled["minReplicaCount"] == 0
    assert scaled["scaleTargetRef"]["name"].endswith("/workerpools/${var.name_prefix}-worker-pool")
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metadata"]["query"] == "${local.autoscaler_backlog_query}"
    series = module.locals["autoscaler_backlog_series"]
    assert "subscription_num_undelivered_messages" in series and "-jobs-pull" in series
    bulk = module.locals["autoscaler_bulk_backlog_series"]
    assert "subscription_num_undelivered_messages" in bulk and "-jobs-bulk-pull" in bulk


def test_autoscaler_counts_both_lanes_backlogs(module: TerraformConfig) -> None:
    """ceil(interactive / per_instance + bulk / bulk_per_instance) instances: the query adds
    the interactive backlog and the bulk one in interactive units, each term defaulting to 0
    (an idle lane with no sample must not empty the sum: the other lane's backlog would read
    as none and the pool scale to zero under it)."""
    query = module.locals["autoscaler_backlog_query"]
    assert query == (
        "(sum(${local.autoscaler_backlog_series}) or vector(0)) + "
        "(sum(${local.autoscaler_bulk_backlog_series}) or vector(0)) * "
        "${var.autoscaler_backlog_per_instance} / ${var.autoscaler_bulk_backlog_per_instance}"
    )
    bulk = module.variables["autoscaler_bulk_backlog_per_instance"]
    assert bulk["default"] >= module.variables["autoscaler_backlog_per_instance"]["default"]
    assert "var.autoscaler_bulk_backlog_per_instance >= 1" in str(bulk["validation"])


def test_shape_selects_exactly_one_workload(module: TerraformConfig) -> None:
    counts = {rtype: module.resource(rtype, name)["count"] for rtype, name in all_workloads()}
    assert "local.use_pool" in counts["google_cloud_run_v2_worker_pool"]
    assert "local.use_service" in counts["google_cloud_run_v2_service"]
    assert "local.use_pool" in counts["google_cloud_run_v2_job"]
    variable = module.variables["worker_shape"]
    assert variable["default"] in ("pool", "service")
    assert 'contains(["pool", "service"], var.worker_shape)' in str(variable["validation"])


def test_commands_match_the_cli_contract(module: TerraformConfig) -> None:
    def args(rtype: str, name: str) -> list[str]:
        body = module.resource(rtype, name)
        return block(revision_template(rtype, body), "containers")["args"]

    pool = args("google_cloud_run_v2_worker_pool", "worker")
    assert pool[:2] == ["worker", "--subscription"]
    assert pool[2] == '${google_pubsub_subscription.jobs_pull["interactive"].id}'
    assert pool[3:5] == [
        "--bulk-subscription",
        '${google_pubsub_subscription.jobs_pull["bulk"].id}',
    ]
    assert args("google_cloud_run_v2_service", "worker") == ["serve"]
    drain = args("google_cloud_run_v2_job", "drain")
    assert drain[:2] == ["worker", "--subscription"]
    assert drain[2:5] == pool[2:5]
    assert drain[5] == "--drain-idle-s"


# --- GPU ------------------------------------------------------------------------------------


def test_gpu_is_an_l4_by_default(module: TerraformConfig) -> None:
    assert module.variables["gpu_enabled"]["default"] is True
    assert module.variables["gpu_type"]["default"] == "nvidia-l4"
    assert module.locals["gpu"] == "${var.gpu_enabled}"


@pytest.mark.parametrize(("rtype", "name"), all_workloads())
def test_gpu_attached_only_when_enabled(module: TerraformConfig, rtype: str, name: str) -> None:
    template = revision_template(rtype, module.resource(rtype, name))
    selector = dynamic(template, "node_selector")
    assert selector["for_each"] == "${local.gpu ? [var.gpu_type] : []}"
    assert selector["content"][0]["accelerator"] == "${node_selector.value}"
    assert template["gpu_zonal_redundancy_disabled"].startswith("${local.gpu ?")
    limits = block(block(template, "containers"), "resources")["limits"]
    assert limits == "${local.resource_limits}"


def test_cpu_fallback_runs_one_image_at_a_time(module: TerraformConfig) -> None:
    env = module.locals["worker_env_base"]
    batch = "${tostring(local.gpu ? var.max_batch : var.cpu_only_max_batch)}"
    assert env["CUTQ_MAX_BATCH"] == batch
    assert env["CUTQ_DEVICE"] == '${local.gpu ? "cuda" : "cpu"}'
    assert module.variables["cpu_only_max_batch"]["default"] == 1


def test_gpu_limits_meet_cloud_run_l4_minimums(module: TerraformConfig) -> None:
    gpu = module.locals["gpu_limits"]
    assert gpu["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in module.locals["cpu_limits"]
    assert module.locals["resource_limits"].startswith("${local.gpu ?")
    assert int(module.variables["gpu_cpu"]["default"]) >= 4
    assert 'contains(["4", "6", "8"], var.gpu_cpu)' in str(module.variables["gpu_cpu"])
    memory = re.fullmatch(r"(\d+)Gi", module.variables["gpu_memory"]["default"])
    assert memory and int(memory.group(1)) >= 16


def test_service_keeps_cpu_allocated(module: TerraformConfig) -> None:
    service = module.resource("google_cloud_run_v2_service", "worker")
    resources = block(block(block(service, "template"), "containers"), "resources")
    assert resources["cpu_idle"] is False


def test_device_follows_the_gpu_switch(module: TerraformConfig) -> None:
    device = module.locals["worker_env_base"]["CUTQ_DEVICE"]
    assert device == '${local.gpu ? "cuda" : "cpu"}'


# --- Pub/Sub: retry, dead letters, push authentication --------------------------------------


# Each lane: its name's part, retry variable and attempts variable; every per-lane resource is
# declared once, for_each over local.lanes (pubsub.tf), and expanded here as Terraform does.
LANES = {
    "interactive": ("jobs", "retry_minimum_backoff_seconds", "max_delivery_attempts"),
    "bulk": ("jobs-bulk", "bulk_retry_minimum_backoff_seconds", "bulk_max_delivery_attempts"),
}
WORKER_SUBSCRIPTIONS = [(kind, lane) for kind in ("jobs_pull", "jobs_push") for lane in LANES]


def test_the_lanes_map_names_each_lane_once(module: TerraformConfig) -> None:
    lanes = module.locals["lanes"]
    assert {lane: values["topic"] for lane, values in lanes.items()} == {
        lane: topic for lane, (topic, _, _) in LANES.items()
    }
    assert module.locals["pull_lanes"] == "${local.use_pool ? local.lanes : {}}"
    assert module.locals["push_lanes"] == (
        "${local.use_service && local.deploy_workloads ? local.lanes : {}}"
    )
    topics = module.per_lane("google_pubsub_topic", "jobs")
    assert {lane: body["name"] for lane, body in topics.items()} == {
        "interactive": "${var.name_prefix}-jobs",
        "bulk": "${var.name_prefix}-jobs-bulk",
    }


# Addresses of the per-lane resources when each lane was declared on its own (before the
# lanes map): a deployed stack's state holds these.
BEFORE_THE_LANES_MAP = {
    "google_pubsub_topic.jobs": 'google_pubsub_topic.jobs["interactive"]',
    "google_pubsub_topic.jobs_bulk": 'google_pubsub_topic.jobs["bulk"]',
    "google_pubsub_topic.dead_letter": 'google_pubsub_topic.dead_letter["interactive"]',
    "google_pubsub_topic.bulk_dead_letter": 'google_pubsub_topic.dead_letter["bulk"]',
    "google_pubsub_subscription.jobs_pull[0]":
        'google_pubsub_subscription.jobs_pull["interactive"]',
    "google_pubsub_subscription.jobs_bulk_pull[0]": 'google_pubsub_subscription.jobs_pull["bulk"]',
    "google_pubsub_subscription.jobs_push[0]":
        'google_pubsub_subscription.jobs_push["interactive"]',
    "google_pubsub_subscription.jobs_bulk_push[0]": 'google_pubsub_subscription.jobs_push["bulk"]',
    "google_pubsub_subscription.dead_letter":
        'google_pubsub_subscription.dead_letter["interactive"]',
    "google_pubsub_subscription.bulk_dead_letter": 'google_pubsub_subscription.dead_letter["bulk"]',
    "google_pubsub_subscription_iam_member.worker_pulls_jobs[0]":
        'google_pubsub_subscription_iam_member.worker_pulls_jobs["interactive"]',
    "google_pubsub_subscription_iam_member.worker_pulls_bulk_jobs[0]":
        'google_pubsub_subscription_iam_member.worker_pulls_jobs["bulk"]',
    "google_pubsub_topic_iam_member.submitter_publishes_jobs":
        'google_pubsub_topic_iam_member.submitter_publishes_jobs["interactive"]',
    "google_pubsub_topic_iam_member.submitter_publishes_bulk_jobs":
        'google_pubsub_topic_iam_member.submitter_publishes_jobs["bulk"]',
    "google_pubsub_topic_iam_member.pubsub_agent_publishes_dead_letters":
        'google_pubsub_topic_iam_member.pubsub_agent_publishes_dead_letters["interactive"]',
    "google_pubsub_topic_iam_member.pubsub_agent_publishes_bulk_dead_letters":
        'google_pubsub_topic_iam_member.pubsub_agent_publishes_dead_letters["bulk"]',
    "google_pubsub_subscription_iam_member.pubsub_agent_acks_pull[0]":
        'google_pubsub_subscription_iam_member.pubsub_agent_acks_pull["interactive"]',
    "google_pubsub_subscription_iam_member.pubsub_agent_acks_bulk_pull[0]":
        'google_pubsub_subscription_iam_member.pubsub_agent_acks_pull["bulk"]',
    "google_pubsub_subscription_iam_member.pubsub_agent_acks_push[0]":
        'google_pubsub_subscription_iam_member.pubsub_agent_acks_push["interactive"]',
    "google_pubsub_subscription_iam_member.pubsub_agent_acks_bulk_push[0]":
        'google_pubsub_subscription_iam_member.pubsub_agent_acks_push["bulk"]',
}  # fmt: skip


def test_a_stack_deployed_before_the_lanes_map_moves_its_resources_never_recreates_them(
    module: TerraformConfig,
) -> None:
    """Plausible mistakes this catches: a missing ``moved`` block (Terraform would destroy a
    topic with the jobs it holds and create it anew), or one pointing at the wrong lane."""
    assert module.moved == BEFORE_THE_LANES_MAP
    lanes = module.locals["lanes"]
    for old, new in module.moved.items():
        rtype, rest = new.split(".", 1)
        name, lane = rest.split("[", 1)
        assert lane.strip('"]') in lanes, new
        assert module.resource(rtype, name)["for_each"] in LANE_MAPS, new
        # The old address is gone: its declaration is removed, or now keyed by lane.
        before = module.resources[rtype].get(old.split(".", 1)[1].split("[")[0], {})
        assert before == {} or before["for_each"] in LANE_MAPS, old


@pytest.mark.parametrize(("kind", "lane"), WORKER_SUBSCRIPTIONS)
def test_worker_subscription_retries_with_backoff(
    module: TerraformConfig, kind: str, lane: str
) -> None:
    sub = module.per_lane("google_pubsub_subscription", kind)[lane]
    topic, minimum, _ = LANES[lane]
    assert sub["name"] == f"${{var.name_prefix}}-{topic}-{kind.removeprefix('jobs_')}"
    assert sub["topic"] == f'${{google_pubsub_topic.jobs["{lane}"].id}}'
    retry = block(sub, "retry_policy")
    assert retry["minimum_backoff"] == f"${{var.{minimum}}}s"
    assert retry["maximum_backoff"] == "${var.retry_maximum_backoff_seconds}s"
    assert 0 <= module.variables[minimum]["default"] <= 600


@pytest.mark.parametrize(("kind", "lane"), WORKER_SUBSCRIPTIONS)
def test_worker_subscription_dead_letters(module: TerraformConfig, kind: str, lane: str) -> None:
    """Each lane dead-letters to its own topic, after its own number of attempts."""
    topic, _, attempts = LANES[lane]
    sub = module.per_lane("google_pubsub_subscription", kind)[lane]
    policy = block(sub, "dead_letter_policy")
    assert policy["dead_letter_topic"] == f'${{google_pubsub_topic.dead_letter["{lane}"].id}}'
    dead = module.per_lane("google_pubsub_topic", "dead_letter")[lane]
    assert dead["name"] == f"${{var.name_prefix}}-{topic}-dead-letter"
    assert policy["max_delivery_attempts"] == f"${{var.{attempts}}}"
    assert 5 <= module.variables[attempts]["default"] <= 100
    assert f"var.{attempts} >= 5" in str(module.variables[attempts]["validation"])


def test_both_lanes_run_in_the_same_shapes(module: TerraformConfig) -> None:
    """One declaration per kind, for every lane at once: a lane cannot miss a shape."""
    pull = module.resource("google_pubsub_subscription", "jobs_pull")
    push = module.resource("google_pubsub_subscription", "jobs_push")
    assert (pull["for_each"], push["for_each"]) == ("${local.pull_lanes}", "${local.push_lanes}")
    # No lane has a declaration of its own (as jobs_bulk_pull, bulk_dead_letter once were).
    declared = [f"{rtype}.{name}" for rtype, named in module.resources.items() for name in named]
    assert [name for name in declared if "bulk" in name] == []


def test_pubsub_service_agent_can_dead_letter(module: TerraformConfig) -> None:
    agent = module.locals["pubsub_service_agent"]
    assert agent == (
        "serviceAccount:service-${data.google_project.this.number}"
        "@gcp-sa-pubsub.iam.gserviceaccount.com"
    )
    grants = [
        (rtype, body)
        for rtype, _, body in module.all_resources()
        if rtype.startswith("google_pubsub_") and rtype.endswith("_iam_member")
    ]
    for lane in LANES:
        publishers = [
            body
            for rtype, body in grants
            if rtype == "google_pubsub_topic_iam_member"
            and body["topic"] == f'${{google_pubsub_topic.dead_letter["{lane}"].name}}'
            and body["role"] == "roles/pubsub.publisher"
        ]
        assert [body["member"] for body in publishers] == [PUBSUB_AGENT], lane

    subscribers = {
        body["subscription"]
        for rtype, body in grants
        if rtype == "google_pubsub_subscription_iam_member"
        and body["member"] == PUBSUB_AGENT
        and body["role"] == "roles/pubsub.subscriber"
    }
    assert subscribers == {
        f'${{google_pubsub_subscription.{kind}["{lane}"].name}}'
        for kind, lane in WORKER_SUBSCRIPTIONS
    }


@pytest.mark.parametrize("lane", list(LANES))
def test_dead_letters_are_kept_for_inspection(module: TerraformConfig, lane: str) -> None:
    keep = module.per_lane("google_pubsub_subscription", "dead_letter")[lane]
    assert keep["name"] == f"${{var.name_prefix}}-{LANES[lane][0]}-dead-letter-inspect"
    assert keep["topic"] == f'${{google_pubsub_topic.dead_letter["{lane}"].id}}'
    assert keep["message_retention_duration"] == "${var.message_retention_seconds}s"
    assert keep["retain_acked_messages"] is True
    assert block(keep, "expiration_policy")["ttl"] == ""


def test_push_subscription_authenticates_with_oidc(module: TerraformConfig) -> None:
    push = block(module.resource("google_pubsub_subscription", "jobs_push"), "push_config")
    token = block(push, "oidc_token")
    assert token["service_account_email"] == "${google_service_account.push_invoker.email}"
    assert token["audience"] == "${local.push_audience}"
    invoker = module.resource("google_cloud_run_v2_service_iam_member", "push_invoker")
    assert invoker["role"] == "roles/run.invoker"
    assert invoker["member"] == "${google_service_account.push_invoker.member}"
    service = module.resource("google_cloud_run_v2_service", "worker")
    env = dynamic(block(block(service, "template"), "containers"), "env")
    assert env["for_each"] == "${merge(local.worker_env, local.service_env_extra)}"
    assert (
        module.locals["service_env_extra"].items()
        >= {
            "CUTQ_PUSH_AUDIENCE": "${local.push_audience}",
            "CUTQ_PUSH_SERVICE_ACCOUNT": "${google_service_account.push_invoker.email}",
        }.items()
    )


def test_push_timeout_matches_ack_deadline(module: TerraformConfig) -> None:
    push = module.resource("google_pubsub_subscription", "jobs_push")
    assert push["ack_deadline_seconds"] == "${var.push_ack_deadline_seconds}"
    service = module.resource("google_cloud_run_v2_service", "worker")
    assert block(service, "template")["timeout"] == "${var.push_ack_deadline_seconds}s"


# --- GCS notification -------------------------------------------------------------------


def test_inputs_bucket_notifies_jobs_topic(module: TerraformConfig) -> None:
    notification = module.resource("google_storage_notification", "inputs_to_jobs")
    assert notification["bucket"] == "${google_storage_bucket.inputs.name}"
    assert notification["topic"] == '${google_pubsub_topic.jobs["interactive"].id}'
    assert notification["event_types"] == ["OBJECT_FINALIZE"]
    assert notification["payload_format"] == "JSON_API_V1"
    assert "${google_pubsub_topic_iam_member.gcs_publishes_jobs}" in notification["depends_on"]

    grant = module.resource("google_pubsub_topic_iam_member", "gcs_publishes_jobs")
    assert grant["topic"] == '${google_pubsub_topic.jobs["interactive"].name}'
    assert grant["role"] == "roles/pubsub.publisher"
    assert grant["member"] == "${data.google_storage_project_service_account.gcs.member}"
    assert "gcs" in module.data["google_storage_project_service_account"]


# --- storage ------------------------------------------------------------------------------


def test_buckets_are_private(module: TerraformConfig) -> None:
    buckets = module.resources["google_storage_bucket"]
    assert {"inputs", "results", "models", "build"} <= set(buckets)
    for name, body in buckets.items():
        assert body["uniform_bucket_level_access"] is True, name
        assert body["public_access_prevention"] == "enforced", name


def test_inputs_expire(module: TerraformConfig) -> None:
    rules = module.resource("google_storage_bucket", "inputs")["lifecycle_rule"]
    deletes = [rule for rule in rules if block(rule, "action")["type"] == "Delete"]
    assert [block(rule, "condition")["age"] for rule in deletes] == ["${var.inputs_retention_days}"]


def test_results_move_to_nearline_then_expire(module: TerraformConfig) -> None:
    results = module.resource("google_storage_bucket", "results")
    assert block(results, "versioning")["enabled"] is True
    actions = [
        entry["lifecycle_rule"]["content"][0]["action"][0]
        for entry in results["dynamic"]
        if "lifecycle_rule" in entry
    ]
    assert {"type": "SetStorageClass", "storage_class": "NEARLINE"} in actions
    assert {"type": "Delete"} in actions


def test_cancellation_records_expire_once_no_job_they_name_can_be_delivered(
    module: TerraformConfig,
) -> None:
    """Workers list the control prefix every second: its records must not pile up, and must
    outlive every message that may still carry their run or job id (queue + dead letters)."""
    rules = module.resource("google_storage_bucket", "results")["lifecycle_rule"]
    control = [r for r in rules if "matches_prefix" in block(r, "condition")]
    (rule,) = control
    assert block(rule, "condition")["matches_prefix"] == [f"{CONTROL_DIR}/"]
    assert block(rule, "action")["type"] == "Delete"
    assert block(rule, "condition")["age"] == "${local.control_retention_days}"
    days = module.locals["control_retention_days"]
    assert days == "${ceil(var.message_retention_seconds / 86400) * 2 + 1}"


# --- IAM: least privilege, nothing public ---------------------------------------------------


def test_no_public_principals(module: TerraformConfig, examples: list[TerraformConfig]) -> None:
    for config in (module, *examples):
        for rtype, name, body in config.all_resources():
            if "iam" not in rtype:
                continue
            for member in members_of(body):
                assert not any(p in member for p in PUBLIC_PRINCIPALS), f"{rtype}.{name}"
    for path in all_tf_files():
        text = path.read_text(encoding="utf-8")
        assert not any(p in text for p in PUBLIC_PRINCIPALS), path


def test_worker_has_no_project_level_roles(module: TerraformConfig) -> None:
    for rtype, name, body in module.all_resources():
        if rtype.startswith(("google_project_iam", "google_organization_iam")):
            assert rtype == "google_project_iam_member", f"authoritative {rtype}.{name}"
            assert WORKER_SA not in str(body["member"]), f"{rtype}.{name} grants the worker"


def test_worker_grants_are_exactly_the_needed_ones(module: TerraformConfig) -> None:
    grants = set()
    for rtype, _name, body in module.all_resources():
        if "iam" in rtype and any(WORKER_SA + "." in member for member in members_of(body)):
            target = body.get("bucket") or body.get("topic") or body.get("subscription")
            grants.add((rtype, str(target), body["role"]))
    assert grants == {
        (
            "google_storage_bucket_iam_member",
            "${google_storage_bucket.inputs.name}",
            "roles/storage.objectViewer",
        ),
        (
            "google_storage_bucket_iam_member",
            "${google_storage_bucket.results.name}",
            "roles/storage.objectCreator",
        ),
        (
            "google_storage_bucket_iam_member",
            "${google_storage_bucket.results.name}",
            "roles/storage.objectViewer",
        ),
        (
            "google_storage_bucket_iam_member",
            "${google_storage_bucket.models.name}",
            "roles/storage.objectViewer",
        ),
        (
            "google_pubsub_subscription_iam_member",
            '${google_pubsub_subscription.jobs_pull["interactive"].name}',
            "roles/pubsub.subscriber",
        ),
        (
            "google_pubsub_subscription_iam_member",
            '${google_pubsub_subscription.jobs_pull["bulk"].name}',
            "roles/pubsub.subscriber",
        ),
        (
            "google_pubsub_topic_iam_member",
            "${google_pubsub_topic.events.name}",
            "roles/pubsub.publisher",
        ),
    }


def test_submitter_can_only_upload_and_publish(module: TerraformConfig) -> None:
    grants = {
        (body.get("bucket") or body.get("topic"), body["role"])
        for rtype, _name, body in module.all_resources()
        if "iam" in rtype
        and any("google_service_account.submitter." in m for m in members_of(body))
    }
    assert grants == {
        ("${google_storage_bucket.inputs.name}", "roles/storage.objectCreator"),
        ('${google_pubsub_topic.jobs["interactive"].name}', "roles/pubsub.publisher"),
        ('${google_pubsub_topic.jobs["bulk"].name}', "roles/pubsub.publisher"),
    }


@pytest.mark.parametrize(("rtype", "name"), all_workloads())
def test_workloads_run_as_the_worker(module: TerraformConfig, rtype: str, name: str) -> None:
    template = revision_template(rtype, module.resource(rtype, name))
    assert template["service_account"] == "${google_service_account.worker.email}"


def test_service_is_not_on_the_internet(module: TerraformConfig) -> None:
    service = module.resource("google_cloud_run_v2_service", "worker")
    assert service["ingress"] == "${var.service_ingress}"
    assert module.variables["service_ingress"]["default"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"


# --- the environment the worker is given -----------------------------------------------------


def test_worker_env_names_are_settings_the_worker_knows(module: TerraformConfig) -> None:
    known = {ENV_PREFIX + f.name.upper() for f in fields(WorkerConfig)} | _NOT_WORKER
    names = (
        set(module.locals["worker_env_base"])
        | set(module.locals["worker_env_optional"])
        | set(module.locals["service_env_extra"])
    )
    assert names <= known, f"the worker would reject: {sorted(names - known)}"
    assert {"CUTQ_MODEL", "CUTQ_DEVICE", "CUTQ_EVENTS_TOPIC", "CUTQ_OUTPUT"} <= names


def test_normalize_strips_hcl_quoting() -> None:
    raw = {'"x"': {"description": '"d"', "__is_block__": True, "count": "${var.n}"}}
    assert normalize(raw) == {"x": {"description": "d", "count": "${var.n}"}}


def test_deployed_workers_are_confined_to_their_buckets(module: TerraformConfig) -> None:
    """A job names its own URIs: the deployed worker must carry a bucket allow-list (which
    also refuses every file:// URI, as no CUTQ_ALLOWED_DIRS is given) covering exactly the
    inputs and results buckets plus the declared extras."""
    env = module.locals["worker_env_base"]
    assert env["CUTQ_ALLOWED_BUCKETS"] == '${join(",", local.allowed_buckets)}'
    allowed = module.locals["allowed_buckets"]
    for part in (
        "google_storage_bucket.inputs.name",
        "google_storage_bucket.results.name",
        "var.extra_allowed_buckets",
    ):
        assert part in allowed
    names = set(env) | set(module.locals["worker_env_optional"])
    assert "CUTQ_ALLOWED_DIRS" not in names | set(module.locals["service_env_extra"])
