"""``cutq cancel``: stop a bulk run, or some jobs, that should not be computed.

Light module (no torch, no Pub/Sub): it writes one record per run or job under the control
prefix (:mod:`cutq.core.control`); workers see it within their ``control_refresh_s``.

Exit status: 0 when every run and job named is cancelled (now, or already before: that is
said, not an error); 1 when a run id is unknown (no bulk submission registered it; nothing is
recorded for it); 2 on a configuration error (no output or control prefix, a malformed id).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cutq.core.errors import ConfigError, InvalidJob


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "cancel",
        help="cancel a bulk run or jobs: workers end them `cancelled` without computing them",
        description="Record the cancellation of a bulk run (every job submitted with its "
        "cutq.run_id) or of single jobs. Workers settle those jobs with a `cancelled` event "
        "within a few seconds, without downloading or computing them; jobs already done stay "
        "done. Exit status: 0 cancelled (now or already), 1 unknown run, 2 configuration.",
    )
    parser.add_argument("job_ids", nargs="*", metavar="JOB_ID", help="job ids to cancel")
    parser.add_argument("--run", action="append", default=[], metavar="RUN_ID", help="a run id")
    parser.add_argument("--jobs-file", help="a file of job ids, one a line ('-': stdin)")
    parser.add_argument("--reason", help="kept with the record, for whoever looks later")
    parser.add_argument("--output", help="the output the jobs write to (CUTQ_SUBMITTER_OUTPUT)")
    parser.add_argument(
        "--control", help="the control prefix, if not <output>/_cutq (CUTQ_CONTROL)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from cutq.core.control import cancel, control_uri
    from cutq.core.storage import open_storage, scheme_of, to_uri
    from cutq.submitter.client import SubmitterConfig

    job_ids = list(args.job_ids)
    if args.jobs_file:
        job_ids += _read_ids(args.jobs_file)
    if not job_ids and not args.run:
        raise ConfigError("nothing to cancel: give --run RUN_ID, JOB_ID… or --jobs-file FILE")
    settings = SubmitterConfig.read_env()  # the submitter's one settings surface
    output = args.output or settings.get("output")
    given = args.control or settings.get("control")
    if not (given or output):
        raise ConfigError("no control prefix: pass --output or --control (or set CUTQ_CONTROL)")
    scheme_of(given or output or "")  # an unknown scheme is a configuration error
    control = to_uri(control_uri(output or "", given))
    try:
        report = cancel(
            open_storage(control), control, run_ids=args.run, job_ids=job_ids, reason=args.reason
        )
    except InvalidJob as error:
        raise ConfigError(str(error)) from None
    for line in report.lines():
        print(line, file=sys.stdout if "no run" not in line else sys.stderr)
    jobs = sum(what.startswith("job ") for what in report.cancelled)
    if jobs > 10:  # a long list was given: the lines above say each; sum them up too
        print(f"{jobs} job(s) cancelled now, {len(report.already)} already cancelled")
    return 0 if report.ok else 1


def _read_ids(path: str) -> list[str]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
