"""``cutq report`` opened in a real headless Chromium (Debian's package): no console errors,
every job shown, the views, search and sort select what they say; the manifest's round trip
through ``cutq report``; the rerun list it exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from cutq.cli import main
from tests.conftest import REQUIRE_ENV, SAMPLES

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=5000",
)


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        message = "chromium not installed: tools/install-chromium.sh (Debian's package)"
        if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
            pytest.fail(f"{message} ({REQUIRE_ENV} is set)")
        pytest.skip(message)
    return found


def open_page(url: str, *extra: str) -> tuple[str, list[str]]:
    """The page's DOM once its scripts ran, and every console message it logged."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


def dom(url: str) -> tuple[str, list[str]]:
    return open_page(url, "--dump-dom")


def rows(page: str) -> list[str]:
    return re.findall(r'data-job="([^"]+)"', page)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    inputs = tmp_path_factory.mktemp("in")
    for sample in SAMPLES.iterdir():
        shutil.copy(sample, inputs / sample.name)
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    main(["run", str(inputs), "--out", str(out), "--no-progress",
          "--preset", "amazon-main", "--preset", "thumbnail"])  # fmt: skip
    assert main(["report", str(out)]) == 0
    return out / "report.html"


def test_the_page_loads_without_console_errors_and_shows_every_job(report: Path) -> None:
    page, console = dom(report.as_uri())
    assert console == []
    assert len(rows(page)) == len(list(SAMPLES.iterdir())) + 1
    assert page.count('class="verdict fail"') >= 1  # verdicts shown
    thumbs = re.findall(r'<img src="([^"]+)"', page)
    assert thumbs and all((report.parent / src).is_file() for src in thumbs)
    assert "image_undecodable" in page


def test_the_filters_select_what_they_say(report: Path) -> None:
    lines = (report.parent / "events.jsonl").read_text().splitlines()
    events = [json.loads(line)["data"] for line in lines]
    failing = {e["job_id"] for e in events if any(o.get("verdict") == "fail" for o in e["outputs"])}
    failed = {e["job_id"] for e in events if e["status"] == "failed"}
    page, console = dom(report.as_uri() + "#fail")
    assert console == [] and set(rows(page)) == failing
    assert re.search(r'class="on" data-key="fail"|data-key="fail"[^>]*class="on"', page)
    page, _ = dom(report.as_uri() + "#failed")
    assert set(rows(page)) == failed == {e["job_id"] for e in events if e.get("error")}
    for flag in ("empty", "edge", "multiple", "uncertain"):
        page, console = dom(report.as_uri() + f"#flag={flag}")
        expected = {e["job_id"] for e in events if flag in (e.get("flags") or [])}
        assert console == [] and set(rows(page)) == expected, flag


def test_the_harness_sees_a_broken_page(tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    _, console = dom(broken.as_uri())
    assert any("undefinedFunction" in line for line in console)


def test_a_bulk_runs_events_with_results_in_a_bucket(gcs_bucket: str, tmp_path: Path) -> None:
    from cutq.core.manifest import read_events
    from cutq.core.storage import Stores, open_storage
    from cutq.worker.review.report import write_report

    storage = open_storage(f"gs://{gcs_bucket}")
    source, result = f"gs://{gcs_bucket}/in/ball.jpg", f"gs://{gcs_bucket}/out/ball.thumb.webp"
    storage.write(source, (SAMPLES / "red-ball.jpg").read_bytes(), content_type="image/jpeg")
    storage.write(result, (SAMPLES / "teal.webp").read_bytes(), content_type="image/webp")
    output = {"kind": "cutout", "uri": result, "size": 1, "name": "thumbnail"}
    first = {"job_id": "j1", "status": "completed", "input": source, "outputs": [output]}
    again = {**first, "duplicate": True, "outputs": []}  # a later duplicate hides nothing
    pulled = [{"body": {"data": first}}, {"body": {"data": again}}]  # as pulled from Pub/Sub
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(line) for line in pulled) + "\n")
    summary = write_report(read_events([events]), tmp_path / "bulk.html", stores=Stores())
    assert (summary.jobs, summary.thumbnails, summary.missing_thumbnails) == (1, 2, 0)
    page, console = dom(summary.path.as_uri())
    assert console == [] and rows(page) == ["j1"]
    # full size: the object in a signed-in browser
    assert f'href="https://storage.cloud.google.com/{gcs_bucket}/out/ball.thumb.webp"' in page
