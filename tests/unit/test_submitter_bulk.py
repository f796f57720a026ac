"""Bulk building blocks: token bucket, rate parsing, checkpoint, listing order, done-index."""

from __future__ import annotations

import json

import pytest

from cutq.core.contract import Job, OutputSpec, new_job
from cutq.core.errors import ConfigError
from cutq.core.storage import open_storage
from cutq.submitter.bulk import (
    Checkpoint,
    DoneIndex,
    TokenBucket,
    iter_inputs,
    listing_key,
    parse_rate,
    plain_uri,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_token_bucket_allows_a_burst_then_the_rate():
    clock = FakeClock()
    bucket = TokenBucket(10.0, burst=5, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        bucket.acquire()
    assert clock.now == 0.0
    for _ in range(20):
        bucket.acquire()
    assert clock.now == pytest.approx(2.0)  # 20 more at 10/s


def test_token_bucket_refills_while_idle_up_to_burst():
    clock = FakeClock()
    bucket = TokenBucket(2.0, burst=2, clock=clock, sleep=clock.sleep)
    bucket.acquire()
    bucket.acquire()
    clock.now += 100.0
    for _ in range(3):
        bucket.acquire()
    assert clock.now == pytest.approx(100.5)


@pytest.mark.parametrize(
    ("text", "rate"), [("50", 50.0), ("50/s", 50.0), ("120/min", 2.0), ("3600/h", 1.0)]
)
def test_parse_rate(text, rate):
    assert parse_rate(text) == pytest.approx(rate)


@pytest.mark.parametrize("text", ["fast", "10/week", ""])
def test_parse_rate_rejects_nonsense(text):
    with pytest.raises(ConfigError, match="--rate"):
        parse_rate(text)


def test_checkpoint_round_trip_is_atomic(tmp_path):
    path = tmp_path / "resume.json"
    checkpoint = Checkpoint(path, every_s=3600)
    checkpoint.advance("gs://b/p/", "gs://b/p/0042.png")
    assert not path.exists()  # throttled
    checkpoint.finish("a.png")
    checkpoint.save()
    assert Checkpoint(path).positions == {"gs://b/p/": "gs://b/p/0042.png", "a.png": "*"}
    assert [p.name for p in tmp_path.iterdir()] == ["resume.json"]


def test_checkpoint_rejects_a_foreign_file(tmp_path):
    path = tmp_path / "resume.json"
    path.write_text(json.dumps({"v": 99}))
    with pytest.raises(ConfigError, match="not a cutq checkpoint"):
        Checkpoint(path)


def test_listing_key_follows_the_local_walk_order(tmp_path):
    for name in ["b.png", "a/z.png", "a/b/c.png", "a/a.png", "c.png", "a/b/a.png"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    listed = [info.uri for info in open_storage(str(tmp_path)).list(tmp_path.as_uri())]
    assert len(listed) == 6
    assert [listing_key(uri) for uri in listed] == sorted(listing_key(uri) for uri in listed)
    assert listing_key("gs://b/a/z.png") > listing_key("gs://b/a/b/c.png")


def test_iter_inputs_filters_extensions_excludes_output_and_resumes(tmp_path):
    for i in range(6):
        (tmp_path / f"{i}.png").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("no")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "r.png").write_bytes(b"x")
    origin = tmp_path.as_uri()
    every = [item.uri for item in iter_inputs([origin], exclude=[f"{origin}/out/"])]
    assert [uri.rsplit("/", 1)[1] for uri in every] == [f"{i}.png" for i in range(6)]
    resumed = iter_inputs([origin], exclude=[f"{origin}/out/"], resume_after={origin: every[2]})
    assert [item.uri for item in resumed] == every[3:]
    assert list(iter_inputs([origin], resume_after={origin: "*"})) == []
    local = next(iter_inputs([str(tmp_path)]))
    assert local.source == str(tmp_path / "0.png")  # plain paths are staged, not passed as is


def _result(base, job: Job, day: str, suffix: str) -> None:
    path = base / f"dt={day}" / f"{job.job_id}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"r")


def test_done_index_finds_results_under_any_date_and_needs_every_kind(tmp_path):
    spec = OutputSpec(tmp_path.as_uri(), kind="both")
    jobs = [new_job(f"gs://inputs/{i}.png", spec, input_generation=i) for i in range(4)]
    _result(tmp_path, jobs[0], "2020-01-01", ".png")
    _result(tmp_path, jobs[0], "2020-01-01", ".mask.png")
    _result(tmp_path, jobs[1], "2021-06-30", ".png")  # the mask is missing: not done
    _result(tmp_path, jobs[2], "2021-06-30", ".png")
    _result(tmp_path, jobs[2], "2021-07-01", ".mask.png")  # written across midnight
    index = DoneIndex.build(spec)
    assert len(index) == 5
    assert index.lookup(jobs[0]) == {
        "cutout": f"{tmp_path.as_uri()}/dt=2020-01-01/{jobs[0].job_id}.png",
        "mask": f"{tmp_path.as_uri()}/dt=2020-01-01/{jobs[0].job_id}.mask.png",
    }
    assert index.lookup(jobs[1]) is None
    assert index.lookup(jobs[2]) is not None
    assert index.lookup(jobs[3]) is None


def test_done_index_on_a_missing_output_is_empty(tmp_path):
    index = DoneIndex.build(OutputSpec((tmp_path / "nothing").as_uri()))
    job = new_job("gs://inputs/a.png", OutputSpec((tmp_path / "nothing").as_uri()))
    assert len(index) == 0 and index.lookup(job) is None
    assert not (tmp_path / "nothing").exists()  # looking never creates the output prefix
    _result(tmp_path / "nothing", job, "2026-01-02", ".png")  # empty because missing, not blind
    assert DoneIndex.build(job.output).lookup(job) is not None


def test_iter_inputs_skips_what_it_filters_and_goes_on(tmp_path):
    # Files sort before folders in a local walk: "a.txt" and "out/" come first and are skipped.
    (tmp_path / "a.txt").write_text("no")
    (tmp_path / "b b.PNG").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.png").write_bytes(b"x")
    origin = tmp_path.as_uri()
    items = list(iter_inputs([origin], extensions=[".png"], exclude=[f"{origin}/a"]))
    assert [item.uri for item in items] == [f"{origin}/b b.PNG", f"{origin}/sub/c.png"]
    assert all(item.origin == origin for item in items)
    first = items[0].source
    assert not isinstance(first, str) and first.uri == f"{origin}/b b.PNG"  # listed: as is
    local = list(iter_inputs([str(tmp_path)], extensions=["PNG"]))
    assert [item.source for item in local] == [
        str(tmp_path / "b b.PNG"),
        str(tmp_path / "sub/c.png"),
    ]
    assert {item.origin for item in local} == {str(tmp_path)}


def test_gs_uris_keep_their_percent_signs_and_keys_keep_their_folders():
    assert plain_uri("gs://b/a%20b.png") == "gs://b/a%20b.png"
    assert plain_uri("file:///in/a%20b.png") == "file:///in/a b.png"
    assert listing_key("file:///in/a/x.png") < listing_key("file:///in/b/x.png")


def test_done_index_reports_each_result_under_its_own_date_and_kind(tmp_path):
    spec = OutputSpec(tmp_path.as_uri() + "/")  # a trailing slash changes nothing
    jobs = [new_job(f"gs://inputs/{i}.png", spec) for i in range(2)]
    _result(tmp_path, jobs[0], "2020-01-01", ".png")
    _result(tmp_path, jobs[1], "2021-06-30", ".png")
    _result(tmp_path, jobs[1], "2021-06-30", ".mask.png")  # a mask it did not ask for
    index = DoneIndex.build(spec)
    assert index.lookup(jobs[0]) == {
        "cutout": f"{tmp_path.as_uri()}/dt=2020-01-01/{jobs[0].job_id}.png"
    }
    assert index.lookup(jobs[1]) == {
        "cutout": f"{tmp_path.as_uri()}/dt=2021-06-30/{jobs[1].job_id}.png"
    }


def test_a_finished_origin_is_skipped_wherever_it_sorts(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.png").write_bytes(b"x")
    monkeypatch.chdir(tmp_path / "a")  # "*" read as a path would sort before b/x.png
    origin = (tmp_path / "b").as_uri()
    assert list(iter_inputs([origin], resume_after={origin: "*"})) == []


def test_a_finished_origin_does_not_end_the_next_one(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.png").write_bytes(b"x")
    first, second = (tmp_path / "a").as_uri(), (tmp_path / "b").as_uri()
    items = list(iter_inputs([first, second], resume_after={first: "*"}))
    assert [item.uri for item in items] == [f"{second}/x.png"]


def test_done_index_needs_every_rendition_of_a_job(tmp_path):
    from cutq.core.renditions import presets

    spec = OutputSpec(tmp_path.as_uri())
    job = new_job("gs://inputs/a.png", spec, renditions=presets("amazon-main", "thumbnail"))
    day = tmp_path / "dt=2026-01-02"
    day.mkdir()
    (day / f"{job.job_id}.amazon-main.jpg").write_bytes(b"x")
    assert DoneIndex.build(spec).lookup(job) is None  # the thumbnail is missing
    (day / f"{job.job_id}.thumbnail.webp").write_bytes(b"x")
    assert DoneIndex.build(spec).lookup(job) == {
        "amazon-main": f"{tmp_path.as_uri()}/dt=2026-01-02/{job.job_id}.amazon-main.jpg",
        "thumbnail": f"{tmp_path.as_uri()}/dt=2026-01-02/{job.job_id}.thumbnail.webp",
    }
