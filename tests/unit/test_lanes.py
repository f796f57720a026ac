"""Lanes: the contract's attribute, the submitter's defaults and topics, `cutq submit`'s
default lane, and the worker settings that keep room for interactive jobs (no servers)."""

from __future__ import annotations

import logging
from concurrent.futures import Future
from pathlib import Path
from typing import ClassVar

import pytest

from cutq.core.errors import ConfigError, InvalidJob
from cutq.core.lanes import LANE_ATTRIBUTE, Lane, lane_attributes, lane_of
from cutq.submitter.client import Submitter, SubmitterConfig
from cutq.submitter.commands.submit import default_lane
from cutq.worker.config import WorkerConfig
from cutq.worker.sources import lane_of_delivery
from cutq.worker.sources.pubsub import PubSubDelivery

JOBS, BULK = "projects/p/topics/jobs", "projects/p/topics/jobs-bulk"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def test_a_jobs_lane_is_its_attribute_and_absent_means_interactive() -> None:
    assert LANE_ATTRIBUTE == "cutq.lane"
    assert lane_of({}) is Lane.INTERACTIVE
    assert lane_of({"cutq.lane": "bulk"}) is Lane.BULK
    assert lane_of({"cutq.lane": " Bulk "}) is Lane.BULK
    assert lane_of({"cutq.lane": "urgent"}) is Lane.INTERACTIVE  # a hint: never fails a job
    assert lane_attributes(Lane.BULK) == {"cutq.lane": "bulk"}
    assert Lane.INTERACTIVE.rank < Lane.BULK.rank
    with pytest.raises(InvalidJob, match="lane must be one of interactive, bulk"):
        Lane.parse("urgent")


def test_a_delivery_from_a_lanes_subscription_is_in_that_lane_whatever_it_says() -> None:
    class Message:
        attributes: ClassVar = {"cutq.lane": "interactive"}

    assert lane_of_delivery(PubSubDelivery(Message(), Lane.BULK)) is Lane.BULK  # type: ignore[arg-type]
    assert lane_of_delivery(PubSubDelivery(Message())) is Lane.INTERACTIVE  # type: ignore[arg-type]


class Publisher:
    """Records what would be published."""

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, str]]] = []

    def publish(self, topic: str, data: bytes, **attributes: str) -> Future:
        self.published.append((topic, attributes))
        future: Future = Future()
        future.set_result(str(len(self.published)))
        return future


def submitter(tmp_path: Path, bulk_topic: str | None) -> tuple[Submitter, Publisher]:
    config = SubmitterConfig(
        JOBS, bulk_topic=bulk_topic, output=(tmp_path / "out").as_uri(), staging=tmp_path.as_uri()
    )
    publisher = Publisher()
    return Submitter(config, publisher=publisher), publisher  # type: ignore[arg-type]


def test_one_job_is_interactive_and_many_are_bulk_each_on_its_lanes_topic(tmp_path: Path) -> None:
    """Plausible bugs this catches: the attribute set but the topic not chosen by lane (a
    bulk run lands in the interactive subscription), or the defaults swapped."""
    client, publisher = submitter(tmp_path, BULK)
    client.submit(PNG)
    list(client.submit_many([PNG + b"1", PNG + b"2"]))
    client.submit(PNG + b"3", lane=Lane.BULK)
    list(client.submit_many([PNG + b"4"], lane=Lane.INTERACTIVE))
    assert [(topic, attrs["cutq.lane"]) for topic, attrs in publisher.published] == [
        (JOBS, "interactive"),
        (BULK, "bulk"),
        (BULK, "bulk"),
        (BULK, "bulk"),
        (JOBS, "interactive"),
    ]
    assert all("job_id" in attrs for _, attrs in publisher.published)


def test_without_a_bulk_topic_bulk_jobs_share_the_jobs_topic(tmp_path: Path) -> None:
    client, publisher = submitter(tmp_path, None)
    list(client.submit_many([PNG]))
    assert [(topic, attrs["cutq.lane"]) for topic, attrs in publisher.published] == [(JOBS, "bulk")]
    assert (
        SubmitterConfig.from_env({"CUTQ_JOBS_TOPIC": JOBS, "CUTQ_BULK_TOPIC": BULK}).topic_for(
            Lane.BULK
        )
        == BULK
    )
    with pytest.raises(ConfigError, match="bulk_topic"):
        SubmitterConfig(JOBS, bulk_topic="jobs-bulk")


def test_cutq_submit_defaults_to_interactive_for_one_file_and_bulk_for_more(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(PNG)
    (tmp_path / "b.png").write_bytes(PNG)
    one, folder = str(tmp_path / "a.png"), str(tmp_path)
    assert default_lane([one]) is Lane.INTERACTIVE
    assert default_lane([(tmp_path / "a.png").as_uri()]) is Lane.INTERACTIVE  # one object
    assert default_lane([folder]) is Lane.BULK
    assert default_lane([tmp_path.as_uri()]) is Lane.BULK  # a prefix
    assert default_lane([one, str(tmp_path / "b.png")]) is Lane.BULK


def test_a_bulk_subscription_keeps_a_batch_of_slots_for_interactive_jobs() -> None:
    lanes = dict(
        subscription="projects/p/subscriptions/i", bulk_subscription="projects/p/subscriptions/b"
    )
    assert WorkerConfig().interactive_reserve == 0  # one lane: nothing to keep
    assert WorkerConfig(**lanes).interactive_reserve == 1  # a CPU batch
    gpu = WorkerConfig(device="cuda", **lanes)
    assert (gpu.interactive_reserve, gpu.max_in_flight) == (8, 32)
    assert WorkerConfig(interactive_reserve=3, **lanes).interactive_reserve == 3
    # A CPU worker with batches of 8: 8 in flight would leave bulk nothing; it holds two batches.
    cpu8 = WorkerConfig(max_batch=8, **lanes)
    assert (cpu8.max_in_flight, cpu8.interactive_reserve) == (16, 8)
    assert WorkerConfig(max_batch=8).max_in_flight == 8  # one lane: as before
    tight = WorkerConfig(max_batch=8, max_in_flight=8, **lanes)  # set by hand: bulk keeps 7
    assert tight.interactive_reserve == 1
    assert WorkerConfig(max_batch=1, max_in_flight=1, **lanes).interactive_reserve == 0
    with pytest.raises(ConfigError, match="bulk jobs need at least one slot"):
        WorkerConfig(max_in_flight=8, interactive_reserve=8, **lanes)
    with pytest.raises(ConfigError, match="bulk_subscription needs subscription"):
        WorkerConfig(bulk_subscription="projects/p/subscriptions/b")


def test_cutq_lanes_still_sets_the_model_streams_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="cutq.worker.config"):
        assert WorkerConfig.from_env({"CUTQ_LANES": "1"}).streams == 1
    assert "CUTQ_LANES is deprecated: it is now CUTQ_STREAMS" in caplog.text
    assert WorkerConfig.from_env({"CUTQ_STREAMS": "2"}).streams == 2
    with pytest.raises(ConfigError, match="set only CUTQ_STREAMS"):
        WorkerConfig.from_env({"CUTQ_LANES": "1", "CUTQ_STREAMS": "2"})
    assert WorkerConfig.from_env({"CUTQ_BULK_TOPIC": BULK}).streams is None  # the submitter's


def test_a_worker_with_a_bulk_subscription_pulls_each_lane_with_its_own_flow_control(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Plausible bug this catches: the bulk stream allowed all of max_in_flight, so bulk
    deliveries would wait inside the worker for a slot (leased, uncounted) whenever an
    interactive job holds the reserve."""
    from cutq.worker.sources import Sources
    from cutq.worker.sources.pubsub import PubSubSource

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")  # clients are made, never used
    one = PubSubSource.from_config(WorkerConfig(subscription="projects/p/subscriptions/i"))
    assert isinstance(one, PubSubSource) and one.lane is None and one.max_in_flight == 8
    one.close(0)
    config = WorkerConfig(
        subscription="projects/p/subscriptions/i",
        bulk_subscription="projects/p/subscriptions/b",
        max_in_flight=10,
        interactive_reserve=3,
    )
    both = PubSubSource.from_config(config)
    assert isinstance(both, Sources)
    interactive, bulk = both.sources
    assert isinstance(interactive, PubSubSource) and isinstance(bulk, PubSubSource)
    assert (interactive.subscription, interactive.lane, interactive.max_in_flight) == (
        "projects/p/subscriptions/i",
        Lane.INTERACTIVE,
        10,
    )
    assert (bulk.subscription, bulk.lane, bulk.max_in_flight) == (
        "projects/p/subscriptions/b",
        Lane.BULK,
        7,
    )
    both.close(0)
