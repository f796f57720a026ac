"""A per-test slice of the local cloud: jobs/events/dead-letter topics, subscriptions, a bucket,
and helpers to run a worker against them (in a thread or as a real `cutq worker` process).
With ``lanes=True`` the bulk lane too: its own topic, subscription and dead letters."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from google.cloud import pubsub_v1
from google.pubsub_v1 import types as gapic
from PIL import Image, ImageDraw

from cutq.core.contract import OutputSpec, new_job
from cutq.core.lanes import Lane, lane_attributes
from cutq.core.storage import open_storage
from cutq.worker.config import WorkerConfig
from tests.support.emulators import PubSubEmulator


def tiny_image(seed: int, size: tuple[int, int] = (48, 40)) -> bytes:
    """A small PNG: a bright disc on a dark backdrop (cheap for the model, still genuine)."""
    image = Image.new("RGB", size, (20 + seed % 40, 30, 60))
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.ellipse((w * 0.2, h * 0.2, w * 0.8, h * 0.8), fill=(240, 200 - seed % 50, 60))
    image.putpixel((0, 0), (seed % 256, seed // 256 % 256, 7))  # every seed: distinct bytes
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Cloud:
    """Topics, subscriptions and a bucket made for one test."""

    emulator: PubSubEmulator
    bucket: str
    max_delivery_attempts: int = 5
    min_backoff_s: float = 0.0
    jobs_topic: str = ""
    jobs_sub: str = ""
    events_topic: str = ""
    events_sub: str = ""
    dead_topic: str = ""
    dead_sub: str = ""
    lanes: bool = False  # also the bulk lane's topic, subscription and dead letters
    bulk_topic: str = ""
    bulk_sub: str = ""
    bulk_dead_topic: str = ""
    bulk_dead_sub: str = ""
    publisher: pubsub_v1.PublisherClient = field(default_factory=pubsub_v1.PublisherClient)
    subscriber: pubsub_v1.SubscriberClient = field(default_factory=pubsub_v1.SubscriberClient)

    def __post_init__(self) -> None:
        e = self.emulator
        self.jobs_topic, self.events_topic, self.dead_topic = (
            e.topic_path("jobs"),
            e.topic_path("events"),
            e.topic_path("dead"),
        )
        self.jobs_sub, self.events_sub, self.dead_sub = (
            e.subscription_path("jobs"),
            e.subscription_path("events"),
            e.subscription_path("dead"),
        )
        for topic in (self.jobs_topic, self.events_topic, self.dead_topic):
            self.publisher.create_topic(name=topic)
        self._jobs_subscription(self.jobs_sub, self.jobs_topic, self.dead_topic)
        self.subscriber.create_subscription(name=self.events_sub, topic=self.events_topic)
        self.subscriber.create_subscription(name=self.dead_sub, topic=self.dead_topic)
        if self.lanes:
            self.bulk_topic, self.bulk_dead_topic = e.topic_path("bulk"), e.topic_path("bulk-dead")
            self.bulk_sub, self.bulk_dead_sub = (
                e.subscription_path("bulk"),
                e.subscription_path("bulk-dead"),
            )
            for topic in (self.bulk_topic, self.bulk_dead_topic):
                self.publisher.create_topic(name=topic)
            self._jobs_subscription(self.bulk_sub, self.bulk_topic, self.bulk_dead_topic)
            self.subscriber.create_subscription(name=self.bulk_dead_sub, topic=self.bulk_dead_topic)

    def _jobs_subscription(self, name: str, topic: str, dead_topic: str) -> None:
        self.subscriber.create_subscription(
            request=gapic.Subscription(
                name=name,
                topic=topic,
                ack_deadline_seconds=10,
                dead_letter_policy=gapic.DeadLetterPolicy(
                    dead_letter_topic=dead_topic,
                    max_delivery_attempts=self.max_delivery_attempts,
                ),
                retry_policy=gapic.RetryPolicy(
                    minimum_backoff={
                        "seconds": int(self.min_backoff_s),
                        "nanos": int(self.min_backoff_s % 1 * 1e9),
                    },
                    maximum_backoff={"seconds": 1},
                ),
            )
        )

    @property
    def dead_subs(self) -> list[str]:
        """Every lane's dead-letter subscription."""
        return [self.dead_sub, self.bulk_dead_sub] if self.lanes else [self.dead_sub]

    @property
    def output(self) -> OutputSpec:
        return OutputSpec(uri=f"gs://{self.bucket}/results")

    def upload_images(self, count: int, prefix: str = "in") -> list[str]:
        storage = open_storage(f"gs://{self.bucket}")
        uris = [f"gs://{self.bucket}/{prefix}/{i:05d}.png" for i in range(count)]
        for index, uri in enumerate(uris):
            storage.write(uri, tiny_image(index), content_type="image/png")
        return uris

    def publish_jobs(
        self,
        uris: Iterable[str],
        *,
        bulk: Callable[[int], bool] | None = None,
        extra: Callable[[int], dict[str, str]] | None = None,
        **job_options: object,
    ) -> list[str]:
        """Publish one job per input; returns the job ids. ``bulk(i)``: the i-th job goes to
        the bulk lane (topic and attribute, as the submitter does); else to the jobs topic.
        ``extra(i)``: more message attributes for the i-th job (e.g. its run id)."""
        futures, ids = [], []
        for index, uri in enumerate(uris):
            job = new_job(uri, self.output, **job_options)  # type: ignore[arg-type]
            if bulk is not None and bulk(index):
                assert self.lanes, "the bulk lane needs Cloud(lanes=True)"
                topic, attributes = self.bulk_topic, lane_attributes(Lane.BULK)
            else:
                topic, attributes = self.jobs_topic, {}
            if extra is not None:
                attributes = {**attributes, **extra(index)}
            futures.append(self.publisher.publish(topic, job.to_message(), **attributes))
            ids.append(job.job_id)
        for future in futures:
            future.result(timeout=30)
        return ids

    def publish_raw(self, data: bytes, **attributes: str) -> None:
        self.publisher.publish(self.jobs_topic, data, **attributes).result(timeout=30)

    def pull_all(self, subscription: str, expected: int, timeout_s: float = 60.0) -> list[dict]:
        """Pull and ack until ``expected`` messages arrived (or time out); JSON bodies."""
        found: list[dict] = []
        deadline = time.monotonic() + timeout_s
        while len(found) < expected and time.monotonic() < deadline:
            # Google's emulator holds an empty Pull open until its deadline: keep it short.
            wait_s = min(2.0, max(0.5, deadline - time.monotonic()))
            response = self.subscriber.pull(
                subscription=subscription, max_messages=500, timeout=wait_s
            )
            if response.received_messages:
                self.subscriber.acknowledge(
                    subscription=subscription,
                    ack_ids=[m.ack_id for m in response.received_messages],
                )
            for received in response.received_messages:
                message = received.message
                try:
                    body = json.loads(message.data)
                except ValueError:
                    body = {"raw": message.data.decode(errors="replace")}
                found.append({"body": body, "attributes": dict(message.attributes)})
        return found

    def drain(self, subscription: str) -> list[dict]:
        """Whatever is on ``subscription`` right now (a short pull)."""
        return self.pull_all(subscription, expected=10**9, timeout_s=2.0)

    def results(self) -> list[str]:
        return [
            info.uri
            for info in open_storage(f"gs://{self.bucket}").list(f"gs://{self.bucket}/results/")
        ]

    def close(self) -> None:
        self.publisher.stop()
        self.publisher.transport.close()
        self.subscriber.close()

    def worker_config(self, **changes: object) -> WorkerConfig:
        settings: dict[str, object] = dict(
            subscription=self.jobs_sub,
            bulk_subscription=self.bulk_sub or None,
            events_topic=self.events_topic,
            output=self.output.uri,
            resize="dynamic",
            max_batch=8,
            max_wait_ms=20,
            warmup=False,
            grace_period_s=10,
            storage_attempts=2,
            storage_deadline_s=2,
            lease_extension_s=10,
        )
        settings.update(changes)
        return WorkerConfig(**settings)  # type: ignore[arg-type]


class ThreadWorker:
    """`cutq worker`'s code path in a thread of the test process."""

    def __init__(self, config: WorkerConfig) -> None:
        from cutq.worker.service import Service
        from cutq.worker.sources import StopReason
        from cutq.worker.sources.pubsub import PubSubSource

        assert config.subscription
        self.service = Service.warmed_up(config)
        self.reason: StopReason | None = None
        source = PubSubSource.from_config(config)

        def run() -> None:
            self.reason = self.service.run(source, handle_signals=False)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def stop(self, timeout_s: float = 60.0) -> None:
        self.service.stop()
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "worker did not stop"

    @property
    def stats(self):  # type: ignore[no-untyped-def]
        return self.service.pipeline.stats


def worker_process(
    config: WorkerConfig,
    *extra: str,
    env_overrides: dict[str, str] | None = None,
    log_path: Path | None = None,
) -> subprocess.Popen:
    """A real `cutq worker` process, configured through CUTQ_* variables like on Cloud Run.

    ``env_overrides`` changes other variables, e.g. STORAGE_EMULATOR_HOST to a fault proxy.
    Its output goes to a pipe, or to ``log_path``: give one when the worker logs more than a
    pipe holds (64 KiB, ~130 job lines) before anyone reads it — past that, every thread that
    logs blocks, and the worker stalls with its jobs unacked.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUTQ_")}
    env.update(env_overrides or {})
    for name, value in vars(config).items():
        if value is None or name == "platform":  # not a setting: the worker detects its own
            continue
        text = ",".join(value) if isinstance(value, tuple) else str(value)
        env[f"CUTQ_{name.upper()}"] = text.lower() if isinstance(value, bool) else text
    env["CUTQ_LOG_FORMAT"] = "json"
    if log_path is None:
        return subprocess.Popen(
            [sys.executable, "-m", "cutq.cli", "worker", *extra],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "cutq.cli", "worker", *extra],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
