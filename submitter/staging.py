"""Sources and staging: what a client may submit, and how local bytes reach storage.

A source is a local path, ``bytes``, a binary file object, a ``gs://``/``file://`` URI or an
:class:`ObjectInfo` from a listing. Local bytes are staged under a content-addressed name,
``<staging>/<sha256>.<ext>``, so submitting the same bytes twice uploads them once (the upload
is skipped when the object exists). :class:`NamedSource` gives one source its own ``ref`` and
``name`` (docs/identity.md).
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

from cutq.core.errors import ConfigError, InputNotFound
from cutq.core.storage import ObjectInfo, file_path, open_storage, to_uri

Source = Union[str, "os.PathLike[str]", bytes, BinaryIO, ObjectInfo]
SINGLE_REQUEST_MAX_BYTES = 8 * 1024 * 1024  # larger sources go through a resumable upload
_MAGIC = ((b"\x89PNG", "png"), (b"\xff\xd8\xff", "jpg"), (b"GIF8", "gif"), (b"BM", "bmp"))


@dataclass(frozen=True)
class NamedSource:
    """A source with the ``ref`` and ``name`` its job carries (None: the request's)."""

    source: Source
    name: str | None = None
    ref: str | None = None


@dataclass(frozen=True)
class Staged:
    """Where a source is, for its job: the input URI and its generation (when known)."""

    uri: str
    generation: int | None


def stage(source: Source, staging: str | None) -> Staged:
    """Where ``source`` is, with its generation: uploaded to ``staging`` when it is local
    bytes (a path, ``bytes`` or a file object); a URI or listed object as it is."""
    if isinstance(source, ObjectInfo):
        if source.generation is not None:
            return Staged(source.uri, source.generation)
        source = source.uri
    if isinstance(source, str) and "://" in source:
        info = open_storage(source).stat(source)
        if info is None:
            raise InputNotFound(f"{source}: no such object")
        return Staged(to_uri(source), info.generation)
    if not staging:
        raise ConfigError(
            "local sources need a staging URI (staging= or CUTQ_SUBMITTER_STAGING); "
            "pass file:// URIs to publish local paths as they are"
        )
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise InputNotFound(f"{path}: no such file")
        with path.open("rb") as handle:
            return upload(handle, staging, path.suffix.lower().lstrip(".") or "bin")
    return upload(source, staging)


def upload(data: bytes | BinaryIO, staging: str, fallback_ext: str = "bin") -> Staged:
    """Stage under ``<staging>/<sha256>.<ext>`` (the extension from the bytes themselves,
    so the same bytes under any file name are the same object and the same job)."""
    spool: BinaryIO | None = None
    if not isinstance(data, bytes) and not data.seekable():
        spool = tempfile.SpooledTemporaryFile(SINGLE_REQUEST_MAX_BYTES)  # noqa: SIM115
        shutil.copyfileobj(data, spool, 1 << 20)
        spool.seek(0)
        data = spool
    try:
        if isinstance(data, bytes):
            head = data[:16]
        else:
            start = data.tell()
            head = data.read(16)
            data.seek(start)
        ext = sniff(head, fallback_ext)
        digest, size = _sha256(data)
        uri = f"{staging.rstrip('/')}/{digest}.{ext}"
        if "://" not in uri:
            uri = file_path(uri).as_uri()
        storage = open_storage(uri)
        info = storage.stat(uri)
        if info is None:
            content_type = mimetypes.guess_type(f"x.{ext}")[0] or "application/octet-stream"
            if isinstance(data, bytes) or size <= SINGLE_REQUEST_MAX_BYTES:
                body = data if isinstance(data, bytes) else data.read()
                info = storage.write(uri, body, content_type=content_type)
            else:
                info = storage.upload(uri, data, content_type=content_type)  # resumable
        return Staged(uri, info.generation)
    finally:
        if spool is not None:
            spool.close()


def _sha256(data: bytes | BinaryIO) -> tuple[str, int]:
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest(), len(data)
    start, digest = data.tell(), hashlib.sha256()
    while chunk := data.read(1 << 20):
        digest.update(chunk)
    size = data.tell() - start
    data.seek(start)
    return digest.hexdigest(), size


def sniff(head: bytes, default: str = "bin") -> str:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return next((ext for magic, ext in _MAGIC if head.startswith(magic)), default)


def label(source: Source | NamedSource) -> str:
    """How messages and checkpoints name ``source``."""
    if isinstance(source, NamedSource):
        return label(source.source)
    if isinstance(source, ObjectInfo):
        return source.uri
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, bytes):
        return f"<{len(source)} bytes>"
    return getattr(source, "name", None) or "<file object>"
