"""The submitter against the local GCS and Pub/Sub servers, with the real client libraries.

The worker side of ``wait()`` is played by a thread that pulls the jobs and publishes real
CloudEvents (``Event.to_json()`` + ``message_attributes()``) to the events topic.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1

from cutq.cli import main
from cutq.core.contract import Job, OutputSpec, new_job, parse_job
from cutq.core.events import Event, OutputInfo
from cutq.core.storage import open_storage
from cutq.submitter.bulk import Checkpoint
from cutq.submitter.client import Submitter, SubmitterConfig
from cutq.submitter.watch import JobsFailed, WaitTimeout, raise_for_failures
from tests.support.emulators import PubSubEmulator

PNG = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Topic:
    topic: str
    subscription: str
    subscriber: pubsub_v1.SubscriberClient

    def drain(self, expected: int, timeout_s: float = 30.0) -> list[pubsub_v1.types.PubsubMessage]:
        """Pull and ack until ``expected`` messages arrived, then make sure no more follow."""
        messages: list[pubsub_v1.types.PubsubMessage] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            wait_s = 1.0 if len(messages) >= expected else 5.0
            try:
                response = self.subscriber.pull(
                    subscription=self.subscription, max_messages=1000, timeout=wait_s
                )
            except gexc.DeadlineExceeded:
                response = None
            received = response.received_messages if response else []
            if not received and len(messages) >= expected:
                break
            if received:
                messages.extend(r.message for r in received)
                self.subscriber.acknowledge(
                    subscription=self.subscription, ack_ids=[r.ack_id for r in received]
                )
        return messages


def make_topic(emulator: PubSubEmulator, publisher, subscriber, name: str) -> Topic:
    topic = emulator.topic_path(name)
    publisher.create_topic(name=topic)
    subscription = emulator.subscription_path(name)
    subscriber.create_subscription(name=subscription, topic=topic)
    return Topic(topic, subscription, subscriber)


@pytest.fixture
def jobs(pubsub_emulator, pubsub_publisher, pubsub_subscriber) -> Topic:
    return make_topic(pubsub_emulator, pubsub_publisher, pubsub_subscriber, "jobs")


def inputs_of(messages) -> list[str]:
    return [json.loads(message.data)["input"] for message in messages]


def write_files(directory: Path, count: int, *, prefix: str = "") -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{prefix}{i:05d}.png" for i in range(count)]
    for i, path in enumerate(paths):
        path.write_bytes(PNG + str(i).encode())
    return paths


# --- library --------------------------------------------------------------------------------


def test_submit_500_local_files_stages_each_once_and_publishes_500_jobs(jobs, gcs_bucket, tmp_path):
    paths = write_files(tmp_path / "photos", 500)
    config = SubmitterConfig(
        jobs.topic, output=f"gs://{gcs_bucket}/out", staging=f"gs://{gcs_bucket}/staging"
    )
    with Submitter(config) as submitter:
        started = time.monotonic()
        handles = list(submitter.submit_many(paths))
        elapsed = time.monotonic() - started
        again = submitter.submit(paths[7].read_bytes(), attributes={"sku": "7"})
    print(f"500 local files staged + published in {elapsed:.1f} s")
    assert [h.source for h in handles] == [str(p) for p in paths]
    assert len({h.job_id for h in handles}) == 500 and all(h.message_id for h in handles)
    messages = jobs.drain(501)
    assert len(messages) == 501
    by_id = {m.attributes["job_id"]: m for m in messages}
    assert set(by_id) == {h.job_id for h in handles}  # the same bytes again: the same job
    assert (again.input, again.job_id) == (handles[7].input, handles[7].job_id)
    job = parse_job(by_id[handles[0].job_id].data, defaults=OutputSpec("gs://unused/x"))
    assert job.input == handles[0].input and job.input_generation is not None
    assert job.input.startswith(f"gs://{gcs_bucket}/staging/") and job.input.endswith(".png")
    assert open_storage(job.input).read(job.input, max_bytes=100) == paths[0].read_bytes()
    staged = list(open_storage("gs://x").list(f"gs://{gcs_bucket}/staging/"))
    assert len(staged) == 500


def test_submit_gs_uri_uses_the_current_generation(jobs, gcs_bucket):
    uri = f"gs://{gcs_bucket}/in/a.png"
    info = open_storage(uri).write(uri, PNG, content_type="image/png")
    with Submitter(SubmitterConfig(jobs.topic, output=f"gs://{gcs_bucket}/out")) as submitter:
        handle = submitter.submit(uri, output=OutputSpec(f"gs://{gcs_bucket}/o2", kind="both"))
    (message,) = jobs.drain(1)
    body = json.loads(message.data)
    assert body["input_generation"] == info.generation
    assert body["output"]["kind"] == "both"
    assert set(handle.result_uris) == {"cutout", "mask"}


# --- CLI bulk ---------------------------------------------------------------------------------


def run_cli(*argv: str) -> tuple[int, float]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    started = time.monotonic()
    try:
        code = main(["submit", "--no-progress", *argv])
    finally:  # main() points logging at this test's captured stderr: put it back
        root.handlers[:], root.level = handlers, level
    return code, time.monotonic() - started


def test_bulk_10000_object_prefix_each_object_becomes_exactly_one_job(jobs, tmp_path, capsys):
    # 10,000 objects: a file:// prefix (gcp-storage-emulator rewrites its whole index on every
    # write, so seeding 10,000 objects there takes minutes); the listing → publish path is
    # the same code as for gs://, which the next test covers with the emulator.
    write_files(tmp_path / "in", 10_000)
    code, elapsed = run_cli((tmp_path / "in").as_uri(), "--topic", jobs.topic,
                            "--output", (tmp_path / "out").as_uri())  # fmt: skip
    assert code == 0
    print(capsys.readouterr().out, f"10,000 jobs published in {elapsed:.1f} s")
    messages = jobs.drain(10_000, timeout_s=60)
    inputs = inputs_of(messages)
    assert len(inputs) == 10_000
    assert set(inputs) == {(tmp_path / "in" / f"{i:05d}.png").as_uri() for i in range(10_000)}


def test_bulk_gs_prefix_with_skip_done(jobs, gcs_bucket, capsys):
    storage = open_storage("gs://x")
    spec = OutputSpec(f"gs://{gcs_bucket}/out")
    infos = [
        storage.write(f"gs://{gcs_bucket}/in/{i:03d}.png", PNG, content_type="image/png")
        for i in range(60)
    ]
    storage.write(f"gs://{gcs_bucket}/in/readme.txt", b"no", content_type="text/plain")
    for info in infos[:20]:  # done on earlier days
        job = new_job(info.uri, spec, input_generation=info.generation)
        uri = f"{spec.uri}/dt=2024-0{1 + len(info.uri) % 2}-01/{job.job_id}.png"
        storage.write(uri, b"result", content_type="image/png")
    code, _ = run_cli(f"gs://{gcs_bucket}/in/", "--topic", jobs.topic, "--output", spec.uri,
                      "--skip-done")  # fmt: skip
    assert code == 0
    assert "published 40, skipped 20 (done), errors 0" in capsys.readouterr().out
    assert sorted(inputs_of(jobs.drain(40))) == [info.uri for info in infos[20:]]


def test_rate_limit_spaces_publishes(jobs, tmp_path):
    write_files(tmp_path / "in", 60)
    code, elapsed = run_cli((tmp_path / "in").as_uri(), "--topic", jobs.topic,
                            "--output", "gs://out-bucket/x", "--rate", "100/s")  # fmt: skip
    assert code == 0
    assert elapsed >= 0.45  # 60 jobs, a burst of 10, then 100/s
    assert len(jobs.drain(60)) == 60


# On Ctrl-C, Submitter.close() closes the gRPC channel while the client library's commit thread
# may still be sending the last batch ("Cannot invoke RPC on closed channel" in that thread):
# those jobs were never confirmed, so the checkpoint excludes them and the resume sends them.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_resume_after_interruption_continues_after_the_checkpoint(jobs, tmp_path, capsys):
    # Ctrl-C arrives once the checkpoint has advanced over the 1,000th input: driven by the
    # run's own progress, never by wall-clock time, so it always lands mid-run.
    total, interrupt_at = 3000, 1000
    write_files(tmp_path / "in", total)
    resume = tmp_path / "resume.json"
    argv = [(tmp_path / "in").as_uri(), "--topic", jobs.topic, "--output", "gs://out-bucket/x",
            "--resume-file", str(resume)]  # fmt: skip
    everything = sorted((tmp_path / "in" / f"{i:05d}.png").as_uri() for i in range(total))
    advanced: list[str] = []
    advance_checkpoint = Checkpoint.advance

    def advance(checkpoint: Checkpoint, origin: str, uri: str) -> None:
        advance_checkpoint(checkpoint, origin, uri)
        advanced.append(uri)
        if len(advanced) == interrupt_at:
            signal.raise_signal(signal.SIGINT)  # a real SIGINT: Python's KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Checkpoint, "advance", advance)
        code, _ = run_cli(*argv)
    assert code == 130
    position = json.loads(resume.read_text())["positions"][argv[0]]
    assert position == everything[interrupt_at - 1] == advanced[-1]
    first = inputs_of(jobs.drain(interrupt_at, timeout_s=10))
    assert interrupt_at <= len(first) < total and position in first
    code, _ = run_cli(*argv)
    assert code == 0
    second = inputs_of(jobs.drain(total - interrupt_at, timeout_s=10))
    assert set(first) | set(second) == set(everything)
    assert min(second) > position  # nothing at or before the checkpoint was published again
    assert len(second) == total - interrupt_at
    assert json.loads(resume.read_text())["positions"][argv[0]] == "*"
    capsys.readouterr()


def _eventually(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        threading.Event().wait(0.02)
    return True


# --- waiting on real events ---------------------------------------------------------------------


@pytest.fixture
def events(pubsub_emulator, pubsub_publisher, pubsub_subscriber) -> Topic:
    return make_topic(pubsub_emulator, pubsub_publisher, pubsub_subscriber, "events")


def answer_jobs(
    jobs: Topic,
    events: Topic,
    publisher: pubsub_v1.PublisherClient,
    answer: Callable[[Job], Event],
    stop: threading.Event,
) -> None:
    """Play the worker until ``stop``: pull jobs, publish ``answer(job)`` for each as a real
    event, then ack them (tests/integration/test_rerun_loop.py answers with verdicts)."""
    while not stop.is_set():
        try:
            response = jobs.subscriber.pull(
                subscription=jobs.subscription, max_messages=100, timeout=1
            )
        except gexc.DeadlineExceeded:
            continue
        for received in response.received_messages:
            job = parse_job(
                received.message.data,
                defaults=OutputSpec("gs://unused/x"),
                publish_time=received.message.publish_time,
            )
            event = answer(job)
            publisher.publish(events.topic, event.to_json(), **event.message_attributes()).result()
        if response.received_messages:
            jobs.subscriber.acknowledge(
                subscription=jobs.subscription,
                ack_ids=[r.ack_id for r in response.received_messages],
            )


@pytest.fixture
def fake_worker(jobs, events, pubsub_publisher) -> Iterator[Callable[[], None]]:
    """Pulls jobs and answers each with a real event: ``bad*`` inputs fail, others complete
    (the result object is written first, as the worker does)."""
    stop = threading.Event()

    def answer(job: Job) -> Event:
        if "/bad" in job.input:
            return Event(
                job.job_id,
                "failed",
                job.input,
                error_code="image_undecodable",
                error_message="not an image",
                attributes=job.attributes,
            )
        outputs = []
        for kind, uri in job.result_uris().items():
            open_storage(uri).write(uri, b"r", content_type="image/png")
            outputs.append(OutputInfo(kind, uri, 1))
        return Event(job.job_id, "completed", job.input, tuple(outputs),
                     attributes=job.attributes)  # fmt: skip

    def serve() -> None:
        answer_jobs(jobs, events, pubsub_publisher, answer, stop)

    thread = threading.Thread(target=serve, name="fake-worker")

    def start() -> None:
        thread.start()

    try:
        yield start
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(timeout=10)


def test_watch_then_wait_returns_completed_and_failed_results(jobs, events, fake_worker, tmp_path):
    paths = write_files(tmp_path / "in", 20) + write_files(tmp_path / "in", 2, prefix="bad")
    config = SubmitterConfig(jobs.topic, output=(tmp_path / "out").as_uri(),
                             events_topic=events.topic)  # fmt: skip
    with Submitter(config) as submitter, submitter.watch() as watcher:
        handles = list(submitter.submit_many(p.as_uri() for p in paths))
        fake_worker()
        results = watcher.wait(handles, timeout_s=30)
    assert [r.job_id for r in results] == [h.job_id for h in handles]
    assert [r.status for r in results] == ["completed"] * 20 + ["failed"] * 2
    assert results[0].outputs == dict(handles[0].result_uris)
    assert results[-1].error_code == "image_undecodable"
    assert results[-1].event is not None and results[-1].event.error_message == "not an image"
    with pytest.raises(JobsFailed, match="2 job"):
        raise_for_failures(results)


def test_wait_alone_finds_finished_jobs_by_object_and_later_ones_by_event(
    jobs, events, fake_worker, tmp_path
):
    paths = write_files(tmp_path / "in", 2)
    config = SubmitterConfig(jobs.topic, output=(tmp_path / "out").as_uri(),
                             events_topic=events.topic)  # fmt: skip
    with Submitter(config) as submitter:
        early = submitter.submit(paths[0].as_uri())
        fake_worker()
        assert _eventually(lambda: Path(early.result_uris["cutout"][7:]).exists(), 10)
        (result,) = submitter.wait([early], timeout_s=10)  # its event was missed: by object
        assert result.ok and result.event is None
        late = submitter.submit(paths[1].as_uri())
        (result,) = submitter.wait([late], timeout_s=20)  # a filtered subscription
        assert result.ok
        objects = submitter.wait([early, late], timeout_s=5, via="objects")
        assert [r.outputs for r in objects] == [early.result_uris, late.result_uris]


def test_wait_times_out_naming_the_pending_jobs(jobs, events, tmp_path):
    paths = write_files(tmp_path / "in", 1)
    config = SubmitterConfig(jobs.topic, output=(tmp_path / "out").as_uri(),
                             events_topic=events.topic)  # fmt: skip
    with Submitter(config) as submitter:
        handle = submitter.submit(paths[0].as_uri())
        with pytest.raises(WaitTimeout, match=r"1 of 1 job\(s\) still pending") as info:
            submitter.wait([handle], timeout_s=1.5)
        assert info.value.pending == [handle.job_id]
        with pytest.raises(TimeoutError, match="no result objects"):
            submitter.wait([handle], timeout_s=1.5, via="objects")


def test_cli_wait_and_download(jobs, events, fake_worker, tmp_path, capsys):
    write_files(tmp_path / "in", 5)
    fake_worker()
    out, dl = (tmp_path / "out").as_uri(), str(tmp_path / "dl")
    code, _ = run_cli((tmp_path / "in").as_uri(), "--topic", jobs.topic, "--output", out,
                      "--events-topic", events.topic, "--wait", "--timeout-s", "30",
                      "--download", dl)  # fmt: skip
    assert code == 0
    assert "completed 5, failed 0" in capsys.readouterr().out
    assert len(list((tmp_path / "dl").iterdir())) == 5


def test_close_waits_for_every_publish_handed_to_the_client(jobs, tmp_path):
    """The publisher's stop() only sends the batches; closing the channel at once cut RPCs
    off ("closed channel"). Jobs handed over and then closed at once (as after Ctrl-C in
    submit_many) are each published, none fails."""
    config = SubmitterConfig(jobs.topic, output=(tmp_path / "out").as_uri())
    config = replace(config, batch_max_messages=7, batch_max_latency_ms=500.0)
    submitter = Submitter(config)
    paths = write_files(tmp_path / "photos", 60)
    futures = [submitter._publish(submitter.prepare(path.as_uri())) for path in paths]
    submitter.close()
    assert all(future.done() for future in futures)
    assert [type(future.exception()).__name__ for future in futures if future.exception()] == []
    assert len(jobs.drain(60)) == 60
    assert submitter._unconfirmed == set()


def test_a_bulk_submit_is_a_registered_run_that_cutq_cancel_knows(jobs, tmp_path, capsys):
    write_files(tmp_path / "in", 3)
    output = (tmp_path / "out").as_uri()
    code, _ = run_cli((tmp_path / "in").as_uri(), "--topic", jobs.topic, "--output", output,
                      "--ttl-s", "30")  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    run_id = printed.split("run ", 1)[1].split(" ", 1)[0]
    assert f"stop it with: cutq cancel --run {run_id}" in printed
    messages = jobs.drain(3)
    assert {message.attributes["cutq.run_id"] for message in messages} == {run_id}
    assert {json.loads(message.data)["ttl_s"] for message in messages} == {30}
    assert main(["cancel", "--run", run_id, "--output", output]) == 0
    assert capsys.readouterr().out == f"cancelled run {run_id}\n"
    code, _ = run_cli((tmp_path / "in").as_uri(), "--topic", jobs.topic, "--output", output,
                      "--run-id", "../bad")  # fmt: skip
    assert code == 2
