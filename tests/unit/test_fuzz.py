"""Property tests of the two places untrusted bytes enter the worker: the job parser and decode.

Whatever a publisher sends, :func:`parse_job` may only raise ``InvalidMessage`` or
``InvalidJob`` (anything else would be "internal": nack, retries, dead letter instead of a
``failed`` event), and whatever it accepts must survive ``to_message`` unchanged. Whatever
bytes sit behind an input URI, :func:`imaging.decode` may only raise a ``PermanentError``, and
never spends memory out of proportion to its pixel limit.
"""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from cutq.core.contract import MAX_MESSAGE_BYTES, Job, Options, OutputSpec, new_job, parse_job
from cutq.core.errors import InvalidJob, InvalidMessage, PermanentError
from cutq.core.events import Event
from cutq.worker.render import imaging

DEFAULTS = OutputSpec("gs://results-bucket/cutouts")
PUBLISHED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- the message parser -----------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
uris = st.one_of(
    st.from_regex(
        r"gs://[a-z0-9][a-z0-9._-]{1,12}[a-z0-9](/[A-Za-z0-9_./ -]{0,16})?", fullmatch=True
    ),
    st.from_regex(r"file://(/[A-Za-z0-9_.]{0,8}){0,3}", fullmatch=True),
    st.text(max_size=24),
)
# Dicts shaped like jobs reach the field checks; arbitrary values in every field probe them.
job_like = st.fixed_dictionaries(
    {},
    optional={
        "v": st.just(1) | json_values,
        "input": uris | json_values,
        "input_generation": st.integers(min_value=-5, max_value=2**64) | json_values,
        "output": uris
        | st.fixed_dictionaries(
            {},
            optional={
                "uri": uris,
                "format": st.sampled_from(["png", "webp", "jpeg", "avif", "gif"]),
                "quality": st.integers(min_value=-1, max_value=101) | json_values,
                "kind": st.sampled_from(["cutout", "mask", "both", "x"]),
                "background": st.sampled_from(["#ffffff", "#00000080", "red"]) | json_values,
            },
        )
        | json_values,
        "job_id": st.from_regex(r"[A-Za-z0-9_.=-]{0,130}", fullmatch=True) | json_values,
        "model": st.sampled_from(["u2netp", "UPPER", ""]) | json_values,
        "options": st.fixed_dictionaries(
            {},
            optional={
                "resize": st.sampled_from(["static", "dynamic", "x"]) | json_values,
                "threshold": st.floats(allow_nan=True) | json_values,
                "foreground": st.sampled_from(["none", "ml", "x"]) | json_values,
                "matting": st.booleans() | json_values,
                "post_process": st.booleans() | json_values,
            },
        )
        | json_values,
        "attributes": st.dictionaries(st.text(max_size=300), st.text(max_size=20), max_size=40)
        | json_values,
        "renditions": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": st.sampled_from(["a", "b", "A", ""]) | json_values,
                    "preset": st.sampled_from(["amazon-main", "thumbnail", "x"]) | json_values,
                    "format": st.sampled_from(["png", "webp", "jpeg", "gif"]) | json_values,
                    "kind": st.sampled_from(["cutout", "mask", "both"]) | json_values,
                    "background": st.sampled_from(["#ffffff", "#00000080"]) | json_values,
                    "quality": st.integers(min_value=-1, max_value=101) | json_values,
                    "foreground": st.sampled_from(["ml", "none"]) | json_values,
                    "frame": st.fixed_dictionaries(
                        {},
                        optional={
                            key: st.integers(min_value=-1, max_value=20000)
                            | st.floats(allow_nan=True)
                            | json_values
                            for key in ("margin", "margin_px", "width", "height", "longest")
                        }
                        | {
                            "fit": st.sampled_from(["contain", "cover", "x"]),
                            "position": st.sampled_from(["center", "bottom", "x"]),
                            "crop": st.booleans() | json_values,
                            "upscale": st.booleans() | json_values,
                        },
                    )
                    | json_values,
                },
            ),
            max_size=3,
        )
        | json_values,
        "extra": json_values,
    },
)
notification_attributes = st.fixed_dictionaries(
    {"eventType": st.just("OBJECT_FINALIZE"), "bucketId": st.text(max_size=16)},
    optional={"objectId": st.text(max_size=16), "objectGeneration": st.text(max_size=8)},
)
attributes = notification_attributes | st.dictionaries(st.text(max_size=16), st.text(max_size=16))


def check_parse(data: bytes, attrs: dict[str, str] | None = None) -> Job | None:
    """Parse; only the two contract errors may escape, and an accepted job must round-trip."""
    try:
        job = parse_job(data, defaults=DEFAULTS, attributes=attrs, publish_time=PUBLISHED)
    except (InvalidMessage, InvalidJob):
        return None
    again = parse_job(job.to_message(), defaults=DEFAULTS, publish_time=PUBLISHED)
    assert again == replace(job, publish_time=PUBLISHED) if attrs else again == job
    assert job.result_uris()  # always at least one output
    event = Event(job_id=job.job_id, status="completed", input=job.input, attributes=job.attributes)
    event.to_json().decode("utf-8")  # what the worker publishes is valid UTF-8 JSON
    return job


@FAST
@given(data=st.binary(max_size=512), attrs=attributes)
@example(data=b"[" * 50_000, attrs={})  # deeper than the JSON decoder's recursion limit
@example(data=b'{"input":"gs://abc/x","attributes":{"\\ud800":"x"}}', attrs={})
@example(data=b"\xef\xbb\xbf{}", attrs={})  # a UTF-8 byte-order mark
@example(data=b"x" * (MAX_MESSAGE_BYTES + 1), attrs={})
def test_arbitrary_bytes_only_raise_contract_errors(data: bytes, attrs: dict[str, str]) -> None:
    check_parse(data, attrs)


@FAST
@given(body=json_values | job_like, attrs=attributes)
def test_arbitrary_json_only_raises_contract_errors(body: Any, attrs: dict[str, str]) -> None:
    check_parse(json.dumps(body).encode(), attrs)


@FAST
@given(body=job_like)
@example(body={"input": "file://relative/x.png"})  # would fail later with a non-permanent error
@example(body={"input": "gs://abc/x", "input_generation": "\u0661\u0662"})  # non-ASCII digits
@example(body={"input": "gs://abc/x\ud800"})  # a lone surrogate, escaped by json.dumps
def test_job_shaped_json_is_accepted_or_refused_cleanly(body: dict[str, Any]) -> None:
    job = check_parse(json.dumps(body).encode())
    if job is not None:
        assert job.input.startswith(("gs://", "file:///"))
        assert job.output.uri.startswith(("gs://", "file:///"))
        assert job.input_generation is None or job.input_generation >= 0


valid_jobs = st.builds(
    lambda input_uri, output, generation, options, attrs, job_id, model: new_job(
        input_uri,
        output,
        input_generation=generation,
        options=options,
        attributes=attrs,
        job_id=job_id,
        model=model,
    ),
    input_uri=st.from_regex(
        r"gs://[a-z0-9][a-z0-9-]{1,20}[a-z0-9]/[A-Za-z0-9_./-]{1,30}", fullmatch=True
    )
    | st.from_regex(r"file:///[A-Za-z0-9_./-]{1,30}", fullmatch=True),
    output=st.builds(
        OutputSpec,
        uri=st.from_regex(r"gs://[a-z0-9][a-z0-9-]{1,20}[a-z0-9](/[a-z0-9]{1,8})?", fullmatch=True),
        format=st.sampled_from(["png", "webp"]),
        kind=st.sampled_from(["cutout", "both"]),
        background=st.none() | st.sampled_from(["#ffffff", "#10203040"]),
    ),
    generation=st.none() | st.integers(min_value=0, max_value=2**63),
    options=st.builds(
        Options,
        resize=st.none() | st.sampled_from(["static", "dynamic"]),
        threshold=st.none() | st.floats(min_value=0.01, max_value=0.99),
    ),
    attrs=st.dictionaries(
        st.text(min_size=1, max_size=20).filter(lambda key: not key.startswith("goog")),
        st.text(max_size=40),
        max_size=5,
    ),
    job_id=st.none() | st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.=-]{0,40}", fullmatch=True),
    model=st.none() | st.sampled_from(["u2netp", "inspyrenet"]),
)


@FAST
@given(job=valid_jobs)
def test_valid_jobs_round_trip(job: Job) -> None:
    message = job.to_message()
    parsed = parse_job(message, defaults=DEFAULTS, publish_time=job.publish_time)
    assert parsed == job
    assert parsed.to_message() == message  # canonical: a second trip changes nothing
    assert parsed.result_uris() == job.result_uris()


# --- the image decoder ------------------------------------------------------------------------

MAX_PIXELS = 64 * 64
DECODE_BUDGET_BYTES = 4 << 20  # generous next to 64×64×4 bytes, tiny next to any bomb


def _encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(7)
    rgb = Image.fromarray(rng.integers(0, 255, (16, 20, 3), dtype=np.uint8))
    frames = [Image.new("RGB", (8, 8), (60 * i, 20, 90)) for i in range(3)]
    exif = rgb.getexif()
    exif[0x0112] = 6  # rotate 90° on display
    return {
        "png": _encoded(rgb, "PNG"),
        "png_rgba": _encoded(rgb.convert("RGBA"), "PNG"),
        "png_palette": _encoded(rgb.convert("P"), "PNG", transparency=0),
        "png_16bit": _encoded(
            Image.fromarray(rng.integers(0, 65535, (9, 7), dtype=np.uint16)), "PNG"
        ),
        "jpeg": _encoded(rgb, "JPEG"),
        "jpeg_progressive_exif": _encoded(rgb, "JPEG", progressive=True, exif=exif),
        "jpeg_cmyk": _encoded(rgb.convert("CMYK"), "JPEG"),
        "gif": _encoded(rgb, "GIF"),
        "gif_animated": _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "tiff": _encoded(rgb, "TIFF"),
        "bmp": _encoded(rgb, "BMP"),
        "webp": _encoded(rgb, "WEBP"),
        "ico": _encoded(rgb, "ICO", sizes=[(16, 16)]),
    }


SEEDS = _seeds()
mutation = st.tuples(
    st.sampled_from(["set", "insert", "delete", "truncate", "grow"]),
    st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    st.binary(min_size=1, max_size=8),
)


def mutate(data: bytes, mutations: list[tuple[str, float, bytes]]) -> bytes:
    """Byte-level edits at relative positions: what a corrupt upload or an attacker produces."""
    buffer = bytearray(data)
    for operation, where, value in mutations:
        at = int(where * len(buffer)) if buffer else 0
        if operation == "set":
            buffer[at : at + len(value)] = value
        elif operation == "insert":
            buffer[at:at] = value
        elif operation == "delete":
            del buffer[at : at + len(value) * 4]
        elif operation == "truncate":
            del buffer[at:]
        else:  # "grow": make a header field (often a dimension) huge
            buffer[at : at + 4] = struct.pack(">I", 0x7FFF0000 | value[0])
    return bytes(buffer)


def check_decode(data: bytes) -> None:
    """Decode under a memory budget: a result within the pixel limit, or a permanent error."""
    tracemalloc.start()
    try:
        decoded = imaging.decode(data, max_pixels=MAX_PIXELS)
    except PermanentError:
        decoded = None
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < DECODE_BUDGET_BYTES, f"decode allocated {peak:,} bytes"
    if decoded is not None:
        assert decoded.width * decoded.height <= MAX_PIXELS
        assert decoded.rgb.dtype == np.uint8 and decoded.rgb.shape[2] == 3


def _truncated_animated_gif(cut: int) -> bytes:
    return SEEDS["gif_animated"][:cut]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_truncated_animated_gif(54), id="animated-gif-cut-in-frame-2-IndexError"),
        pytest.param(_truncated_animated_gif(62), id="animated-gif-cut-in-frame-2-struct.error"),
    ],
)
def test_corrupt_inputs_that_used_to_escape_as_internal_errors(data: bytes) -> None:
    """Regression: Pillow raised IndexError / struct.error from ``n_frames``, outside the
    decoder's error mapping, so a truncated animated GIF was retried and dead-lettered."""
    with pytest.raises(PermanentError):
        imaging.decode(data, max_pixels=MAX_PIXELS)


@FAST
@given(data=st.binary(max_size=2048))
def test_arbitrary_bytes_decode_or_fail_permanently(data: bytes) -> None:
    check_decode(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(sorted(SEEDS)), mutations=st.lists(mutation, min_size=1, max_size=6))
def test_mutated_images_decode_or_fail_permanently(
    seed: str, mutations: list[tuple[str, float, bytes]]
) -> None:
    check_decode(mutate(SEEDS[seed], mutations))


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_seeds_themselves_are_handled(seed: str) -> None:
    """The unmutated seeds: every one decodes, except the animation (unsupported)."""
    if seed == "gif_animated":
        with pytest.raises(PermanentError):
            imaging.decode(SEEDS[seed], max_pixels=MAX_PIXELS)
    else:
        check_decode(SEEDS[seed])
