"""Hostile and unusual inputs through one real worker: each ends as exactly one event.

A bad input must end as a ``failed`` event with its stable code and an ack (never a retry, a
dead letter or a crash); an unusual but valid one must succeed. One worker, started once for
the whole module, takes the batch; a normal job published after it must still complete.

The 60 MB input really is 60 MB (an uncompressed BMP of zeros, uploaded in well under a second
to the in-memory GCS emulator) against the default 50 MiB ``max_input_bytes``; the worker
refuses it from the object's size, before downloading it. Pillow here decodes AVIF natively;
HEIC goes through pillow-heif (the heic extra), and a truncated HEIC fails as
``image_undecodable`` with a message naming HEIC.
"""

from __future__ import annotations

import io
import json
import logging
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from PIL import Image, features

from cutq.core.contract import MAX_MESSAGE_BYTES
from cutq.core.storage import open_storage
from cutq.worker.config import WorkerConfig
from cutq.worker.outcome import Stats
from tests.support.cloud import Cloud, ThreadWorker
from tests.support.emulators import PubSubEmulator

BUCKET = "t-hostile-inputs"
MISSING_BUCKET = "t-hostile-no-such-bucket"
SECRET = "SECRET-bearer-7f3a9c"  # a credential a careless publisher put in message attributes


def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def photo(width: int = 60, height: int = 40, seed: int = 1) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


def png_bomb(width: int, height: int) -> bytes:
    """A valid, tiny PNG whose header claims ``width`` × ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096, 9)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def big_bmp(total_bytes: int) -> bytes:
    """An uncompressed 24-bit BMP of about ``total_bytes``: built from zeros, no encoding."""
    width = 4000
    row = width * 3
    height = total_bytes // row + 1
    header = b"BM" + struct.pack("<IHHI", 54 + row * height, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, row * height, 2835, 2835, 0, 0)
    return header + info + bytes(row * height)


def heic_like() -> bytes:
    """The start of an ISO-BMFF file with HEIC brands (what iPhones upload)."""
    ftyp = b"ftypheic" + b"\x00\x00\x00\x00" + b"mif1heic"
    return struct.pack(">I", len(ftyp) + 4) + ftyp + struct.pack(">I", 16) + b"mdat" + bytes(8)


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (24, 16), (70 * i, 90, 30)) for i in range(3)]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


def exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": stored 60×40, shown 40×60
    return encoded(photo(60, 40), "JPEG", exif=exif)


@dataclass(frozen=True)
class Case:
    """One hostile or unusual job: what is stored, what is published, how it must end."""

    name: str
    expect: str  # an error code, or "completed"
    upload: bytes | None = None  # stored at gs://BUCKET/in/<name> when given
    job: dict[str, Any] | None = None  # overrides of the v1 job body
    raw: bytes | None = None  # publish these bytes instead of a job
    message_contains: str = ""
    size: tuple[int, int] | None = None  # expected output width × height
    attributes: dict[str, str] = field(default_factory=dict)


def png_of(image: Image.Image) -> bytes:
    return encoded(image, "PNG")


_jpeg = encoded(photo(), "JPEG")
_png = png_of(photo())
CASES = [
    Case("empty-file", "image_undecodable", upload=b"", message_contains="empty"),
    Case("truncated-jpeg", "image_undecodable", upload=_jpeg[: len(_jpeg) // 2]),
    Case("truncated-png", "image_undecodable", upload=_png[: len(_png) // 2]),
    Case("text-named-png", "image_undecodable", upload=b"name,price\nlamp,12\n"),
    Case("png-bomb", "image_too_large", upload=png_bomb(100_000, 100_000)),
    Case("sixty-mb-bmp", "input_too_large", upload=big_bmp(60_000_000)),
    Case("one-by-one", "completed", upload=png_of(Image.new("RGB", (1, 1), "red")), size=(1, 1)),
    Case(
        "wide-20000x10",
        "completed",
        upload=png_of(Image.new("RGB", (20000, 10), (200, 30, 30))),
        size=(20000, 10),
    ),
    Case("animated-gif", "image_unsupported", upload=animated_gif(), message_contains="3 frames"),
    Case("truncated-animated-gif", "image_undecodable", upload=animated_gif()[:100]),
    Case("cmyk-jpeg", "completed", upload=encoded(photo().convert("CMYK"), "JPEG"), size=(60, 40)),
    Case(
        "sixteen-bit-png",
        "completed",
        upload=png_of(Image.fromarray(np.full((30, 50), 40000, dtype=np.uint16))),
        size=(50, 30),
    ),
    Case("exif-rotated-jpeg", "completed", upload=exif_rotated_jpeg(), size=(40, 60)),
    Case(
        "avif",
        "completed" if features.check("avif") else "image_undecodable",
        upload=encoded(photo(), "AVIF") if features.check("avif") else b"\x00\x00\x00\x1cftypavif",
        size=(60, 40) if features.check("avif") else None,
    ),
    Case("heic", "image_undecodable", upload=heic_like(), message_contains="HEIC"),
    Case("invalid-utf8", "invalid_message", raw=b'{"input": "gs://a/\xff\xfe"}'),
    Case("invalid-json", "invalid_message", raw=b'{"input": "gs://a/b.png",'),
    Case("deeply-nested-json", "invalid_message", raw=b"[" * 20_000 + b"]" * 20_000),
    Case(
        "over-64-kib",
        "invalid_message",
        raw=json.dumps({"input": "gs://a/b.png", "pad": "x" * MAX_MESSAGE_BYTES}).encode(),
    ),
    Case(
        "too-many-attributes",
        "invalid_job",
        job={"attributes": {f"k{i}": "v" for i in range(40)}},
        message_contains="attributes",
    ),
    Case("missing-object", "input_not_found", job={"input": f"gs://{BUCKET}/in/nothing-here.png"}),
    Case("missing-bucket", "input_not_found", job={"input": f"gs://{MISSING_BUCKET}/a.png"}),
    Case("bucket-with-no-object", "input_not_found", job={"input": f"gs://{BUCKET}/"}),
    Case(
        "input-outside-allowed-buckets",
        "access_denied",
        job={"input": "gs://someone-elses-bucket/photo.png"},
    ),
    Case(
        "output-outside-allowed-buckets",
        "access_denied",
        upload=_png,
        job={"output": "gs://someone-elses-bucket/out"},
    ),
    Case(
        "file-output-path-traversal",
        "access_denied",
        upload=_png,
        job={"output": "file://{allowed}/../etc/x"},
        message_contains="outside the allowed directories",
    ),
    Case(
        "file-input-path-traversal",
        "access_denied",
        job={"input": "file://{allowed}/../../etc/passwd"},
    ),
    Case(
        "secret-in-message-attributes",
        "completed",
        upload=_png,
        size=(60, 40),
        attributes={"authorization": f"Bearer {SECRET}", "x-api-key": SECRET},
    ),
]


@dataclass
class Outcome:
    """What the module's worker did with the batch."""

    events: dict[str, list[dict]]  # case name → its events
    after: list[dict]  # events of the normal job published after the batch
    stats: Stats
    leftovers: dict[str, list[dict]]  # what sat on the jobs and dead-letter subscriptions
    log: str


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{self.format(record)} {record.__dict__}")


def _bucket(name: str) -> None:
    storage = open_storage(f"gs://{name}")
    client = storage.client  # type: ignore[attr-defined]
    bucket = client.bucket(name)
    if bucket.exists():
        for blob in client.list_blobs(name):
            blob.delete()
    else:
        client.create_bucket(name)


@pytest.fixture(scope="module")
def outcome(
    pubsub_emulator: PubSubEmulator, gcs_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Outcome]:
    _bucket(BUCKET)
    allowed = tmp_path_factory.mktemp("allowed")
    cloud = Cloud(pubsub_emulator, BUCKET)
    storage = open_storage(f"gs://{BUCKET}")
    keys: dict[str, str] = {}  # the job id or message id the case's event will carry → case
    futures = []
    for case in CASES:
        if case.upload is not None:
            storage.write(f"gs://{BUCKET}/in/{case.name}", case.upload, content_type="image/png")
        if case.raw is not None:
            data = case.raw
        else:
            body: dict[str, Any] = {"job_id": case.name, "input": f"gs://{BUCKET}/in/{case.name}"}
            body.update(case.job or {})
            data = json.dumps(body).replace("{allowed}", str(allowed)).encode()
            keys[case.name] = case.name
        futures.append((case, cloud.publisher.publish(cloud.jobs_topic, data, **case.attributes)))
    for case, future in futures:
        message_id = future.result(timeout=30)
        keys[f"message-{message_id}"] = case.name  # a job that does not parse has no job id
    capture = _Capture()
    logger = logging.getLogger("cutq")
    level = logger.level
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    worker = ThreadWorker(
        cloud.worker_config(
            allowed_buckets=(BUCKET, MISSING_BUCKET), allowed_dirs=(str(allowed),), max_batch=4
        )
    )
    try:
        events = cloud.pull_all(cloud.events_sub, expected=len(CASES), timeout_s=90)
        cloud.publish_jobs(cloud.upload_images(1, prefix="after"))
        after = cloud.pull_all(cloud.events_sub, expected=1, timeout_s=60)
        leftovers = {"jobs": cloud.drain(cloud.jobs_sub), "dead": cloud.drain(cloud.dead_sub)}
    finally:
        worker.stop()
        logger.removeHandler(capture)
        logger.setLevel(level)
        cloud.close()
    by_case: dict[str, list[dict]] = {case.name: [] for case in CASES}
    for event in events:
        by_case[keys[event["body"]["data"]["job_id"]]].append(event)
    yield Outcome(by_case, after, worker.stats, leftovers, "\n".join(capture.lines))


@pytest.mark.timeout(180)
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_input_ends_once_with_its_code(outcome: Outcome, case: Case) -> None:
    events = outcome.events[case.name]
    assert len(events) == 1, f"{case.name}: {len(events)} events"
    data, attributes = events[0]["body"]["data"], events[0]["attributes"]
    if case.expect == "completed":
        assert data["status"] == "completed" and attributes["status"] == "completed", data
        (output,) = data["outputs"]
        assert open_storage(output["uri"]).stat(output["uri"]) is not None
        if case.size is not None:
            assert (output["width"], output["height"]) == case.size
    else:
        assert data["status"] == "failed", data
        assert data["error"]["code"] == attributes["error_code"] == case.expect, data["error"]
        assert case.message_contains in data["error"]["message"]


@pytest.mark.timeout(180)
def test_the_worker_keeps_serving_and_never_retries_input(outcome: Outcome) -> None:
    assert [e["body"]["data"]["status"] for e in outcome.after] == ["completed"]
    expected_failures = sum(case.expect != "completed" for case in CASES)
    assert outcome.stats.failed == expected_failures
    assert outcome.stats.completed == len(CASES) - expected_failures + 1
    assert outcome.stats.returned == 0  # a bad input is never mistaken for a transient fault
    assert outcome.leftovers == {"jobs": [], "dead": []}


@pytest.mark.timeout(180)
def test_message_attributes_never_reach_the_log(outcome: Outcome) -> None:
    assert "secret-in-message-attributes" in outcome.log  # its job line was captured
    assert SECRET not in outcome.log


def test_the_sixty_mb_input_is_what_it_claims() -> None:
    # The case must fail for its size alone: over the worker's default byte limit, yet a valid
    # image whose pixel count is within the pixel limit (else image_too_large or
    # image_undecodable could stand in for the byte check).
    (case,) = [case for case in CASES if case.name == "sixty-mb-bmp"]
    assert case.upload is not None and case.expect == "input_too_large"
    defaults = WorkerConfig()
    assert len(case.upload) > 60_000_000 > defaults.max_input_bytes
    with Image.open(io.BytesIO(case.upload)) as image:
        assert image.format == "BMP" and image.width * image.height <= defaults.max_pixels
        image.load()  # every pixel is there: not a truncated file
