"""Hostile values in every field added last round, through a real pipeline (issue 31).

Renditions, frames, presets, deadlines, ``ttl_s``, lanes, run ids, names and job ids are
drawn by hypothesis, published as a message and delivered twice to a running pipeline (an
in-test model, ``file://`` storage). Whatever the values, each delivery must end in exactly
one event and an ack: ``completed``, or ``failed`` with a permanent error's code; never a
crash, a nack (a requeue loop, then a dead letter without an event) or a second event. The
second delivery of a message reports ``duplicate: true`` whatever the ending, and across the
run no job is reported as news twice (a completed one: once per set of result objects, which
a reused job id with other options, or another publish date, makes anew).

Canvases stay small here (frame sides and margins under 100 px, presets given a small
canvas): unbounded canvases are the pixel-bomb part of issue 31, tested with the memory model.
"""

from __future__ import annotations

import inspect
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from cutq.core import errors
from cutq.core.control import RUN_ID_ATTRIBUTE
from cutq.core.lanes import LANE_ATTRIBUTE
from cutq.core.presets import preset_names
from cutq.worker.pipeline import Pipeline
from tests.support.gated import Events, Gated, Message, make_photos, pipeline_for, settle_all

#: Every code a permanent error carries: what a ``failed`` event may say (never ``internal``).
PERMANENT_CODES = {
    cls.code
    for cls in vars(errors).values()
    if inspect.isclass(cls) and issubclass(cls, errors.PermanentError)
} - {"permanent"}
HOSTILE = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

junk = st.none() | st.booleans() | st.integers(-(2**66), 2**66) | st.floats() | st.text(max_size=8)
# RFC 3339 look-alikes with every part possibly out of range, and the other ISO 8601 forms.
offsets = st.sampled_from(["Z", "z", "", "+0100", "+01", "-00:00", "+23:59", "-23:59"]) | (
    st.builds(
        "{}{:02d}:{:02d}".format,
        st.sampled_from("+-"),
        st.integers(0, 25),
        st.integers(0, 61),
    )
)
times = st.builds(
    "{:04d}-{:02d}-{:02d}{}{:02d}:{:02d}:{:02d}{}{}".format,
    st.sampled_from([1, 2, 1970, 2026, 2099, 9998, 9999]) | st.integers(0, 9999),
    st.integers(0, 13),
    st.integers(0, 32),
    st.sampled_from(["T", "t", " ", ""]),
    st.integers(0, 24),
    st.integers(0, 60),
    st.integers(0, 61),
    st.sampled_from(["", ".5", ".123456789", "."]),
    offsets,
)
deadlines = (
    times
    | st.sampled_from(
        [
            "9999-12-31T23:59:59-01:00",
            "0001-01-01T00:00:00+01:00",
            "2099-W01-1T00:00:00Z",
            "20261202T100030Z",
            "2026-12-02T10:00:30+0100",
        ]
    )
    | junk
)
ttls = st.integers(-10, 2**40) | st.floats(allow_nan=True, allow_infinity=True) | junk
ids = (
    st.sampled_from(["run-1", "a", "../../x", "", ".x", "-x", "a" * 129, "ä", "x\n", "job=1"])
    | st.from_regex(r"[A-Za-z0-9_.=-]{1,12}", fullmatch=True)
    | st.text(max_size=12)
)
small = st.integers(-2, 96) | st.floats(-1, 2) | junk
frames = st.fixed_dictionaries(
    {},
    optional={
        "margin": st.floats(-1, 1) | junk,
        "margin_px": small,
        "width": small,
        "height": small,
        "longest": small,
        "fit": st.sampled_from(["contain", "cover", "x"]) | junk,
        "position": st.sampled_from(["center", "bottom", "x"]) | junk,
        "crop": st.booleans() | junk,
        "upscale": st.booleans() | junk,
        "extra": junk,
    },
)
renditions = st.fixed_dictionaries(
    {},
    optional={
        "name": ids,
        "preset": st.sampled_from([*preset_names(), "x", ""]) | junk,
        "format": st.sampled_from(["png", "webp", "jpeg", "avif", "gif"]) | junk,
        "kind": st.sampled_from(["cutout", "mask", "both"]) | junk,
        "background": st.sampled_from(["#ffffff", "#00000080", "red"]) | junk,
        "quality": st.integers(-1, 101) | junk,
        "foreground": st.sampled_from(["ml", "none"]) | junk,
        "frame": frames | junk,
    },
)


@dataclass
class Worker:
    root: Path
    photo: Path
    pipeline: Pipeline
    events: Events
    deliveries: int = 0
    news: Counter = field(default_factory=Counter)  # (job id, result uris) → duplicate:false


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    root = tmp_path_factory.mktemp("hostile")
    (photo,) = make_photos(root, 1)
    pipeline, events = pipeline_for(root, Gated(), max_batch=1, max_wait_ms=0)
    yield Worker(root, photo, pipeline, events)
    pipeline.close(time.monotonic() + 10)
    assert pipeline.healthy


def body_with(fields: dict[str, Any], photo: Path, root: Path) -> dict[str, Any]:
    body: dict[str, Any] = {"input": photo.as_uri(), "output": {"uri": (root / "out").as_uri()}}
    if "renditions" in fields:
        body["output"] = {"uri": body["output"]["uri"]}
        for item in fields["renditions"] if isinstance(fields["renditions"], list) else ():
            if isinstance(item, dict) and item.get("preset") in preset_names():
                frame = item.get("frame") if isinstance(item.get("frame"), dict) else {}
                item["frame"] = {**frame, "width": 64, "height": 64}  # no 2000 px canvases
    body.update(fields)
    return body


def deliver(
    worker: Worker, data: bytes, attributes: dict[str, str], fresh: bool, attempt: int = 1
) -> Message:
    """One delivery, to its end: exactly one event and an ack, whatever the message says."""
    worker.deliveries += attempt == 1
    before = len(worker.events.published)
    item = Message(data, f"m{worker.deliveries}", attributes)
    item.delivery_attempt = attempt
    if fresh:
        item.publish_time = datetime.now(timezone.utc)
    worker.pipeline.submit(item)
    settle_all([item])
    deadline = time.monotonic() + 5  # the ack follows the publish: the event is there
    while len(worker.events.published) == before and time.monotonic() < deadline:
        time.sleep(0.005)
    assert item.settled == ["ack"], f"nacked (requeued, then dead-lettered): {data[:300]!r}"
    assert len(worker.events.published) == before + 1, "not exactly one event"
    event = worker.events.published[-1]
    assert event.status in ("completed", "failed"), event
    if event.status == "failed":
        assert event.error_code in PERMANENT_CODES, (event.error_code, event.error_message)
    assert worker.pipeline.healthy
    return item


@HOSTILE
@given(
    fields=st.fixed_dictionaries(
        {},
        optional={
            "job_id": ids,
            "deadline": deadlines,
            "ttl_s": ttls,
            "renditions": st.lists(renditions, max_size=3) | junk,
        },
    ),
    attributes=st.fixed_dictionaries({}, optional={RUN_ID_ATTRIBUTE: ids, LANE_ATTRIBUTE: ids}),
    fresh=st.booleans(),
)
@example(fields={"deadline": "9999-12-31T23:59:59-01:00"}, attributes={}, fresh=True)
@example(fields={"deadline": "0001-01-01T00:00:00+01:00"}, attributes={}, fresh=True)
@example(fields={}, attributes={RUN_ID_ATTRIBUTE: "../../x"}, fresh=True)
@example(fields={"renditions": [{"name": "a", "preset": "thumbnail"}]}, attributes={}, fresh=True)
def test_each_delivery_of_a_hostile_job_ends_in_one_event_and_a_repeat_says_so(
    worker: Worker, fields: dict[str, Any], attributes: dict[str, str], fresh: bool
) -> None:
    data = json.dumps(body_with(fields, worker.photo, worker.root)).encode()
    deliver(worker, data, attributes, fresh)
    first = worker.events.published[-1]
    event(f"{first.status} {first.error_code or ''}")  # the mix, in --hypothesis-show-statistics
    deliver(worker, data, attributes, fresh, attempt=2)  # redelivered: its ack got lost
    again = worker.events.published[-1]
    assert again.job_id == first.job_id
    assert again.duplicate, f"a redelivered {again.status} job was reported as news"
    if not first.duplicate:  # a completed job is news once per result object (its proof)
        worker.news[first.job_id, tuple(output.uri for output in first.outputs)] += 1
    assert max(worker.news.values(), default=0) <= 1, "a job's ending was news twice"


@pytest.mark.parametrize("surprise", [OverflowError, KeyError, TypeError, AttributeError])
def test_any_surprise_while_parsing_a_job_fails_it_as_invalid_and_never_requeues_it(
    worker: Worker, monkeypatch: pytest.MonkeyPatch, surprise: type[Exception]
) -> None:
    """One rule: a message that cannot be parsed is ``invalid_job``, whatever raised (the
    overflowing deadline offset was one such gap; the next one must not dead-letter)."""

    def gap(body: Any) -> None:
        raise surprise("a gap in a field's checks")

    monkeypatch.setattr("cutq.core.contract.parse_expiry", gap)
    data = json.dumps(body_with({"job_id": f"gap-{surprise.__name__}"}, worker.photo, worker.root))
    deliver(worker, data.encode(), {}, fresh=True)
    failed = worker.events.published[-1]
    assert (failed.job_id, failed.error_code) == (f"gap-{surprise.__name__}", "invalid_job")
    assert surprise.__name__ in (failed.error_message or "")
