"""The run manifest (core/manifest.py): rows from events, the JSONL/CSV round trip, the rerun
list that ``cutq submit --from-manifest`` reads."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from cutq.core.errors import ConfigError
from cutq.core.events import Event, OutputInfo, event_from_cloudevent
from cutq.core.manifest import (
    ManifestRow,
    merge,
    read_events,
    read_manifest,
    row_from_event,
    write_manifest,
)
from cutq.core.rerun import read_rerun_list, write_rerun_list

AMAZON = "amazon-main"


def output(name: str, verdict: str | None, reasons: list[str], fill: float = 0.8) -> dict:
    data: dict[str, Any] = {"kind": "cutout", "uri": f"gs://b/out/{name}.jpg", "size": 10,
                            "width": 1000, "height": 1000, "name": name, "preset": name,
                            "figures": {"fill": fill, "purity": 1.0}}  # fmt: skip
    if verdict is not None:
        data.update(verdict=verdict, reasons=reasons, failed=reasons if verdict == "fail" else [])
    return data


def event(job_id: str, *outputs: dict, **fields: Any) -> dict:
    data = {"job_id": job_id, "status": "completed", "input": f"gs://b/in/{job_id}.jpg",
            "outputs": list(outputs), "timings_ms": {"total": 812.5, "infer": 120.0},
            "attributes": {}, "duplicate": False, "flags": [],
            "quality": {"uncertain": 0.1}}  # fmt: skip
    data.update(fields)
    return {"time": "2026-12-07T10:00:00Z", "data": data}


def sample_rows() -> list[ManifestRow]:
    documents = [
        event("p1", output(AMAZON, "pass", []), output("thumbnail", "pass", []),
              ref="SKU-1", name="SKU-1/front.jpg"),
        event("r1", output(AMAZON, "review", ["subject cut off by the photo's edge"]),
              output("thumbnail", "pass", []), flags=["edge"], ref="SKU-2", name="front.jpg"),
        event("f1", output(AMAZON, "fail", ["no subject found"]),
              output("thumbnail", "review", ["low confidence"]), flags=["empty"]),
        event("x1", status="failed", error={"code": "image_undecodable", "message": "bad"},
              outputs=[], flags=None, quality=None),
        event("n1", output("cutout", None, []), attributes={"ref": "SKU-9", "name": "a b.png"}),
    ]  # fmt: skip
    return [row_from_event(d["data"], d["time"]) for d in documents]


def test_a_row_reads_an_event_defensively_and_takes_the_worst_verdict() -> None:
    passed, review, fail, failed, plain = sample_rows()
    assert (passed.name, passed.ref, passed.verdict) == ("SKU-1/front.jpg", "SKU-1", "pass")
    assert review.verdict == "review" and review.reasons == (
        f"{AMAZON}: subject cut off by the photo's edge",
    )
    assert fail.verdict == "fail"  # fail over review over pass
    assert fail.reasons == (f"{AMAZON}: no subject found", "thumbnail: low confidence")
    assert (fail.name, fail.ref) == ("f1.jpg", None)  # no name: the input's base name
    assert (failed.status, failed.error_code, failed.verdict) == (
        "failed",
        "image_undecodable",
        None,
    )
    assert (plain.ref, plain.name, plain.verdict) == ("SKU-9", "a b.png", None)  # attributes
    assert passed.confidence == 0.9 and failed.confidence is None
    assert passed.timings_ms["total"] == 812.5


def test_an_older_event_without_reasons_gives_its_failed_rules() -> None:
    old = output(AMAZON, "fail", [])
    old["failed"] = ["under the 1000 px zoom minimum"]
    del old["reasons"]
    row = row_from_event(event("o1", old)["data"])
    assert row.outputs[0].reasons == ("under the 1000 px zoom minimum",)


def test_a_real_event_becomes_a_row() -> None:
    info = OutputInfo("cutout", "gs://b/r.png", 5, 10, 10, "amazon-main", "amazon-main", "fail",
                      ("too small",), {"fill": 0.5})  # fmt: skip
    document = Event("j", "completed", "gs://b/in/x.png", (info,), flags=("edge",)).to_cloudevent()
    row = row_from_event(document["data"], document["time"])
    assert (row.verdict, row.reasons, row.flags) == ("fail", ("amazon-main: too small",), ("edge",))
    assert event_from_cloudevent(document).job_id == row.job_id


def test_jsonl_round_trip_is_exact_and_csv_keeps_every_column_it_shows(tmp_path: Path) -> None:
    rows = sample_rows()
    jsonl, table = write_manifest(rows, tmp_path / "run" / "manifest.jsonl")
    assert (jsonl.name, table.name) == ("manifest.jsonl", "manifest.csv")
    assert read_manifest(jsonl) == rows
    back = read_manifest(table)
    assert [r.job_id for r in back] == [r.job_id for r in rows]
    for mine, theirs in zip(rows, back, strict=True):
        assert (theirs.status, theirs.verdict, theirs.reasons, theirs.flags) == (
            mine.status, mine.verdict, mine.reasons, mine.flags)  # fmt: skip
        assert (theirs.input, theirs.name, theirs.ref, theirs.error_code) == (
            mine.input, mine.name, mine.ref, mine.error_code)  # fmt: skip
        assert theirs.timings_ms == mine.timings_ms and theirs.confidence == mine.confidence
        assert [(o.name, o.uri, o.verdict, o.reasons, o.fill, o.width) for o in theirs.outputs] == [
            (o.name, o.uri, o.verdict, o.reasons, o.fill, o.width) for o in mine.outputs
        ]
    with table.open(newline="") as opened:
        header = next(csv.reader(opened))
    wanted = {"input", "name", "ref", "verdict", "reasons", "flags", "error_code", "total_ms",
              f"{AMAZON}.uri", f"{AMAZON}.verdict", f"{AMAZON}.reasons", "cutout.uri"}  # fmt: skip
    assert wanted <= set(header)


def test_the_rerun_list_holds_review_fail_and_failed_jobs(tmp_path: Path) -> None:
    path = tmp_path / "rerun.csv"
    assert write_rerun_list(sample_rows(), path) == 3
    entries = read_rerun_list(path)
    assert [(e.input, e.ref, e.name) for e in entries] == [
        ("gs://b/in/r1.jpg", "SKU-2", "front.jpg"),
        ("gs://b/in/f1.jpg", None, "f1.jpg"),
        ("gs://b/in/x1.jpg", None, "x1.jpg"),
    ]
    with path.open(newline="") as opened:
        lines = list(csv.DictReader(opened))
    assert [line["verdict"] for line in lines] == ["review", "fail", "failed"]
    assert lines[2]["reasons"] == "image_undecodable"


def test_any_manifest_is_a_rerun_list_and_a_bad_list_is_a_clear_error(tmp_path: Path) -> None:
    jsonl, table = write_manifest(sample_rows(), tmp_path / "m.jsonl")
    for path in (jsonl, table):
        entries = read_rerun_list(path)
        assert len(entries) == 5 and entries[0].ref == "SKU-1"
    (tmp_path / "no-input.csv").write_text("ref,name\nSKU-1,a.jpg\n")
    with pytest.raises(ConfigError, match="no `input` column"):
        read_rerun_list(tmp_path / "no-input.csv")
    (tmp_path / "empty-input.jsonl").write_text(json.dumps({"input": " ", "ref": "x"}) + "\n")
    with pytest.raises(ConfigError, match="entry 1 has no input"):
        read_rerun_list(tmp_path / "empty-input.jsonl")
    with pytest.raises(ConfigError, match="no such file"):
        read_rerun_list(tmp_path / "missing.csv")
    (tmp_path / "list.jsonl").write_text("[1, 2]\n")
    with pytest.raises(ConfigError, match="expected an object"):
        read_rerun_list(tmp_path / "list.jsonl")


def test_events_files_give_the_latest_row_per_job_and_a_duplicate_hides_nothing(
    tmp_path: Path,
) -> None:
    first = event("j1", output(AMAZON, "review", ["edge"]))
    again = event("j1", duplicate=True)
    pulled = {"body": event("j2", output(AMAZON, "pass", []))}
    path = tmp_path / "events.jsonl"
    lines = [json.dumps(first), "not json", json.dumps({"x": 1}), json.dumps(again),
             json.dumps(pulled)]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    rows = read_events([path])
    assert [(r.job_id, r.verdict, r.duplicate) for r in rows] == [
        ("j1", "review", False),
        ("j2", "pass", False),
    ]
    later = row_from_event(event("j1", output(AMAZON, "pass", []))["data"])
    assert merge([*rows, later])[0].verdict == "pass"  # a later computation replaces


def test_the_page_links_only_to_stored_objects() -> None:
    from cutq.worker.review.report import href

    assert (
        href("gs://shop/out/a b#1.jpg") == "https://storage.cloud.google.com/shop/out/a%20b%231.jpg"
    )
    assert href("file:///tmp/x.png") == "file:///tmp/x.png"
    assert href("javascript:alert(1)") is None and href("https://evil/x") is None
    assert href(None) is None
