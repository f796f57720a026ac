"""Verdicts on encoded pictures, quality flags on synthetic scenes with known answers, and
how both travel in the event."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cutq.core.contract import OutputSpec, new_job
from cutq.core.events import Event, OutputInfo, event_from_cloudevent
from cutq.core.presets import PRESETS, Rules
from cutq.worker.render import quality, verdict

AMAZON = PRESETS["amazon-main"].rules


def jpeg(pixels: np.ndarray, quality_: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality_)
    return buffer.getvalue()


def on_white(side: int, subject: int, colour: tuple[int, int, int] = (200, 30, 30)) -> np.ndarray:
    pixels = np.full((side, side, 3), 255, np.uint8)
    start = (side - subject) // 2
    pixels[start : start + subject, start : start + subject] = colour
    return pixels


def test_a_good_amazon_picture_passes_with_its_figures() -> None:
    checked = verdict.check(jpeg(on_white(1200, 1050)), "#ffffff", AMAZON, (3000, 2000))
    assert checked.verdict == "pass", checked.failed
    assert checked.figures["fill"] == pytest.approx(0.875, abs=0.01)
    assert checked.figures["purity"] == 1.0
    assert (checked.figures["width"], checked.figures["source_width"]) == (1200, 3000)


def test_each_broken_rule_is_named() -> None:
    small = verdict.check(jpeg(on_white(600, 525)), "#ffffff", AMAZON, (600, 400))
    assert small.verdict == "fail"
    assert small.failed == (
        "source only 600 px: output 600×600 px is under the 1000 px zoom minimum",
    )
    loose = verdict.check(jpeg(on_white(1200, 700)), "#ffffff", AMAZON, (3000, 2000))
    (rule,) = loose.failed
    assert rule.startswith("subject fills 58.") and rule.endswith("of the frame: under 85%")
    tight = verdict.check(jpeg(on_white(1200, 1180)), "#ffffff", AMAZON, (3000, 2000))
    assert "over 90%" in tight.failed[0]
    grey = on_white(1200, 1050)
    grey[:4] = 250  # an off-white strip along the top
    dirty = verdict.check(jpeg(grey), "#ffffff", AMAZON, (3000, 2000))
    assert dirty.verdict == "fail" and "background not pure" in dirty.failed[0]
    wide = np.full((1000, 1200, 3), 255, np.uint8)
    wide[60:940, 100:1100] = 0
    assert verdict.check(jpeg(wide), "#ffffff", AMAZON, (3000, 2000)).failed[0] == (
        "not square: 1200×1000 px"
    )


def test_on_transparency_purity_means_alpha_exactly_zero() -> None:
    rgba = np.zeros((400, 400, 4), np.uint8)
    rgba[20:380, 20:380] = (10, 200, 10, 255)
    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, format="PNG")
    figures = verdict.measure(buffer.getvalue(), None)
    assert (figures["fill"], figures["purity"]) == (0.9, 1.0)
    rgba[0, :, 3] = 1
    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, format="PNG")
    assert verdict.measure(buffer.getvalue(), None)["purity"] < 1.0
    assert verdict.check(buffer.getvalue(), None, Rules(), (1, 1)).verdict == "pass"


def blob(alpha: np.ndarray, y: int, x: int, r: int, value: int = 255) -> None:
    yy, xx = np.mgrid[: alpha.shape[0], : alpha.shape[1]]
    alpha[(yy - y) ** 2 + (xx - x) ** 2 < r * r] = value


@pytest.mark.parametrize(
    ("name", "expected"),
    [("clean", ()), ("empty", ("empty",)), ("faint", ("empty",)),
     ("edge", ("edge",)), ("multiple", ("multiple",)), ("uncertain", ("uncertain",)),
     ("speck", ())],
)  # fmt: skip
def test_each_flag_on_a_scene_with_a_known_answer(name: str, expected: tuple[str, ...]) -> None:
    alpha = np.zeros((300, 400), np.uint8)
    if name in ("clean", "speck"):
        blob(alpha, 150, 200, 80)
    if name == "speck":
        alpha[10:13, 10:13] = 255  # a stray speck is not a second subject
    if name == "empty":
        alpha[100:105, 100:105] = 255  # 25 px of 120,000
    if name == "faint":  # what a salient-object model finds on a bare backdrop
        blob(alpha, 150, 200, 80, value=150)
    if name == "edge":
        alpha[50:300, 120:280] = 255  # runs off the bottom
    if name == "multiple":
        blob(alpha, 150, 100, 60)
        blob(alpha, 150, 300, 50)
    if name == "uncertain":
        blob(alpha, 150, 200, 100, value=120)
        blob(alpha, 150, 200, 40)
    assert quality.assess(alpha).flags == expected


def test_flags_travel_in_the_event_and_its_attributes() -> None:
    job = new_job("gs://inputs/a.png", OutputSpec("gs://outs/x"), attributes={"sku": "1"})
    output = OutputInfo(
        "cutout",
        "gs://outs/x/a.jpg",
        10,
        2000,
        2000,
        name="amazon-main",
        preset="amazon-main",
        verdict="fail",
        failed=("too small",),
        figures={"fill": 0.87},
        reasons=("too small", "subject cut off by the source's edge"),
    )
    event = Event.completed(job, (output,), flags=("edge", "multiple"), quality={"edge": 0.2})
    document = event.to_cloudevent()
    assert document["data"]["flags"] == ["edge", "multiple"]
    assert document["data"]["outputs"][0]["failed"] == ["too small"]
    assert document["data"]["outputs"][0]["reasons"] == [
        "too small",
        "subject cut off by the source's edge",
    ]
    attributes = event.message_attributes()
    assert attributes["flags"] == "edge,multiple"
    assert attributes["flag_edge"] == attributes["flag_multiple"] == "1"
    assert "flag_empty" not in attributes and attributes["sku"] == "1"
    assert event_from_cloudevent(document) == event
    plain = Event.completed(job, (OutputInfo("cutout", "gs://outs/x/a.png", 5, 3, 4, "cutout"),))
    data = plain.to_cloudevent()["data"]
    assert "flags" not in data and "failed" not in data["outputs"][0]
    assert "reasons" not in data["outputs"][0]
    assert event_from_cloudevent(plain.to_cloudevent()) == plain
