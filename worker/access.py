"""Which storage a job may touch: the allow-lists that keep a job from writing anywhere.

A job names its own input and output URIs, so without a check any publisher could make the
worker read or overwrite any object its service account can reach. ``gs://`` URIs must be in
``allowed_buckets``; ``file://`` URIs must resolve (symlinks and ``..`` included) inside one
of ``allowed_dirs``. With both lists empty everything is allowed (local runs, tests); once
either is set, a scheme without a list of its own is refused: a cloud worker configured with
``allowed_buckets`` alone must not read or write the container's files through ``file://``.
"""

from __future__ import annotations

from cutq.core.errors import AccessDenied
from cutq.core.storage import file_path, scheme_of, split_gs_uri
from cutq.worker.config import WorkerConfig


def check_allowed(uri: str, config: WorkerConfig, role: str) -> str:
    """The URI to use, or :class:`AccessDenied` when ``uri`` is outside the allow-lists.

    For ``file://`` the returned URI is the resolved path that was checked, so a symlink
    swapped in after the check cannot redirect the read.
    """
    buckets, roots = config.allowed_buckets, config.allowed_dirs
    locked = bool(buckets or roots)
    if scheme_of(uri) == "gs":
        if locked and split_gs_uri(uri)[0] not in buckets:
            raise AccessDenied(f"{role} bucket of {uri} is not in the allow-list")
        return uri
    path = file_path(uri).resolve()
    if locked and not any(path.is_relative_to(file_path(root).resolve()) for root in roots):
        raise AccessDenied(f"{role} {uri} is outside the allowed directories")
    return path.as_uri()
