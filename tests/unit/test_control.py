"""Deadlines and cancellation records (:mod:`cutq.core.control`) and the worker's cached view
of them (:mod:`cutq.worker.cancellations`), on file:// storage, with no cloud."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import Future
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cutq.core.contract import OutputSpec, new_job, parse_job
from cutq.core.control import (
    Expiry,
    cancel,
    control_uri,
    list_cancellations,
    new_run_id,
    register_run,
)
from cutq.core.errors import DeadlineExceeded, InvalidJob
from cutq.core.storage import Stores, open_storage
from cutq.worker.cancellations import CancelWatch

OUT = OutputSpec("gs://bucket/results")
PUBLISHED = datetime(2026, 12, 2, 10, 0, 0, tzinfo=timezone.utc)


def parse(body: dict) -> object:
    body = {"input": "gs://bucket/in/a.png", **body}
    return parse_job(json.dumps(body).encode(), defaults=OUT, publish_time=PUBLISHED)


def test_a_deadline_and_a_ttl_expire_at_the_earlier_of_the_two() -> None:
    job = parse({"deadline": "2026-12-02T12:00:00+01:00", "ttl_s": 30})
    assert job.expiry.at(PUBLISHED) == PUBLISHED + timedelta(seconds=30)  # type: ignore[attr-defined]
    job = parse({"deadline": "2026-12-02T10:00:10Z", "ttl_s": 30})
    assert job.expiry.at(PUBLISHED) == PUBLISHED + timedelta(seconds=10)  # type: ignore[attr-defined]
    expiry = Expiry(ttl_s=30)
    expiry.check(PUBLISHED, now=PUBLISHED + timedelta(seconds=29.9))
    with pytest.raises(DeadlineExceeded, match=r"passed 0\.1 s ago"):
        expiry.check(PUBLISHED, now=PUBLISHED + timedelta(seconds=30.1))
    assert DeadlineExceeded.code == "deadline_exceeded"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"deadline": "2026-12-02T10:00:00"}, "offset"),  # no offset: ambiguous
        ({"deadline": "2026-12-02"}, "offset"),
        ({"deadline": 1764669600}, "RFC 3339"),
        ({"ttl_s": 0}, "more than 0"),
        ({"ttl_s": -5}, "more than 0"),
        ({"ttl_s": True}, "number"),
        ({"ttl_s": "30"}, "number"),
        ({"ttl_s": 40 * 24 * 3600}, "31 days"),
    ],
)
def test_a_malformed_deadline_is_an_invalid_job_naming_the_field(body: dict, message: str) -> None:
    field = next(iter(body))
    with pytest.raises(InvalidJob, match=f"{field}: .*{message}"):
        parse(body)


@pytest.mark.parametrize(
    ("deadline", "message"),
    [
        # Offsets that move the time out of datetime's range: an OverflowError before, which
        # the worker took for a transient error (five attempts, then a dead letter, no event).
        ("9999-12-31T23:59:59-01:00", "outside the years 0001-9999"),
        ("0001-01-01T00:00:00+01:00", "outside the years 0001-9999"),
        # ISO 8601 forms that are not RFC 3339 (fromisoformat takes them all).
        ("2099-W01-1T00:00:00Z", "RFC 3339"),
        ("20261202T100030Z", "RFC 3339"),
        ("2026-12-02T10:00:30+0100", "RFC 3339"),
        ("2026-12-02T10:00:30+01", "RFC 3339"),
        ("2026-12-02 10:00:30Z", "RFC 3339"),
        ("2026-12-02T10:00Z", "RFC 3339"),
        ("2026-12-02T10:00:30.Z", "RFC 3339"),
        ("\u0662\u0660\u0662\u0666-12-02T10:00:30Z", "RFC 3339"),  # non-ASCII digits
        ("2026-12-02T10:00:30Z\n", "RFC 3339"),
        # The grammar's shape with impossible values.
        ("2026-02-30T10:00:30Z", "not a valid time"),
        ("2026-12-02T24:00:00Z", "not a valid time"),
        ("2026-12-02T10:00:60Z", "not a valid time"),  # a leap second: datetime has none
        ("2026-12-02T10:00:30+24:00", "not a valid time"),
        ("2026-12-02T10:00:30+01:60", "not a valid time"),
    ],
)
def test_a_deadline_is_rfc_3339_only_and_one_that_overflows_names_the_field(
    deadline: str, message: str
) -> None:
    with pytest.raises(InvalidJob, match=f"deadline: .*{message}"):
        parse({"deadline": deadline})


@pytest.mark.parametrize(
    ("deadline", "utc"),
    [
        ("2026-12-02T10:00:30Z", datetime(2026, 12, 2, 10, 0, 30)),
        ("2026-12-02t10:00:30z", datetime(2026, 12, 2, 10, 0, 30)),
        ("2026-12-02T11:30:30+01:30", datetime(2026, 12, 2, 10, 0, 30)),
        ("2026-12-02T09:00:30-01:00", datetime(2026, 12, 2, 10, 0, 30)),
        ("2026-12-02T10:00:30-00:00", datetime(2026, 12, 2, 10, 0, 30)),
        ("2026-12-02T10:00:30.123456789Z", datetime(2026, 12, 2, 10, 0, 30, 123456)),
        ("2026-12-02T10:00:30.5Z", datetime(2026, 12, 2, 10, 0, 30, 500000)),
        ("9999-12-31T23:59:59+01:00", datetime(9999, 12, 31, 22, 59, 59)),
        ("0001-01-01T00:00:00-01:00", datetime(1, 1, 1, 1, 0, 0)),
    ],
)
def test_every_rfc_3339_time_is_read_to_the_same_instant_in_utc(
    deadline: str, utc: datetime
) -> None:
    job = parse({"deadline": deadline})
    assert job.expiry.deadline == utc.replace(tzinfo=timezone.utc)  # type: ignore[attr-defined]


def test_cutq_submit_answers_a_bad_deadline_in_one_line_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cutq.cli import main

    photo = tmp_path / "a.png"
    photo.write_bytes(b"not read")
    for bad in ("9999-12-31T23:59:59-01:00", "2099-W01-1T00:00:00Z"):
        argv = ["submit", str(photo), "--topic", "projects/p/topics/t"]
        argv += ["--output", (tmp_path / "out").as_uri(), "--deadline", bad]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("cutq: configuration error: --deadline: ")
    assert main([*argv[:-1], "9999-12-31T23:59:59-01:00"]) == 2  # as docs/contract-endings.md
    assert capsys.readouterr().err == (
        "cutq: configuration error: --deadline: '9999-12-31T23:59:59-01:00' is outside the "
        "years 0001-9999 once moved to UTC\n"
    )


def test_a_deadline_does_not_change_the_job_id_and_survives_a_round_trip() -> None:
    plain = new_job("gs://bucket/in/a.png", OUT)
    timed = new_job("gs://bucket/in/a.png", OUT, expiry=Expiry(PUBLISHED, 30))
    assert timed.job_id == plain.job_id
    again = parse_job(timed.to_message(), defaults=OUT, publish_time=PUBLISHED)
    assert again.expiry == Expiry(PUBLISHED, 30.0)
    assert b'"deadline":"2026-12-02T10:00:00Z"' in timed.to_message()
    assert b"deadline" not in plain.to_message()


def test_control_prefix_is_the_bucket_root_for_gs_and_under_the_output_for_files() -> None:
    assert control_uri("gs://b/results/x") == "gs://b/_cutq"
    assert control_uri("file:///tmp/out/") == "file:///tmp/out/_cutq"
    assert control_uri("gs://b/results", "gs://other/ctl/") == "gs://other/ctl"


def test_cancelling_twice_and_an_unknown_run_are_reported_not_raised(tmp_path: Path) -> None:
    control = (tmp_path / "_cutq").as_uri()
    storage = open_storage(control)
    run_id = new_run_id()
    register_run(storage, control, run_id, {"inputs": ["gs://b/in/"]})
    first = cancel(storage, control, run_ids=[run_id], job_ids=["job-a"])
    assert sorted(first.cancelled) == sorted([f"run {run_id}", "job job-a"]) and first.ok
    again = cancel(storage, control, run_ids=[run_id, "run-nobody"], job_ids=["job-a"])
    assert again.cancelled == [] and set(again.already) == {f"run {run_id}", "job job-a"}
    assert all(again.already.values()), "the first cancellation's time is reported"
    assert again.unknown_runs == ["run-nobody"] and not again.ok
    assert any("no run run-nobody" in line for line in again.lines())
    view = list_cancellations(storage, control, limit=100)
    assert view.runs == {run_id} and view.jobs == {"job-a"}
    assert view.covers("any-job", run_id) and view.covers("job-a", None)
    assert not view.covers("job-b", "run-other")
    with pytest.raises(InvalidJob, match="run id"):
        cancel(storage, control, run_ids=["../etc"])


class FailingStores(Stores):
    """Local storage whose listings fail while ``failing`` is set."""

    failing = False

    def open(self, uri: str):  # type: ignore[no-untyped-def]
        backend, stores = super().open(uri), self

        class Listing:
            def __getattr__(self, name: str) -> object:
                return getattr(backend, name)

            def list(self, prefix: str):  # type: ignore[no-untyped-def]
                if stores.failing:
                    raise OSError("storage is down")
                return backend.list(prefix)

        return Listing()


def test_the_cached_view_fails_open_keeping_what_it_knew(tmp_path: Path) -> None:
    control = (tmp_path / "_cutq").as_uri()
    storage = open_storage(control)
    stores = FailingStores()
    watch = CancelWatch(stores, control, refresh_s=60)
    assert watch.refresh() and not watch.covers("job-a", None)
    cancel(storage, control, job_ids=["job-a"])
    assert not watch.covers("job-a", None), "seen only at the next listing"
    assert watch.refresh() and watch.covers("job-a", None)
    assert "job job-a" in watch.seen_at
    stores.failing = True
    cancel(storage, control, job_ids=["job-b"])
    assert not watch.refresh() and not watch.refresh()
    assert watch.failures == 2
    assert watch.covers("job-a", None) and not watch.covers("job-b", None)  # the last view
    stores.failing = False
    assert watch.refresh() and watch.covers("job-b", None)


def test_the_view_keeps_at_most_max_records(tmp_path: Path) -> None:
    control = (tmp_path / "_cutq").as_uri()
    cancel(open_storage(control), control, job_ids=[f"job-{i}" for i in range(30)])
    watch = CancelWatch(Stores(), control, refresh_s=60, max_records=10)
    assert watch.refresh()
    assert sum(watch.covers(f"job-{i}", None) for i in range(30)) == 10


def test_cutq_cancel_says_what_it_did_with_documented_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cutq.cli import main

    monkeypatch.delenv("CUTQ_CONTROL", raising=False)
    monkeypatch.delenv("CUTQ_SUBMITTER_OUTPUT", raising=False)
    output = (tmp_path / "out").as_uri()
    control = control_uri(output)
    register_run(open_storage(control), control, "run-7", {})
    ids = tmp_path / "ids.txt"
    ids.write_text("# stale\njob-1\n\njob-2\n")

    assert main(["cancel", "--run", "run-7", "--output", output]) == 0
    assert capsys.readouterr().out == "cancelled run run-7\n"
    assert main(["cancel", "--run", "run-7", "--output", output]) == 0
    assert "run run-7 was already cancelled at 20" in capsys.readouterr().out
    assert main(["cancel", "--run", "run-typo", "--output", output]) == 1
    assert "no run run-typo: nothing cancelled" in capsys.readouterr().err
    assert main(["cancel", "--jobs-file", str(ids), "job-3", "--output", output]) == 0
    assert sorted(capsys.readouterr().out.splitlines()) == [
        f"cancelled job job-{i}" for i in (1, 2, 3)
    ]
    assert main(["cancel", "--output", output]) == 2
    assert "nothing to cancel" in capsys.readouterr().err
    assert main(["cancel", "job-1"]) == 2  # no output and no CUTQ_CONTROL
    assert main(["cancel", "../x", "--output", output]) == 2
    view = list_cancellations(open_storage(control), control, limit=100)
    assert view.runs == {"run-7"} and view.jobs == {"job-1", "job-2", "job-3"}


class FakePublisher:
    """Records what would be published; every publish succeeds at once."""

    def __init__(self) -> None:
        self.published: list[tuple[bytes, dict[str, str]]] = []

    def publish(self, topic: str, data: bytes, **attributes: str) -> Future[str]:
        self.published.append((data, attributes))
        future: Future[str] = Future()
        future.set_result(str(len(self.published)))
        return future


def test_a_bulk_run_tags_each_message_and_can_be_cancelled_from_the_library(
    tmp_path: Path,
) -> None:
    from cutq.submitter.client import Submitter, SubmitterConfig

    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a.png", "b.png"):
        (inputs / name).write_bytes(b"\x89PNG\r\n\x1a\n" + name.encode())
    output = (tmp_path / "out").as_uri()
    publisher = FakePublisher()
    config = SubmitterConfig(jobs_topic="projects/p/topics/jobs", output=output)
    submitter = Submitter(config, publisher=publisher)  # type: ignore[arg-type]
    run_id = submitter.start_run()
    assert run_id.startswith("run-") and submitter.start_run("my-run") == "my-run"
    sources = [(inputs / name).as_uri() for name in ("a.png", "b.png")]
    handles = list(submitter.submit_many(sources, run_id=run_id, ttl_s=30))
    assert [attributes["cutq.run_id"] for _, attributes in publisher.published] == [run_id] * 2
    assert all(json.loads(data)["ttl_s"] == 30 for data, _ in publisher.published)
    report = submitter.cancel(run_ids=[run_id], job_ids=[handles[0].job_id])
    assert sorted(report.cancelled) == sorted([f"run {run_id}", f"job {handles[0].job_id}"])
    assert submitter.cancel(run_ids=["run-unknown"]).unknown_runs == ["run-unknown"]
    view = list_cancellations(open_storage(output), control_uri(output), limit=10)
    assert view.covers("other-job", run_id) and view.covers(handles[0].job_id, None)


def test_submit_wait_counts_cancelled_and_expired_jobs_as_not_completed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from argparse import Namespace

    from cutq.submitter.commands.submit import Summary, _wait
    from cutq.submitter.watch import Result

    results = [
        Result("a", "completed", {"cutout": "gs://o/a.png"}),
        Result("b", "failed", {}, "deadline_exceeded", "deadline passed"),
        Result("c", "failed", {}, "image_undecodable", "not an image"),
        Result("d", "cancelled", {}, None, "run run-1 was cancelled"),
        Result("e", "cancelled", {}, None, "job was cancelled"),
    ]
    assert [r.ending for r in results] == [
        "completed",
        "deadline_exceeded",
        "failed",
        "cancelled",
        "cancelled",
    ]

    class Watcher:
        def wait(self, handles, timeout_s, *, check_objects, on_result):  # type: ignore[no-untyped-def]
            for result in results:
                on_result(result)
            return results

    summary = Summary(published=5)
    args = Namespace(timeout_s=10.0, no_progress=True, download=None, preset=[], manifest=None)
    _wait(Watcher(), [object()] * 5, args, summary)  # type: ignore[arg-type]
    assert (summary.completed, summary.failed, summary.expired, summary.cancelled) == (1, 2, 1, 2)
    assert not summary.ok
    assert "completed 1, failed 2 (1 deadline_exceeded), cancelled 2" in summary.render()


class BlockingStores(Stores):
    """Local storage whose listings wait for ``gate``."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def open(self, uri: str):  # type: ignore[no-untyped-def]
        backend, gate = super().open(uri), self.gate

        class Listing:
            def __getattr__(self, name: str) -> object:
                return getattr(backend, name)

            def list(self, prefix: str):  # type: ignore[no-untyped-def]
                gate.wait(10)
                return backend.list(prefix)

        return Listing()


def test_a_starting_worker_waits_for_its_first_listing_but_not_for_long(tmp_path: Path) -> None:
    control = (tmp_path / "_cutq").as_uri()
    cancel(open_storage(control), control, job_ids=["job-a"])
    stores = BlockingStores()
    watch = CancelWatch(stores, control, refresh_s=0.05)
    started = time.monotonic()
    watch.start(first_within_s=0.3)  # storage hangs: the start goes on without the view
    assert 0.3 <= time.monotonic() - started < 2 and not watch.covers("job-a", None)
    stores.gate.set()
    deadline = time.monotonic() + 5
    while not watch.covers("job-a", None):
        assert time.monotonic() < deadline, "the background listing never came"
        time.sleep(0.01)
    cancel(open_storage(control), control, job_ids=["job-b"])
    while not watch.covers("job-b", None):  # seen by a later refresh, on its own
        assert time.monotonic() < deadline, "no periodic refresh"
        time.sleep(0.01)
    watch.stop()
    quick = CancelWatch(Stores(), control, refresh_s=60)
    quick.start()  # a working listing: known before the first job
    assert quick.covers("job-b", None)
    quick.stop()
