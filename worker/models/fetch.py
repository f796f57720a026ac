"""Weights files from a local path, ``file://`` or ``gs://`` URI, pinned by sha256; no torch.

Every model that takes a file the user supplies (InSPyReNet's checkpoint, a custom ONNX graph)
gets it here, never from a model hub.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from cutq.core.errors import ConfigError, PermanentError
from cutq.core.storage import Stores, file_path, scheme_of

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path("~/.cache/cutq/checkpoints")


def fetch_checkpoint(
    uri: str,
    cache_dir: str | os.PathLike[str] | None = None,
    sha256: str | None = None,
    storage: Stores | None = None,
) -> Path:
    """A local file holding the checkpoint at ``uri``, verified against ``sha256`` when given.

    Local paths and ``file://`` URIs are used in place. ``gs://`` objects are downloaded once
    into ``cache_dir`` (default ``~/.cache/cutq/checkpoints``) under a name derived from the
    URI's hash, through a temporary file renamed into place. A cached copy whose digest does
    not match is downloaded again; a fresh download that does not match raises ConfigError.
    Without ``sha256`` a cached copy is trusted: pin the digest to notice a replaced object.
    ``storage``: the owner's backends (the worker's, with its retry settings); None: backends
    of this call's own.
    """
    if scheme_of(uri) == "gs":
        return _fetch_gcs(uri, cache_dir, sha256, storage or Stores())
    path = file_path(uri).expanduser()
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} does not exist")
    if sha256 is not None:
        _verify(path, sha256, uri)
    return path


def _fetch_gcs(
    uri: str, cache_dir: str | os.PathLike[str] | None, sha256: str | None, storage: Stores
) -> Path:
    """Download ``uri`` into the cache unless a (matching) copy is already there."""
    folder = Path(cache_dir if cache_dir is not None else DEFAULT_CACHE_DIR).expanduser()
    key = hashlib.sha256(uri.encode()).hexdigest()[:16]
    path = folder / f"{key}-{uri.rsplit('/', 1)[-1]}"
    if path.is_file():
        if sha256 is None or file_sha256(path) == sha256.lower():
            log.info("checkpoint %s found in cache at %s", uri, path)
            return path
        log.warning("cached checkpoint %s does not match its sha256; downloading again", path)
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        storage.open(uri).download_to_path(uri, partial)
        if sha256 is not None:
            _verify(partial, sha256, uri)
        partial.replace(path)
    except PermanentError as error:  # missing object or bucket, access denied
        raise ConfigError(f"checkpoint {uri} could not be downloaded: {error}") from error
    finally:
        partial.unlink(missing_ok=True)
    log.info("checkpoint %s downloaded to %s", uri, path)
    return path


def _verify(path: Path, sha256: str, uri: str) -> None:
    """Raise ConfigError unless ``path``'s digest is ``sha256``."""
    actual = file_sha256(path)
    if actual != sha256.lower():
        raise ConfigError(f"checkpoint {uri} has sha256 {actual}, expected {sha256.lower()}")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
