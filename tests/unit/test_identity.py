"""A job's ref and name, and result names from a template: validated, in the job id only when
set, carried into the event (body and attributes), stable on redelivery, never shared."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from cutq.core.contract import Identity, OutputSpec, derive_job_id, new_job, parse_job
from cutq.core.errors import InvalidJob, OutputCollision
from cutq.core.events import Event, event_from_cloudevent
from cutq.core.renditions import presets
from cutq.core.storage import ObjectInfo
from cutq.worker.render import results

OUT = OutputSpec("gs://bucket/out")
DAY = datetime(2026, 12, 7, 12, tzinfo=timezone.utc)
TEMPLATE = "{ref}_{stem}_{hash}.{rendition}.{ext}"


def job(uri: str = "gs://bucket/in/a.jpg", **fields):
    identity = Identity(fields.pop("ref", None), fields.pop("name", None))
    output = fields.pop("output", OUT)
    return new_job(uri, output, input_generation=1, identity=identity, **fields)


def redelivered(original, **attributes):
    """The same message parsed again by a worker, as a redelivery is."""
    return parse_job(original.to_message(), defaults=OUT, publish_time=DAY)


def test_ref_and_name_travel_in_the_message_and_only_a_ref_changes_the_id() -> None:
    plain = job()
    assert plain.job_id == derive_job_id("gs://bucket/in/a.jpg", 1, OUT, None, plain.options)
    assert "ref" not in json.loads(plain.to_message())
    tagged = job(ref="SKU-123", name="SKU-123/front.jpg")
    body = json.loads(tagged.to_message())
    assert (body["ref"], body["name"]) == ("SKU-123", "SKU-123/front.jpg")
    again = redelivered(tagged)
    assert (again.ref, again.name, again.job_id) == ("SKU-123", "SKU-123/front.jpg", tagged.job_id)
    # The same bytes for two products are two jobs; under another name, the same job.
    assert job(ref="SKU-456", name="SKU-123/front.jpg").job_id != tagged.job_id
    assert job(ref="SKU-123", name="SKU-123/back.jpg").job_id == tagged.job_id
    assert job(name="SKU-123/front.jpg").job_id == plain.job_id


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"ref": "SKU\n1"}, "ref: contains control characters"),
        ({"ref": "SKU\u0085"}, "ref: contains control characters"),
        ({"ref": ""}, "ref: expected a non-empty string"),
        ({"ref": 123}, "ref: expected a non-empty string"),
        ({"ref": "é" * 129}, "ref: 258 bytes of UTF-8; the limit is 256"),
        ({"name": "a/" * 513}, "name: 1026 bytes of UTF-8; the limit is 1024"),
        ({"name": "front\r.jpg"}, "name: contains control characters"),
    ],
)
def test_bad_ref_or_name_is_an_invalid_job_naming_the_field(fields, message) -> None:
    body = {"input": "gs://bucket/in/a.jpg", **fields}
    with pytest.raises(InvalidJob, match=message.replace("(", r"\(")):
        parse_job(json.dumps(body).encode(), defaults=OUT)


def test_the_longest_allowed_ref_and_name_are_accepted() -> None:
    tagged = job(ref="é" * 128, name="n" * 1024)
    assert len(tagged.ref.encode()) == 256 and len(tagged.name) == 1024


def test_default_names_are_unchanged_without_a_template() -> None:
    plain = redelivered(job(ref="SKU-1", name="SKU-1/front.jpg"))
    assert plain.result_uris() == {
        "cutout": f"gs://bucket/out/dt=2026-12-07/{plain.job_id}.png",
    }


def test_a_template_names_each_rendition_and_a_redelivery_renders_the_same_names() -> None:
    output = OutputSpec("gs://bucket/out", template=TEMPLATE)
    first = job(
        ref="SKU 123/x", name="SKU-123/front.jpg", output=output,
        renditions=presets("amazon-main", "thumbnail"),
    )  # fmt: skip
    uris = redelivered(first).result_uris()
    base, short = "gs://bucket/out/dt=2026-12-07", first.job_id[:12]
    assert uris == {
        "amazon-main": f"{base}/SKU_123_x_front_{short}.amazon-main.jpg",
        "thumbnail": f"{base}/SKU_123_x_front_{short}.thumbnail.webp",
    }
    assert redelivered(redelivered(first)).result_uris() == uris
    body = json.loads(first.to_message())
    assert body["output"] == {"uri": "gs://bucket/out", "template": TEMPLATE}
    assert first.job_id != job(ref="SKU 123/x", name="SKU-123/front.jpg").job_id


def test_two_sources_with_the_same_stem_and_ref_never_share_a_name() -> None:
    output = OutputSpec("gs://bucket/out", template="{ref}-{stem}-{hash}.{ext}")
    one = job("gs://bucket/in/a/front.jpg", ref="SKU-1", name="a/front.jpg", output=output)
    two = job("gs://bucket/in/b/front.jpg", ref="SKU-1", name="b/front.jpg", output=output)
    assert one.result_uris() != two.result_uris()


def test_stem_falls_back_to_the_input_and_ref_to_nothing() -> None:
    output = OutputSpec("gs://bucket/out", template="{ref}{stem}-{job_id}.{ext}", kind="both")
    with pytest.raises(InvalidJob, match=r"share the name .*add \{rendition\}"):
        job(output=output)
    output = OutputSpec("gs://bucket/out", template="{ref}{stem}-{job_id}.{preset}.{ext}")
    plain = job(output=output)
    assert plain.result_uris()["cutout"].endswith(f"/a-{plain.job_id}.cutout.png")


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{stem}.{ext}", r"must contain \{job_id\} or \{hash\}"),
        ("{ref}-{rendition}.{ext}", r"must contain \{job_id\} or \{hash\}"),
        ("{sku}-{job_id}.{ext}", r"unknown placeholder \{sku\}"),
        ("{job_id!r}.{ext}", r"unknown placeholder \{job_id\}"),
        ("{job_id:>40}.{ext}", r"unknown placeholder \{job_id\}"),
        ("{ref}/{job_id}.{ext}", "no '/'"),
        ("{job_id.x}.{ext}", r"unknown placeholder"),
        ("{job_id}.{ext", "expected '}'"),
        ("", "expected a non-empty string"),
        (".{job_id}", "would start with '.'"),
    ],
)
def test_a_template_that_could_collide_or_break_is_refused(template, message) -> None:
    body = {
        "input": "gs://bucket/in/a.jpg",
        "output": {"uri": "gs://bucket/o", "template": template},
    }
    with pytest.raises(InvalidJob, match=message):
        parse_job(json.dumps(body).encode(), defaults=OUT)


def test_events_carry_ref_and_name_in_the_body_and_the_attributes() -> None:
    tagged = job(ref="SKU-123", name="SKU-123/front.jpg", attributes={"ref": "spoof", "k": "v"})
    for event in (
        Event.completed(tagged, ()),
        Event.cancelled(tagged, "run cancelled"),
        Event.failed(tagged.job_id, tagged.input, "x", "y", ref=tagged.ref, name=tagged.name),
    ):
        data = event.to_cloudevent()["data"]
        assert (data["ref"], data["name"]) == ("SKU-123", "SKU-123/front.jpg")
        attributes = event.message_attributes()
        assert (attributes["ref"], attributes["name"]) == ("SKU-123", "SKU-123/front.jpg")
        back = event_from_cloudevent(json.loads(event.to_json()))
        assert (back.ref, back.name) == ("SKU-123", "SKU-123/front.jpg")
    plain = Event.completed(job(), ())
    assert "ref" not in plain.to_cloudevent()["data"] and "name" not in plain.message_attributes()


def test_a_result_of_another_job_under_the_same_name_is_a_collision_not_a_duplicate() -> None:
    mine = ObjectInfo("gs://bucket/out/x.png", 10, 1, {"cutq-job-id": "abc"})
    assert results.owned(mine, "abc") is mine
    assert results.owned(ObjectInfo("file:///out/x.png", 10), "abc").size == 10  # no metadata
    with pytest.raises(OutputCollision, match="belongs to job other"):
        results.owned(ObjectInfo("gs://bucket/out/x.png", 10, 1, {"cutq-job-id": "other"}), "abc")
