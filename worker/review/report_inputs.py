"""What ``cutq report`` reads: manifests, events files, run folders, or an events subscription.

Every input becomes manifest rows (:mod:`cutq.core.manifest`), merged one per job (a later
row replaces an earlier one, a duplicate never hides a first computation):

- a ``cutq run`` output folder: its ``events.jsonl`` (else its ``manifest.jsonl``);
- a manifest, ``.jsonl`` or ``.csv`` (``cutq run``'s, or ``cutq submit --wait --manifest``'s);
- a JSONL file of events: CloudEvents, or Pub/Sub messages as pulled (``{"body": …}``);
- an events subscription, pulled until it stays idle (:func:`pull_events`), its messages acked:
  give the report a subscription of its own.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cutq.core.errors import ConfigError
from cutq.core.manifest import (
    ManifestRow,
    event_document,
    is_manifest_line,
    merge,
    read_events,
    read_manifest,
)

log = logging.getLogger(__name__)

PULL_MAX_MESSAGES = 1000


def read_rows(inputs: Sequence[str | Path]) -> list[ManifestRow]:
    """The rows of every input, merged one per job (see the module's docstring)."""
    rows: list[ManifestRow] = []
    for given in inputs:
        rows.extend(_read_one(Path(given)))
    return merge(rows)


def _read_one(path: Path) -> list[ManifestRow]:
    if path.is_dir():
        if (path / "events.jsonl").is_file():
            return read_events([path / "events.jsonl"])
        if (path / "manifest.jsonl").is_file():
            return read_manifest(path / "manifest.jsonl")
        raise ConfigError(f"{path}: no events.jsonl or manifest.jsonl there")
    if not path.is_file():
        raise ConfigError(f"{path}: no such file or folder")
    if path.suffix.lower() == ".csv":
        return read_manifest(path)
    with path.open(encoding="utf-8") as lines:
        first = next((line for line in lines if line.strip()), "")
    return read_manifest(path) if is_manifest_line(first) else read_events([path])


def pull_events(
    subscription: str, keep: Path, *, idle_s: float = 10.0, limit: int | None = None
) -> list[dict[str, Any]]:
    """Pull ``subscription`` (``projects/P/subscriptions/S``) until no message came for
    ``idle_s`` seconds (or ``limit`` were read); returns the CloudEvents read. Each batch is
    appended to ``keep`` (JSONL) before it is acked, so an acked event is never only in memory.
    Messages that are not cutq events are acked and skipped (logged)."""
    from google.api_core import exceptions as gexc
    from google.cloud import pubsub_v1

    if not subscription.startswith("projects/") or "/subscriptions/" not in subscription:
        raise ConfigError(f"expected projects/P/subscriptions/S, got {subscription!r}")
    documents: list[dict[str, Any]] = []
    subscriber = pubsub_v1.SubscriberClient()
    try:
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < idle_s and (limit is None or len(documents) < limit):
            wait_s = max(0.5, idle_s - (time.monotonic() - quiet_since))
            try:
                response = subscriber.pull(
                    request={"subscription": subscription, "max_messages": PULL_MAX_MESSAGES},
                    timeout=wait_s,
                )
            except (gexc.DeadlineExceeded, gexc.RetryError):
                continue
            except gexc.NotFound:
                raise ConfigError(f"{subscription}: no such subscription") from None
            received = response.received_messages
            if not received:
                continue
            quiet_since = time.monotonic()
            batch = []
            for message in received:
                where = f"{subscription} message {message.message.message_id}"
                document = event_document(message.message.data.decode("utf-8", "replace"), where)
                if document is not None:
                    batch.append(document)
            _append(batch, keep)
            documents.extend(batch)
            subscriber.acknowledge(
                request={"subscription": subscription, "ack_ids": [m.ack_id for m in received]}
            )
    finally:
        subscriber.close()
    log.info("pulled %d event(s) from %s", len(documents), subscription)
    return documents


def _append(documents: Sequence[dict[str, Any]], path: Path) -> None:
    with path.open("a", encoding="utf-8") as out:
        for document in documents:
            out.write(json.dumps(document, separators=(",", ":")) + "\n")
        out.flush()
        os.fsync(out.fileno())
