"""The storage-finalized function under functions-framework, publishing to local Pub/Sub."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import functions_framework
import pytest

from cutq.core.contract import OutputSpec, derive_job_id, parse_job
from cutq.submitter import function
from tests.integration.test_submitter import Topic, make_topic

ROUTES = [
    {"prefix": "shop/", "output": "gs://results-bucket/shop", "kind": "both"},
    {"bucket": "uploads", "prefix": "misc/", "output": "gs://uploads/out", "format": "webp",
     "extensions": ["jpg"], "attributes": {"source": "misc"}},
    {"prefix": "catalog/", "output": "gs://results-bucket/catalog", "ref": "{parent}",
     "presets": ["amazon-main", "thumbnail"], "template": "{ref}_{stem}_{hash}.{rendition}.{ext}"},
]  # fmt: skip


@pytest.fixture
def jobs(pubsub_emulator, pubsub_publisher, pubsub_subscriber) -> Topic:
    return make_topic(pubsub_emulator, pubsub_publisher, pubsub_subscriber, "fn-jobs")


@pytest.fixture
def client(jobs, tmp_path, monkeypatch) -> Iterator[object]:
    """The deployed layout: a main.py that imports the entry point."""
    monkeypatch.setenv("CUTQ_JOBS_TOPIC", jobs.topic)
    monkeypatch.setenv("CUTQ_FUNCTION_ROUTES", json.dumps(ROUTES))
    (tmp_path / "main.py").write_text("from cutq.submitter.function import on_upload\n")
    app = functions_framework.create_app(target="on_upload", source=str(tmp_path / "main.py"))
    try:
        yield app.test_client()
    finally:
        function.reset()
        sys.modules.pop("main", None)
        if str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))


def storage_data(bucket: str, name: str, generation: int = 17, **extra: object) -> dict:
    return {"bucket": bucket, "name": name, "generation": str(generation), "size": "1234",
            "contentType": "image/jpeg", **extra}  # fmt: skip


def structured(client, data: dict, event_type: str = function.FINALIZED):
    body = {"specversion": "1.0", "type": event_type, "id": "1",
            "source": f"//storage.googleapis.com/projects/_/buckets/{data['bucket']}",
            "subject": f"objects/{data['name']}", "data": data}  # fmt: skip
    return client.post(
        "/", data=json.dumps(body), headers={"Content-Type": "application/cloudevents+json"}
    )


def binary(client, data: dict, event_type: str = function.FINALIZED):
    headers = {"ce-specversion": "1.0", "ce-type": event_type, "ce-id": "2",
               "ce-source": f"//storage.googleapis.com/projects/_/buckets/{data['bucket']}",
               "Content-Type": "application/json"}  # fmt: skip
    return client.post("/", data=json.dumps(data), headers=headers)


@pytest.mark.parametrize("send", [structured, binary], ids=["structured", "binary"])
def test_finalized_upload_becomes_a_job(client, jobs, send):
    response = send(client, storage_data("any-bucket", "shop/sku-1.JPG", generation=42))
    assert response.status_code == 200, response.data
    (message,) = jobs.drain(1)
    job = parse_job(message.data, defaults=OutputSpec("gs://unused/x"))
    assert job.input == "gs://any-bucket/shop/sku-1.JPG"
    assert job.input_generation == 42
    assert job.output == OutputSpec("gs://results-bucket/shop", kind="both")
    assert message.attributes["job_id"] == job.job_id
    assert job.job_id == derive_job_id(job.input, 42, job.output, None, job.options)


def test_routes_pick_output_and_attributes(client, jobs):
    assert binary(client, storage_data("uploads", "misc/a.jpg")).status_code == 200
    (message,) = jobs.drain(1)
    job = parse_job(message.data, defaults=OutputSpec("gs://unused/x"))
    assert job.output.format == "webp" and job.output.uri == "gs://uploads/out"
    assert dict(job.attributes) == {"source": "misc"}


def test_a_route_with_presets_sets_the_renditions_ref_name_and_result_names(client, jobs):
    data = storage_data("uploads", "catalog/SKU-7/front.jpg", generation=5)
    for send in (structured, binary):  # a redelivered event: the same job, the same names
        assert send(client, data).status_code == 200
    first, second = jobs.drain(2)
    assert first.data == second.data
    job = parse_job(first.data, defaults=OutputSpec("gs://unused/x"))
    assert [(r.name, r.preset) for r in job.renditions] == [
        ("amazon-main", "amazon-main"),
        ("thumbnail", "thumbnail"),
    ]
    assert (job.ref, job.name) == ("SKU-7", "SKU-7/front.jpg")
    assert job.input == "gs://uploads/catalog/SKU-7/front.jpg"
    files = [uri.rsplit("/", 1)[1] for uri in job.result_uris().values()]
    assert files == [
        f"SKU-7_front_{job.job_id[:12]}.amazon-main.jpg",
        f"SKU-7_front_{job.job_id[:12]}.thumbnail.webp",
    ]


def test_redelivered_event_is_the_same_job(client, jobs):
    for send in (structured, binary):
        assert send(client, storage_data("any-bucket", "shop/x.png")).status_code == 200
    first, second = jobs.drain(2)
    assert first.attributes["job_id"] == second.attributes["job_id"]


@pytest.mark.parametrize(
    ("data", "event_type"),
    [
        (storage_data("any-bucket", "other/a.png"), function.FINALIZED),  # no route
        (storage_data("uploads", "misc/a.png"), function.FINALIZED),  # extension not routed
        (storage_data("any-bucket", "shop/notes.txt"), function.FINALIZED),
        (storage_data("any-bucket", "shop/a.png"), "google.cloud.storage.object.v1.deleted"),
        (storage_data("any-bucket", "shop/a.png", metadata={"cutq-job-id": "j"}),
         function.FINALIZED),  # a result cutq wrote
        (storage_data("results-bucket", "shop/dt=2026-01-01/j.png"), function.FINALIZED),
        (storage_data("uploads", "out/misc/x.jpg"), function.FINALIZED),  # under an output
        (storage_data("any-bucket", "shop/folder/"), function.FINALIZED),
    ],
)  # fmt: skip
def test_ignored_objects_publish_nothing(client, jobs, data, event_type):
    assert structured(client, data, event_type).status_code == 200
    assert jobs.drain(0, timeout_s=3) == []
