"""The local source behind ``cutq run`` without a pipeline: which files it finds, the job each
becomes, and its delivery life — every file once, a returned job again until its last attempt,
done once every file has ended, and nothing offered or retried after stop_intake."""

from __future__ import annotations

import os
import queue
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
from PIL import Image

from cutq.core.contract import Options, OutputSpec, parse_job
from cutq.core.renditions import Rendition
from cutq.worker.sources import Intake, StopReason
from cutq.worker.sources.local import LocalDelivery, LocalSource, expand_paths

OUT = OutputSpec("file:///tmp/cutq-out")


class Taken:
    """An intake that queues what it is given; ``gate`` (when set) holds each submit."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.deliveries: queue.Queue[LocalDelivery] = queue.Queue()
        self.gate = gate
        self.threads: list[tuple[str, bool]] = []  # the (name, daemon) of each submit's thread

    def submit(self, delivery: object) -> None:
        thread = threading.current_thread()
        self.threads.append((thread.name, thread.daemon))
        self.deliveries.put(delivery)  # type: ignore[arg-type]
        if self.gate is not None:
            assert self.gate.wait(10)

    def next(self) -> LocalDelivery:
        return self.deliveries.get(timeout=10)

    def intake(self) -> Intake:
        return Intake(self.submit, lambda: True, lambda: 0)


def image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4)).save(path, format="PNG")
    return path


def test_directories_give_their_image_files_in_name_order_and_files_are_taken_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("b.png", "A/c.PNG", "a.jpg", ".hidden.png", ".git/d.png", "notes.txt"):
        image(tmp_path / "in" / name)
    given = tmp_path / "notes.md"
    given.write_text("x")
    monkeypatch.chdir(tmp_path)  # a relative path comes back absolute
    found = list(expand_paths(["in", "notes.md"]))
    folder = tmp_path / "in"  # a folder's own files, then its subfolders'
    expected = [folder / "a.jpg", folder / "b.png", folder / "A" / "c.PNG", given]
    assert found == expected


def test_files_a_directory_holds_but_cannot_be_read_are_reported_with_a_reason(
    tmp_path: Path,
) -> None:
    for name in ("a.png", "IMG_1.CR2", "IMG_2.cr2", "README", ".DS_Store", ".git/x.txt"):
        if name.endswith(".png"):
            image(tmp_path / name)
        else:
            _touch(tmp_path / name)
    skipped: list[tuple[str, str]] = []
    found = list(expand_paths([tmp_path], skipped=lambda p, why: skipped.append((p.name, why))))
    assert found == [tmp_path / "a.png"]
    raw = ".cr2: not an image format this install reads"
    assert sorted(skipped) == [
        ("IMG_1.CR2", raw),
        ("IMG_2.cr2", raw),
        ("README", "no extension"),
    ]


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")


def test_each_file_is_a_job_dated_and_versioned_by_its_modification_time(tmp_path: Path) -> None:
    photo = image(tmp_path / "p.png")
    os.utime(photo, ns=(1_700_000_000_000_000_000, 1_700_000_000_500_000_000))
    missing = tmp_path / "gone.png"
    options, renditions = Options(threshold=0.5), (Rendition("thumb", format="webp"),)
    source = LocalSource(
        [photo, missing], OUT, options, model="u2netp", max_attempts=5, renditions=renditions
    )
    first, second = source.deliveries()
    assert (first.message_id, second.message_id) == ("0", "1")
    assert first.max_attempts == 5 and first.delivery_attempt == 1
    assert first.publish_time == datetime.fromtimestamp(1_700_000_000.5, timezone.utc)
    job = parse_job(first.data, defaults=OUT)
    assert job.input == photo.as_uri() and job.input_generation == 1_700_000_000_500_000_000
    assert job.model == "u2netp" and job.options == options and job.output == OUT
    assert [r.name for r in job.renditions] == ["thumb"]
    assert second.publish_time == datetime.fromtimestamp(0, timezone.utc)
    assert parse_job(second.data, defaults=OUT).input_generation is None


def test_every_file_is_offered_once_and_the_source_is_done_when_all_have_ended(
    tmp_path: Path,
) -> None:
    files = [image(tmp_path / f"{i}.png") for i in range(3)]
    source, taken = LocalSource(files, OUT), Taken()
    source.start(taken.intake())
    offered = [taken.next() for _ in files]
    assert [d.message_id for d in offered] == ["0", "1", "2"] and taken.deliveries.empty()
    assert taken.threads == [("cutq-local", True)] * 3  # one daemon feeds them: never holds exit
    offered[0].ack()
    offered[1].ack()
    assert source.ended() is None
    offered[2].ack()
    assert source.ended() is StopReason.DONE
    source.close(0.0)


def test_three_attempts_by_default_and_no_retry_before_the_source_is_started(
    tmp_path: Path,
) -> None:
    source = LocalSource([image(tmp_path / "p.png")], OUT)
    (delivery,) = source.deliveries()
    assert delivery.max_attempts == 3
    delivery.nack()  # not started: nowhere to deliver it again, so it has ended
    assert delivery.delivery_attempt == 1
    source.start(Taken().intake())
    assert source.ended() is StopReason.DONE


def test_no_files_is_done_at_once() -> None:
    source = LocalSource([], OUT)
    assert source.ended() is None
    source.start(Taken().intake())
    assert source.ended() is StopReason.DONE


def test_a_returned_job_comes_again_until_its_last_attempt_ends_it(tmp_path: Path) -> None:
    source, taken = LocalSource([image(tmp_path / "p.png")], OUT, max_attempts=3), Taken()
    source.start(taken.intake())
    delivery = taken.next()
    delivery.delivery_attempt = None  # (counts as the first)
    for attempt in (1, 2):
        assert (delivery.delivery_attempt or 1) == attempt and not delivery.last_attempt
        delivery.nack()
        assert taken.next() is delivery and source.ended() is None
        assert taken.threads[-1][1] is True  # redelivered from a daemon thread
    assert delivery.delivery_attempt == 3 and delivery.last_attempt
    delivery.nack()  # its last attempt: exhausted, and the file has ended
    assert source.ended() is StopReason.DONE and taken.deliveries.empty()


def test_after_stop_intake_nothing_more_is_offered_and_a_nack_is_final(tmp_path: Path) -> None:
    files = [image(tmp_path / f"{i}.png") for i in range(3)]
    gate = threading.Event()
    source, taken = LocalSource(files, OUT), Taken(gate)
    source.start(taken.intake())
    first = taken.next()  # its submit is held by the gate
    source.stop_intake()
    gate.set()
    for thread in threading.enumerate():  # the feeding thread has seen the stop and ended
        if thread.name == "cutq-local":
            thread.join(10)
    first.nack()  # returned unfinished: a rerun picks it up, this run does not retry it
    assert taken.deliveries.empty() and first.delivery_attempt == 1
    assert source.ended() is None  # not every file ended: the service stops it, not DONE


def test_a_delivery_knows_its_last_attempt_and_reports_each_settle() -> None:
    settled: list[tuple[str, bool]] = []
    delivery = LocalDelivery(b"{}", "9", lambda d, acked: settled.append((d.message_id, acked)))
    assert delivery.max_attempts == 3 and not delivery.last_attempt
    delivery.delivery_attempt = None  # counts as the first
    assert not delivery.last_attempt
    delivery.delivery_attempt = 3
    assert delivery.last_attempt
    delivery.ack()
    delivery.nack()
    assert settled == [("9", True), ("9", False)]
