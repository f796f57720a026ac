"""Storage by URI: the local backend, and gs:// against the local GCS server."""

from __future__ import annotations

import io
import os
import threading

import pytest
from google.api_core import exceptions as gexc
from google.cloud.storage import Blob

from cutq.core.errors import (
    AlreadyExists,
    InputChanged,
    InputNotFound,
    InputTooLarge,
    UnsupportedScheme,
    error_code,
    is_permanent,
)
from cutq.core.storage import file_path, open_storage, scheme_of, to_uri
from cutq.core.storage.gcs import GcsStorage


def test_unknown_schemes_are_rejected() -> None:
    for uri in ("s3://bucket/key", "http://host/x.png", "ftp://x/y"):
        with pytest.raises(UnsupportedScheme):
            open_storage(uri)
    assert scheme_of("relative/path.png") == "file"
    with pytest.raises(UnsupportedScheme):
        file_path("file://relative/path")


def test_local_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    uri = to_uri(tmp_path / "a" / "b.png")
    storage = open_storage(uri)
    info = storage.write(uri, b"hello", content_type="image/png")
    assert info.size == 5 and storage.stat(uri) == info
    assert storage.read(uri, max_bytes=5, generation=info.generation) == b"hello"
    with pytest.raises(InputTooLarge):
        storage.read(uri, max_bytes=4)
    with pytest.raises(InputNotFound):
        storage.read(uri, max_bytes=10, generation=(info.generation or 0) + 1)
    with pytest.raises(InputNotFound):
        storage.read(to_uri(tmp_path / "missing.png"), max_bytes=10)
    assert storage.stat(to_uri(tmp_path / "missing.png")) is None
    storage.upload(
        to_uri(tmp_path / "a" / "c.bin"),
        io.BytesIO(b"x" * 3_000_000),
        content_type="application/octet-stream",
    )
    assert [i.uri.rsplit("/", 1)[1] for i in storage.list(to_uri(tmp_path / "a"))] == [
        "b.png",
        "c.bin",
    ]
    assert not [name for name in os.listdir(tmp_path / "a") if name.startswith(".")]


def test_gcs_round_trip_with_metadata_and_limits(gcs_bucket: str) -> None:
    uri = f"gs://{gcs_bucket}/dir/a.png"
    storage = open_storage(uri)
    info = storage.write(uri, b"png-bytes", content_type="image/png", metadata={"cutq-width": "3"})
    assert info.size == 9 and info.generation
    stat = storage.stat(uri)
    assert stat is not None and stat.metadata["cutq-width"] == "3"
    assert storage.read(uri, max_bytes=100) == b"png-bytes"
    assert storage.read(uri, max_bytes=100, generation=info.generation) == b"png-bytes"
    with pytest.raises(InputTooLarge):
        storage.read(uri, max_bytes=8)
    with pytest.raises(InputNotFound):
        storage.read(f"gs://{gcs_bucket}/missing.png", max_bytes=100)
    with pytest.raises(InputNotFound):
        storage.read("gs://no-such-bucket-here/a.png", max_bytes=100)
    assert storage.stat(f"gs://{gcs_bucket}/missing.png") is None


def test_a_gcs_read_that_finds_its_input_overwritten_is_input_changed_and_retried(
    gcs_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The size is checked on one generation and the bytes read pinned to it: when the object
    is overwritten in between, GCS answers the download 412. That is the transient
    ``input_changed`` (a retry reads the new object), never the permanent ``input_not_found``.
    The local GCS server neither enforces the precondition nor sends the download through a
    proxy (its media links name itself), so the client's download meets the 412 here."""
    uri = f"gs://{gcs_bucket}/changing.png"
    storage = GcsStorage(attempts=1)
    written = storage.write(uri, b"first", content_type="image/png")
    pinned: list[object] = []

    def overwritten(blob: Blob, **kwargs: object) -> bytes:
        pinned.append(kwargs.get("if_generation_match"))
        raise gexc.PreconditionFailed("conditionNotMet")

    monkeypatch.setattr(Blob, "download_as_bytes", overwritten)
    with pytest.raises(InputChanged) as raised:
        storage.read(uri, max_bytes=100)
    assert pinned == [written.generation]
    assert error_code(raised.value) == "input_changed" and not is_permanent(raised.value)


def test_gcs_resumable_upload_and_streamed_download(gcs_bucket: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = os.urandom(20 * 1024 * 1024 + 123)  # over the 8 MiB chunk: a resumable upload
    uri = f"gs://{gcs_bucket}/big.bin"
    storage = open_storage(uri)
    assert storage.upload(
        uri, io.BytesIO(data), content_type="application/octet-stream"
    ).size == len(data)
    target = tmp_path / "copy.bin"
    storage.download_to_path(uri, target)
    assert target.read_bytes() == data


def test_gcs_listing_is_lazy_and_prefix_scoped(gcs_bucket: str) -> None:
    storage = open_storage(f"gs://{gcs_bucket}")
    for index in range(25):
        storage.write(f"gs://{gcs_bucket}/p/{index:03d}.jpg", b"x", content_type="image/jpeg")
    storage.write(f"gs://{gcs_bucket}/q/other.jpg", b"x", content_type="image/jpeg")
    listing = storage.list(f"gs://{gcs_bucket}/p/")
    assert next(listing).uri == f"gs://{gcs_bucket}/p/000.jpg"
    assert len(list(listing)) == 24


def test_local_uris_with_spaces_and_percent_encoding_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "my photos" / "dt=2026"
    uri = to_uri(folder / "a b%.png")
    storage = open_storage(uri)
    storage.write(uri, b"x", content_type="image/png")
    assert (folder / "a b%.png").read_bytes() == b"x"
    listed = [info.uri for info in storage.list(to_uri(tmp_path))]
    assert [file_path(u) for u in listed] == [folder / "a b%.png"]
    assert storage.read(listed[0], max_bytes=10) == b"x"


def create_only_race(uri: str, writers: int = 8) -> tuple[list[bytes], bytes]:
    """``writers`` threads create ``uri`` at once; returns who won and what was stored."""
    storage = open_storage(uri)
    start = threading.Barrier(writers)
    won: list[bytes] = []
    lost = 0

    def write(index: int) -> None:
        nonlocal lost
        data = f"writer-{index}".encode()
        start.wait()
        try:
            storage.write(uri, data, content_type="image/png", if_absent=True)
            won.append(data)
        except AlreadyExists:
            lost += 1

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert lost == writers - len(won)
    return won, storage.read(uri, max_bytes=100)


def test_create_only_writes_have_exactly_one_winner_on_gcs(gcs_bucket: str) -> None:
    """Cloud Storage answers 412 to ifGenerationMatch=0 on an existing object; the tests'
    server is made to do the same (tests/support/servers.py), and GcsStorage maps it."""
    uri = f"gs://{gcs_bucket}/race/result.png"
    won, stored = create_only_race(uri)
    assert len(won) == 1 and stored == won[0]
    with pytest.raises(AlreadyExists):
        open_storage(uri).write(uri, b"later", content_type="image/png", if_absent=True)
    assert open_storage(uri).write(uri, b"replace", content_type="image/png").size == 7


def test_create_only_writes_have_exactly_one_winner_on_local_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    uri = to_uri(tmp_path / "race" / "result.png")
    won, stored = create_only_race(uri)
    assert len(won) == 1 and stored == won[0]
    assert sorted(os.listdir(tmp_path / "race")) == ["result.png"]  # no temporary left behind


@pytest.mark.parametrize("backend", ["gs", "file"])
def test_delete_removes_an_object_and_a_missing_one_is_no_error(
    backend: str, request: pytest.FixtureRequest
) -> None:
    """What taking back an ending mark needs (cutq.worker.ending_marks). The generation guard
    is checked on files only: gcp-storage-emulator ignores preconditions on delete."""
    if backend == "gs":
        base = f"gs://{request.getfixturevalue('gcs_bucket')}"
    else:
        base = to_uri(request.getfixturevalue("tmp_path"))
    uri = f"{base}/_cutq/endings/job-1"
    storage = open_storage(uri)
    first = storage.write(uri, b"mine", content_type="application/json", if_absent=True)
    assert storage.delete(uri, generation=first.generation) is True
    assert storage.stat(uri) is None
    assert storage.delete(uri) is False  # already gone: nothing to do
    assert storage.delete(uri, generation=first.generation) is False
    again = storage.write(uri, b"theirs", content_type="application/json", if_absent=True)
    if backend == "file":  # another generation: not this caller's to delete
        with pytest.raises(AlreadyExists):
            storage.delete(uri, generation=(again.generation or 0) - 1)
        assert storage.stat(uri) is not None
    assert storage.delete(uri) is True
    assert storage.stat(uri) is None
    assert storage.delete(uri) is False  # of two deletes, one finds it gone
