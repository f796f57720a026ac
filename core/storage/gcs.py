"""``gs://`` storage on google-cloud-storage, with bounded tenacity retries on transient errors.

The client's own retry is switched off (``retry=None``) so one policy, ours, decides how long a
job may wait for storage: a few attempts with exponential backoff, then
:class:`StorageUnavailable`, which the worker turns into a nack. Honours
``STORAGE_EMULATOR_HOST`` like the client library does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO, TypeVar

import requests
from google.api_core import exceptions as gexc
from google.auth.exceptions import TransportError
from google.cloud import storage
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from cutq.core.errors import (
    AccessDenied,
    AlreadyExists,
    CutqError,
    InputChanged,
    InputNotFound,
    InputTooLarge,
    StorageRejected,
    StorageUnavailable,
)
from cutq.core.storage import ObjectInfo, split_gs_uri

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT = (
    gexc.TooManyRequests,
    gexc.InternalServerError,
    gexc.BadGateway,
    gexc.ServiceUnavailable,
    gexc.GatewayTimeout,
    gexc.RetryError,
    requests.ConnectionError,
    requests.Timeout,
    TransportError,
    ConnectionError,
    TimeoutError,
)
RESUMABLE_CHUNK_BYTES = 8 * 1024 * 1024


class GcsStorage:
    """Cloud Storage (or its emulator) through the official client."""

    def __init__(
        self,
        client: storage.Client | None = None,
        *,
        attempts: int = 5,
        deadline_s: float = 60.0,
        timeout_s: float = 60.0,
    ) -> None:
        self.client = client or _default_client()
        self.attempts = attempts
        self.deadline_s = deadline_s
        self.timeout_s = timeout_s

    def read(self, uri: str, *, max_bytes: int, generation: int | None = None) -> bytes:
        def attempt() -> bytes:
            blob = self._get_blob(uri, generation)
            if blob.size is not None and blob.size > max_bytes:
                raise InputTooLarge(f"{uri} is {blob.size} bytes; limit {max_bytes}")
            # Pin the generation we just measured, so the bytes match the size we checked.
            data = blob.download_as_bytes(
                if_generation_match=blob.generation, retry=None, timeout=self.timeout_s
            )
            if len(data) > max_bytes:
                raise InputTooLarge(f"{uri} is over {max_bytes} bytes")
            return data

        return self._call(
            uri, attempt, changed=lambda: InputChanged(f"{uri} was overwritten while being read")
        )

    def write(
        self,
        uri: str,
        data: bytes,
        *,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
        if_absent: bool = False,
    ) -> ObjectInfo:
        def attempt() -> ObjectInfo:
            blob = self._blob(uri)
            if metadata:
                blob.metadata = dict(metadata)
            blob.upload_from_string(
                data,
                content_type=content_type,
                if_generation_match=0 if if_absent else None,
                retry=None,
                timeout=self.timeout_s,
            )
            return self._info(uri, blob)

        # A retried create whose first try landed also answers 412: the caller stats it then.
        return self._call(uri, attempt, changed=lambda: AlreadyExists(f"{uri} already exists"))

    def upload(self, uri: str, source: BinaryIO, *, content_type: str) -> ObjectInfo:
        start = source.tell()

        def attempt() -> ObjectInfo:
            source.seek(start)
            blob = self._blob(uri)
            blob.chunk_size = RESUMABLE_CHUNK_BYTES  # resumable upload, any size
            blob.upload_from_file(
                source, content_type=content_type, retry=None, timeout=self.timeout_s
            )
            return self._info(uri, blob)

        return self._call(uri, attempt)

    def download_to_path(self, uri: str, path: Path) -> ObjectInfo:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".cutq-{path.name}.partial")

        def attempt() -> ObjectInfo:
            blob = self._get_blob(uri, None)
            blob.chunk_size = RESUMABLE_CHUNK_BYTES
            with partial.open("wb") as handle:
                blob.download_to_file(
                    handle, if_generation_match=blob.generation, retry=None, timeout=self.timeout_s
                )
            partial.replace(path)
            return self._info(uri, blob)

        try:
            return self._call(uri, attempt)
        finally:
            partial.unlink(missing_ok=True)

    def stat(self, uri: str) -> ObjectInfo | None:
        def attempt() -> ObjectInfo | None:
            bucket, name = split_gs_uri(uri)
            blob = self.client.bucket(bucket).get_blob(name, retry=None, timeout=self.timeout_s)
            return None if blob is None else self._info(uri, blob)

        return self._call(uri, attempt)

    def delete(self, uri: str, *, generation: int | None = None) -> bool:
        def attempt() -> None:
            self._blob(uri).delete(
                if_generation_match=generation, retry=None, timeout=self.timeout_s
            )

        try:
            self._call(uri, attempt, changed=lambda: AlreadyExists(f"{uri} was replaced"))
        except InputNotFound:
            return False  # already gone (a retried delete whose first try landed, too)
        return True

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        bucket, name_prefix = split_gs_uri(prefix)
        pages = self._call(
            prefix,
            lambda: (
                self.client.list_blobs(
                    bucket, prefix=name_prefix or None, timeout=self.timeout_s
                ).pages
            ),
        )
        while True:
            # Each page is one request: retry it on its own, never hold more than one page.
            page = self._call(prefix, lambda: next(pages, None))
            if page is None:
                return
            for blob in page:
                yield self._info(f"gs://{bucket}/{blob.name}", blob)

    # --- helpers --------------------------------------------------------------------------

    def _blob(self, uri: str, generation: int | None = None) -> storage.Blob:
        bucket, name = split_gs_uri(uri)
        if not name:
            raise InputNotFound(f"{uri}: no object name")
        return self.client.bucket(bucket).blob(name, generation=generation)

    def _get_blob(self, uri: str, generation: int | None) -> storage.Blob:
        bucket, name = split_gs_uri(uri)
        if not name:
            raise InputNotFound(f"{uri}: no object name")
        blob = self.client.bucket(bucket).get_blob(
            name, generation=generation, retry=None, timeout=self.timeout_s
        )
        if blob is None:
            suffix = f" (generation {generation})" if generation is not None else ""
            raise InputNotFound(f"{uri}{suffix}: no such object")
        return blob

    @staticmethod
    def _info(uri: str, blob: storage.Blob) -> ObjectInfo:
        return ObjectInfo(
            uri=uri,
            size=int(blob.size or 0),
            generation=blob.generation,
            metadata=dict(blob.metadata or {}),
        )

    def _call(
        self,
        uri: str,
        function: Callable[[], T],
        changed: Callable[[], CutqError] | None = None,
    ) -> T:
        """Run ``function`` with bounded retries; map client errors to cutq's.

        A failed precondition (HTTP 412) means the object changed under a generation check:
        ``changed()`` says what that means to the caller (default: it is gone).
        """
        retrying = Retrying(
            retry=retry_if_exception_type(TRANSIENT),
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.deadline_s),
            wait=wait_exponential_jitter(multiplier=0.2, max=5.0),
            before_sleep=before_sleep_log(log, logging.WARNING),
            reraise=True,
        )
        try:
            return retrying(function)
        except gexc.PreconditionFailed:
            if changed is None:
                raise InputNotFound(f"{uri}: no such object or bucket") from None
            raise changed() from None
        except gexc.NotFound:
            raise InputNotFound(f"{uri}: no such object or bucket") from None
        except gexc.BadRequest as error:
            raise StorageRejected(f"{uri}: {error.message}") from None
        except (gexc.Forbidden, gexc.Unauthorized) as error:
            raise AccessDenied(f"{uri}: {error.message}") from None
        except TRANSIENT as error:
            raise StorageUnavailable(f"{uri}: {type(error).__name__}: {error}") from error


def _default_client() -> storage.Client:
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(
            project=os.environ.get("GOOGLE_CLOUD_PROJECT", "local"),
            credentials=AnonymousCredentials(),
        )
    return storage.Client()
