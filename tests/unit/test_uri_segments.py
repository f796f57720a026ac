"""Issue 24 item 8: '.' and '..' segments in a gs:// URI are refused when the job is parsed.

On Cloud Storage ``cutouts/../../x`` is a literal object name, not an escape, but it is never
what a user meant, and a local GCS server failed on it after the model ran (the job went to
the dead-letter topic without an event). ``invalid_job`` at parse time gives the client a
``failed`` event instead.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from cutq.core.contract import OutputSpec, parse_job
from cutq.core.errors import InvalidJob

DEFAULTS = OutputSpec(uri="gs://results/cutouts")
WHEN = datetime(2026, 12, 1, tzinfo=timezone.utc)


def parse(body: dict[str, object], attributes: dict[str, str] | None = None) -> object:
    data = json.dumps(body).encode()
    return parse_job(data, defaults=DEFAULTS, publish_time=WHEN, attributes=attributes)


@pytest.mark.parametrize(
    "uri",
    [
        "gs://allowed-bucket/cutouts/../../x",
        "gs://allowed-bucket/..",
        "gs://allowed-bucket/../x",
        "gs://allowed-bucket/./x",
        "gs://allowed-bucket/cutouts/.",
        "gs://allowed-bucket/a/./b/",
    ],
)
def test_dot_segments_in_a_gs_uri_are_an_invalid_job(uri: str) -> None:
    for body in ({"input": uri}, {"input": "gs://inputs/a.png", "output": uri}):
        with pytest.raises(InvalidJob, match="path segments") as raised:
            parse(body)
        assert raised.value.code == "invalid_job"


def test_a_notification_for_a_dot_segment_object_is_an_invalid_job() -> None:
    attributes = {"eventType": "OBJECT_FINALIZE", "bucketId": "uploads", "objectId": "a/../b.jpg"}
    with pytest.raises(InvalidJob, match="path segments"):
        parse({}, attributes=attributes)


@pytest.mark.parametrize(
    "uri",
    [
        "gs://allowed-bucket/cutouts/..x/y",
        "gs://allowed-bucket/a..b",
        "gs://allowed-bucket/.hidden/...",
        "gs://allowed-bucket/cutouts/",
        "gs://allowed-bucket",
    ],
)
def test_names_that_merely_contain_dots_are_fine(uri: str) -> None:
    parse({"input": "gs://inputs/a.png", "output": uri})


@pytest.mark.parametrize(
    "body",
    [
        {"input": "gs://inputs/.well-known/acme-challenge/a.png"},
        {"input": "gs://inputs/a.png", "output": "gs://results/.well-known/acme-challenge/x"},
        # the output base is fine, the result names under it are not
        {"input": "gs://inputs/a.png", "output": "gs://results/.well-known/acme-challenge"},
    ],
)
def test_names_cloud_storage_reserves_are_an_invalid_job(body: dict[str, object]) -> None:
    """Cloud Storage's object naming requirements: no name starts with
    .well-known/acme-challenge/. Refused when parsed, not after the model ran."""
    with pytest.raises(InvalidJob, match="acme-challenge") as raised:
        parse(body)
    assert raised.value.code == "invalid_job"
