"""Field checks of the job contract: their limits to the character, and the exact messages.

A ``failed`` event carries the message to whoever submitted the job, so it is part of the
contract: each names the field, says what was expected and quotes (at most 80 characters of)
what was found.
"""

from __future__ import annotations

import pytest

from cutq.core import validation as v
from cutq.core.errors import InvalidJob


def message_of(check, *args, **kwargs) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidJob) as caught:
        check(*args, **kwargs)
    return str(caught.value)


def test_require_object_names_the_type_it_got() -> None:
    assert message_of(v.require_object, [1], "output") == (
        "output: expected a JSON object, got list"
    )
    assert v.require_object({"a": 1}, "output") == {"a": 1}


def test_reject_unknown_lists_the_unknown_and_the_allowed_fields() -> None:
    assert message_of(v.reject_unknown, {"b": 1, "a": 2, "x": 3}, {"y", "x"}, "job") == (
        "job: unknown field(s) a, b; allowed: x, y"
    )
    v.reject_unknown({"x": 1}, {"x", "y"}, "job")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "input: expected a non-empty URI string, got ''"),
        (7, "input: expected a non-empty URI string, got 7"),
        ("file:///" + "a" * 2041, "input: URI longer than 2048 characters"),
        ("gs://b/a\nb", "input: URI contains control characters"),
        (
            "ftp://host/a.png",
            "input: unsupported URI 'ftp://host/a.png'; use gs://bucket/object or "
            "file:///absolute/path",
        ),
        ("gs", "input: unsupported URI 'gs'; use gs://bucket/object or file:///absolute/path"),
        ("gs://Bad_Bucket/a.png", "input: invalid bucket name in 'gs://Bad_Bucket/a.png'"),
        (
            "file://relative/a.png",
            "input: file URIs must be absolute (file:///path), got 'file://relative/a.png'",
        ),
        ("file:///in/a%00.png", "input: file URI encodes control characters"),
    ],
)
def test_each_bad_uri_gets_its_own_message(value: object, expected: str) -> None:
    assert message_of(v.uri, value, "input") == expected


@pytest.mark.parametrize(
    "value", ["http://" + "h" * 200, "gs://" + "B" * 200, "file://" + "r" * 200]
)
def test_a_long_bad_uri_is_quoted_to_80_characters(value: str) -> None:
    assert repr(value[:80]) in message_of(v.uri, value, "input")


@pytest.mark.parametrize(
    "value",
    [
        "file:///" + "a" * 2040,  # exactly 2048 characters
        "gs://bucket/a://b.png",  # "://" again inside the object name
        "file:///in/a%20b.png",  # percent-encoded, but not a control character
        "gs://bucket/" + "é" * 512,  # exactly 1024 bytes of UTF-8
    ],
)
def test_uris_at_the_limits_pass_unchanged(value: str) -> None:
    assert v.uri(value, "input") == value


def test_an_object_name_over_1024_bytes_is_refused_naming_the_field() -> None:
    assert message_of(v.uri, "gs://bucket/" + "é" * 512 + "a", "output") == (
        "output: object name is 1025 bytes; Cloud Storage allows 1024"
    )
    v.object_name_fits("file:///" + "a" * 1500, "output")  # only gs:// names have the limit


@pytest.mark.parametrize(("value", "expected"), [(None, None), (0, 0), ("0", 0), ("17", 17)])
def test_generation_takes_non_negative_integers_and_their_strings(
    value: object, expected: int | None
) -> None:
    assert v.generation(value, "input_generation") == expected


@pytest.mark.parametrize("value", [-1, "-1", True, 1.5, "١٢", "", "1e3"])
def test_generation_refuses_everything_else(value: object) -> None:
    assert message_of(v.generation, value, "input_generation") == (
        f"input_generation: expected a non-negative integer, got {value!r}"
    )


def test_choice_and_optional_str_say_what_they_expected() -> None:
    assert message_of(v.choice, "gif", ("png", "webp"), "format") == (
        "format: expected one of png, webp, got 'gif'"
    )
    assert v.choice("webp", ("png", "webp"), "format") == "webp"
    assert message_of(v.optional_str, 5, "background", pattern=r"^#[0-9a-f]{6}$") == (
        "background: expected a string matching ^#[0-9a-f]{6}$, got 5"
    )
    assert v.optional_str(None, "background", pattern=r"^#") is None
    assert v.optional_str("#ffffff", "background", pattern=r"^#[0-9a-f]{6}$") == "#ffffff"
