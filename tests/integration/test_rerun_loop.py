"""The review loop on the queue path (Google's Pub/Sub emulator, the real client libraries):
``cutq submit --wait --manifest``, ``cutq report`` on that manifest, and its rerun list
submitted again with ``cutq submit --from-manifest``, names and refs kept.

The worker is played by a thread that answers each job with a real CloudEvent, as in
tests/integration/test_submitter.py: ``/bad`` inputs fail, ``/cut`` ones get a ``review``
verdict, the rest ``pass``; the job's attributes are echoed as a worker does.
"""

from __future__ import annotations

import csv
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cutq.core.events import Event, OutputInfo
from cutq.core.manifest import read_manifest
from cutq.core.storage import open_storage
from tests.integration.test_submitter import PNG, Topic, answer_jobs, make_topic, run_cli

REASON = "subject may be cut off by the photo's edge"


@pytest.fixture
def queue(pubsub_emulator, pubsub_publisher, pubsub_subscriber) -> Iterator[tuple[Topic, Topic]]:
    jobs = make_topic(pubsub_emulator, pubsub_publisher, pubsub_subscriber, "rerun-jobs")
    events = make_topic(pubsub_emulator, pubsub_publisher, pubsub_subscriber, "rerun-events")
    stop = threading.Event()

    def answer(job) -> Event:  # type: ignore[no-untyped-def]
        if "/bad" in job.input:
            return Event(job.job_id, "failed", job.input, error_code="image_undecodable",
                         error_message="not an image", attributes=job.attributes,
                         ref=job.ref, name=job.name)  # fmt: skip
        outputs = []
        for name, uri in job.result_uris().items():
            open_storage(uri).write(uri, PNG, content_type="image/png")
            verdict = "review" if "/cut" in job.input else "pass"
            outputs.append(OutputInfo("cutout", uri, len(PNG), 10, 10, name, None, verdict,
                                      (), {"fill": 0.8}))  # fmt: skip
        flags = ("edge",) if "/cut" in job.input else ()
        return Event(job.job_id, "completed", job.input, tuple(outputs),
                     attributes=job.attributes, flags=flags,
                     timings_ms={"total": 42.0}, ref=job.ref, name=job.name)  # fmt: skip

    def serve() -> None:
        answer_jobs(jobs, events, pubsub_publisher, answer, stop)

    thread = threading.Thread(target=serve, name="fake-worker")
    thread.start()
    try:
        yield jobs, events
    finally:
        stop.set()
        thread.join(timeout=10)


def submit(queue: tuple[Topic, Topic], out: Path, *argv: str) -> int:
    jobs, events = queue
    code, _ = run_cli(*argv, "--topic", jobs.topic, "--output", out.as_uri(),
                      "--events-topic", events.topic, "--wait", "--timeout-s", "60")  # fmt: skip
    return code


def test_wait_manifest_report_and_rerun_list_submitted_again(queue, tmp_path: Path, capsys):
    photos = tmp_path / "in"
    photos.mkdir()
    for name in ("front", "cut", "bad"):
        (photos / f"{name}.png").write_bytes(PNG + name.encode())
    out = tmp_path / "out"
    # a folder (a trailing /): each job's name is its path below it (docs/identity.md)
    code = submit(queue, out, photos.as_uri() + "/", "--manifest", str(tmp_path / "first.csv"))
    assert code == 1  # a job failed
    assert f"manifest: {tmp_path / 'first.jsonl'}, {tmp_path / 'first.csv'}" in (
        capsys.readouterr().out
    )
    first = {row.name: row for row in read_manifest(tmp_path / "first.jsonl")}
    assert {name: (row.status, row.verdict) for name, row in first.items()} == {
        "bad.png": ("failed", None),
        "cut.png": ("completed", "review"),
        "front.png": ("completed", "pass"),
    }
    assert first["cut.png"].flags == ("edge",) and first["cut.png"].timings_ms["total"] == 42.0
    assert first["bad.png"].error_code == "image_undecodable"
    assert [row.job_id for row in read_manifest(tmp_path / "first.csv")] == [
        row.job_id for row in read_manifest(tmp_path / "first.jsonl")
    ]

    page = tmp_path / "review.html"
    from cutq.cli import main

    assert main(["report", str(tmp_path / "first.jsonl"), "--out", str(page)]) == 0
    rerun = tmp_path / "review-rerun.csv"
    with rerun.open(newline="") as opened:
        listed = list(csv.DictReader(opened))
    assert sorted((line["name"], line["verdict"]) for line in listed) == [
        ("bad.png", "failed"),
        ("cut.png", "review"),
    ]

    code = submit(queue, out, "--from-manifest", str(rerun), "--manifest", str(tmp_path / "again"))
    assert code == 1  # bad.png fails again
    again = {row.name: row for row in read_manifest(tmp_path / "again.jsonl")}
    assert sorted(again) == ["bad.png", "cut.png"]
    assert again["bad.png"].job_id == first["bad.png"].job_id  # the same input, options: same job
    assert again["bad.png"].status == "failed"
    # cut.png's result objects were there before this submit: its row still comes from the
    # event the worker published again (with the verdict), not from the objects alone
    assert (again["cut.png"].verdict, again["cut.png"].flags) == ("review", ("edge",))


def test_a_rerun_list_gives_each_job_its_ref_and_name(queue, tmp_path: Path) -> None:
    shot = tmp_path / "reshoot" / "IMG_0042.png"
    shot.parent.mkdir()
    shot.write_bytes(PNG + b"new photo")
    listed = tmp_path / "reshoot.csv"
    listed.write_text(f"input,ref,name\n{shot.as_uri()},SKU-7,SKU-7/front.jpg\n")
    as_jsonl = tmp_path / "reshoot.jsonl"
    shot2 = shot.with_name("IMG_0043.png")
    shot2.write_bytes(PNG + b"another")
    as_jsonl.write_text(json.dumps({"input": shot2.as_uri(), "ref": "SKU-8"}) + "\n")
    out = tmp_path / "out"
    for given, manifest in ((listed, "m1.jsonl"), (as_jsonl, "m2.jsonl")):
        assert submit(queue, out, "--from-manifest", str(given), "--manifest",
                      str(tmp_path / manifest)) == 0  # fmt: skip
    (first,) = read_manifest(tmp_path / "m1.jsonl")
    assert (first.ref, first.name, first.verdict) == ("SKU-7", "SKU-7/front.jpg", "pass")
    (second,) = read_manifest(tmp_path / "m2.jsonl")
    assert (second.ref, second.name) == ("SKU-8", "IMG_0043.png")


def test_manifest_and_from_manifest_misuse_is_a_usage_error(queue, tmp_path: Path) -> None:
    jobs, _ = queue
    out = (tmp_path / "out").as_uri()
    (tmp_path / "a.png").write_bytes(PNG)
    code, _ = run_cli(str(tmp_path / "a.png"), "--topic", jobs.topic, "--output", out,
                      "--manifest", str(tmp_path / "m.csv"))  # fmt: skip
    assert code == 2  # --manifest needs --wait
    code, _ = run_cli(str(tmp_path / "a.png"), "--from-manifest", str(tmp_path / "x.csv"),
                      "--topic", jobs.topic, "--output", out)  # fmt: skip
    assert code == 2  # inputs and a list: one or the other
    code, _ = run_cli("--from-manifest", str(tmp_path / "missing.csv"), "--topic", jobs.topic,
                      "--output", out)  # fmt: skip
    assert code == 2
