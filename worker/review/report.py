"""``cutq report``: one static HTML page to review a run, from its manifest rows.

The page lists every job with its name and ref: the input beside each rendition (cutouts on a
checkerboard, the rest on their own background) linked to the full-size file, each
rendition's verdict with its reasons, the job's quality flags (each with a line saying what it
means) and timings. Views for pass / review / fail / failed jobs / passed but flagged and each
flag, a search by name, ref or job id, sorting by fill, confidence or time. Beside the page: a
folder of small WebP thumbnails (``<page>.files/``), loaded lazily, and the rerun list
(``<stem>-rerun.csv``: the review/fail rows and failed jobs, which ``cutq submit
--from-manifest`` takes). Rows are rendered a page at a time from JSON embedded in the page,
so a 10,000-job run opens quickly. No server.
"""

from __future__ import annotations

import html
import io
import json
import logging
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from PIL import Image, ImageOps

from cutq.core.manifest import ManifestRow
from cutq.core.rerun import needs_rerun, write_rerun_list
from cutq.core.storage import Stores, split_gs_uri
from cutq.worker.render.quality import FLAG_MEANINGS, FLAGS
from cutq.worker.review.report_page import PAGE

log = logging.getLogger(__name__)

THUMB_PX = 160
MAX_THUMB_SOURCE_BYTES = 64 << 20  # a thumbnail never reads more than this of an input
GCS_BROWSER = "https://storage.cloud.google.com/"  # a gs:// object in a signed-in browser


@dataclass(frozen=True)
class ReportSummary:
    """What :func:`write_report` wrote."""

    jobs: int
    verdicts: dict[str, int]  # jobs per verdict (pass, review, fail)
    failed_jobs: int
    flagged: int
    rerun: int  # lines of the rerun list
    thumbnails: int
    missing_thumbnails: int
    path: Path
    rerun_path: Path


def write_report(
    rows: Sequence[ManifestRow],
    page: str | Path,
    *,
    stores: Stores,
    thumb_px: int = THUMB_PX,
    threads: int = 8,
    title: str = "cutq run",
) -> ReportSummary:
    """Write the page, its thumbnails and its rerun list; returns what they hold."""
    page = Path(page)
    files = page.with_name(page.name + ".files")
    rerun_path = page.with_name(page.stem + "-rerun.csv")
    if files.exists():
        shutil.rmtree(files)
    files.mkdir(parents=True)
    jobs, work = [], []
    for index, row in enumerate(rows):
        job = _job(index, row)
        jobs.append(job)
        work.append((row.input, files / f"{index}-input.webp", job, "thumb"))
        for number, (output, shown) in enumerate(zip(row.outputs, job["outputs"], strict=True)):
            work.append((output.uri, files / f"{index}-{number}.webp", shown, "thumb"))
    made = 0
    with ThreadPoolExecutor(threads, thread_name_prefix="cutq-thumb") as pool:
        done = pool.map(lambda item: _thumbnail(stores, item[0], item[1], thumb_px), work)
        for (_, target, holder, key), ok in zip(work, done, strict=True):
            holder[key] = f"{quote(files.name)}/{target.name}" if ok else None
            made += ok
    rerun = write_rerun_list(rows, rerun_path)
    payload = {
        "title": title,
        "flags": {flag: FLAG_MEANINGS.get(flag, "") for flag in FLAGS},
        "rerun": {"href": quote(rerun_path.name), "count": rerun},
        "jobs": jobs,
    }
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    # every "<" escaped: no "</script>" or "<!--" in the data can end or bend the script
    document = PAGE.replace("__TITLE__", html.escape(title)).replace(
        "__DATA__", text.replace("<", "\\u003c")
    )
    page.write_text(document, encoding="utf-8")
    verdicts = {verdict: 0 for verdict in ("pass", "review", "fail")}
    for row in rows:
        if row.status == "completed" and row.verdict in verdicts:
            verdicts[row.verdict] += 1
    return ReportSummary(
        jobs=len(rows),
        verdicts=verdicts,
        failed_jobs=sum(row.status == "failed" for row in rows),
        flagged=sum(bool(row.flags) for row in rows),
        rerun=rerun,
        thumbnails=made,
        missing_thumbnails=len(work) - made,
        path=page,
        rerun_path=rerun_path,
    )


def href(uri: str | None) -> str | None:
    """A link a browser can open for a stored object: ``file://`` as it is, ``gs://`` through
    the Cloud Console's authenticated object URL; None for anything else (a manifest is
    input: a ``javascript:`` "URI" in it never becomes a link)."""
    if not uri:
        return None
    if uri.startswith("gs://"):
        bucket, name = split_gs_uri(uri)
        return GCS_BROWSER + quote(bucket) + "/" + quote(name)
    if uri.startswith("file:///"):
        return uri
    return None if ":" in uri else Path(uri).absolute().as_uri()


def _job(index: int, row: ManifestRow) -> dict[str, Any]:
    fills = [output.fill for output in row.outputs if output.fill is not None]
    return {
        "i": index,
        "job_id": row.job_id,
        "name": row.name or "",
        "ref": row.ref or "",
        "href": href(row.input),
        "status": row.status,
        "verdict": row.verdict if row.status == "completed" else None,
        "error": f"{row.error_code}: {row.error_message}" if row.error_code else None,
        "flags": list(row.flags),
        "confidence": row.confidence,
        "fill": min(fills) if fills else None,  # the smallest of its renditions'
        "total_ms": row.timings_ms.get("total"),
        "infer_ms": row.timings_ms.get("infer"),
        "time": row.time,
        "duplicate": row.duplicate,
        "rerun": needs_rerun(row),
        "outputs": [
            {
                "name": output.name,
                "href": href(output.uri),
                # a cutout that may hold transparency is shown on a checkerboard
                "checker": output.kind in ("cutout", None)
                and str(output.uri or "").endswith((".png", ".webp", ".avif")),
                "verdict": output.verdict,
                "reasons": list(output.reasons),
                "fill": output.fill,
                "purity": output.purity,
                "width": output.width,
                "height": output.height,
            }
            for output in row.outputs
        ],
    }


def _thumbnail(stores: Stores, uri: str | None, target: Path, px: int) -> bool:
    """A small WebP of ``uri`` at ``target`` (transparency kept); False when unreadable."""
    if not uri:
        return False
    try:
        data = stores.open(uri).read(uri, max_bytes=MAX_THUMB_SOURCE_BYTES)
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
