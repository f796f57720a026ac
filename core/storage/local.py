"""``file://`` storage: the local directory backend for laptops, tests and batch runs."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from cutq.core.errors import (
    AccessDenied,
    AlreadyExists,
    InputNotFound,
    InputTooLarge,
    StorageUnavailable,
)
from cutq.core.storage import ObjectInfo, file_path


class LocalStorage:
    """Objects are files, written to a temporary file then renamed into place (or, create-only,
    linked: ``link`` never replaces). Atomic either way."""

    def read(self, uri: str, *, max_bytes: int, generation: int | None = None) -> bytes:
        path = file_path(uri)
        try:
            with path.open("rb") as handle:
                stat = os.fstat(handle.fileno())
                if generation is not None and stat.st_mtime_ns != generation:
                    raise InputNotFound(f"{uri}: generation {generation} no longer exists")
                if stat.st_size > max_bytes:
                    raise InputTooLarge(f"{uri} is {stat.st_size} bytes; limit {max_bytes}")
                return handle.read(max_bytes + 1)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise InputNotFound(f"{uri}: no such file") from None
        except PermissionError:
            raise AccessDenied(f"{uri}: permission denied") from None
        except OSError as error:
            raise StorageUnavailable(f"{uri}: {error}") from error

    def write(
        self,
        uri: str,
        data: bytes,
        *,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
        if_absent: bool = False,
    ) -> ObjectInfo:
        path = file_path(uri)
        with self._atomic(path, exclusive=if_absent) as handle:
            handle.write(data)
        return self._info(path)

    def upload(self, uri: str, source: BinaryIO, *, content_type: str) -> ObjectInfo:
        path = file_path(uri)
        with self._atomic(path) as handle:
            shutil.copyfileobj(source, handle, 1 << 20)
        return self._info(path)

    def download_to_path(self, uri: str, path: Path) -> ObjectInfo:
        source = file_path(uri)
        try:
            with source.open("rb") as src, self._atomic(Path(path)) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except FileNotFoundError:
            raise InputNotFound(f"{uri}: no such file") from None
        return self._info(source)

    def delete(self, uri: str, *, generation: int | None = None) -> bool:
        path = file_path(uri)
        try:
            if generation is not None and path.stat().st_mtime_ns != generation:
                raise AlreadyExists(f"{uri} was replaced")
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as error:
            raise StorageUnavailable(f"{uri}: {error}") from error
        return True

    def stat(self, uri: str) -> ObjectInfo | None:
        path = file_path(uri)
        return self._info(path) if path.is_file() else None

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        root = file_path(prefix)
        if root.is_file():
            yield self._info(root)
            return
        base, pattern = (root, "") if root.is_dir() else (root.parent, root.name)
        for directory, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(directory, name)
                if path.relative_to(base).as_posix().startswith(pattern) and not name.startswith(
                    ".cutq-"
                ):
                    yield self._info(path)

    @staticmethod
    def _info(path: Path) -> ObjectInfo:
        stat = path.stat()
        return ObjectInfo(uri=path.as_uri(), size=stat.st_size, generation=stat.st_mtime_ns)

    class _atomic:
        """Write to a hidden temporary file in the target directory, then rename over it."""

        def __init__(self, path: Path, exclusive: bool = False) -> None:
            self.path = path
            self.exclusive = exclusive

        def __enter__(self) -> BinaryIO:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise AccessDenied(
                    f"{self.path.parent}: cannot create directory: {error}"
                ) from None
            fd, self.tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".cutq-")
            self.handle = os.fdopen(fd, "wb")
            return self.handle

        def __exit__(self, kind: object, error: object, traceback: object) -> None:
            self.handle.close()
            if kind is not None:
                os.unlink(self.tmp)
                return
            os.chmod(self.tmp, 0o644)
            if not self.exclusive:
                os.replace(self.tmp, self.path)
                return
            try:  # link() never replaces: of two writers exactly one creates the file
                os.link(self.tmp, self.path)
            except FileExistsError:
                raise AlreadyExists(f"{self.path.as_uri()} already exists") from None
            finally:
                os.unlink(self.tmp)
