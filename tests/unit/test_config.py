"""Worker configuration: environment parsing, overrides, validation, unknown keys."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from cutq.core.errors import ConfigError, StorageUnavailable
from cutq.worker.config import WorkerConfig
from cutq.worker.joblog import JobLog
from cutq.worker.outcome import Outcome
from cutq.worker.runtime.hardware import GpuStatus, Platform
from cutq.worker.task import Task


def test_environment_is_typed_and_overridable() -> None:
    config = WorkerConfig.from_env(
        {
            "CUTQ_MAX_BATCH": "16",
            "CUTQ_MAX_WAIT_MS": "5.5",
            "CUTQ_WARMUP": "false",
            "CUTQ_ALLOWED_BUCKETS": "a, b",
            "CUTQ_EVENTS_TOPIC": "",
            "PATH": "/bin",
            "CUTQ_MAX_IN_FLIGHT": "64",
        },
        max_batch=32,
    )
    assert config.max_batch == 32 and config.max_wait_ms == 5.5 and config.warmup is False
    assert config.allowed_buckets == ("a", "b") and config.events_topic is None


def test_unknown_variable_is_an_error_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"CUTQ_MAX_BATCHES.*CUTQ_MAX_BATCH"):
        WorkerConfig.from_env({"CUTQ_MAX_BATCHES": "4"})


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"CUTQ_MAX_BATCH": "eight"}, "cannot read"),
        ({"CUTQ_MAX_BATCH": "0"}, "max_batch"),
        ({"CUTQ_MAX_BATCH": "64", "CUTQ_MAX_IN_FLIGHT": "32"}, "max_in_flight"),
        ({"CUTQ_RESIZE": "huge"}, "resize"),
        ({"CUTQ_DEVICE": "tpu"}, "device"),
        ({"CUTQ_WARMUP": "maybe"}, "cannot read"),
        ({"CUTQ_OUTPUT_BACKGROUND": "red"}, "output_background"),
        ({"CUTQ_OUTPUT_FORMAT": "jpeg"}, "output_background: format 'jpeg'"),
        ({"CUTQ_OUTPUT_FORMAT": "png", "CUTQ_OUTPUT_QUALITY": "80"}, "output_quality"),
        ({"CUTQ_OUTPUT_FORMAT": "webp", "CUTQ_OUTPUT_QUALITY": "101"}, "output_quality"),
        ({"CUTQ_FOREGROUND": "blur"}, "foreground"),
        ({"CUTQ_MATTING_MAX_PIXELS": "0"}, "matting_max_pixels"),
    ],
)
def test_bad_values_are_rejected(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        WorkerConfig.from_env(env)


def test_edge_and_format_settings() -> None:
    config = WorkerConfig.from_env(
        {
            "CUTQ_OUTPUT_FORMAT": "jpeg",
            "CUTQ_OUTPUT_BACKGROUND": "#ffffff",
            "CUTQ_OUTPUT_QUALITY": "85",
            "CUTQ_FOREGROUND": "none",
        }
    )
    assert config.default_output.quality == 85 and config.foreground == "none"
    # the measured default (README, cutq eval --edges): ml where the alpha is sharp
    assert WorkerConfig().default_foreground == "none"
    assert WorkerConfig(model="inspyrenet").default_foreground == "ml"
    assert WorkerConfig(foreground="ml").default_foreground == "ml"
    assert WorkerConfig(model="inspyrenet", foreground="none").default_foreground == "none"


def test_default_output_spec() -> None:
    config = WorkerConfig(
        output="gs://r/p", output_format="webp", output_kind="both", output_background="#ffffff"
    )
    spec = config.default_output
    assert (spec.uri, spec.format, spec.kind, spec.background) == (
        "gs://r/p",
        "webp",
        "both",
        "#ffffff",
    )


def test_batch_and_io_threads_follow_the_device() -> None:
    """One image per batch and two I/O threads per pool on a CPU; 8 and 4 on a GPU."""
    cpu = WorkerConfig(device="cpu")
    assert (cpu.max_batch, cpu.io_threads) == (1, 2)
    gpu = WorkerConfig(device="cuda")
    assert (gpu.max_batch, gpu.io_threads) == (8, 4)
    assert WorkerConfig(device="cpu", max_batch=4, io_threads=6).max_batch == 4
    assert WorkerConfig.from_env({"CUTQ_MAX_BATCH": "", "CUTQ_DEVICE": "cuda:1"}).max_batch == 8
    for gpus, expected in ((1, 8), (0, 1)):  # auto follows the platform found at start-up
        assert WorkerConfig(platform=Platform(gpus)).max_batch == expected
        assert WorkerConfig.from_env({}, Platform(gpus)).max_batch == expected
    # ... a usable GPU: one the driver sees and torch can run on
    unusable = Platform(1, GpuStatus(present=True, usable=False))
    assert WorkerConfig(platform=unusable).max_batch == 1
    assert WorkerConfig(platform=Platform(1, GpuStatus(present=True, usable=True))).max_batch == 8
    assert WorkerConfig().platform == Platform(0)  # built by hand: CPU only, nothing probed


def test_building_a_config_never_imports_or_probes_cuda() -> None:
    """A config is a plain value: neither torch nor the CUDA driver is touched to build one
    (the platform is detected once, at start-up, by the command line)."""
    import subprocess
    import sys

    code = (
        "import ctypes, sys\n"
        "def refuse(*args, **kwargs): raise AssertionError('probed the hardware')\n"
        "ctypes.CDLL = refuse\n"
        "from cutq.worker.config import WorkerConfig\n"
        "WorkerConfig(); WorkerConfig(device='auto', max_batch=None)\n"
        "WorkerConfig.from_env({'CUTQ_DEVICE': 'auto'})\n"
        "assert 'torch' not in sys.modules and 'cutq.worker.runtime.inference' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_push_timeout_defaults_to_the_platforms_and_is_bounded_by_pubsub() -> None:
    # Cloud Run's default request timeout and the Terraform push ack deadline are 300 s.
    assert WorkerConfig().push_timeout_s == 300
    assert WorkerConfig.from_env({"CUTQ_PUSH_TIMEOUT_S": "600"}).push_timeout_s == 600
    for bad in ("601", "9", "0"):
        with pytest.raises(ConfigError, match="push_timeout_s must be 10-600"):
            WorkerConfig.from_env({"CUTQ_PUSH_TIMEOUT_S": bad})


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"CUTQ_PUSH_AUTH": "signature"}, "push_auth must be"),
        ({"CUTQ_PUSH_AUTH": "claims"}, "needs push_audience"),
        ({"CUTQ_PUSH_AUTH": "verify"}, "needs push_audience"),
        ({"CUTQ_PUSH_AUTH": "none", "CUTQ_PUSH_AUDIENCE": "https://a/"}, "contradicts"),
    ],
)
def test_push_auth_choices_are_checked(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        WorkerConfig.from_env(env)


def test_push_auth_picks_the_verifier() -> None:
    from cutq.worker.sources.push import verifier_from_config

    assert verifier_from_config(None, None, None, None) is None
    assert verifier_from_config("https://a/", None, None, "none") is None
    verify = verifier_from_config("https://a/", "p@x", None, None)
    claims = verifier_from_config("https://a/", "p@x", None, "claims")
    assert verify is not None and verify.mode == "verify"
    assert claims is not None and claims.mode == "claims" and claims.service_account == "p@x"


def test_jobs_in_flight_default_to_a_few_seconds_of_the_devices_work() -> None:
    """32 on a GPU (a few batches of 8), 8 on a CPU (~2 s of work at ~5 images/s: holding
    more only holds memory and leases other workers could use); never below max_batch."""
    assert WorkerConfig(device="cpu").max_in_flight == 8
    assert WorkerConfig(device="cuda").max_in_flight == 32
    assert WorkerConfig(device="cpu", max_batch=12).max_in_flight == 12
    assert WorkerConfig(device="cuda", max_batch=64).max_in_flight == 64
    assert WorkerConfig(device="cpu", max_in_flight=3).max_in_flight == 3


def test_every_worker_setting_is_a_field_read_from_the_environment_or_a_flag() -> None:
    """`cutq worker`'s and `cutq serve`'s flags are fields like any other (one surface)."""
    config = WorkerConfig.from_env(
        {"CUTQ_DRAIN_IDLE_S": "30", "CUTQ_PUSH_HOST": "127.0.0.1", "CUTQ_PUSH_PORT": "9000"}
    )
    assert (config.drain_idle_s, config.push_host, config.push_port) == (30.0, "127.0.0.1", 9000)
    assert WorkerConfig.from_env({"CUTQ_DRAIN_IDLE_S": "30"}, drain_idle_s=5.0).drain_idle_s == 5
    defaults = WorkerConfig.from_env({})
    assert (defaults.drain_idle_s, defaults.push_host, defaults.push_port) == (
        None,
        "0.0.0.0",
        8080,
    )
    with pytest.raises(ConfigError, match="drain_idle_s must be"):
        WorkerConfig(drain_idle_s=-1)
    with pytest.raises(ConfigError, match="push_port must be"):
        WorkerConfig(push_port=70000)


def test_the_platform_s_port_and_project_are_read_when_cutq_s_own_are_unset() -> None:
    cloud_run = {"PORT": "8081", "GOOGLE_CLOUD_PROJECT": "shop"}
    assert WorkerConfig.from_env(cloud_run).push_port == 8081
    assert WorkerConfig.from_env(cloud_run).trace_project == "shop"
    own = {**cloud_run, "CUTQ_PUSH_PORT": "9000", "CUTQ_TRACE_PROJECT": "traces"}
    assert WorkerConfig.from_env(own).push_port == 9000
    assert WorkerConfig.from_env(own).trace_project == "traces"
    assert WorkerConfig.from_env(cloud_run, push_port=7000).push_port == 7000  # --port


def test_cutq_trace_project_no_longer_stops_the_worker_and_names_the_traces_project(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """It was read by the job log behind the configuration's back, which rejected it as
    unknown: setting it stopped the worker from starting."""
    config = WorkerConfig.from_env({"CUTQ_TRACE_PROJECT": "shop"})
    assert config.trace_project == "shop"
    delivery = SimpleNamespace(
        data=b"",
        message_id="m1",
        attributes={"traceparent": f"00-{'a' * 32}-{'b' * 16}-01"},
        delivery_attempt=1,
        last_attempt=False,
    )
    with caplog.at_level(logging.INFO, logger="cutq.worker.joblog"):
        JobLog(config.trace_project).settled(
            Task(delivery),  # type: ignore[arg-type]
            Outcome.returned(StorageUnavailable("down")),
        )
    (record,) = caplog.records
    assert record.trace == f"projects/shop/traces/{'a' * 32}"  # type: ignore[attr-defined]
