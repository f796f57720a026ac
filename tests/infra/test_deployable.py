"""Issue 15: what stood between an empty project and a working deployment, one test per item.

Variable validations are exercised with bad values through ``tfeval`` (the module's own
conditions, evaluated offline); everything else is asserted on the parsed module.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from cutq.worker.config import WorkerConfig
from tests.infra.tfconfig import ROOT, TerraformConfig, block, load_tf
from tests.infra.tfeval import valid

# --- 1. push shape: Cloud Run strips the token signature behind run.invoker -----------------


def test_service_shape_checks_push_token_claims_behind_cloud_run_iam(
    module: TerraformConfig,
) -> None:
    env = module.locals["service_env_extra"]
    assert env["CUTQ_PUSH_AUTH"] == "claims"
    assert env["CUTQ_PUSH_AUDIENCE"] == "${local.push_audience}"
    # "claims" is only safe behind IAM: the service grants run.invoker to the pusher alone.
    invokers = [
        body
        for body in module.resources["google_cloud_run_v2_service_iam_member"].values()
        if body["role"] == "roles/run.invoker"
    ]
    assert [body["member"] for body in invokers] == [
        "${google_service_account.push_invoker.member}"
    ]
    WorkerConfig.from_env({"CUTQ_PUSH_AUTH": "claims", "CUTQ_PUSH_AUDIENCE": "https://x/"})


# --- 2. push timeout = the push subscription's ack deadline ---------------------------------


def test_push_timeout_is_derived_from_the_ack_deadline(module: TerraformConfig) -> None:
    env = module.locals["service_env_extra"]
    assert env["CUTQ_PUSH_TIMEOUT_S"] == "${tostring(var.push_ack_deadline_seconds)}"
    push = module.resource("google_pubsub_subscription", "jobs_push")
    assert push["ack_deadline_seconds"] == "${var.push_ack_deadline_seconds}"
    default = module.variables["push_ack_deadline_seconds"]["default"]
    assert WorkerConfig().push_timeout_s == default, "worker default differs from the module's"
    config = WorkerConfig.from_env({"CUTQ_PUSH_TIMEOUT_S": str(default)})
    assert config.push_timeout_s == default


# --- 3. autoscaler: current CREMA image, no wedge on a missing metric -----------------------


def test_autoscaler_uses_current_crema_and_survives_a_null_backlog(
    module: TerraformConfig,
) -> None:
    trigger = module.locals["autoscaler_config"]["spec"]["scaledObjects"][0]["spec"]["triggers"][0]
    assert trigger["metadata"]["ignoreNullValues"] == "true"
    image = module.variables["autoscaler_image"]["default"]
    assert image.startswith("us-central1-docker.pkg.dev/cloud-run-oss-images/crema-v1/autoscaler:")
    tag = image.rsplit(":", 1)[1]
    assert tuple(int(p) for p in tag.split(".")) >= (1, 2), f"CREMA {tag} leaks memory"
    readme = (ROOT / "infra" / "README.md").read_text(encoding="utf-8")
    assert "autoscaler:1.0" not in readme
    assert "autoscaler_image" in readme or "$(terraform output -raw autoscaler_image)" in readme


# --- 4. worker pool launch stage and provider floor -----------------------------------------


def test_worker_pool_launch_stage_is_not_pinned_to_beta(module: TerraformConfig) -> None:
    variable = module.variables["worker_pool_launch_stage"]
    assert variable["default"] is None
    pool = module.resource("google_cloud_run_v2_worker_pool", "worker")
    assert "launch_stage" in block(pool, "lifecycle")["ignore_changes"]


@pytest.mark.parametrize("directory", ["modules/cutq", "examples/basic", "examples/service"])
def test_provider_floor_has_the_worker_pool_scaling_fix(directory: str) -> None:
    path = ROOT / "infra" / "terraform" / directory / "versions.tf"
    google = load_tf(path)["terraform"][0]["required_providers"][0]["google"]
    floor = re.search(r">=\s*([0-9.]+)", google["version"])
    assert floor, google["version"]
    # 7.18.0: "fix permadiff on scaling.scaling_mode in google_cloud_run_v2_worker_pool".
    assert tuple(int(p) for p in floor.group(1).split(".")) >= (7, 18), google["version"]


# --- 5. validations that match the platform (fed bad values) ---------------------------------


@pytest.mark.parametrize(
    ("prefix", "ok"),
    [("cutq", True), ("a" * 17, True), ("a" * 18, False), ("a" * 20, False), ("Cutq", False)],
)
def test_name_prefix_fits_every_service_account_id(
    module: TerraformConfig, prefix: str, ok: bool
) -> None:
    assert valid(module.variables, "name_prefix", {"name_prefix": prefix}) is ok
    if ok:  # and then every derived account id is a valid one (6-30 characters)
        for rtype, body in module.resources["google_service_account"].items():
            account = body["account_id"].replace("${var.name_prefix}", prefix)
            assert re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", account), (rtype, account)


@pytest.mark.parametrize(
    ("cpu", "memory", "ok"),
    [
        ("4", "16Gi", True),
        ("6", "24Gi", True),
        ("8", "32Gi", True),
        ("4", "32Gi", False),  # 4 vCPU allow at most 16 GiB
        ("6", "32Gi", False),
        ("8", "8Gi", False),  # an L4 needs 16 GiB
        ("8", "32G", False),
        ("8", "lots", False),
    ],
)
def test_gpu_cpu_and_memory_are_checked_together(
    module: TerraformConfig, cpu: str, memory: str, ok: bool
) -> None:
    values = {"gpu_cpu": cpu, "gpu_memory": memory}
    assert valid(module.variables, "gpu_memory", values) is ok


@pytest.mark.parametrize(
    ("cpu", "memory", "ok"),
    [("8", "16Gi", True), ("2", "8Gi", True), ("2", "16Gi", False), ("3", "4Gi", False)],
)
def test_cpu_only_shape_is_a_cloud_run_shape(
    module: TerraformConfig, cpu: str, memory: str, ok: bool
) -> None:
    values = {"cpu_only_cpu": cpu, "cpu_only_memory": memory}
    both = valid(module.variables, "cpu_only_cpu", values) and valid(
        module.variables, "cpu_only_memory", values
    )
    assert both is ok


@pytest.mark.parametrize(("gpu", "ok"), [("nvidia-l4", True), ("nvidia-a100", False), ("", False)])
def test_gpu_type_is_one_cloud_run_offers(module: TerraformConfig, gpu: str, ok: bool) -> None:
    assert valid(module.variables, "gpu_type", {"gpu_type": gpu}) is ok


@pytest.mark.parametrize(
    ("values", "ok"),
    [
        ({"image": None, "model": "inspyrenet"}, True),  # first apply: no Cloud Run yet
        ({"image": "r/cutq:v1", "model": "u2netp"}, True),
        ({"image": "r/cutq:v1", "model": "inspyrenet"}, False),  # would crash-loop, billed
        ({"image": "r/cutq:v1", "model": "inspyrenet", "checkpoint_uri": "gs://m/c.pth"}, True),
        ({"image": "r/cutq:v1", "model": "inspyrenet", "checkpoint_in_image": True}, True),
        ({"image": "r/cutq:v1", "model": "inspyrenet", "checkpoint_uri": "s3://m/c"}, False),
    ],
)
def test_inspyrenet_needs_a_checkpoint_at_plan_time(
    module: TerraformConfig, values: dict[str, Any], ok: bool
) -> None:
    checks = ["model", "checkpoint_uri"]
    assert all(valid(module.variables, name, values) for name in checks) is ok


def test_examples_do_not_default_to_a_model_without_checkpoint(
    examples: list[TerraformConfig],
) -> None:
    for example in examples:
        args = example.modules["cutq"]
        model = args.get("model")
        if model in ("inspyrenet", None):  # the module's default is inspyrenet
            assert "checkpoint_uri" in args and "checkpoint_in_image" in args, example.directory
        if "model" in example.variables:
            assert example.variables["model"]["default"] == "u2netp", example.directory


# --- 6. build hygiene and the path from an empty project -------------------------------------


def test_state_secrets_and_checkpoints_never_leave_the_machine() -> None:
    gitignore = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    for pattern in (".terraform/", "*.tfstate", "*.tfstate.*", "*.tfvars"):
        assert pattern in gitignore, pattern
    gcloudignore = (ROOT / ".gcloudignore").read_text(encoding="utf-8").split()
    for pattern in ("**/.terraform", "**/*.tfstate", "**/*.tfstate.*", "**/*.tfvars", "**/*.pth"):
        assert pattern in gcloudignore, pattern
    assert ".venv" in gcloudignore and ".git" in gcloudignore


def test_readme_edit_does_not_rebuild_the_dependency_layer() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    deps = text.split(" AS deps", 1)[1].split("\nFROM ", 1)[0]
    copies = [line for line in deps.splitlines() if line.startswith("COPY ")]
    assert copies and all("README" not in line for line in copies), copies


def test_cloud_build_reuses_layers_from_the_registry() -> None:
    config = yaml.safe_load((ROOT / "infra" / "cloudbuild.yaml").read_text(encoding="utf-8"))
    build = next(step for step in config["steps"] if step["id"] == "build")
    script = "\n".join(build["args"])
    assert "--cache-from" in script and "--cache-to" in script and "mode=max" in script


def test_every_example_starts_from_an_empty_project(examples: list[TerraformConfig]) -> None:
    """The README's order: apply without an image (registry, buckets), build into that
    registry, apply again with the image. Each example must allow the first step."""
    for example in examples:
        assert example.variables["image"]["default"] is None, example.directory
        assert "google_project_service" in example.resources, example.directory
        for output in ("artifact_registry_repository", "build_service_account", "build_bucket"):
            assert output in example.outputs, (example.directory, output)
