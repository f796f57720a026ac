"""The three verdict states: a flag that says a result may be wrong holds a ``pass`` back to
``review``, no subject is ``fail``, a preset may tolerate flags; every reason in words."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cutq.core.presets import PRESETS, Rules
from cutq.worker.render import quality, verdict
from cutq.worker.render.thresholds import FLAG_VERDICTS

GOOD = PRESETS["google-shopping"].rules


def good_jpeg() -> bytes:
    """A picture every google-shopping rule passes: 82.5 % fill on pure white, 800 px."""
    pixels = np.full((800, 800, 3), 255, np.uint8)
    pixels[70:730, 70:730] = (40, 90, 160)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_without_flags_a_good_picture_passes_with_no_reasons() -> None:
    checked = verdict.check(good_jpeg(), "#ffffff", GOOD, (900, 900))
    assert (checked.verdict, checked.failed, checked.reasons) == ("pass", (), ())


@pytest.mark.parametrize(
    ("flags", "expected", "reason"),
    [
        (("edge",), "review", "subject cut off by the source's edge"),
        (("uncertain",), "review", "low confidence"),
        (("multiple",), "review", "more than one subject"),
        (("empty",), "fail", "no subject found"),
        (("edge", "multiple"), "review", "more than one subject"),
    ],
)
def test_a_flag_holds_a_passing_picture_back(
    flags: tuple[str, ...], expected: str, reason: str
) -> None:
    checked = verdict.check(good_jpeg(), "#ffffff", GOOD, (900, 900), flags)
    assert checked.verdict == expected
    assert checked.failed == ()  # every rule held
    assert len(checked.reasons) == len(flags)
    assert any(text.startswith(reason) for text in checked.reasons), checked.reasons


def test_a_failed_rule_stays_fail_and_lists_rules_before_flags() -> None:
    small = verdict.check(
        good_jpeg(), "#ffffff", PRESETS["amazon-main"].rules, (900, 900), ("edge",)
    )
    assert small.verdict == "fail"
    assert small.failed == (
        "source only 900 px: output 800×800 px is under the 1000 px zoom minimum",
        "subject fills 82.5% of the frame: under 85%",
    )
    assert small.reasons == (*small.failed, "subject cut off by the source's edge")


def test_a_tolerated_flag_changes_nothing_and_others_still_count() -> None:
    rules = Rules(fill_min=0.5, tolerates=("multiple",))
    assert verdict.check(good_jpeg(), "#ffffff", rules, (9, 9), ("multiple",)).verdict == "pass"
    both = verdict.check(good_jpeg(), "#ffffff", rules, (9, 9), ("multiple", "edge"))
    assert (both.verdict, both.reasons) == ("review", ("subject cut off by the source's edge",))


def test_presets_that_want_one_product_tolerate_no_flag() -> None:
    assert PRESETS["amazon-main"].rules.tolerates == ()
    assert PRESETS["google-shopping"].rules.tolerates == ()
    for preset in PRESETS.values():
        assert set(preset.rules.tolerates) <= set(FLAG_VERDICTS) - {"empty", "edge"}


def test_every_flag_has_a_verdict_and_only_empty_fails() -> None:
    assert set(FLAG_VERDICTS) == set(quality.FLAGS)
    assert {flag for flag, (worst, _) in FLAG_VERDICTS.items() if worst == "fail"} == {"empty"}


def test_an_empty_backdrop_carries_the_one_flag_even_with_faint_parts() -> None:
    alpha = np.zeros((300, 400), np.uint8)
    alpha[0:40, 0:400] = 150  # a faint band along the top edge: edge, and unsure pixels
    alpha[200:260, 50:110] = 140  # a second faint part
    assert quality.assess(alpha).flags == ("empty",)
