"""``cutq report``: one static HTML page to review a run, from its completion events.

The page lists every job: the input beside each rendition (cutouts on a checkerboard, the rest
on their own background), each rendition's verdict and failed rules, the job's quality flags
and timings, with filters for ``fail``, failed jobs and each flag. Pictures are small WebP
thumbnails in a folder beside the page (``<page>.files/``), loaded lazily; the page renders
rows a page at a time from JSON embedded in it, so a 10,000-job run opens quickly. No server.
"""

from __future__ import annotations

import html
import io
import json
import logging
import shutil
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from cutq.core.storage import open_storage
from cutq.worker.quality import FLAGS
from cutq.worker.report_page import PAGE

log = logging.getLogger(__name__)

THUMB_PX = 160
MAX_THUMB_SOURCE_BYTES = 64 << 20  # a thumbnail never reads more than this of an input


@dataclass(frozen=True)
class ReportSummary:
    """What :func:`write_report` wrote."""

    jobs: int
    failed_renditions: int
    flagged: int
    thumbnails: int
    missing_thumbnails: int
    path: Path


def read_events(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The latest event of each job (its ``data``) from JSONL files or run folders.

    Lines may be CloudEvents or pulled Pub/Sub messages (``{"body": …}``); a later event of a
    job replaces an earlier one, except that a duplicate never hides a first computation.
    """
    jobs: dict[str, dict[str, Any]] = {}
    for given in paths:
        path = Path(given)
        file = path / "events.jsonl" if path.is_dir() else path
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                document = json.loads(line)
            except ValueError:
                log.warning("%s:%d: not JSON; skipped", file, number)
                continue
            data = (document.get("body") or document).get("data")
            if not isinstance(data, dict) or "job_id" not in data:
                log.warning("%s:%d: not a cutq event; skipped", file, number)
                continue
            earlier = jobs.get(data["job_id"])
            if earlier is None or not (data.get("duplicate") and not earlier.get("duplicate")):
                jobs[data["job_id"]] = data
    return list(jobs.values())


def write_report(
    events: list[dict[str, Any]],
    page: str | Path,
    *,
    thumb_px: int = THUMB_PX,
    threads: int = 8,
    title: str = "cutq run",
) -> ReportSummary:
    """Write the page and its thumbnails; returns what it holds."""
    page = Path(page)
    files = page.with_name(page.name + ".files")
    if files.exists():
        shutil.rmtree(files)
    files.mkdir(parents=True)
    rows, work = [], []
    for index, data in enumerate(events):
        row = _row(index, data)
        rows.append(row)
        work.append((data.get("input"), files / f"{index}-input.webp", row, "input"))
        for output in row["outputs"]:
            name = f"{index}-{output['name']}.webp"
            work.append((output.pop("uri"), files / name, output, "thumb"))
    made = 0
    with ThreadPoolExecutor(threads, thread_name_prefix="cutq-thumb") as pool:
        for (_, target, holder, key), ok in zip(
            work, pool.map(lambda item: _thumbnail(item[0], item[1], thumb_px), work), strict=True
        ):
            holder[key] = f"{files.name}/{target.name}" if ok else None
            made += ok
    payload = json.dumps({"title": title, "flags": FLAGS, "jobs": rows}, separators=(",", ":"))
    document = PAGE.replace("__TITLE__", html.escape(title)).replace(
        "__DATA__", payload.replace("</", "<\\/")
    )
    page.write_text(document, encoding="utf-8")
    return ReportSummary(
        jobs=len(rows),
        failed_renditions=sum(o.get("verdict") == "fail" for r in rows for o in r["outputs"]),
        flagged=sum(bool(r["flags"]) for r in rows),
        thumbnails=made,
        missing_thumbnails=len(work) - made,
        path=page,
    )


def _row(index: int, data: dict[str, Any]) -> dict[str, Any]:
    timings = data.get("timings_ms") or {}
    error = data.get("error") or {}
    outputs = [
        {
            "name": output.get("name") or output.get("kind"),
            "uri": output.get("uri"),
            "kind": output.get("kind"),
            # a cutout that may hold transparency is shown on a checkerboard
            "checker": output.get("kind") == "cutout"
            and str(output.get("uri", "")).endswith((".png", ".webp", ".avif")),
            "preset": output.get("preset"),
            "verdict": output.get("verdict"),
            "failed": output.get("failed") or [],
            "fill": (output.get("figures") or {}).get("fill"),
            "purity": (output.get("figures") or {}).get("purity"),
            "width": output.get("width"),
            "height": output.get("height"),
            "size": output.get("size"),
        }
        for output in data.get("outputs") or []
    ]
    return {
        "i": index,
        "job_id": data.get("job_id"),
        "name": str(data.get("input") or "").rsplit("/", 1)[-1],
        "status": data.get("status"),
        "error": f"{error.get('code')}: {error.get('message')}" if error else None,
        "flags": data.get("flags") or [],
        "total_ms": timings.get("total"),
        "infer_ms": timings.get("infer"),
        "duplicate": bool(data.get("duplicate")),
        "outputs": outputs,
    }


def _thumbnail(uri: str | None, target: Path, px: int) -> bool:
    """A small WebP of ``uri`` at ``target`` (transparency kept); False when unreadable."""
    if not uri:
        return False
    try:
        data = open_storage(uri).read(uri, max_bytes=MAX_THUMB_SOURCE_BYTES)
        with Image.open(io.BytesIO(data)) as opened:
            opened.draft("RGB", (px * 2, px * 2))  # JPEG: decode at a fraction of the size
            image = ImageOps.exif_transpose(opened)
            image.thumbnail((px, px))
            keep = "RGBA" if image.mode in ("RGBA", "LA", "PA", "P") else "RGB"
            image.convert(keep).save(target, format="WEBP", quality=70, method=2)
        return True
    except Exception as error:  # a missing or broken picture is a gap on the page, not a crash
        log.warning("no thumbnail for %s: %s: %s", uri, type(error).__name__, error)
        return False
