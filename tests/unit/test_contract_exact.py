"""The job and event contract to the byte: what other versions and other programs rely on.

A derived job id must not change between releases (a resubmission is the same job only if
it hashes the same; skip-done looks results up by it); a job message and an event document
are read by other programs; each refusal names its field. Golden values, not round trips
alone, because a round trip through the same wrong code still agrees with itself.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from cutq.core.contract import (
    MAX_ATTRIBUTE_KEY_BYTES,
    MAX_ATTRIBUTE_VALUE_BYTES,
    MAX_ATTRIBUTES,
    MAX_MESSAGE_BYTES,
    Job,
    Options,
    OutputSpec,
    derive_job_id,
    new_job,
    parse_job,
    salvage_job_id,
)
from cutq.core.errors import InvalidJob, InvalidMessage
from cutq.core.events import Event, OutputInfo, event_from_cloudevent

DEFAULTS = OutputSpec(uri="gs://results/cutouts")
WHEN = datetime(2026, 11, 23, 23, 59, 59, tzinfo=timezone.utc)
FULL_OUTPUT = OutputSpec("gs://out/x", "webp", "both", "#ffffff")
FULL_OPTIONS = Options("dynamic", 0.5)


def parse(body: object, **kwargs: object) -> Job:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_job(data, defaults=DEFAULTS, publish_time=WHEN, **kwargs)  # type: ignore[arg-type]


def refusal(body: object, **kwargs: object) -> str:
    with pytest.raises((InvalidJob, InvalidMessage)) as caught:
        parse(body, **kwargs)
    return str(caught.value)


# --- job ids and job messages -------------------------------------------------------------


def test_derived_job_ids_never_change_between_releases() -> None:
    assert derive_job_id("gs://inputs/a.png", 7, OutputSpec("gs://out/x"), None, Options()) == (
        "79bd0abf6b40f976e50a1268227f85a7"
    )
    assert derive_job_id("gs://inputs/a.png", None, FULL_OUTPUT, "u2netp", FULL_OPTIONS) == (
        "f8537f304b042bd61433e5878d246aa7"
    )


def test_every_part_of_a_job_goes_into_its_derived_id() -> None:
    base = dict(input_generation=7, model="u2netp", options=FULL_OPTIONS)
    job = new_job("gs://inputs/a.png", FULL_OUTPUT, **base)  # type: ignore[arg-type]
    assert job.job_id == derive_job_id("gs://inputs/a.png", 7, FULL_OUTPUT, "u2netp", FULL_OPTIONS)
    variants = [
        new_job("gs://inputs/b.png", FULL_OUTPUT, **base),  # type: ignore[arg-type]
        new_job("gs://inputs/a.png", OutputSpec("gs://out/x"), **base),  # type: ignore[arg-type]
        new_job("gs://inputs/a.png", FULL_OUTPUT, **{**base, "input_generation": 8}),  # type: ignore[arg-type]
        new_job("gs://inputs/a.png", FULL_OUTPUT, **{**base, "model": None}),  # type: ignore[arg-type]
        new_job("gs://inputs/a.png", FULL_OUTPUT, **{**base, "options": Options()}),  # type: ignore[arg-type]
    ]
    assert len({job.job_id, *(other.job_id for other in variants)}) == 6
    assert new_job("gs://inputs/a.png", DEFAULTS).options == Options()
    parsed = parse(
        {
            "input": "gs://inputs/a.png",
            "input_generation": 7,
            "model": "u2netp",
            "options": {"resize": "dynamic", "threshold": 0.5},
            "output": FULL_OUTPUT.canonical(),
        }
    )
    assert parsed.job_id == job.job_id  # the worker derives what the client derived


def test_a_job_message_is_compact_sorted_json() -> None:
    job = new_job(
        "gs://inputs/a.png",
        FULL_OUTPUT,
        input_generation=7,
        model="u2netp",
        options=FULL_OPTIONS,
        attributes={"sku": "9"},
    )
    assert job.to_message() == (
        b'{"attributes":{"sku":"9"},"input":"gs://inputs/a.png","input_generation":7,'
        b'"job_id":"49b69973915897390462df466ed770b1","model":"u2netp",'
        b'"options":{"resize":"dynamic","threshold":0.5},'
        b'"output":{"background":"#ffffff","format":"webp","kind":"both","uri":"gs://out/x"},'
        b'"v":1}'
    )
    bare = new_job("gs://inputs/a.png", DEFAULTS, job_id="j")
    assert bare.to_message() == (
        b'{"input":"gs://inputs/a.png","job_id":"j",'
        b'"output":{"format":"png","kind":"cutout","uri":"gs://results/cutouts"},"v":1}'
    )
    assert parse(job.to_message()) == Job(**{**vars(job), "publish_time": WHEN})


# --- result paths ---------------------------------------------------------------------------


def test_result_paths_use_the_utc_date_whatever_the_local_zone(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        # 21:00 UTC on the 23rd is already the 24th in Kolkata and in the publisher's zone.
        published = datetime(2026, 11, 24, 2, 0, tzinfo=timezone(timedelta(hours=5)))
        job = new_job("gs://inputs/a.png", OutputSpec("gs://out/x/", kind="both"), job_id="j")
        job = Job(**{**vars(job), "publish_time": published})
        assert job.result_uris() == {
            "cutout": "gs://out/x/dt=2026-11-23/j.png",
            "mask": "gs://out/x/dt=2026-11-23/j.mask.png",
        }
        mask_only = Job(**{**vars(job), "output": OutputSpec("gs://out/x", "webp", "mask")})
        assert mask_only.result_uris() == {"mask": "gs://out/x/dt=2026-11-23/j.mask.webp"}
    finally:
        monkeypatch.undo()
        time.tzset()


def test_parse_job_dates_a_job_without_publish_time_now_in_utc() -> None:
    job = parse_job(b'{"input": "gs://inputs/a.png"}', defaults=DEFAULTS)
    assert job.publish_time.tzinfo is not None
    assert abs(job.publish_time - datetime.now(timezone.utc)) < timedelta(minutes=1)


# --- refusals name their field --------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "starts"),
    [
        ([1], "job: expected a JSON object"),
        ({"input": "gs://inputs/a", "extra": 1}, "job: unknown field(s) extra"),
        ({"input": "gs://inputs/a", "input_generation": -1}, "input_generation: expected"),
        ({"input": "gs://inputs/a", "model": "Big Model"}, "model: expected a string"),
        ({"input": "gs://inputs/a", "output": [1]}, "output: expected a JSON object"),
        ({"input": "gs://inputs/a", "output": {"x": 1}}, "output: unknown field(s) x"),
        ({"input": "gs://inputs/a", "output": {"uri": "ftp://x"}}, "output.uri: unsupported URI"),
        ({"input": "gs://inputs/a", "output": {"format": "gif"}}, "output.format: expected one of"),
        ({"input": "gs://inputs/a", "output": {"kind": "all"}}, "output.kind: expected one of"),
        ({"input": "gs://inputs/a", "options": [1]}, "options: expected a JSON object"),
        ({"input": "gs://inputs/a", "options": {"x": 1}}, "options: unknown field(s) x"),
        (
            {"input": "gs://inputs/a", "options": {"resize": "big"}},
            "options.resize: expected one of",
        ),
        ({"input": "gs://inputs/a", "options": {"threshold": 0.0}}, "options.threshold: must be"),
        ({"input": "gs://inputs/a", "options": {"threshold": 1.0}}, "options.threshold: must be"),
        ({"input": "gs://inputs/a", "attributes": [1]}, "attributes: expected a JSON object"),
    ],
)
def test_each_refusal_names_its_field(body: object, starts: str) -> None:
    assert refusal(body).startswith(starts)


def test_a_notification_refusal_names_the_notification_field() -> None:
    attributes = {"eventType": "OBJECT_FINALIZE", "bucketId": "uploads", "objectId": "a.jpg"}
    assert refusal(b"{}", attributes={**attributes, "objectGeneration": "x"}).startswith(
        "objectGeneration: expected a non-negative integer"
    )
    assert refusal(b'{"generation": "x"}', attributes=attributes).startswith("generation:")
    bad_name = {**attributes, "objectId": "a\nb"}
    assert refusal(b"{}", attributes=bad_name).startswith("objectId: URI contains control")
    empty_bucket = {"eventType": "OBJECT_FINALIZE", "bucketId": "", "objectId": "a"}
    assert refusal(b"{}", attributes=empty_bucket) == (
        "notification: bucketId and objectId attributes are required"
    )
    with_bucket = {"eventType": "OBJECT_FINALIZE", "bucketId": "b"}
    assert "bucketId and objectId" in refusal(b"{}", attributes=with_bucket)


def test_a_job_with_a_bucket_id_attribute_but_no_event_type_is_a_job() -> None:
    job = parse({"input": "gs://inputs/a.png"}, attributes={"bucketId": "elsewhere"})
    assert job.input == "gs://inputs/a.png"


def test_notification_job_carries_the_workers_defaults_and_options() -> None:
    attributes = {"eventType": "OBJECT_FINALIZE", "bucketId": "uploads", "objectId": "a.jpg"}
    job = parse(b"{}", attributes=attributes)
    assert job.options == Options() and job.output == DEFAULTS and job.publish_time == WHEN
    assert job.job_id == derive_job_id("gs://uploads/a.jpg", None, DEFAULTS, None, Options())


@pytest.mark.parametrize("threshold", [1e-9, 0.5, 1 - 1e-9, 1])
def test_thresholds_strictly_between_zero_and_one_pass(threshold: float) -> None:
    if threshold == 1:
        assert refusal({"input": "gs://inputs/a", "options": {"threshold": 1}}).startswith(
            "options.threshold: must be between 0 and 1"
        )
        return
    job = parse({"input": "gs://inputs/a", "options": {"threshold": threshold, "resize": "static"}})
    assert job.options == Options("static", threshold)


def test_output_fields_come_from_the_job_then_the_defaults() -> None:
    defaults = OutputSpec("gs://defaults/x", "webp", "both", "#000000")
    job = parse_job(
        json.dumps({"input": "gs://inputs/a", "output": {"uri": "gs://outs/y"}}).encode(),
        defaults=defaults,
        publish_time=WHEN,
    )
    assert job.output == OutputSpec("gs://outs/y", "webp", "both", "#000000")


def test_attribute_limits_are_inclusive() -> None:
    most = {f"k{i}": "v" for i in range(MAX_ATTRIBUTES)}
    assert parse({"input": "gs://inputs/a", "attributes": most}).attributes == most
    longest = {"k" * MAX_ATTRIBUTE_KEY_BYTES: "v" * MAX_ATTRIBUTE_VALUE_BYTES}
    assert parse({"input": "gs://inputs/a", "attributes": longest}).attributes == longest
    for too_long in ({"k" * 257: "v"}, {"k": "v" * 1025}):
        assert refusal({"input": "gs://inputs/a", "attributes": too_long}).startswith("attributes")


def test_a_message_of_exactly_the_limit_is_read() -> None:
    body = b'{"input": "gs://inputs/a.png"}'
    data = body[:-1] + b" " * (MAX_MESSAGE_BYTES - len(body)) + b"}"
    assert len(data) == MAX_MESSAGE_BYTES and parse(data).input == "gs://inputs/a.png"
    padded = b'{"job_id": "j7"' + b" " * (MAX_MESSAGE_BYTES - 16) + b"}"
    assert len(padded) == MAX_MESSAGE_BYTES and salvage_job_id(padded) == "j7"
    assert salvage_job_id(padded + b" ") is None


# --- events ---------------------------------------------------------------------------------


def completed_event() -> Event:
    job = new_job("gs://inputs/a.png", DEFAULTS, job_id="j1", attributes={"sku": "9"})
    outputs = (OutputInfo("cutout", "gs://outs/dt=2026-11-23/j1.png", 10, 4, 3),)
    return Event.completed(
        job,
        outputs,
        model={"name": "u2netp", "version": "1"},
        attempt=2,
        batch_size=8,
        timings_ms={"infer": 12.3456},
    ).with_time(WHEN)


def test_a_completed_event_document_to_the_field() -> None:
    assert completed_event().to_cloudevent() == {
        "specversion": "1.0",
        "id": "j1:completed",
        "source": "//cutq/worker",
        "type": "dev.cutq.job.completed",
        "subject": "j1",
        "time": "2026-11-23T23:59:59Z",
        "datacontenttype": "application/json",
        "data": {
            "job_id": "j1",
            "status": "completed",
            "input": "gs://inputs/a.png",
            "outputs": [
                {
                    "kind": "cutout",
                    "uri": "gs://outs/dt=2026-11-23/j1.png",
                    "size": 10,
                    "width": 4,
                    "height": 3,
                }
            ],
            "model": {"name": "u2netp", "version": "1"},
            "attempt": 2,
            "batch_size": 8,
            "timings_ms": {"infer": 12.35},
            "attributes": {"sku": "9"},
            "duplicate": False,
        },
    }


def test_a_failed_event_document_to_the_field() -> None:
    event = Event.failed(
        "j2",
        "gs://inputs/b.png",
        "image_too_large",
        "too big",
        attributes={"sku": "1"},
        model={"name": "u2netp", "version": "1"},
        attempt=3,
        timings_ms={"total": 1.0},
    ).with_time(WHEN)
    data = event.to_cloudevent()["data"]
    assert data == {
        "job_id": "j2",
        "status": "failed",
        "input": "gs://inputs/b.png",
        "outputs": [],
        "model": {"name": "u2netp", "version": "1"},
        "attempt": 3,
        "batch_size": None,
        "timings_ms": {"total": 1.0},
        "attributes": {"sku": "1"},
        "duplicate": False,
        "error": {"code": "image_too_large", "message": "too big"},
    }
    assert event_from_cloudevent(event.to_cloudevent()) == event


def test_events_read_back_equal_field_by_field() -> None:
    event = completed_event()
    back = event_from_cloudevent(json.loads(event.to_json()))
    assert back == Event(**{**vars(event), "timings_ms": {"infer": 12.35}})
    assert event.message_attributes() == {"sku": "9", "job_id": "j1", "status": "completed"}
    minimal = {
        "time": "2026-11-23T23:59:59Z",
        "data": {"job_id": "j3", "status": "completed"},
    }
    sparse = event_from_cloudevent(minimal)
    assert (sparse.outputs, sparse.timings_ms, sparse.attributes, sparse.duplicate) == (
        (),
        {},
        {},
        False,
    )
    assert (sparse.input, sparse.model, sparse.batch_size, sparse.error_message) == (
        None,
        None,
        None,
        None,
    )


def test_a_job_attribute_never_poses_as_the_events_own() -> None:
    job = new_job(
        "gs://inputs/a.png", DEFAULTS, job_id="j1", attributes={"error_code": "x", "sku": "1"}
    )
    assert Event.completed(job, ()).message_attributes() == {
        "sku": "1",
        "job_id": "j1",
        "status": "completed",
    }


def test_an_event_is_compact_json() -> None:
    assert b", " not in completed_event().to_json() and b'": ' not in completed_event().to_json()


def test_unpaired_surrogates_are_refused_wherever_they_are() -> None:
    assert refusal(b'{"input": "gs://inputs/a.png", "attributes": {"k": "\\ud800"}}') == (
        "message contains unpaired UTF-16 surrogates (\\ud800-\\udfff)"
    )


def test_an_output_uri_ending_in_x_keeps_its_last_letter() -> None:
    job = new_job("gs://inputs/a.png", OutputSpec("gs://outs/BOX"), job_id="j")
    job = Job(**{**vars(job), "publish_time": WHEN})
    assert job.result_uris() == {"cutout": "gs://outs/BOX/dt=2026-11-23/j.png"}
