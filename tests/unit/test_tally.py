"""Counting verdicts and flags for the summary line, and the exit codes they lead to."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from cutq.core.contract import OutputSpec, new_job
from cutq.core.events import Event, OutputInfo
from cutq.core.tally import Exit, Tally
from cutq.worker.local_run import RunSummary
from cutq.worker.sources import StopReason

JOB = new_job("gs://inputs/a.png", OutputSpec("gs://outs/x"))


def done(*verdicts: str | None, flags: tuple[str, ...] = ()) -> Event:
    outputs = tuple(
        OutputInfo("cutout", f"gs://outs/x/{i}.jpg", 1, name=f"r{i}", preset="p", verdict=v)
        for i, v in enumerate(verdicts)
    )
    return Event.completed(JOB, outputs, flags=flags)


def tally(*events: Event) -> Tally:
    counted = Tally()
    for event in events:
        counted.add(event)
    return counted


def test_the_line_counts_each_rendition_s_verdict_and_each_job_s_flags() -> None:
    counted = tally(
        done("pass", "pass"),
        done("review", "pass", flags=("edge",)),
        done("fail", "fail", flags=("empty",)),
        done("review", "pass", flags=("edge", "multiple")),
        Event.failed("j", "gs://inputs/b.png", "image_undecodable", "no"),
    )
    assert counted.render() == (
        "verdicts: 4 pass, 2 review, 2 fail · flags: 2 edge, 1 empty, 1 multiple"
    )
    assert tally(done("pass")).render() == "verdicts: 1 pass, 0 review, 0 fail · flags: none"
    assert tally(Event.completed(JOB, ())).render() == ""  # no presets, no flags: no line


@pytest.mark.parametrize(
    ("verdicts", "accept_review", "expected"),
    [
        (("pass", "pass"), False, Exit.OK),
        (("pass", "review"), False, Exit.REVIEW),
        (("pass", "review"), True, Exit.OK),
        (("review", "fail"), True, Exit.VERDICT_FAIL),
        (("fail", "pass"), False, Exit.VERDICT_FAIL),
        ((None,), False, Exit.REVIEW),  # a preset's result whose verdict nobody knows
        ((None,), True, Exit.OK),
    ],
)
def test_the_worst_verdict_decides_the_exit_code(
    verdicts: tuple[str | None, ...], accept_review: bool, expected: Exit
) -> None:
    assert tally(done(*verdicts)).exit_code(accept_review) == expected


def test_the_codes_are_distinct_and_stable() -> None:
    assert [int(code) for code in Exit] == [0, 1, 2, 3, 4, 5]


def summary(total: int, completed: int, failed: int = 0, **fields: object) -> RunSummary:
    return RunSummary(
        StopReason.DONE, total, completed, 0, failed, 1.0, 0.5, Path("events.jsonl"), **fields
    )


def test_a_failed_or_unprocessed_job_beats_any_verdict() -> None:
    verdict_failed = tally(done("fail"))
    assert summary(2, 1, failed=1, tally=verdict_failed).exit_code() == Exit.FAILED
    assert summary(3, 1, tally=verdict_failed).exit_code() == Exit.FAILED  # 2 never ran
    assert summary(1, 1, tally=verdict_failed).exit_code() == Exit.VERDICT_FAIL
    assert summary(1, 1, tally=tally(done("review"))).exit_code(accept_review=True) == Exit.OK


def test_an_empty_input_says_so_with_what_was_skipped() -> None:
    empty = summary(0, 0, skipped=Counter({".heic: not an image format this install reads": 2}))
    assert empty.exit_code(accept_review=True) == Exit.NO_INPUT
    assert empty.render().splitlines() == [
        "no image in the inputs: nothing to do",
        "  skipped 2 file(s)",
        "  skipped: 2 × .heic: not an image format this install reads",
    ]


def test_the_summary_prints_the_verdict_line_under_the_counts() -> None:
    lines = summary(2, 2, tally=tally(done("pass"), done("review", flags=("edge",)))).render()
    assert lines.splitlines()[1] == "  verdicts: 1 pass, 1 review, 0 fail · flags: 1 edge"
