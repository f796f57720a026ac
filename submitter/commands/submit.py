"""``cutq submit``: publish a job per image from files, directories or a bucket prefix.

Light module (no torch): prefixes are listed lazily and published with batching and flow
control; optional skip-done, rate limit, checkpoint/resume, waiting and downloading.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from cutq.core.errors import ConfigError, InvalidJob
from cutq.core.flags import add_output_args, options_from_args, renditions_from_args
from cutq.core.lanes import Lane
from cutq.core.tally import Exit, Tally

if TYPE_CHECKING:
    from cutq.core.contract import OutputSpec
    from cutq.core.control import Expiry
    from cutq.core.request import JobRequest
    from cutq.core.rerun import RerunEntry
    from cutq.submitter.bulk import BulkProgress, BulkSettings, SubmitError
    from cutq.submitter.client import JobHandle, Submitter, Watcher

log = logging.getLogger(__name__)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "submit",
        help="publish jobs for files, directories or a gs:// prefix",
        description="Publish one job per image. Local files are uploaded to --staging under a "
        "content-addressed name; gs:// and file:// inputs are listed lazily and published as "
        "they are. Exits 1 if any input could not be submitted or any job failed; with "
        "--wait, 3 if a result failed its preset's verdict, 4 if one needs review (0 with "
        "--accept-review); 5 if the inputs held no image (docs/verdicts.md).",
    )
    parser.add_argument("inputs", nargs="*", help="files, directories, gs://bucket/prefix")
    parser.add_argument(
        "--from-manifest",
        metavar="FILE",
        help="submit the inputs a rerun list or manifest names (CSV or JSONL: input, ref, name)",
    )
    parser.add_argument("--topic", help="jobs topic projects/P/topics/T (CUTQ_JOBS_TOPIC)")
    parser.add_argument("--bulk-topic", help="the bulk lane's jobs topic (CUTQ_BULK_TOPIC)")
    parser.add_argument(
        "--lane",
        choices=("interactive", "bulk"),
        help="default: interactive for one file or object, bulk for folders, prefixes or more",
    )
    parser.add_argument("--output", help="output base URI (CUTQ_SUBMITTER_OUTPUT)")
    parser.add_argument("--staging", help="upload prefix for local files (CUTQ_SUBMITTER_STAGING)")
    parser.add_argument("--events-topic", help="completion events topic (CUTQ_EVENTS_TOPIC)")
    parser.add_argument("--model", help="model name the worker must serve")
    parser.add_argument(
        "--attribute", action="append", default=[], metavar="K=V", help="echoed into events"
    )
    parser.add_argument(
        "--extensions", default=",".join(_extensions()), help="image extensions to submit"
    )
    parser.add_argument("--skip-done", action="store_true", help="skip jobs whose result exists")
    parser.add_argument("--rate", help="at most this many publishes: N, N/s, N/min")
    parser.add_argument("--resume-file", help="checkpoint file: a restart continues after it")
    parser.add_argument("--max-in-flight", type=int, default=1000, help="unconfirmed publishes")
    parser.add_argument("--wait", action="store_true", help="wait for every completion event")
    parser.add_argument("--timeout-s", type=float, default=3600.0, help="how long --wait waits")
    parser.add_argument("--download", metavar="DIR", help="with --wait: download the results")
    parser.add_argument(
        "--manifest", metavar="FILE", help="with --wait: one row per job to FILE .jsonl and .csv"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--run-id",
        help="this bulk run's id (cutq.run_id attribute; `cutq cancel --run` stops it); "
        "generated and printed when a directory or prefix is submitted",
    )
    parser.add_argument("--ttl-s", type=float, help="each job expires this long after publish")
    parser.add_argument("--deadline", help="each job expires at this RFC 3339 time")
    parser.add_argument(
        "--ref",
        help="each job's client reference (docs/identity.md): a literal (SKU-1), a pattern over "
        "the source's name ('{parent}', '{stem}', '{file}', '{path}') or 're:REGEX'",
    )
    parser.add_argument(
        "--names",
        metavar="TEMPLATE",
        help="result file names, e.g. '{ref}_{stem}_{hash}.{rendition}.{ext}' (must hold "
        "{job_id} or {hash}; default <job_id>.<ext>, docs/identity.md)",
    )
    add_output_args(parser)
    parser.set_defaults(handler=handle)


def _extensions() -> tuple[str, ...]:
    from cutq.submitter.bulk import IMAGE_EXTENSIONS

    return IMAGE_EXTENSIONS


@dataclass
class Summary:
    """What one ``cutq submit`` did."""

    published: int = 0
    skipped: int = 0
    errors: int = 0
    completed: int = 0
    failed: int = 0
    expired: int = 0  # failed with deadline_exceeded (also in failed)
    cancelled: int = 0
    pending: int = 0
    publish_s: float = 0.0
    failures: list[str] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)  # verdicts and flags of the completed jobs

    def render(self) -> str:
        rate = (self.published + self.skipped) / self.publish_s if self.publish_s else 0.0
        line = (
            f"published {self.published}, skipped {self.skipped} (done), errors {self.errors}"
            f" in {self.publish_s:.1f} s ({rate:.1f} jobs/s)"
        )
        if self.completed or self.failed or self.cancelled or self.pending:
            line += f"; completed {self.completed}, failed {self.failed}"
            line += f" ({self.expired} deadline_exceeded)" if self.expired else ""
            line += f", cancelled {self.cancelled}" if self.cancelled else ""
            line += f", pending {self.pending}" if self.pending else ""
        verdicts = [f"  {self.tally.render()}"] if self.tally.render() else []
        return "\n".join([line, *verdicts, *self.failures[:20]])

    @property
    def ok(self) -> bool:
        return not (self.errors or self.failed or self.cancelled or self.pending)


def handle(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from cutq.submitter.bulk import BulkProgress
    from cutq.submitter.client import Submitter, SubmitterConfig

    config = SubmitterConfig.from_env(
        jobs_topic=args.topic,
        bulk_topic=args.bulk_topic,
        output=args.output,
        staging=args.staging,
        events_topic=args.events_topic,
        max_in_flight=args.max_in_flight,
    )
    if not config.output:
        raise ConfigError("no output: pass --output or set CUTQ_SUBMITTER_OUTPUT")
    if (args.download or args.manifest) and not args.wait:
        raise ConfigError("--download and --manifest need --wait")
    entries = _rerun_entries(args)
    lane = Lane(args.lane) if args.lane else default_lane(args.inputs)
    request = _request(args, config.output, lane)
    settings = _settings(args)
    from cutq.submitter.credentials import require_credentials

    uris = [
        *map(str, args.inputs),
        *(e.input for e in entries),
        config.output,
        config.staging or "",
    ]
    # after every argument is checked: a typo is told first
    require_credentials(storage=any(uri.startswith("gs://") for uri in uris))
    log.info("submitting to the %s lane (%s)", lane.value, config.topic_for(lane))

    summary = Summary()
    progress = BulkProgress()
    handles: list[JobHandle] = []

    def on_error(failure: SubmitError) -> None:
        error = failure.error
        summary.failures.append(f"  error {failure.source}: {getattr(error, 'code', '')}: {error}")

    submitter = Submitter(config)
    spec = submitter.output_spec(request.output)
    settings = replace(settings, run_id=_start_run(submitter, spec, args, lane))
    watcher = submitter.watch() if args.wait else None
    started = time.monotonic()
    try:
        with tqdm(unit="job", disable=args.no_progress, desc="submit") as bar:
            for handle in _submit(
                submitter, args, entries, request, settings, progress=progress, on_error=on_error
            ):
                if watcher is not None:
                    handles.append(handle)
                bar.update()
        summary.publish_s = time.monotonic() - started
        if watcher is not None:
            _wait(watcher, handles, args, summary)
    finally:
        summary.publish_s = summary.publish_s or time.monotonic() - started
        summary.published, summary.skipped = progress.published, progress.skipped
        summary.errors += len(progress.errors)
        if watcher is not None:
            watcher.close()
        submitter.close()
    print(summary.render())
    if not (summary.published or summary.skipped or summary.errors or args.resume_file):
        print(f"cutq submit: no image in {' '.join(args.inputs)}: nothing submitted")
        return Exit.NO_INPUT
    return summary.tally.exit_code(args.accept_review) if summary.ok else Exit.FAILED


def _request(args: argparse.Namespace, output: str, lane: Lane) -> JobRequest:
    """The job request the flags describe, validated once (not per input): a bad value is a
    configuration error (exit 2) before anything is published."""
    from cutq.core.contract import OutputSpec
    from cutq.core.request import JobRequest

    spec = OutputSpec(
        output, args.format or "png", args.kind or "cutout", args.background, args.quality
    )
    expiry = _expiry(args)
    request = JobRequest(
        output=replace(spec, template=args.names),
        options=options_from_args(args),
        attributes=dict(_pair(text) for text in args.attribute),
        model=args.model,
        renditions=renditions_from_args(args),
        ttl_s=expiry.ttl_s if expiry else None,
        deadline=expiry.deadline if expiry else None,
        lane=lane,
    )
    try:
        request.job("gs://cutq-check/x", request.output)  # type: ignore[arg-type]
    except InvalidJob as error:
        raise ConfigError(str(error)) from None
    return request


def _settings(args: argparse.Namespace) -> BulkSettings:
    """How the bulk run goes (its run id comes once the run is registered)."""
    from cutq.core.naming import RefRule
    from cutq.submitter.bulk import BulkSettings, Checkpoint, parse_rate

    try:
        ref = RefRule(args.ref) if args.ref else None
    except InvalidJob as error:
        raise ConfigError(f"--{error}") from None
    if args.resume_file:
        Checkpoint(args.resume_file)  # a foreign file: exit 2 before anything is published
    return BulkSettings(
        extensions=args.extensions.split(","),
        skip_done=args.skip_done,
        rate_per_s=parse_rate(args.rate) if args.rate else None,
        resume_file=args.resume_file,
        ref=ref,
    )


def _wait(
    watcher: Watcher,
    handles: list[JobHandle],
    args: argparse.Namespace,
    summary: Summary,
) -> None:
    from tqdm import tqdm

    from cutq.submitter.watch import Result, WaitTimeout

    endings: Counter[str] = Counter()  # completed, failed, deadline_exceeded, cancelled

    def progress(result: Result) -> None:
        endings[result.ending] += 1
        bar.update()
        bar.set_postfix(endings, refresh=False)

    with tqdm(total=len(handles), unit="job", disable=args.no_progress, desc="wait") as bar:
        try:
            # a manifest wants each job's event (verdicts, flags, timings), not only its objects:
            # the watcher exists before the first publish, so no event is missed
            by_objects = not args.manifest
            results = watcher.wait(
                handles, args.timeout_s, check_objects=by_objects, on_result=progress
            )
        except WaitTimeout as error:
            print(f"cutq: {error}")
            results, summary.pending = error.results, len(error.pending)
    for result in results:
        if result.ok:
            summary.completed += 1
            if result.event is not None:
                summary.tally.add(result.event)
            else:  # seen by its objects only
                summary.tally.add_unknown(len(args.preset))
        elif result.status == "cancelled":
            summary.cancelled += 1
        else:
            summary.failed += 1
            summary.expired += result.ending == "deadline_exceeded"
            summary.failures.append(f"  failed {result.job_id}: {result.error_code}")
    if args.manifest:
        from cutq.core.manifest import write_manifest
        from cutq.submitter.manifest_rows import manifest_rows

        given = {
            h.job_id: {k: v for k, v in (("ref", h.ref), ("name", h.name)) if v} for h in handles
        }
        paths = write_manifest(manifest_rows(handles, results, given), args.manifest)
        print("manifest: " + ", ".join(str(path) for path in paths))
    if args.download:
        from cutq.core.storage import open_storage

        target = Path(args.download)
        uris = [uri for result in results if result.ok for uri in result.outputs.values()]
        with ThreadPoolExecutor(8, thread_name_prefix="cutq-download") as pool:
            futures = {
                uri: pool.submit(open_storage(uri).download_to_path, uri, target / _name(uri))
                for uri in uris
            }
        for uri, future in futures.items():
            if future.exception() is not None:
                summary.errors += 1
                summary.failures.append(f"  download {uri}: {future.exception()}")


def _rerun_entries(args: argparse.Namespace) -> list[RerunEntry]:
    """The entries of ``--from-manifest`` (none without it); positional inputs or the list."""
    from cutq.core.rerun import read_rerun_list

    if not args.from_manifest:
        if not args.inputs:
            raise ConfigError("nothing to submit: give inputs or --from-manifest FILE")
        return []
    if args.inputs:
        raise ConfigError("give inputs or --from-manifest FILE, not both")
    return read_rerun_list(args.from_manifest)


def _submit(
    submitter: Submitter,
    args: argparse.Namespace,
    entries: list[RerunEntry],
    request: JobRequest,
    settings: BulkSettings,
    *,
    progress: BulkProgress,
    on_error: Callable[[SubmitError], None],
) -> Iterator[JobHandle]:
    """The bulk submission of the inputs (:func:`~cutq.submitter.bulk.submit_bulk`: listing,
    checkpoint, rate, skip-done); with ``--from-manifest``, the listed entries instead, each
    with its own ``ref`` and ``name``."""
    from cutq.submitter.bulk import SubmitError, submit_bulk
    from cutq.submitter.staging import NamedSource

    if not entries:
        yield from submit_bulk(
            submitter, args.inputs, request, settings, progress=progress, on_error=on_error
        )
        return

    def failed(source: str, error: BaseException) -> None:
        failure = SubmitError(source, error)
        progress.errors.append(failure)
        on_error(failure)

    sources = [NamedSource(e.input, name=e.name or None, ref=e.ref or None) for e in entries]
    for handle in submitter.submit_many(sources, request, run_id=settings.run_id, on_error=failed):
        progress.published += not handle.skipped
        progress.skipped += handle.skipped
        yield handle


def _start_run(
    submitter: Submitter, spec: OutputSpec, args: argparse.Namespace, lane: Lane
) -> str | None:
    """A bulk run's id (given, or generated for the bulk lane), registered so that
    ``cutq cancel --run`` knows it; a client that may not write there still submits."""
    from cutq.core.control import check_id, new_run_id

    if args.run_id is None and lane is not Lane.BULK:
        return None
    try:
        run_id = check_id(args.run_id, "--run-id") if args.run_id else new_run_id()
    except InvalidJob as error:
        raise ConfigError(str(error)) from None
    try:
        submitter.start_run(run_id, output=spec, details={"inputs": args.inputs[:20]})
    except Exception as error:  # e.g. no write access to the control prefix
        log.warning(
            "could not register run %s under %s (%s): `cutq cancel --run` will call it "
            "unknown; its jobs can still be cancelled by id",
            run_id,
            submitter.control_uri(spec),
            error,
        )
    print(f"run {run_id} (stop it with: cutq cancel --run {run_id})", flush=True)
    return run_id


def _expiry(args: argparse.Namespace) -> Expiry | None:
    """``--ttl-s``/``--deadline`` as the job contract reads them (a bad value: exit 2)."""
    from cutq.core.control import parse_expiry

    fields = {"ttl_s": args.ttl_s, "deadline": args.deadline}
    try:
        return parse_expiry({k: v for k, v in fields.items() if v is not None})
    except InvalidJob as error:
        raise ConfigError(f"--{str(error).replace('_', '-', 1)}") from None


def default_lane(inputs: list[str]) -> Lane:
    """Interactive for exactly one file or object (someone waits for it); bulk for a folder,
    a prefix or several inputs (a backlog)."""
    if len(inputs) != 1:
        return Lane.BULK
    (given,) = inputs
    if "://" not in given:
        return Lane.INTERACTIVE if Path(given).is_file() else Lane.BULK
    from cutq.core.storage import open_storage

    try:  # an object of that exact name; else a prefix
        return Lane.INTERACTIVE if open_storage(given).stat(given) is not None else Lane.BULK
    except Exception:  # not an object name at all (a bucket, a folder): a prefix
        return Lane.BULK


def _name(uri: str) -> str:
    return uri.rsplit("/", 1)[-1]


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"--attribute: expected KEY=VALUE, got {text!r}")
    return key, value
