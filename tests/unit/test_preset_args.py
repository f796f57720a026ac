"""``--preset NAME:field=value``: a preset's fields overridden from the command line, checked
like a job's rendition, each mistake a one-line configuration error."""

from __future__ import annotations

import argparse

import pytest

from cutq.core.errors import ConfigError
from cutq.core.flags import add_output_args, renditions_from_args
from cutq.core.renditions import Frame


def parse(*presets: str):
    parser = argparse.ArgumentParser()
    add_output_args(parser)
    args = parser.parse_args([arg for preset in presets for arg in ("--preset", preset)])
    return renditions_from_args(args)


def test_a_bare_name_is_the_preset_as_it_is() -> None:
    (amazon,) = parse("amazon-main")
    assert amazon.frame == Frame(width=2000, height=2000, margin=0.0625)
    assert (amazon.name, amazon.format, amazon.quality) == ("amazon-main", "jpeg", 90)


def test_fields_after_the_colon_override_the_preset_and_its_frame() -> None:
    (amazon,) = parse("amazon-main:upscale=true,margin=0.05,quality=95")
    assert amazon.frame == Frame(width=2000, height=2000, margin=0.05, upscale=True)
    assert (amazon.quality, amazon.background, amazon.preset) == (95, "#ffffff", "amazon-main")
    (thumb,) = parse("thumbnail:longest=300,background=#000000,format=png")
    assert thumb.frame is not None and (thumb.frame.longest, thumb.frame.width) == (300, None)
    assert (thumb.background, thumb.format, thumb.quality) == ("#000000", "png", None)


def test_one_preset_twice_needs_a_name_for_one_of_them() -> None:
    with pytest.raises(ConfigError, match=r"repeated: amazon-main.*name="):
        parse("amazon-main", "amazon-main:upscale=true")
    plain, big = parse("amazon-main", "amazon-main:name=amazon-big,upscale=true")
    assert (plain.name, big.name, big.preset) == ("amazon-main", "amazon-big", "amazon-main")
    assert big.frame is not None and big.frame.upscale and plain.frame is not None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("amazon", "unknown preset 'amazon'; known: amazon-main"),
        ("amazon-main:upscale", "expected NAME:field=value"),
        ("amazon-main:", "expected NAME:field=value"),
        ("amazon-main:zoom=2", "unknown field 'zoom'; fields: background"),
        ("amazon-main:upscale=maybe", "frame.upscale: expected true or false, got 'maybe'"),
        ("amazon-main:margin=0.6", "frame.margin: a fraction 0-0.45, got 0.6"),
        ("amazon-main:format=gif", "format: expected one of png"),
        ("amazon-main:longest=900,width=300", "give width and height together"),
        ("amazon-main:quality=9,quality=8", "quality given twice"),
    ],
)
def test_each_mistake_is_one_line_naming_the_argument(text: str, words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(text)
    message = str(raised.value)
    assert message.startswith(f"--preset {text}: ") and words in message, message
    assert "\n" not in message
