"""Mutation testing of cutq's core modules with mutmut 3: ``make mutate`` (not part of CI).

mutmut copies the code to ``mutants/`` and puts that first on ``sys.path``; it names each
mutant after the file's path. cutq's packages live in ``core/``, ``worker/``… and are mapped to
``cutq.core``, ``cutq.worker``… by setuptools (``package-dir``), and the editable install
finds them there. So this script stages a ``src/cutq/…`` copy under ``.cache/mutate/`` (paths
and module names agree, and ``mutants/src/cutq`` is found before the editable install), runs
mutmut in it, and prints killed / survived / timeout per module.

    python tools/mutate.py                # the default groups (~15 min on 2 busy cores)
    python tools/mutate.py ledger pipeline sources service   # issue 23's groups (~5-12 min each)
    python tools/mutate.py --report             # the last run's report again (every staged group)

Mutants listed in ``EQUIVALENT`` change nothing observable; they are reported apart and left
out of the score (each with its reason). A mutant that makes a test hang (a wait that lost its
timeout) is stopped by mutmut and reported as a timeout, which the score counts as not killed:
the concurrency tests bound their waits (a few seconds) so such a mutant fails a test instead.
Inspect a survivor with ``cd .cache/mutate/<group> && ../../../.venv/bin/mutmut show <name>``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGE = ROOT / ".cache" / "mutate"
PACKAGES = {"core": "cutq/core", "worker": "cutq/worker", "submitter": "cutq/submitter"}

# What is mutated, in groups, each with the unit tests that stand guard over it. Each group is
# one mutmut run; for each mutant it runs those of the group's tests that reach the mutated
# function (recorded in a first, clean run), fastest first, to the first failure. Narrow test
# lists keep a surviving mutant cheap (every covering test runs): the whole core in ~15 min.
GROUPS = {
    "contract": (
        ["core/contract.py", "core/events.py", "core/validation.py"],
        ["tests/unit/test_contract.py", "tests/unit/test_contract_exact.py",
         "tests/unit/test_validation.py"],
    ),
    "imaging": (
        ["worker/render/imaging.py"],
        ["tests/unit/test_imaging.py", "tests/unit/test_imaging_exact.py"],
    ),
    "worker": (
        ["worker/batcher.py", "worker/access.py", "worker/sinks.py"],
        ["tests/unit/test_batcher.py", "tests/unit/test_security.py", "tests/unit/test_sinks.py"],
    ),
    "bulk": (["submitter/bulk.py"], ["tests/unit/test_submitter_bulk.py"]),
    # Not in the default run: each surviving mutant here costs every covering pipeline test
    # (threads, a grace period, ~20 s), so this group alone takes ~45 min on 2 busy cores.
    "settle": (
        ["worker/ledger.py", "worker/pipeline.py", "worker/render/results.py"],
        ["tests/unit/test_pipeline.py"],
    ),
    # Issue 23: the concurrency code, one group per module, each with the tests named for it.
    "ledger": (
        ["worker/ledger.py", "worker/outcome.py"],
        ["tests/unit/test_ledger.py", "tests/unit/test_ledger_exact.py",
         "tests/unit/test_outcome.py", "tests/unit/test_pipeline.py",
         "tests/unit/test_pipeline_settle.py", "tests/unit/test_pipeline_close.py"],
    ),
    "pipeline": (
        ["worker/pipeline.py", "worker/model_loop.py"],
        ["tests/unit/test_pipeline.py", "tests/unit/test_pipeline_settle.py",
         "tests/unit/test_pipeline_close.py"],
    ),
    # Unit tests only: the stage copies tests/unit (an integration test named here would be
    # missing there, and pytest's "file not found" would count every mutant as killed).
    "sources": (
        ["worker/sources/pubsub.py", "worker/sources/local.py", "worker/sources/push.py"],
        ["tests/unit/test_pubsub_source.py", "tests/unit/test_local_source.py",
         "tests/unit/test_push_source.py"],
    ),
    "service": (
        ["worker/service.py"], ["tests/unit/test_service.py", "tests/unit/test_service_life.py"]
    ),
}  # fmt: skip
DEFAULT_GROUPS = ["contract", "imaging", "worker", "bulk"]

# Parts only: the pipeline's settle logic, not its stages (the integration tests run those
# whole); bulk's listing and skip-done, not its rate limiter and checkpoint; events' local sinks.
ONLY_FUNCTIONS = {
    "worker/pipeline.py": (
        "submit", "_fail", "_end", "_hand_off", "stop_taking", "held", "release_held", "close"
    ),
    "submitter/bulk.py": ("build", "lookup", "listing_key", "plain_uri", "iter_inputs"),
    # The push source's intake (its envelope, handler and server), not its OIDC checks:
    # TokenVerifier and redact have their own tests (tests/unit/test_security.py, the
    # integration tests against Google's emulator).
    "worker/sources/push.py": (
        "PushDelivery.__init__", "PushDelivery.ack", "PushDelivery.nack", "PushDelivery.wait",
        "token_header", "_Handler.do_GET", "_Handler.do_POST", "_Handler._content_length",
        "_Handler._reply", "PushSource.__init__", "PushSource.start", "PushSource.close",
    ),
    # PubSubEventSink needs a Pub/Sub server: the integration tests' (tests/integration).
    "worker/sinks.py": (
        "JsonlEventSink.__init__", "JsonlEventSink.publish", "JsonlEventSink.close",
        "LogEventSink.publish",
    ),
}  # fmt: skip
# Lines not mutated: logging, and the text of error messages (a mutant there changes only the
# words; the messages that are contract, validation's, have exact-message tests instead).
SKIP_LINES = [r"^\s*log\.\w+\(", r"raise \w+\(f?\"", r'^\s*f?"[^"]*"\s*,?$']

# mutant name → why it cannot change behaviour (so no test can kill it). The names are
# mutmut's numbering of today's code: after a change to a module, re-check its entries.
_UTF8 = "codec names are case-insensitive: 'UTF-8' is 'utf-8'"
_BUCKET = "a notification is only parsed as one when bucketId is present: the default is unused"
_OBJECT = "objectId's default: None, like '', is refused by the same check"
_OVERWRITTEN = "job_id and status are set to the event's own right after this filter"
_ISO_Z = "Python 3.11's fromisoformat reads 'Z' itself (the replace matters on 3.10 only)"
_SPLIT = "the first field of a split does not depend on maxsplit"
EQUIVALENT: dict[str, str] = {
    "cutq.core.contract.x_salvage_job_id__mutmut_7": _UTF8,
    "cutq.core.contract.x_parse_job__mutmut_11": _UTF8,
    "cutq.core.contract.x_parse_job__mutmut_19": _UTF8,
    "cutq.core.contract.x_parse_job__mutmut_14": "ensure_ascii=None is falsy: as False",
    "cutq.core.contract.x__parse_notification__mutmut_3": _BUCKET,
    "cutq.core.contract.x__parse_notification__mutmut_5": _BUCKET,
    "cutq.core.contract.x__parse_notification__mutmut_9": _BUCKET,
    "cutq.core.contract.x__parse_notification__mutmut_11": _OBJECT,
    "cutq.core.contract.x__parse_notification__mutmut_13": _OBJECT,
    "cutq.core.contract.x__parse_notification__mutmut_75": "Options() is Job's own default",
    "cutq.core.events.xǁEventǁmessage_attributes__mutmut_3": _OVERWRITTEN,
    "cutq.core.events.xǁEventǁmessage_attributes__mutmut_4": _OVERWRITTEN,
    "cutq.core.events.xǁEventǁmessage_attributes__mutmut_5": _OVERWRITTEN,
    "cutq.core.events.xǁEventǁmessage_attributes__mutmut_6": _OVERWRITTEN,
    "cutq.core.events.x_event_from_cloudevent__mutmut_90": _ISO_Z,
    "cutq.core.events.x_event_from_cloudevent__mutmut_91": _ISO_Z,
    "cutq.core.validation.x_uri__mutmut_12": _SPLIT,
    "cutq.core.validation.x_uri__mutmut_15": _SPLIT,
    "cutq.core.validation.x_uri__mutmut_19": (
        "without '://' the scheme is unsupported whether it reads '' or 'XXXX': same refusal"
    ),
}
_IMAGING = {
    "np.asarray without dtype: the same values, divided as floats all the same": [
        "_to_rgb_alpha__mutmut_17", "_to_rgb_alpha__mutmut_19"],
    "the array is never empty, so max's initial value never matters": [
        "_to_rgb_alpha__mutmut_28", "_to_rgb_alpha__mutmut_29", "_to_rgb_alpha__mutmut_98"],
    "no decoder yields Pillow's internal 'La' mode (nor can Pillow convert it to RGBA)": [
        "_to_rgb_alpha__mutmut_72", "_to_rgb_alpha__mutmut_73", "_to_rgb_alpha__mutmut_74"],
    "without a transparency key the image becomes fully opaque RGBA, whose alpha is dropped": [
        "_to_rgb_alpha__mutmut_75", "_to_rgb_alpha__mutmut_82"],
    "float arithmetic on exact integers: / then truncation equals // for values >= 0": [
        "combine_alpha__mutmut_3", "combine_alpha__mutmut_6", "combine_alpha__mutmut_7"],
    "hex digits never contain 'X'": ["parse_color__mutmut_4"],
    "Pillow infers the same mode (RGBA, RGB, L) from the uint8 array's shape": [
        "cutout__mutmut_3", "cutout__mutmut_5", "cutout__mutmut_30", "cutout__mutmut_32",
        "cutout__mutmut_84", "cutout__mutmut_86", "mask_image__mutmut_2", "mask_image__mutmut_4"],
    "the values are within [0.5, 255.5] already: that bound never changes the uint8 result": [
        "cutout__mutmut_35", "cutout__mutmut_36", "cutout__mutmut_43", "cutout__mutmut_89",
        "cutout__mutmut_90", "cutout__mutmut_97"],
    "float64 instead of float32 intermediates: precision only (no input found that differs)": [
        "cutout__mutmut_13", "cutout__mutmut_17", "cutout__mutmut_19", "cutout__mutmut_23",
        "cutout__mutmut_56"],
    "where out_a is 0 the premultiplied value is 0 too, and 0 / 1e-6 is 0": ["cutout__mutmut_70"],
    "compression effort or the format name's case only: the same decoded pixels": [
        "encode__mutmut_10", "encode__mutmut_12", "encode__mutmut_13", "encode__mutmut_28",
        "encode__mutmut_29", "encode__mutmut_32", "encode__mutmut_34", "encode__mutmut_35"],
}  # fmt: skip
_GET_AT_ONCE = "Queue.get(block=True, timeout=0) returns at once, as a non-blocking get does"
EQUIVALENT["cutq.worker.batcher.x_get_batch__mutmut_13"] = _GET_AT_ONCE
EQUIVALENT["cutq.worker.batcher.x_get_batch__mutmut_15"] = _GET_AT_ONCE
EQUIVALENT.update(
    {
        "cutq.submitter.bulk.x_iter_inputs__mutmut_8": "a lower-cased extension has no 'X'",
        "cutq.submitter.bulk.x_iter_inputs__mutmut_25": (
            "open_storage lists a plain local path as it lists the path's file:// URI"
        ),
        "cutq.submitter.bulk.x_listing_key__mutmut_6": "(2, dir) sorts after (0, file) as (1, dir)",
        "cutq.submitter.bulk.xǁDoneIndexǁbuild__mutmut_19": (
            "the dict only interns date strings: keyed by name it returns the same date"
        ),
    }
)
# Issue 23's groups: the ledger, the pipeline's settling, the sources and the service.
_FALSY = "_closed is only read by `if`: None is as false as False"
_HEADER_CASE = "HTTP header names are case-insensitive (email.message's get_all, every client)"
EQUIVALENT.update(
    {
        "cutq.worker.ledger.xǁLedgerǁopen__mutmut_4": (
            "idle_s reads last_activity only with no task open, and the settle that closes the "
            "last one sets it again first"
        ),
        "cutq.worker.ledger.xǁLedgerǁ__init____mutmut_11": _FALSY,
        "cutq.worker.sources.pubsub.xǁPubSubSourceǁ__init____mutmut_9": _FALSY,
        "cutq.worker.service.xǁServiceǁ__init____mutmut_19": _FALSY,
        "cutq.worker.sources.local.xǁLocalSourceǁdeliveries__mutmut_24": (
            "a missing file's publish time: 1 ns after the epoch is the epoch at datetime's 1 µs"
        ),
        "cutq.worker.sources.pubsub.xǁPubSubSourceǁstart__mutmut_9": (
            "3600 s is FlowControl's own default max_lease_duration (google-cloud-pubsub)"
        ),
        "cutq.worker.sources.push.xǁPushDeliveryǁ__init____mutmut_51": _ISO_Z,
        "cutq.worker.sources.push.xǁPushDeliveryǁ__init____mutmut_52": _ISO_Z,
        **{
            f"cutq.worker.sources.push.xǁ_Handlerǁ{name}": _HEADER_CASE
            for name in (
                "_content_length__mutmut_5",
                "_content_length__mutmut_6",
                "_reply__mutmut_9",
                "_reply__mutmut_10",
                "_reply__mutmut_18",
                "_reply__mutmut_19",
            )
        },
        **{
            f"cutq.worker.sources.push.xǁ_Handlerǁ_content_length__mutmut_{n}": (
                "a refusal's length is never read: the request is answered and closed unread"
            )
            for n in (8, 18, 26)
        },
        **dict.fromkeys(
            (
                "cutq.worker.pipeline.xǁPipelineǁclose__mutmut_29",
                "cutq.worker.pipeline.xǁPipelineǁclose__mutmut_35",
            ),
            "ThreadPoolExecutor.shutdown reads wait with `if wait:`: None is as false as False",
        ),
        "cutq.worker.pipeline.xǁPipelineǁ_fail__mutmut_31": (
            "once admitted, the label is the job's id and the message's own job_id is that id"
        ),
        "cutq.worker.ledger.xǁLedgerǁsettle__mutmut_18": (
            "Stats.settled counts by the outcome alone: its task argument is unused"
        ),
    }
)
EQUIVALENT.update(
    (f"cutq.worker.render.imaging.x_{name}", reason)
    for reason, names in _IMAGING.items()
    for name in names
)

MUTMUT_SETTINGS = """
[tool.mutmut]
source_paths = ["src/cutq"]
only_mutate = {only}
also_copy = ["tests"]
pytest_add_cli_args = ["-p", "no:cacheprovider", "-x", "-q"]
pytest_add_cli_args_test_selection = {tests}
process_isolation = "forkserver"
# A mutant that hangs (a wait that lost its timeout) is stopped after (its tests' measured
# time + 5 s) × 3 of wall time: the concurrency groups have a few, each a minute at 5 × 10 s.
timeout_multiplier = 3.0
timeout_constant = 5.0
do_not_mutate_patterns = {skip}
"""


def stage(group: str) -> Path:
    """A fresh ``src/cutq`` copy, the unit tests, and a pyproject.toml for pytest and mutmut."""
    targets, tests = GROUPS[group]
    where = STAGE / group
    shutil.rmtree(where, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pt", "weights")
    for folder, package in PACKAGES.items():
        shutil.copytree(ROOT / folder, where / "src" / package, ignore=ignore)
    (where / "tests").mkdir()
    for item in ("__init__.py", "conftest.py", "support", "unit"):
        source = ROOT / "tests" / item
        if source.is_dir():
            shutil.copytree(source, where / "tests" / item, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, where / "tests" / item)
    pytest_section = _pytest_settings((ROOT / "pyproject.toml").read_text())
    tests = [test for test in tests if (ROOT / test).exists()]
    only = [f"src/{PACKAGES[t.split('/')[0]]}/{t.split('/', 1)[1]}" for t in targets]
    (where / "pyproject.toml").write_text(
        pytest_section
        + MUTMUT_SETTINGS.format(
            only=json.dumps(only), tests=json.dumps(tests), skip=json.dumps(SKIP_LINES)
        )
    )
    for target, names in ONLY_FUNCTIONS.items():
        if target in targets:
            folder, name = target.split("/", 1)
            _skip_other_functions(where / "src" / PACKAGES[folder] / name, names)
    return where


def _pytest_settings(pyproject: str) -> str:
    """The project's ``[tool.pytest.ini_options]`` section, as it is."""
    start = pyproject.index("[tool.pytest.ini_options]")
    end = pyproject.find("\n[", start + 1)
    return pyproject[start : end if end != -1 else len(pyproject)].rstrip() + "\n"


def _skip_other_functions(path: Path, keep: tuple[str, ...]) -> None:
    """Wrap every other function of ``path`` in mutmut's ``# pragma: no mutate start``/``end``.

    ``keep`` names functions (``name``) or methods (``Class.name``)."""
    lines = path.read_text().splitlines(keepends=True)
    tree = ast.parse("".join(lines))
    owner = {
        child: node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        for child in node.body
    }
    regions = [
        (min([node.lineno, *(d.lineno for d in node.decorator_list)]), node.end_lineno or 0)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name not in keep
        and f"{owner.get(node)}.{node.name}" not in keep
    ]
    if any(last == len(lines) for _, last in regions):
        # mutmut reads a comment after the module's last statement only once it has read every
        # nested one: an "end" there would come too late. A statement after it keeps it in place.
        lines.append("pass  # staged copy: closes the no-mutate region above\n")
    for first, last in sorted(regions, reverse=True):  # from the bottom: line numbers hold
        indent = lines[first - 1][: len(lines[first - 1]) - len(lines[first - 1].lstrip())]
        lines.insert(last, f"{indent}# pragma: no mutate end\n")
        lines.insert(first - 1, f"{indent}# pragma: no mutate start\n")
    path.write_text("".join(lines))


def run(where: Path, max_children: int) -> float:
    started = time.monotonic()
    mutmut = Path(sys.executable).parent / "mutmut"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    log = where / "mutmut.log"
    print(f"mutmut run in {where} (its output: {log}) ...", flush=True)
    with log.open("wb") as out:
        code = subprocess.run(
            [str(mutmut), "run", "--max-children", str(max_children)],
            cwd=where,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        ).returncode
    progress = log.read_bytes().decode(errors="replace").replace("\r", "\n").splitlines()
    print("\n".join(line for line in progress[-4:] if line.strip()))
    if code != 0:
        raise SystemExit(f"mutmut failed (exit {code}); see {log}")
    return time.monotonic() - started


# mutmut's exit codes (mutmut.stats.status_by_exit_code), folded into this report's columns.
STATUS = {
    **dict.fromkeys((1, 3, 37), "killed"),
    0: "survived",
    **dict.fromkeys((36, 24, -24, 152, 255), "timeout"),
    **dict.fromkeys((5, 33), "no tests"),
}


def report(seconds: float | None = None) -> int:
    """killed / survived / timeout per module, the survivors, and the score."""
    rows, survivors, met = [], [], []
    total = Counter()
    for meta in sorted(STAGE.glob("*/mutants/src/**/*.py.meta")):
        module = str(meta.relative_to(STAGE)).split("/mutants/src/", 1)[1][: -len(".py.meta")]
        counts: Counter = Counter()
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            status = STATUS.get(code, "other" if code is not None else "not run")
            if status == "survived" and name in EQUIVALENT:
                status = "equivalent"
                met.append(name)
            elif status in ("survived", "no tests", "timeout"):
                survivors.append(f"{name}: {status}")
            counts[status] += 1
        if not counts:
            continue
        total.update(counts)
        rows.append((module.replace("/", "."), counts))
    columns = ["killed", "survived", "timeout", "no tests", "equivalent", "other", "not run"]
    print(f"\n{'module':<26}" + "".join(f"{c:>11}" for c in columns) + f"{'score':>8}")
    for module, counts in [*rows, ("total", total)]:
        scored = sum(counts[c] for c in columns if c not in ("equivalent", "not run"))
        score = f"{100 * counts['killed'] / scored:.1f}%" if scored else "-"
        print(f"{module:<26}" + "".join(f"{counts[c]:>11}" for c in columns) + f"{score:>8}")
    print("score = killed / (all mutants run - equivalent); a timeout counts as not killed")
    if seconds is not None:
        print(f"wall time: {seconds / 60:.1f} min")
    if survivors:
        print("\nnot killed:\n  " + "\n  ".join(survivors))
    if met:
        print("\nequivalent (not scored):")
        for name in met:
            print(f"  {name}: {EQUIVALENT[name]}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", help=f"default: {' '.join(DEFAULT_GROUPS)}")
    parser.add_argument("--report", action="store_true", help="print the last run's report")
    parser.add_argument("--max-children", type=int, default=2)
    args = parser.parse_args(argv)
    if args.report:
        return report()
    unknown = sorted(set(args.groups) - set(GROUPS))
    if unknown:
        parser.error(f"not a group: {', '.join(unknown)} (groups: {', '.join(GROUPS)})")
    seconds = 0.0
    for group in args.groups or DEFAULT_GROUPS:
        took = run(stage(group), args.max_children)
        print(f"{group}: {took / 60:.1f} min", flush=True)
        seconds += took
    return report(seconds)


if __name__ == "__main__":
    sys.exit(main())
