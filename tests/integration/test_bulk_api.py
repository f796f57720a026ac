"""Bulk submit as a library (``submit_bulk``), against Google's Pub/Sub emulator: each job
carries its source's name and the ref its rule derives; a source the rule cannot name is an
error in the progress, never published, and holds the checkpoint back for its input."""

from __future__ import annotations

import json
from pathlib import Path

from cutq.core.naming import RefRule
from cutq.core.request import JobRequest
from cutq.submitter.bulk import BulkProgress, BulkSettings, SubmitError, submit_bulk
from cutq.submitter.client import Submitter, SubmitterConfig
from tests.integration.test_submitter import PNG, jobs  # noqa: F401 (the fixture)


def test_submit_bulk_names_each_job_and_derives_its_ref(jobs, tmp_path: Path) -> None:  # noqa: F811
    shoot = tmp_path / "shoot"
    for index, relative in enumerate(("SKU-1/front.png", "SKU-2/front.png", "loose.png")):
        (shoot / relative).parent.mkdir(parents=True, exist_ok=True)
        (shoot / relative).write_bytes(PNG + bytes([index]))
    resume = tmp_path / "resume.json"
    config = SubmitterConfig(jobs.topic, output="gs://out-bucket/x")
    progress, reported = BulkProgress(), []
    settings = BulkSettings(ref=RefRule(r"re:^(SKU-\d+)/"), resume_file=str(resume))
    with Submitter(config) as submitter:
        handles = list(
            submit_bulk(
                submitter,
                [shoot.as_uri() + "/"],
                JobRequest(attributes={"batch": "b1"}),
                settings,
                progress=progress,
                on_error=reported.append,
            )
        )
    assert [(h.ref, h.name) for h in handles] == [
        ("SKU-1", "SKU-1/front.png"),
        ("SKU-2", "SKU-2/front.png"),
    ]
    assert (progress.published, progress.skipped) == (2, 0)
    (error,) = progress.errors
    assert reported == [error] and isinstance(error, SubmitError)
    assert error.source.endswith("/loose.png") and "does not match" in str(error.error)
    bodies = sorted((json.loads(m.data) for m in jobs.drain(2)), key=lambda body: body["ref"])
    assert [(b["ref"], b["name"], b["attributes"]) for b in bodies] == [
        ("SKU-1", "SKU-1/front.png", {"batch": "b1"}),
        ("SKU-2", "SKU-2/front.png", {"batch": "b1"}),
    ]
    positions = json.loads(resume.read_text())["positions"]
    # loose.png, listed first, was never submitted: no position past it, and not finished
    assert shoot.as_uri() + "/" not in positions
