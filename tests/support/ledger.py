"""Counting how every submitted job ended, for fault and soak tests.

A job may end as a result object plus a ``completed`` event, as a ``failed`` event, as a
``cancelled`` event (with no result object), or in the dead-letter topic, and as exactly one of
those. At-least-once delivery allows a job's
``completed`` event to be re-emitted (``duplicate: true``); that is counted, not a failure.
What must be zero: jobs with no ending (lost), jobs with two different endings, and result
objects beyond one per job.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath
from typing import Any

from google.api_core import exceptions as gexc

from tests.support.cloud import Cloud


@dataclass
class Tally:
    """How the submitted jobs ended; see the module docstring for what must be zero."""

    submitted: int
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    dead_lettered: int = 0
    lost: list[str] = field(default_factory=list)
    conflicting: list[str] = field(default_factory=list)  # two different endings
    cancelled_ids: list[str] = field(default_factory=list)
    duplicate_results: int = 0  # result objects beyond one per job (or for no job)
    repeated_events: int = 0  # re-emitted events: allowed by at-least-once delivery
    news: Counter = field(default_factory=Counter)  # job id → its duplicate:false events

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["lost"] = len(self.lost)
        data["conflicting"] = len(self.conflicting)
        data["news"] = sum(self.news.values())
        del data["cancelled_ids"]
        return data

    def assert_nothing_lost(self) -> None:
        assert not self.lost, f"{len(self.lost)} job(s) lost, e.g. {self.lost[:5]}"
        assert not self.conflicting, f"jobs with two endings: {self.conflicting[:5]}"
        assert self.duplicate_results == 0, f"{self.duplicate_results} duplicated result objects"

    def assert_news_once(self, job_ids: Iterable[str]) -> None:
        """Each job's ending was news (``duplicate: false``) exactly once (issue 31)."""
        wrong = {job_id: self.news[job_id] for job_id in job_ids if self.news[job_id] != 1}
        assert not wrong, f"jobs not reported as news exactly once: {dict(list(wrong.items())[:5])}"


def tally(
    job_ids: Iterable[str], events: list[dict], dead: list[dict], results: list[str]
) -> Tally:
    """Match events, dead letters and result objects (as pulled by :class:`Cloud`) to jobs."""
    ids = list(job_ids)
    completed, failed, cancelled, dead_ids = Counter(), Counter(), Counter(), Counter()
    by_status = {"completed": completed, "cancelled": cancelled}
    for event in events:
        data = event["body"]["data"]
        by_status.get(data["status"], failed)[data["job_id"]] += 1
    for message in dead:
        dead_ids[message["body"].get("job_id", "?")] += 1
    objects = Counter(PurePosixPath(uri).name.split(".", 1)[0] for uri in results)
    result = Tally(submitted=len(ids))
    for job_id in ids:
        done = completed[job_id] > 0 and objects[job_id] > 0
        endings = [done, failed[job_id] > 0, dead_ids[job_id] > 0, cancelled[job_id] > 0]
        if cancelled[job_id] and objects[job_id]:  # a cancelled job's result: a second ending
            endings.append(True)
        if sum(endings) == 0:
            result.lost.append(job_id)
        elif sum(endings) > 1:
            result.conflicting.append(job_id)
        result.completed += done
        result.failed += endings[1]
        result.dead_lettered += endings[2]
        result.cancelled += endings[3]
        if endings[3]:
            result.cancelled_ids.append(job_id)
        seen = completed[job_id] + failed[job_id] + cancelled[job_id]
        result.repeated_events += max(0, seen - 1)
    result.news = news_per_job(events)
    known = set(ids)
    result.duplicate_results = sum(
        count - 1 if job_id in known else count for job_id, count in objects.items() if count
    )
    return result


def news_per_job(events: list[dict]) -> Counter:
    """How many terminal events of each job said ``duplicate: false`` (what a consumer that
    counts news counts): exactly one per job, whatever its ending (issue 31)."""
    return Counter(
        event["body"]["data"]["job_id"]
        for event in events
        if not event["body"]["data"]["duplicate"]
    )


def pull_quietly(cloud: Cloud, subscription: str) -> list[dict]:
    """One pull (it waits ~2 s when there is nothing: Google's emulator holds an empty Pull
    open until its deadline), acked; a restarting server or the deadline is shrugged off
    (nothing is returned) instead of raising."""
    try:
        response = cloud.subscriber.pull(subscription=subscription, max_messages=500, timeout=2)
        if response.received_messages:
            cloud.subscriber.acknowledge(
                subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages]
            )
    except (gexc.GoogleAPIError, gexc.RetryError):
        return []
    found = []
    for received in response.received_messages:
        try:
            body = json.loads(received.message.data)
        except ValueError:
            body = {"raw": received.message.data.decode(errors="replace")}
        found.append({"body": body, "attributes": dict(received.message.attributes)})
    return found


def collect(
    cloud: Cloud,
    job_ids: Iterable[str],
    timeout_s: float,
    *,
    settle_s: float = 1.0,
    on_tick: Callable[[], None] | None = None,
) -> Tally:
    """Pull events and dead letters until every job has ended (or ``timeout_s`` passes).

    After the last job ends, keeps pulling for ``settle_s`` so late duplicates are seen too.
    ``on_tick`` runs between pulls (fault injection, sampling).
    """
    ids = list(job_ids)
    events: list[dict] = []
    dead: list[dict] = []
    deadline = time.monotonic() + timeout_s
    done_at: float | None = None
    next_dead_pull = 0.0
    while time.monotonic() < deadline:
        if on_tick is not None:
            on_tick()
        events += pull_quietly(cloud, cloud.events_sub)
        if time.monotonic() >= next_dead_pull:  # usually empty: an empty pull waits ~2 s
            for dead_sub in cloud.dead_subs:
                dead += pull_quietly(cloud, dead_sub)
            next_dead_pull = time.monotonic() + 5.0
        ended = {e["body"]["data"]["job_id"] for e in events} | {
            d["body"].get("job_id") for d in dead
        }
        if done_at is None and ended.issuperset(ids):
            done_at = time.monotonic()
        if done_at is not None and time.monotonic() - done_at >= settle_s:
            break
    for dead_sub in cloud.dead_subs:  # a job both completed and dead is a conflict
        dead += pull_quietly(cloud, dead_sub)
    return tally(ids, events, dead, cloud.results())
