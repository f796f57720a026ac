"""``cutq report``: a static HTML page to review a run from its completion events."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cutq.core.errors import ConfigError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "report",
        help="write an HTML page to review a run (verdicts, flags, before/after)",
        description="Read completion events (a `cutq run` output folder, or JSONL files of "
        "events, e.g. a bulk run's events pulled from its subscription) and write one static "
        "page: each job's input beside its renditions, verdicts with the rules failed, "
        "quality flags and timings, with filters for fail and each flag. Thumbnails go to "
        "PAGE.files/ beside it; results are read where the events say (file:// or gs://).",
    )
    parser.add_argument("events", nargs="+", help="run output folders or events .jsonl files")
    parser.add_argument(
        "--out",
        help="the page to write (default: report.html in the first "
        "folder given, else beside the first file)",
    )
    parser.add_argument("--title", default="cutq run", help="the page's title")
    parser.add_argument("--thumb-px", type=int, default=160, help="thumbnail size (px)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from cutq.worker.report import read_events, write_report

    for given in args.events:
        path = Path(given)
        if not (path / "events.jsonl").is_file() and not path.is_file():
            raise ConfigError(f"{given}: no events.jsonl there and not an events file")
    first = Path(args.events[0])
    page = Path(args.out) if args.out else (first if first.is_dir() else first.parent)
    if not args.out:
        page = page / "report.html"
    started = time.monotonic()
    summary = write_report(read_events(args.events), page, thumb_px=args.thumb_px, title=args.title)
    print(
        f"{summary.path}: {summary.jobs} job(s), {summary.failed_renditions} failing "
        f"rendition(s), {summary.flagged} flagged; {summary.thumbnails} thumbnails "
        f"({summary.missing_thumbnails} unreadable) in {time.monotonic() - started:.1f}s"
    )
    return 0
