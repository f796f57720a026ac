"""Storage chosen by URI scheme: ``gs://bucket/object`` or ``file:///path`` (or a plain path).

:func:`open_storage` is the one entry point; it rejects unknown schemes. Every backend meets
:class:`Storage`, raises :mod:`cutq.core.errors` types (never a client library's), and
writes atomically: a reader sees a whole object or none.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import unquote

from cutq.core.errors import UnsupportedScheme


@dataclass(frozen=True)
class ObjectInfo:
    """What a backend knows about one stored object."""

    uri: str
    size: int
    generation: int | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


class Storage(Protocol):
    """What the worker and the submitter need from an object store."""

    def read(self, uri: str, *, max_bytes: int, generation: int | None = None) -> bytes:
        """The whole object; :class:`InputTooLarge` past ``max_bytes``."""

    def write(
        self,
        uri: str,
        data: bytes,
        *,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
        if_absent: bool = False,
    ) -> ObjectInfo:
        """Create or replace the object in one atomic step.

        ``if_absent``: create only; :class:`AlreadyExists` when the object is already there
        (decided by the store itself, so of two concurrent writers exactly one wins).
        """

    def upload(self, uri: str, source: BinaryIO, *, content_type: str) -> ObjectInfo:
        """Stream a file object of any size (resumable where the backend has it)."""

    def download_to_path(self, uri: str, path: Path) -> ObjectInfo:
        """Stream the object to a local file, atomically."""

    def stat(self, uri: str) -> ObjectInfo | None:
        """The object's info, or None when it does not exist."""

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects under ``prefix``, lazily, in name order."""


def split_gs_uri(uri: str) -> tuple[str, str]:
    """``gs://bucket/a/b`` → ``("bucket", "a/b")``."""
    if not uri.startswith("gs://"):
        raise UnsupportedScheme(f"not a gs:// URI: {uri!r}")
    bucket, _, name = uri[len("gs://") :].partition("/")
    return bucket, name


def file_path(uri: str) -> Path:
    """``file:///a/b`` or a plain path → an absolute :class:`Path`."""
    if uri.startswith("file://"):
        rest = unquote(uri[len("file://") :])  # file URIs are percent-encoded (RFC 8089)
        if rest and not rest.startswith("/"):
            raise UnsupportedScheme(f"file URIs must be absolute (file:///path): {uri!r}")
        return Path(rest or "/")
    return Path(uri).absolute()


def scheme_of(uri: str) -> str:
    """``gs``, ``file``, or raise :class:`UnsupportedScheme` (plain paths are ``file``)."""
    if "://" not in uri:
        return "file"
    scheme = uri.split("://", 1)[0]
    if scheme not in ("gs", "file"):
        raise UnsupportedScheme(
            f"unsupported storage URI scheme {scheme!r} in {uri[:80]!r}; use gs:// or file://"
        )
    return scheme


def to_uri(path_or_uri: str | os.PathLike[str]) -> str:
    """A canonical URI: plain paths become ``file:///absolute/path``."""
    text = os.fspath(path_or_uri)
    if scheme_of(text) == "gs":
        return text
    return file_path(text).as_uri() if "://" not in text else text


_backends: dict[str, Storage] = {}
_settings: dict[str, float] = {}
_lock = threading.Lock()


def configure(
    *, attempts: int | None = None, deadline_s: float | None = None, timeout_s: float | None = None
) -> None:
    """Retry policy for ``gs://`` backends created from now on (forgets existing ones)."""
    with _lock:
        for name, value in (
            ("attempts", attempts),
            ("deadline_s", deadline_s),
            ("timeout_s", timeout_s),
        ):
            if value is not None:
                _settings[name] = value
        _backends.clear()


def open_storage(uri: str) -> Storage:
    """The backend for ``uri``'s scheme, shared by every caller in this process."""
    scheme = scheme_of(uri)
    with _lock:
        if scheme not in _backends:
            if scheme == "gs":
                from cutq.core.storage.gcs import GcsStorage

                _backends[scheme] = GcsStorage(**_settings)  # type: ignore[arg-type]
            else:
                from cutq.core.storage.local import LocalStorage

                _backends[scheme] = LocalStorage()
        return _backends[scheme]


def reset_backends() -> None:
    """Forget shared backends (after changing ``STORAGE_EMULATOR_HOST``, for instance)."""
    with _lock:
        _backends.clear()


__all__ = [
    "ObjectInfo",
    "Storage",
    "file_path",
    "open_storage",
    "reset_backends",
    "scheme_of",
    "split_gs_uri",
    "to_uri",
]
