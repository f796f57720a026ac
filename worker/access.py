"""Which storage a job may touch: the allow-lists that keep a job from writing anywhere.

A job names its own input and output URIs, so without a check any publisher could make the
worker read or overwrite any object its service account can reach. ``gs://`` URIs must be in
``allowed_buckets``; ``file://`` URIs must resolve (symlinks and ``..`` included) inside one
of ``allowed_dirs``. Empty lists allow everything (local runs, tests).
"""

from __future__ import annotations

from cutq.submitter.errors import AccessDenied
from cutq.submitter.storage import file_path, scheme_of, split_gs_uri
from cutq.worker.config import WorkerConfig


def check_allowed(uri: str, config: WorkerConfig, role: str) -> None:
    """Raise :class:`AccessDenied` unless ``uri`` is inside the configured allow-lists."""
    if scheme_of(uri) == "gs":
        allowed = config.allowed_buckets
        if allowed and split_gs_uri(uri)[0] not in allowed:
            raise AccessDenied(f"{role} bucket of {uri} is not in the allow-list")
        return
    roots = config.allowed_dirs
    path = file_path(uri).resolve()
    if roots and not any(path.is_relative_to(file_path(root).resolve()) for root in roots):
        raise AccessDenied(f"{role} {uri} is outside the allowed directories")
