"""The job contract: round trips, defaults, derived ids, and every rejection path."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from cutq.core.contract import CONTENT_TYPES, Options, OutputSpec, derive_job_id, new_job, parse_job
from cutq.core.errors import InvalidJob, InvalidMessage
from cutq.core.events import Event, OutputInfo, event_from_cloudevent

DEFAULTS = OutputSpec(uri="gs://results/cutouts")
WHEN = datetime(2026, 11, 23, 23, 59, 59, tzinfo=timezone.utc)


def parse(body: object, **kwargs: object):  # type: ignore[no-untyped-def]
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_job(data, defaults=DEFAULTS, publish_time=WHEN, **kwargs)  # type: ignore[arg-type]


def test_minimal_job_takes_defaults_and_derives_a_stable_id() -> None:
    job = parse({"input": "gs://inputs/a.jpg"})
    assert job.output == DEFAULTS
    assert job.job_id == parse({"input": "gs://inputs/a.jpg"}).job_id
    assert job.job_id != parse({"input": "gs://inputs/a.jpg", "input_generation": 7}).job_id
    assert job.job_id != parse({"input": "gs://inputs/a.jpg", "options": {"threshold": 0.5}}).job_id
    assert job.result_uris() == {"cutout": f"gs://results/cutouts/dt=2026-11-23/{job.job_id}.png"}


def test_full_job_round_trips_through_its_message() -> None:
    job = new_job(
        "gs://inputs/dir/a b.jpg",
        OutputSpec("gs://out/x", "webp", "both", "#ffffff"),
        input_generation=123,
        model="u2netp",
        options=Options(resize="dynamic", threshold=0.4),
        attributes={"sku": "123"},
        job_id="order-1.a",
    )
    again = parse(job.to_message())
    assert (
        again.job_id,
        again.input,
        again.output,
        again.input_generation,
        again.model,
        again.options,
        dict(again.attributes),
    ) == (
        "order-1.a",
        "gs://inputs/dir/a b.jpg",
        job.output,
        123,
        "u2netp",
        job.options,
        {"sku": "123"},
    )
    assert again.result_uris() == {
        "cutout": "gs://out/x/dt=2026-11-23/order-1.a.webp",
        "mask": "gs://out/x/dt=2026-11-23/order-1.a.mask.webp",
    }


def test_partial_output_is_completed_from_defaults() -> None:
    job = parse({"input": "gs://inputs/a.png", "output": {"kind": "mask"}})
    assert job.output == OutputSpec(uri="gs://results/cutouts", kind="mask")
    assert (
        parse({"input": "gs://inputs/a.png", "output": "gs://outs/p"}).output.uri == "gs://outs/p"
    )


def test_result_path_uses_the_utc_date_of_publish_time() -> None:
    late = datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc).astimezone()
    job = parse_job(b'{"input": "gs://inputs/a.png"}', defaults=DEFAULTS, publish_time=late)
    assert "/dt=2026-11-24/" in job.result_uris()["cutout"]


def test_derived_id_is_independent_of_key_order() -> None:
    a = derive_job_id("gs://inputs/a", 1, DEFAULTS, None, Options(resize="static", threshold=0.5))
    b = derive_job_id("gs://inputs/a", 1, DEFAULTS, None, Options(threshold=0.5, resize="static"))
    assert a == b and len(a) == 32


@pytest.mark.parametrize(
    ("data", "error", "fragment"),
    [
        (b"\xff\xfe not utf8", InvalidMessage, "not UTF-8"),
        (b"{not json", InvalidMessage, "not JSON"),
        (b"x" * 70_000, InvalidMessage, "limit"),
        (b"[]", InvalidJob, "expected a JSON object"),
        (b"{}", InvalidJob, "input: required"),
        (b'{"input": "gs://inputs/a", "colour": 1}', InvalidJob, "unknown field(s) colour"),
        (b'{"input": 5}', InvalidJob, "input: expected"),
        (b'{"input": "http://x/a.png"}', InvalidJob, "unsupported URI"),
        (b'{"input": "gs://UPPER/a.png"}', InvalidJob, "invalid bucket"),
        (b'{"input": "gs://inputs/a", "v": 2}', InvalidJob, "unsupported contract version"),
        (b'{"input": "gs://inputs/a", "output": {"format": "gif"}}', InvalidJob, "output.format"),
        (b'{"input": "gs://inputs/a", "output": {"kind": "alpha"}}', InvalidJob, "output.kind"),
        (b'{"input": "gs://inputs/a", "output": {"size": 1}}', InvalidJob, "unknown field(s) size"),
        (
            b'{"input": "gs://inputs/a", "output": {"background": "white"}}',
            InvalidJob,
            "background",
        ),
        (
            b'{"input": "gs://inputs/a", "output": {"kind": "mask", "background": "#000000"}}',
            InvalidJob,
            "only applies",
        ),
        (b'{"input": "gs://inputs/a", "options": {"threshold": "0.5"}}', InvalidJob, "threshold"),
        (
            b'{"input": "gs://inputs/a", "options": {"threshold": 1.5}}',
            InvalidJob,
            "between 0 and 1",
        ),
        (
            b'{"input": "gs://inputs/a", "options": {"resize": "huge"}}',
            InvalidJob,
            "options.resize",
        ),
        (b'{"input": "gs://inputs/a", "input_generation": -1}', InvalidJob, "input_generation"),
        (b'{"input": "gs://inputs/a", "input_generation": true}', InvalidJob, "input_generation"),
        (b'{"input": "gs://inputs/a", "job_id": "../../etc/passwd"}', InvalidJob, "job_id"),
        (b'{"input": "gs://inputs/a", "job_id": ""}', InvalidJob, "job_id"),
        (b'{"input": "gs://inputs/a", "job_id": "abc\\n"}', InvalidJob, "job_id"),
        (b'{"input": "gs://inputs/a\\r\\nb"}', InvalidJob, "control characters"),
        (b'{"input": "file:///tmp/a%00.png"}', InvalidJob, "encodes control characters"),
        (b'{"input": "file:///tmp/a%0A.png"}', InvalidJob, "encodes control characters"),
        (
            b'{"input": "gs://inputs/' + b"x" * 1025 + b'"}',
            InvalidJob,
            "1025 bytes; Cloud Storage allows 1024",
        ),
        (
            b'{"input": "gs://inputs/a", "output": "gs://out/' + b"y" * 1000 + b'"}',
            InvalidJob,
            "output (cutout result): object name is",
        ),
        (b'{"input": "gs://inputs/a", "model": "Bad Model"}', InvalidJob, "model"),
        (b'{"input": "gs://inputs/a", "attributes": {"k": 1}}', InvalidJob, "strings"),
        (b'{"input": "gs://inputs/a", "attributes": {"googx": "1"}}', InvalidJob, "invalid key"),
    ],
)
def test_rejections_name_the_problem(data: bytes, error: type, fragment: str) -> None:
    with pytest.raises(error) as raised:
        parse(data)
    assert fragment in str(raised.value)
    assert raised.value.code in ("invalid_message", "invalid_job")


def test_too_many_attributes_is_rejected() -> None:
    with pytest.raises(InvalidJob, match="at most"):
        parse({"input": "gs://inputs/a", "attributes": {f"k{i}": "v" for i in range(40)}})


def test_gcs_notification_is_a_job_with_worker_defaults() -> None:
    attributes = {
        "eventType": "OBJECT_FINALIZE",
        "bucketId": "uploads",
        "objectId": "shop/cat 1.jpg",
        "objectGeneration": "1700000000000001",
        "payloadFormat": "JSON_API_V1",
    }
    body = json.dumps(
        {
            "kind": "storage#object",
            "bucket": "uploads",
            "name": "shop/cat 1.jpg",
            "generation": "1700000000000001",
            "size": "1234",
        }
    ).encode()
    job = parse(body, attributes=attributes)
    assert job.input == "gs://uploads/shop/cat 1.jpg"
    assert job.input_generation == 1700000000000001
    assert job.output == DEFAULTS
    assert job.job_id == parse(body, attributes=attributes).job_id


def test_a_notification_for_another_generation_of_the_object_is_another_job() -> None:
    # An overwritten object (same name, new generation) must be processed again: its job id
    # cannot collide with the old content's, whose result may already exist.
    attributes = {"eventType": "OBJECT_FINALIZE", "bucketId": "uploads", "objectId": "a.jpg"}
    first = parse(b"{}", attributes={**attributes, "objectGeneration": "1"})
    second = parse(b"{}", attributes={**attributes, "objectGeneration": "2"})
    assert (first.input_generation, second.input_generation) == (1, 2)
    assert first.job_id != second.job_id
    from_body = parse(json.dumps({"generation": "2"}).encode(), attributes=attributes)
    assert (from_body.input_generation, from_body.job_id) == (2, second.job_id)


def test_notification_without_object_is_rejected() -> None:
    with pytest.raises(InvalidJob, match="objectId"):
        parse(b"{}", attributes={"eventType": "OBJECT_FINALIZE", "bucketId": "b"})


def test_event_is_a_cloudevent_and_round_trips() -> None:
    event = Event(
        job_id="j1",
        status="completed",
        input="gs://inputs/a",
        outputs=(OutputInfo("cutout", "gs://outs/dt=2026-11-23/j1.png", 10, 4, 3),),
        model={"name": "u2netp", "version": "abc"},
        attempt=2,
        batch_size=8,
        timings_ms={"infer": 12.345, "total": 50.0},
        attributes={"sku": "9"},
        time=WHEN,
    )
    document = json.loads(event.to_json())
    assert document["specversion"] == "1.0"
    assert document["type"] == "dev.cutq.job.completed"
    assert document["id"] == "j1:completed"
    assert document["data"]["timings_ms"]["infer"] == 12.35
    back = event_from_cloudevent(document)
    assert back.outputs == event.outputs and back.time == WHEN and back.attempt == 2
    assert event.message_attributes() == {"sku": "9", "job_id": "j1", "status": "completed"}


def test_a_duplicate_completion_round_trips_as_a_duplicate() -> None:
    job = parse(b'{"input": "gs://inputs/a", "attributes": {"sku": "1"}}')
    outputs = (OutputInfo("cutout", "gs://o/dt=2026-11-23/x.png", 5, 2, 2),)
    event = Event.completed(job, outputs, attempt=3, batch_size=8, duplicate=True)
    assert event.duplicate and event.batch_size is None  # not computed by this delivery
    back = event_from_cloudevent(json.loads(event.to_json()))
    assert back.duplicate is True and back.attempt == 3 and back.outputs == outputs
    fresh = event_from_cloudevent(json.loads(Event.completed(job, outputs).to_json()))
    assert fresh.duplicate is False and fresh.attributes == {"sku": "1"}


def test_event_failed_keeps_the_code_and_bounds_the_message() -> None:
    event = Event.failed("j3", "gs://inputs/a", "image_too_large", "x" * 5000, attempt=2)
    data = event.to_cloudevent()["data"]
    assert data["error"]["code"] == "image_too_large" and len(data["error"]["message"]) == 1000
    assert event_from_cloudevent(event.to_cloudevent()).error_code == "image_too_large"


def test_failed_event_carries_code_and_message() -> None:
    event = Event(
        job_id="j2",
        status="failed",
        input=None,
        error_code="image_undecodable",
        error_message="truncated",
    )
    document = event.to_cloudevent()
    assert document["data"]["error"] == {"code": "image_undecodable", "message": "truncated"}
    assert event.message_attributes()["error_code"] == "image_undecodable"


def test_salvage_job_id_from_an_invalid_job() -> None:
    from cutq.core.contract import salvage_job_id

    assert salvage_job_id(b'{"job_id": "order-7", "input": 5}') == "order-7"
    assert salvage_job_id(b'{"job_id": "../x"}') is None
    assert salvage_job_id(b"[1]") is None and salvage_job_id(b"\xff") is None


# --- edge options and formats (issue 16) ---------------------------------------------------


def test_ids_of_jobs_without_the_newer_options_are_unchanged() -> None:
    """Values computed by the contract before quality/foreground/matting/post_process existed:
    a resubmitted job must stay the same job (and find its results)."""
    assert (
        derive_job_id("gs://inputs/a.jpg", None, OutputSpec("gs://out/x"), None, Options())
        == "e6e6c9a23cdf355d8c26fbf9690efe62"
    )
    assert (
        derive_job_id(
            "gs://inputs/a.jpg",
            7,
            OutputSpec("gs://out/x", "webp", "both", "#ffffff"),
            "u2netp",
            Options(resize="dynamic", threshold=0.5),
        )
        == "135369ee4d2ac5b359ddb2005ffe4ec4"
    )
    # false flags are the defaults: the same job as leaving them out
    assert (
        parse(b'{"input": "gs://inputs/a.jpg", "options": {"matting": false}}').job_id
        == parse(b'{"input": "gs://inputs/a.jpg"}').job_id
    )


@pytest.mark.parametrize(
    ("output", "options"),
    [
        (OutputSpec("gs://out/x", quality=80, format="webp"), Options()),
        (OutputSpec("gs://out/x"), Options(foreground="ml")),
        (OutputSpec("gs://out/x"), Options(foreground="none")),
        (OutputSpec("gs://out/x"), Options(matting=True)),
        (OutputSpec("gs://out/x"), Options(post_process=True)),
        (OutputSpec("gs://out/x", format="jpeg", background="#ffffff"), Options()),
    ],
)
def test_each_newer_option_makes_another_job(output: OutputSpec, options: Options) -> None:
    plain = derive_job_id("gs://inputs/a.jpg", None, OutputSpec("gs://out/x"), None, Options())
    assert derive_job_id("gs://inputs/a.jpg", None, output, None, options) != plain
    job = new_job("gs://inputs/a.jpg", output, options=options)
    assert parse(job.to_message()) == replace(job, publish_time=WHEN)


def test_edge_options_parse() -> None:
    job = parse(
        b'{"input": "gs://inputs/a.jpg", "output": {"format": "webp", "quality": 75}, '
        b'"options": {"foreground": "none", "matting": true, "post_process": true}}'
    )
    assert job.output.quality == 75 and job.output.format == "webp"
    assert job.options == Options(foreground="none", matting=True, post_process=True)


def test_jpeg_results_are_named_jpg() -> None:
    job = parse(
        b'{"input": "gs://inputs/a.jpg", "output": {"format": "jpeg", "background": "#fff000"}}'
    )
    assert job.result_uris()["cutout"].endswith(f"/{job.job_id}.jpg")
    job = parse(b'{"input": "gs://inputs/a.jpg", "output": {"format": "jpeg", "kind": "mask"}}')
    assert job.result_uris()["mask"].endswith(f"/{job.job_id}.mask.jpg")
    assert CONTENT_TYPES["jpeg"] == "image/jpeg" and CONTENT_TYPES["avif"] == "image/avif"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('"output": {"format": "jpeg"}', "needs an opaque background"),
        ('"output": {"format": "jpeg", "kind": "both"}', "needs an opaque background"),
        ('"output": {"format": "jpeg", "background": "#ffffff80"}', "translucent"),
        ('"output": {"format": "png", "quality": 80}', "output.quality: only for"),
        ('"output": {"format": "webp", "quality": 0}', "output.quality: must be 1-100"),
        ('"output": {"format": "webp", "quality": 101}', "output.quality: must be 1-100"),
        ('"output": {"format": "jpeg", "kind": "mask", "quality": 9.5}', "output.quality"),
        ('"output": {"format": "avif", "quality": true}', "output.quality"),
        ('"options": {"foreground": "blur"}', "options.foreground"),
        ('"options": {"matting": "yes"}', "options.matting"),
        ('"options": {"post_process": 1}', "options.post_process"),
    ],
)
def test_edge_options_are_validated(body: str, fragment: str) -> None:
    with pytest.raises(InvalidJob) as raised:
        parse(('{"input": "gs://inputs/a.jpg", ' + body + "}").encode())
    assert fragment in str(raised.value)


def test_jpeg_masks_and_opaque_backgrounds_are_fine() -> None:
    parse(b'{"input": "gs://inputs/a.jpg", "output": {"format": "jpeg", "kind": "mask"}}')
    parse(
        b'{"input": "gs://inputs/a.jpg", "output": {"format": "jpeg", "background": "#123456ff"}}'
    )
    parse(b'{"input": "gs://inputs/a.jpg", "output": {"format": "avif", "quality": 1}}')


def test_a_default_quality_does_not_follow_a_job_to_png() -> None:
    defaults = OutputSpec("gs://out/x", format="webp", quality=80)
    job = parse_job(b'{"input": "gs://inputs/a", "output": {"format": "png"}}', defaults=defaults)
    assert job.output.quality is None
    job = parse_job(b'{"input": "gs://inputs/a"}', defaults=defaults)
    assert job.output.quality == 80
