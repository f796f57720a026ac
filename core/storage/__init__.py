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

    def delete(self, uri: str, *, generation: int | None = None) -> bool:
        """Remove the object (only that ``generation`` of it, when given); False when it was
        already gone (of two concurrent deletes, one returns True)."""


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


class Stores:
    """The backends one owner uses, one per scheme, built on first use with one retry policy.

    A worker's :class:`~cutq.worker.service.Service` builds one at start-up and passes it to
    its pipeline; nothing about it is shared with the rest of the process.
    """

    def __init__(
        self,
        *,
        attempts: int | None = None,
        deadline_s: float | None = None,
        timeout_s: float | None = None,
    ) -> None:
        settings = {"attempts": attempts, "deadline_s": deadline_s, "timeout_s": timeout_s}
        self._settings = {name: value for name, value in settings.items() if value is not None}
        self._backends: dict[str, Storage] = {}
        self._lock = threading.Lock()

    def open(self, uri: str) -> Storage:
        """The backend for ``uri``'s scheme (rejects unknown schemes)."""
        scheme = scheme_of(uri)
        with self._lock:
            if scheme not in self._backends:
                if scheme == "gs":
                    from cutq.core.storage.gcs import GcsStorage

                    self._backends[scheme] = GcsStorage(**self._settings)  # type: ignore[arg-type]
                else:
                    from cutq.core.storage.local import LocalStorage

                    self._backends[scheme] = LocalStorage()
            return self._backends[scheme]


_defaults: dict[str | None, Stores] = {}
_defaults_lock = threading.Lock()


def open_storage(uri: str) -> Storage:
    """The backend for ``uri``'s scheme with the default retry policy: for the submitter and
    the command line. Backends are kept per ``STORAGE_EMULATOR_HOST`` (the one setting that
    changes where a client goes), so pointing it elsewhere needs no reset."""
    with _defaults_lock:
        stores = _defaults.setdefault(os.environ.get("STORAGE_EMULATOR_HOST"), Stores())
    return stores.open(uri)


__all__ = [
    "ObjectInfo",
    "Storage",
    "Stores",
    "file_path",
    "open_storage",
    "scheme_of",
    "split_gs_uri",
    "to_uri",
]
