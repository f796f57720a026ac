"""The review page for an operator (headless Chromium): the manifest's round trip through
``cutq report``, views for every verdict state, search by name or ref, sorting, a line per flag,
full-size links, the exported rerun list, and an events subscription pulled until idle."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from cutq.cli import main
from cutq.core.events import Event, OutputInfo
from cutq.core.manifest import read_manifest, row_from_event, write_manifest
from cutq.core.rerun import read_rerun_list
from cutq.worker.render.quality import FLAG_MEANINGS
from tests.conftest import SAMPLES
from tests.integration.test_report import dom, rows

AMAZON = "amazon-main"


def payload(page: Path) -> list[dict[str, Any]]:
    """The jobs embedded in a page, without thumbnail paths (which differ per page)."""
    text = page.read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S)
    assert found is not None
    jobs = json.loads(found.group(1))["jobs"]
    for job in jobs:
        job.pop("thumb")
        job.pop("i")
        for output in job["outputs"]:
            output.pop("thumb")
    return jobs


def test_the_manifest_round_trips_through_cutq_report(tmp_path: Path) -> None:
    out = tmp_path / "run"
    main(["run", str(SAMPLES / "red-ball.jpg"), str(SAMPLES / "blue-pair.png"), "--out",
          str(out), "--no-progress", "--preset", AMAZON, "--preset", "thumbnail"])  # fmt: skip
    manifest = read_manifest(out / "manifest.jsonl")
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert [row.job_id for row in manifest] == [e["data"]["job_id"] for e in events]
    assert [row.name for row in manifest] == ["red-ball.jpg", "blue-pair.png"]
    assert all(row.verdict in ("pass", "review", "fail") for row in manifest)
    assert read_manifest(out / "manifest.csv")[0].outputs[0].uri == manifest[0].outputs[0].uri
    pages = {}
    for given in ("run", "run/events.jsonl", "run/manifest.jsonl", "run/manifest.csv"):
        page = tmp_path / (given.replace("/", "-") + ".html")
        assert main(["report", str(tmp_path / given), "--out", str(page)]) == 0
        pages[given] = payload(page)
    keep = ("job_id", "name", "ref", "href", "status", "verdict", "flags", "fill", "confidence")
    for given, jobs in pages.items():
        assert [{k: job[k] for k in keep} for job in jobs] == [
            {k: job[k] for k in keep} for job in pages["run"]
        ], given
        assert [[(o["name"], o["href"], o["verdict"], o["reasons"]) for o in job["outputs"]]
                for job in jobs] == [
            [(o["name"], o["href"], o["verdict"], o["reasons"]) for o in job["outputs"]]
            for job in pages["run"]
        ], given  # fmt: skip
    page, console = dom((tmp_path / "run-manifest.csv.html").as_uri())
    assert console == [] and rows(page) == [row.job_id for row in manifest]


def output(name: str, verdict: str, reasons: list[str], fill: float, uri: str) -> dict:
    return {"kind": "cutout", "uri": uri, "size": 1, "width": 500, "height": 500, "name": name,
            "preset": name, "verdict": verdict, "reasons": reasons,
            "failed": reasons if verdict == "fail" else [],
            "figures": {"fill": fill, "purity": 1.0}}  # fmt: skip


def job(job_id: str, **fields: Any) -> dict:
    data = {"job_id": job_id, "status": "completed", "input": (SAMPLES / "teal.webp").as_uri(),
            "attributes": {}, "flags": [], "quality": {"uncertain": 0.1},
            "timings_ms": {"total": 500.0}}  # fmt: skip
    data.update(fields)
    return data


@pytest.fixture(scope="module")
def operator_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("review")
    picture = (SAMPLES / "red-ball.jpg").as_uri()
    documents = [
        job("pass-1", name="SKU-100/front.jpg", ref="SKU-100",
            outputs=[output(AMAZON, "pass", [], 0.86, picture)],
            quality={"uncertain": 0.05}, timings_ms={"total": 300.0}),
        job("pass-flagged", name="SKU-101/side.jpg", ref="SKU-101",
            outputs=[output(AMAZON, "pass", [], 0.88, picture)], flags=["multiple"],
            quality={"uncertain": 0.02}, timings_ms={"total": 900.0}),
        job("review-1", name="front.jpg", ref="SKU-200",
            outputs=[output(AMAZON, "review", ["subject may be cut off by the photo's edge"],
                            0.80, picture)], flags=["edge"],
            quality={"uncertain": 0.30}, timings_ms={"total": 700.0}),
        job("fail-1", name="backdrop.jpg", outputs=[output(AMAZON, "fail", ["no subject found"],
                                                           0.70, picture)],
            flags=["empty"], quality={"uncertain": 0.20}, timings_ms={"total": 100.0}),
        job("failed-1", status="failed", name="broken.png", ref="SKU-300",
            input=(folder / "broken.png").as_uri(), outputs=[], flags=None, quality=None,
            error={"code": "image_undecodable", "message": "not an image"}),
    ]  # fmt: skip
    write_manifest([row_from_event(data) for data in documents], folder / "manifest.jsonl")
    assert main(["report", str(folder / "manifest.jsonl"), "--out", str(folder / "page.html")]) == 0
    return folder / "page.html"


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("#pass", ["pass-1", "pass-flagged"]),
        ("#review", ["review-1"]),
        ("#fail", ["fail-1"]),
        ("#failed", ["failed-1"]),
        ("#passflagged", ["pass-flagged"]),
        ("#flag=edge", ["review-1"]),
        ("#all&q=sku-20", ["review-1"]),  # by ref, any case
        ("#all&q=front.jpg", ["pass-1", "review-1"]),  # by name
        ("#pass&q=SKU-101", ["pass-flagged"]),  # a view and a search together
        ("#all&sort=fill", ["fail-1", "review-1", "pass-1", "pass-flagged", "failed-1"]),
        ("#all&sort=confidence", ["review-1", "fail-1", "pass-1", "pass-flagged", "failed-1"]),
        ("#all&sort=time", ["pass-flagged", "review-1", "failed-1", "pass-1", "fail-1"]),
        ("#all&sort=ref", ["pass-1", "pass-flagged", "review-1", "failed-1", "fail-1"]),
    ],
)
def test_views_search_and_sort_show_what_they_say(
    operator_page: Path, fragment: str, expected: list[str]
) -> None:
    page, console = dom(operator_page.as_uri() + fragment)
    assert console == []
    assert rows(page) == expected


def test_each_row_names_its_product_explains_its_flags_and_links_full_size(
    operator_page: Path,
) -> None:
    page, console = dom(operator_page.as_uri() + "#review")
    assert console == []
    assert ">front.jpg<" in page and ">SKU-200<" in page
    assert f"edge: {FLAG_MEANINGS['edge']}" in page  # a line saying what the flag means
    assert "subject may be cut off by the photo" in page
    assert f'href="{(SAMPLES / "red-ball.jpg").as_uri()}"' in page  # the full-size result
    assert "1 of 5 job(s) in this view" in page


def test_the_exported_rerun_list_is_what_cutq_submit_takes_again(operator_page: Path) -> None:
    page, _ = dom(operator_page.as_uri())
    link = re.search(r'<a id="export"[^>]*href="([^"]+)"', page)
    assert link is not None and link.group(1) == "page-rerun.csv"
    entries = read_rerun_list(operator_page.with_name(link.group(1)))
    assert [(e.ref, e.name) for e in entries] == [
        ("SKU-200", "front.jpg"),
        (None, "backdrop.jpg"),
        ("SKU-300", "broken.png"),
    ]
    assert "export rerun list (3 " in page


def test_cutq_report_pulls_the_events_subscription_until_idle(
    pubsub_emulator, pubsub_publisher, pubsub_subscriber, tmp_path: Path, capsys
) -> None:
    topic = pubsub_emulator.topic_path("report-events")
    subscription = pubsub_emulator.subscription_path("report-events")
    pubsub_publisher.create_topic(name=topic)
    pubsub_subscriber.create_subscription(name=subscription, topic=topic)
    result = OutputInfo("cutout", (SAMPLES / "red-ball.jpg").as_uri(), 1, 10, 10, AMAZON,
                        AMAZON, "review", (), {"fill": 0.5})  # fmt: skip
    events = [
        Event(f"q{i}", "completed", (SAMPLES / "teal.webp").as_uri(), (result,),
              attributes={"ref": f"SKU-{i}"}, flags=("edge",))
        for i in range(3)
    ]  # fmt: skip
    events.append(Event.failed("q9", "gs://b/x.png", "input_not_found", "gone"))
    for event in events:
        pubsub_publisher.publish(topic, event.to_json(), **event.message_attributes()).result()
    pubsub_publisher.publish(topic, b"not an event").result()  # acked and skipped
    page = tmp_path / "queue.html"
    code = main(["report", "--subscription", subscription, "--idle-s", "3", "--out", str(page)])
    assert code == 0
    assert "4 event(s) pulled" in capsys.readouterr().out
    shown, console = dom(page.as_uri())
    assert console == [] and rows(shown) == ["q0", "q1", "q2", "q9"]
    assert ">SKU-1<" in shown
    saved = page.with_name("queue.html.events.jsonl")
    assert len(saved.read_text().splitlines()) == 4
    assert main(["report", str(saved), "--out", str(tmp_path / "again.html")]) == 0
    assert [job["job_id"] for job in payload(tmp_path / "again.html")] == ["q0", "q1", "q2", "q9"]
    response = pubsub_subscriber.pull(subscription=subscription, max_messages=10, timeout=2)
    assert list(response.received_messages) == []  # every message was acked


def test_the_scale_bench_reports_every_job_and_a_screenshot(tmp_path: Path, capsys) -> None:
    from bench.report_scale import main as bench

    report_path, picture = tmp_path / "scale.json", tmp_path / "view.png"
    assert bench(["--jobs", "40", "--json", str(report_path), "--screenshot", str(picture)]) == 0
    report = json.loads(report_path.read_text())
    assert json.loads(capsys.readouterr().out) == report
    assert sum(report["verdicts"].values()) + report["failed_jobs"] == report["jobs"] == 40
    assert report["console_messages"] == [] and report["searched_ready_ms"] > 0
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_markup_in_a_name_or_ref_is_shown_as_text(tmp_path: Path) -> None:
    hostile = job("odd", name="</script><!--<b>x</b>.jpg", ref="<img src=x onerror=alert(1)>")
    write_manifest([row_from_event(hostile)], tmp_path / "m.jsonl")
    assert main(["report", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "p.html")]) == 0
    page, console = dom((tmp_path / "p.html").as_uri())
    assert console == [] and rows(page) == ["odd"]
    assert "&lt;/script&gt;&lt;!--&lt;b&gt;x&lt;/b&gt;.jpg" in page and "<img src=x" not in page
