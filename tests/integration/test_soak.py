"""A reduced soak in CI: 300 jobs, 2 `cutq worker` processes, a fault every 3 s.

The full run is ``python bench/soak.py --jobs 10000 --workers 2 --fault-every-s 15``.
"""

from __future__ import annotations

import json

import pytest

from tests.support.emulators import PubSubEmulator
from tests.support.soak import SoakSettings, run_soak


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_soak_with_rotating_faults_loses_nothing(
    pubsub_double: PubSubEmulator, gcs_server: str, gcs_bucket: str
) -> None:
    """On our double: it kills workers and restarts Pub/Sub, and Google's emulator neither
    keeps state over a restart nor delivers a subscription's messages again after a streaming
    client went away (tests/doubles/test_differential.py)."""
    # 300 jobs take ~15 s on an idle 2-vCPU machine: a fault every 3 s, the three this test
    # asserts first, so each strikes however fast the run goes.
    settings = SoakSettings(
        jobs=300,
        workers=2,
        fault_every_s=3.0,
        faults=("kill_worker", "sigterm_scale_in", "storage_503_burst", "pubsub_restart"),
        timeout_s=150.0,
        lanes=True,  # mixed: every 4th job interactive, the rest bulk; both subscriptions
    )
    report = run_soak(pubsub_double, gcs_server, gcs_bucket, settings)
    print(json.dumps(report, indent=2))  # shown with -s, and on failure
    assert report["lost"] == 0 and report["conflicting"] == 0, report
    assert report["duplicate_results"] == 0, report
    assert report["completed"] == 300 and report["dead_lettered"] == 0, report
    assert report["computed_twice"] == 0 and report["scale_in_problems"] == [], report
    kinds = {fault["fault"].split(" ")[0] for fault in report["faults"]}
    assert {"kill_worker", "storage_503_burst", "sigterm_scale_in"} <= kinds, report["faults"]
    assert report["worker_processes"] >= 3  # the killed one was replaced


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_soak_with_a_bulk_run_cancelled_midway_ends_every_job_once(
    pubsub_double: PubSubEmulator, gcs_server: str, gcs_bucket: str
) -> None:
    """The same faults and mixed lanes, and a third of the jobs in a bulk run cancelled 4 s in
    (the run's jobs in both lanes, as a run re-submitted with --lane would be): still nothing
    lost, nothing computed twice, and every job ends as exactly one of completed / failed /
    cancelled (a cancelled job with a result object, or with a completed event too, is a
    conflict)."""
    settings = SoakSettings(
        jobs=300,
        workers=2,
        fault_every_s=3.0,
        faults=("kill_worker", "sigterm_scale_in", "storage_503_burst", "pubsub_restart"),
        timeout_s=150.0,
        cancel_every=3,
        cancel_at_s=4.0,
        lanes=True,
    )
    report = run_soak(pubsub_double, gcs_server, gcs_bucket, settings)
    print(json.dumps(report, indent=2))  # shown with -s, and on failure
    assert report["lost"] == 0 and report["conflicting"] == 0, report
    assert report["duplicate_results"] == 0, report
    assert report["computed_twice"] == 0 and report["scale_in_problems"] == [], report
    assert report["dead_lettered"] == 0 and report["failed"] == 0, report
    assert report["completed"] + report["cancelled"] == 300, report
    assert report["cancel_at_s"] is not None and report["cancelled"] > 0, report
    # Only the run's jobs are cancelled (every other job completed: the sum above).
    assert report["cancelled_outside_run"] == 0, report
    kinds = {fault["fault"].split(" ")[0] for fault in report["faults"]}
    assert {"kill_worker", "sigterm_scale_in"} <= kinds, report["faults"]
