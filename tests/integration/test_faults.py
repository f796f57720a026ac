"""Faults around a running worker, each counted: every job ends exactly once, none is lost.

Storage that answers 503 / drops / times out for a while, a Pub/Sub server that restarts under
the streams, a model that runs out of device memory, an event path that is slow and sometimes
fails. (A worker SIGKILLed mid-batch is covered in test_worker.py.) Each test tallies events,
dead letters and result objects with :mod:`tests.support.ledger`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator

import pytest
import torch

from cutq.core.errors import PublishFailed
from cutq.worker import service
from cutq.worker.models.u2netp import U2NetP
from cutq.worker.sinks import PubSubEventSink
from tests.support.cloud import Cloud, ThreadWorker
from tests.support.emulators import PubSubEmulator
from tests.support.faulty_proxy import Fault, FaultyProxy
from tests.support.ledger import collect


@pytest.fixture
def cloud(pubsub_emulator: PubSubEmulator, gcs_bucket: str) -> Iterator[Cloud]:
    cloud = Cloud(pubsub_emulator, gcs_bucket, max_delivery_attempts=10)
    yield cloud
    cloud.close()


# --- (a) storage outage, then recovery --------------------------------------------------------


class OutageWindow:
    """A FaultyProxy rule: from ``start()`` for ``duration_s``, requests fail in rotation as
    503, a dropped connection, or an answer slower than the client's timeout."""

    def __init__(self, duration_s: float, slow_s: float) -> None:
        self.duration_s = duration_s
        self.slow_s = slow_s
        self.until = 0.0
        self.count = 0
        self.kinds: dict[str, int] = {"503": 0, "drop": 0, "slow": 0}
        self._lock = threading.Lock()

    def start(self) -> None:
        self.until = time.monotonic() + self.duration_s

    def __call__(self, method: str, path: str) -> Fault | None:
        if time.monotonic() >= self.until:
            return None
        with self._lock:
            self.count += 1
            kind = ("503", "503", "drop", "slow")[self.count % 4]
            self.kinds[kind] += 1
        if kind == "drop":
            return Fault(drop=True)
        if kind == "slow":
            return Fault(503, delay_s=self.slow_s)  # the client gives up first: a timeout
        return Fault(503)


@pytest.mark.timeout(180)
def test_storage_outage_then_recovery_completes_every_job(
    pubsub_emulator: PubSubEmulator, gcs_server: str, gcs_bucket: str
) -> None:
    cloud = Cloud(pubsub_emulator, gcs_bucket, max_delivery_attempts=10)
    uris = cloud.upload_images(40)
    outage = OutageWindow(duration_s=4.0, slow_s=2.0)
    with FaultyProxy(gcs_server, rule=outage) as proxy:
        os.environ["STORAGE_EMULATOR_HOST"] = proxy.url
        worker = None
        try:
            ids = cloud.publish_jobs(uris)
            outage.start()  # the worker starts into the outage
            # io_threads=4: the CPU default is 2 now, too few requests to meet the outage often
            worker = ThreadWorker(
                cloud.worker_config(
                    storage_attempts=4,
                    storage_deadline_s=3,
                    storage_timeout_s=1.0,  # so a 2 s answer is a client timeout
                    io_threads=4,
                )
            )
            result = collect(cloud, ids, timeout_s=120)
        finally:
            if worker is not None:
                worker.stop()
            os.environ["STORAGE_EMULATOR_HOST"] = gcs_server
            cloud.close()
    result.assert_nothing_lost()
    assert result.completed == 40 and result.dead_lettered == 0 and result.failed == 0
    assert all(outage.kinds.values()), outage.kinds  # every kind of fault was served
    assert proxy.faults_served >= 10


# --- (b) Pub/Sub server restarts --------------------------------------------------------------


@pytest.mark.timeout(180)
def test_pubsub_restarts_mid_stream_lose_nothing(
    pubsub_double: PubSubEmulator, gcs_bucket: str
) -> None:
    """On our double: Google's emulator keeps no state over a restart, and once a streaming
    client has gone from a subscription it does not deliver that subscription's messages again
    (tests/doubles/test_differential.py). A TCP proxy cutting the connection in front of it
    was tried instead: after the cut and the client's reconnect, nothing came in 100 s."""
    server = pubsub_double.server
    assert server is not None
    cloud = Cloud(pubsub_double, gcs_bucket, max_delivery_attempts=10)
    uris = cloud.upload_images(100)
    ids = cloud.publish_jobs(uris)
    worker = ThreadWorker(
        cloud.worker_config(max_batch=4, max_in_flight=8, max_wait_ms=50, lease_extension_s=10)
    )
    restarts: list[int] = []  # how many results existed at each restart

    def restart_twice() -> None:
        # One instant hand-over early, one real outage (port closed 1.5 s) mid-run.
        done = len(cloud.results())
        if not restarts and done >= 10:
            server.restart()
            restarts.append(done)
        elif len(restarts) == 1 and done >= 40:
            server.restart(downtime_s=1.5)
            restarts.append(done)

    try:
        result = collect(cloud, ids, timeout_s=150, on_tick=restart_twice)
    finally:
        worker.stop()
        cloud.close()
    assert len(restarts) == 2, f"restarted at {restarts} results; the run ended first"
    result.assert_nothing_lost()
    assert result.completed == 100 and result.dead_lettered == 0


# --- (d) CUDA out of memory -------------------------------------------------------------------


class OutOfMemoryAbove(U2NetP):
    """The real u2netp, behind a fault injector: batches larger than ``limit`` raise CUDA's
    out-of-memory error before reaching the network, the way a too-big batch would."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.sizes: list[int] = []
        self._lock = threading.Lock()

    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        with self._lock:
            self.sizes.append(len(batch))
        if len(batch) > self.limit:
            raise torch.cuda.OutOfMemoryError(
                f"CUDA out of memory (injected: batch of {len(batch)} > {self.limit})"
            )
        return super().predict(batch)


@pytest.mark.timeout(120)
def test_out_of_memory_halves_batches_and_completes(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[OutOfMemoryAbove] = []
    monkeypatch.setattr(
        service,
        "create_model",
        lambda config, storage: made.append(OutOfMemoryAbove(2)) or made[-1],
    )
    ids = cloud.publish_jobs(cloud.upload_images(24))  # same size: they share batches
    worker = ThreadWorker(cloud.worker_config(max_batch=8, max_wait_ms=300))
    try:
        result = collect(cloud, ids, timeout_s=90)
    finally:
        worker.stop()
    result.assert_nothing_lost()
    assert result.completed == 24 and result.dead_lettered == 0
    (model,) = made
    assert max(model.sizes) > 2, model.sizes  # large batches were tried and ran out of memory
    assert worker.stats.returned == 0  # splitting, not retrying through Pub/Sub


@pytest.mark.timeout(120)
def test_out_of_memory_at_batch_one_is_dead_lettered_never_dropped(
    pubsub_emulator: PubSubEmulator,
    gcs_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cloud = Cloud(pubsub_emulator, gcs_bucket, max_delivery_attempts=5)
    monkeypatch.setattr(service, "create_model", lambda config, storage: OutOfMemoryAbove(0))
    ids = cloud.publish_jobs(cloud.upload_images(3))
    caplog.set_level(logging.WARNING, logger="cutq.worker")
    worker = ThreadWorker(cloud.worker_config(max_batch=4))
    try:
        result = collect(cloud, ids, timeout_s=90)
        dead_counts = worker.stats.returned
    finally:
        worker.stop()
        cloud.close()
    result.assert_nothing_lost()
    assert result.dead_lettered == 3 and result.completed == result.failed == 0
    assert dead_counts >= 15  # 3 jobs × 5 delivery attempts, each nacked
    nacked_for_memory = [
        r
        for r in caplog.records
        if "returned: out of device memory for a batch of one" in r.message
    ]
    assert len(nacked_for_memory) >= 15  # DeviceOutOfMemory (device_out_of_memory) each time
    assert not any(r.levelname == "ERROR" and "unexpected" in r.message for r in caplog.records)
    assert cloud.results() == []


# --- (e) a slow, flaky event path -------------------------------------------------------------


@pytest.mark.timeout(180)
def test_slow_and_failing_event_publishing_loses_nothing(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody pulls the events until every result exists; each publish is slowed down by 0.2 s;
    every third publish fails outright. A job whose result is written but whose event failed is
    redelivered and re-emits its event."""
    publish = PubSubEventSink.publish
    calls = {"count": 0}
    lock = threading.Lock()

    def slow_flaky_publish(self: PubSubEventSink, event) -> None:  # type: ignore[no-untyped-def]
        with lock:
            calls["count"] += 1
            fail = calls["count"] % 3 == 0
        time.sleep(0.2)
        if fail:
            raise PublishFailed("injected: event topic unavailable")
        publish(self, event)

    monkeypatch.setattr(PubSubEventSink, "publish", slow_flaky_publish)
    ids = cloud.publish_jobs(cloud.upload_images(30))
    worker = ThreadWorker(cloud.worker_config(max_batch=4))
    try:
        deadline = time.monotonic() + 90
        while len(cloud.results()) < 30 and time.monotonic() < deadline:
            time.sleep(0.5)  # the slow consumer: events pile up unread meanwhile
        result = collect(cloud, ids, timeout_s=90)
    finally:
        worker.stop()
    result.assert_nothing_lost()
    assert result.completed == 30 and result.dead_lettered == 0
    assert calls["count"] >= 40  # failures were retried
    # A job whose news failed to publish reports it on its redelivery (its IOU), once.
    result.assert_news_once(ids)
