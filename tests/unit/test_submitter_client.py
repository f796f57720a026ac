"""Submitter configuration, staging and handles, with file:// staging (no servers)."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from cutq.core.contract import OutputSpec
from cutq.core.errors import ConfigError, InputNotFound
from cutq.submitter.client import JobHandle, Submitter, SubmitterConfig, _sniff
from cutq.submitter.function import FunctionConfig
from cutq.submitter.watch import JobsFailed, Result, raise_for_failures

TOPIC = "projects/p/topics/jobs"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def test_importing_the_submitter_never_loads_torch():
    code = (
        "import sys\n"
        "import cutq.submitter.client, cutq.submitter.bulk, cutq.submitter.function\n"
        "import cutq.submitter.commands.submit\n"
        "from cutq.cli import build_parser\n"
        "build_parser().parse_args(['submit', 'x.png', '--topic', 'projects/p/topics/t'])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'PIL' not in sys.modules, 'Pillow was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_config_from_env_and_overrides():
    env = {
        "CUTQ_JOBS_TOPIC": TOPIC,
        "CUTQ_SUBMITTER_OUTPUT": "gs://out/base",
        "CUTQ_SUBMITTER_STAGING": "gs://in/staging",
        "CUTQ_EVENTS_TOPIC": "projects/p/topics/events",
        "CUTQ_MODEL": "u2netp",  # the worker's: not the submitter's business
    }
    config = SubmitterConfig.from_env(env, output="gs://other/x", staging=None)
    assert config.jobs_topic == TOPIC
    assert config.output == "gs://other/x"
    assert config.staging == "gs://in/staging"
    assert config.events_topic == "projects/p/topics/events"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "no jobs topic"),
        ({"CUTQ_JOBS_TOPIC": "jobs"}, "projects/P/topics/T"),
        ({"CUTQ_JOBS_TOPIC": TOPIC, "CUTQ_SUBMITTER_STAGIN": "gs://x"}, "unknown setting"),
        ({"CUTQ_JOBS_TOPIC": TOPIC, "CUTQ_SUBMITTER_OUTPUT": "s3://x"}, "scheme"),
    ],
)
def test_config_errors_name_the_problem(env, message):
    with pytest.raises(ConfigError, match=message):
        SubmitterConfig.from_env(env)


def test_staging_is_content_addressed_and_skips_existing_uploads(tmp_path):
    staging = (tmp_path / "staging").as_uri()
    config = SubmitterConfig(TOPIC, output=(tmp_path / "out").as_uri(), staging=staging)
    submitter = Submitter(config)
    source = tmp_path / "photo.PNG"
    source.write_bytes(PNG)
    first = submitter.prepare(source)
    assert first.input.startswith(staging + "/") and first.input.endswith(".png")
    staged = list((tmp_path / "staging").iterdir())
    assert len(staged) == 1 and staged[0].read_bytes() == PNG
    again = [
        submitter.prepare(PNG),
        submitter.prepare(io.BytesIO(PNG)),
        submitter.prepare(io.BufferedReader(io.BytesIO(PNG))),  # type: ignore[arg-type]
    ]
    assert {job.job_id for job in again} == {first.job_id}
    assert {job.input_generation for job in again} == {first.input_generation}
    assert len(list((tmp_path / "staging").iterdir())) == 1
    other = submitter.prepare(PNG, output=OutputSpec(config.output or "", kind="mask"))
    assert other.job_id != first.job_id  # options are part of the identity


def test_file_uris_are_published_as_they_are_and_plain_paths_need_staging(tmp_path):
    source = tmp_path / "a.png"
    source.write_bytes(PNG)
    submitter = Submitter(SubmitterConfig(TOPIC, output="gs://out/x"))
    job = submitter.prepare(source.as_uri())
    assert job.input == source.as_uri()
    assert job.input_generation == source.stat().st_mtime_ns
    with pytest.raises(ConfigError, match="staging"):
        submitter.prepare(str(source))
    with pytest.raises(InputNotFound):
        submitter.prepare((tmp_path / "missing.png").as_uri())
    with pytest.raises(ConfigError, match="no output"):
        Submitter(SubmitterConfig(TOPIC)).prepare(source.as_uri())


@pytest.mark.parametrize(
    ("head", "ext"),
    [(PNG, "png"), (b"\xff\xd8\xff\xe0", "jpg"), (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp")],
)
def test_sniff(head, ext):
    assert _sniff(head) == ext
    assert _sniff(b"hello") == "bin"


def test_handle_offers_the_earlier_date_when_publishing_crossed_midnight():
    before = datetime(2026, 3, 1, 23, 59, 59, tzinfo=timezone.utc)
    spec = OutputSpec("gs://out/x")
    handle = JobHandle(
        "j1", "gs://in/a.png", {"cutout": "gs://out/x/dt=2026-03-02/j1.png"}, "1", "a",
        spec, before,
    )  # fmt: skip
    assert handle.candidate_result_uris() == [
        {"cutout": "gs://out/x/dt=2026-03-02/j1.png"},
        {"cutout": "gs://out/x/dt=2026-03-01/j1.png"},
    ]
    same_day = JobHandle("j1", "x", {"cutout": "u"}, "1", "a", spec, before - timedelta(days=1))
    assert len(same_day.candidate_result_uris()) == 2  # differs, so both are offered


def test_raise_for_failures_lists_codes():
    results = [
        Result("a", "completed", {"cutout": "gs://o/a.png"}),
        Result("b", "failed", {}, "image_undecodable", "not an image"),
    ]
    with pytest.raises(JobsFailed, match=r"1 job\(s\) failed \(b: image_undecodable\)") as info:
        raise_for_failures(results)
    assert info.value.failed == [results[1]]
    raise_for_failures(results[:1])


def test_function_routes_are_validated_up_front():
    env = {
        "CUTQ_JOBS_TOPIC": TOPIC,
        "CUTQ_FUNCTION_ROUTES": '[{"prefix": "shop/", "output": "gs://res/shop", "kind": "both"},'
        ' {"bucket": "b", "prefix": "", "output": "gs://res/misc", "extensions": [".JPG"]}]',
    }
    config = FunctionConfig.from_env(env)
    assert config.route_for("any", "shop/a.png") is config.routes[0]
    assert config.route_for("b", "x/a.jpg") is config.routes[1]
    assert config.route_for("c", "x/a.jpg") is None
    assert config.route_for("b", "shop/a.txt") is None
    assert config.is_output("res", "shop/dt=2026-01-01/x.png")
    for routes, message in [
        ("[]", "non-empty"),
        ('[{"prefix": "a/"}]', "needs prefix and output"),
        ('[{"prefix": "a/", "output": "gs://res/x", "colour": "red"}]', "colour"),
        ('[{"prefix": "a/", "output": "gs://res/x", "kind": "rgb"}]', "output.kind"),
        ("{", "not JSON"),
    ]:
        with pytest.raises(ConfigError, match=message):
            FunctionConfig.from_env({**env, "CUTQ_FUNCTION_ROUTES": routes})


def test_edge_options_and_formats_through_the_library_and_the_routes(tmp_path):
    from cutq.core.contract import Options
    from cutq.core.errors import InvalidJob

    source = tmp_path / "a.png"
    source.write_bytes(PNG)
    submitter = Submitter(SubmitterConfig(TOPIC, output="gs://out/x"))
    plain = submitter.prepare(source.as_uri())
    job = submitter.prepare(
        source.as_uri(),
        output=OutputSpec("gs://out/x", format="jpeg", background="#ffffff", quality=85),
        options=Options(foreground="none", matting=True, post_process=True),
    )
    assert job.job_id != plain.job_id
    assert job.result_uris()["cutout"].endswith(f"/{job.job_id}.jpg")
    body = job.to_message().decode()
    assert '"quality":85' in body and '"matting":true' in body and '"foreground":"none"' in body
    with pytest.raises(InvalidJob, match="opaque background"):
        submitter.prepare(source.as_uri(), output=OutputSpec("gs://out/x", format="jpeg"))

    env = {"CUTQ_JOBS_TOPIC": TOPIC}
    route = (
        '[{"prefix": "a/", "output": "gs://res/x", "format": "webp", "quality": 80, '
        '"foreground": "ml", "matting": true, "post_process": false}]'
    )
    (parsed,) = FunctionConfig.from_env({**env, "CUTQ_FUNCTION_ROUTES": route}).routes
    assert parsed.output.quality == 80
    assert parsed.options == Options(foreground="ml", matting=True)
    for bad, message in [
        ('{"format": "jpeg"}', "opaque background"),
        ('{"quality": 80}', "output.quality"),
        ('{"matting": "yes"}', "matting"),
        ('{"foreground": "blur"}', "options.foreground"),
    ]:
        routes = '[{"prefix": "a/", "output": "gs://res/x", ' + bad[1:] + "]"
        with pytest.raises(ConfigError, match=message):
            FunctionConfig.from_env({**env, "CUTQ_FUNCTION_ROUTES": routes})
