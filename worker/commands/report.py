"""``cutq report``: a static HTML page to review a run, from its manifest or events."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cutq.core.errors import ConfigError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "report",
        help="write an HTML page to review a run (verdicts, flags, before/after)",
        description="Read a run: `cutq run` output folders, manifests (.jsonl/.csv), JSONL "
        "files of events, and/or an events subscription (pulled until idle), and write one "
        "static page: each job's name and ref, its input beside its renditions (linked to the "
        "full-size files), verdicts with their reasons, quality flags and timings; views for "
        "pass, review, fail, failed jobs and passed-but-flagged, search and sort. Beside it: "
        "thumbnails in PAGE.files/ and PAGE-rerun.csv, the review/fail rows as a list that "
        "`cutq submit --from-manifest` takes. Results are read where the rows say "
        "(file:// or gs://).",
    )
    parser.add_argument(
        "inputs", nargs="*", help="run output folders, manifests, or events .jsonl files"
    )
    parser.add_argument(
        "--subscription",
        help="also pull events from this subscription (projects/P/subscriptions/S) until it is "
        "idle; they are acked, and appended to PAGE.events.jsonl beside the page",
    )
    parser.add_argument(
        "--idle-s", type=float, default=10.0, help="with --subscription: stop after this quiet"
    )
    parser.add_argument(
        "--out",
        help="the page to write (default: report.html in the first "
        "folder given, else beside the first file)",
    )
    parser.add_argument("--title", default="cutq run", help="the page's title")
    parser.add_argument("--thumb-px", type=int, default=160, help="thumbnail size (px)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from cutq.core.manifest import latest, merge
    from cutq.core.storage import Stores
    from cutq.worker.review.report import write_report
    from cutq.worker.review.report_inputs import pull_events, read_rows

    if not args.inputs and not args.subscription:
        raise ConfigError(
            "nothing to read: give folders, manifests, events files or --subscription"
        )
    if args.out:
        page = Path(args.out)
    elif args.inputs:
        first = Path(args.inputs[0])
        page = (first if first.is_dir() else first.parent) / "report.html"
    else:
        raise ConfigError("--subscription needs --out (where to write the page)")
    started = time.monotonic()
    rows = read_rows(args.inputs)
    if args.subscription:
        page.parent.mkdir(parents=True, exist_ok=True)
        saved = page.with_name(page.name + ".events.jsonl")
        documents = pull_events(args.subscription, saved, idle_s=args.idle_s)
        print(f"{saved}: {len(documents)} event(s) pulled from {args.subscription}")
        rows = merge([*rows, *latest(documents)])
    summary = write_report(rows, page, stores=Stores(), thumb_px=args.thumb_px, title=args.title)
    verdicts = ", ".join(f"{count} {verdict}" for verdict, count in summary.verdicts.items())
    print(
        f"{summary.path}: {summary.jobs} job(s) ({verdicts}; {summary.failed_jobs} failed), "
        f"{summary.flagged} flagged; {summary.thumbnails} thumbnails "
        f"({summary.missing_thumbnails} unreadable) in {time.monotonic() - started:.1f}s\n"
        f"{summary.rerun_path}: {summary.rerun} to redo (cutq submit --from-manifest)"
    )
    return 0
