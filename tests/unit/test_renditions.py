"""Renditions in the job contract: parsing, presets with overrides, ids, names, refusals."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from cutq.core.contract import OutputSpec, derive_job_id, new_job, parse_job
from cutq.core.errors import InvalidJob
from cutq.core.presets import PRESETS
from cutq.core.renditions import Frame, Rendition, presets

DEFAULTS = OutputSpec(uri="gs://results/cutouts", format="webp", quality=80)
WHEN = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def parse(body: object):  # type: ignore[no-untyped-def]
    return parse_job(json.dumps(body).encode(), defaults=DEFAULTS, publish_time=WHEN)


def refusal(body: object) -> str:
    with pytest.raises(InvalidJob) as caught:
        parse(body)
    return str(caught.value)


def test_a_job_without_renditions_plans_its_cutout_and_mask_as_before() -> None:
    job = parse({"input": "gs://inputs/a.png", "output": {"kind": "both"}})
    assert job.renditions == ()
    assert [(r.name, r.kind, r.format, r.quality) for r in job.planned()] == [
        ("cutout", "cutout", "webp", 80),
        ("mask", "mask", "webp", 80),
    ]
    assert b"renditions" not in job.to_message()
    assert job.job_id == derive_job_id("gs://inputs/a.png", None, job.output, None, job.options)


def test_renditions_are_named_results_under_the_dated_layout() -> None:
    job = parse(
        {
            "input": "gs://inputs/a.png",
            "output": "gs://outs/p",
            "renditions": [
                {"preset": "amazon-main"},
                {"name": "master"},
                {"name": "m", "kind": "mask", "format": "webp"},
            ],
        }
    )
    assert job.result_uris() == {
        "amazon-main": f"gs://outs/p/dt=2026-11-23/{job.job_id}.amazon-main.jpg",
        "master": f"gs://outs/p/dt=2026-11-23/{job.job_id}.master.png",
        "m": f"gs://outs/p/dt=2026-11-23/{job.job_id}.m.webp",
    }
    assert [r.name for r in job.planned()] == ["amazon-main", "master", "m"]
    master = job.renditions[1]
    assert master == Rendition("master")  # plain png cutout: the worker's defaults do not leak


def test_a_preset_is_a_bundle_of_fields_a_job_may_override() -> None:
    job = parse(
        {
            "input": "gs://inputs/a.png",
            "renditions": [
                {
                    "preset": "amazon-main",
                    "name": "big",
                    "quality": 95,
                    "frame": {"width": 3000, "height": 3000},
                },
                {"preset": "thumbnail", "kind": "mask"},
            ],
        }
    )
    big, thumb = job.renditions
    assert (big.name, big.format, big.background, big.quality, big.preset) == (
        "big",
        "jpeg",
        "#ffffff",
        95,
        "amazon-main",
    )
    assert big.frame == Frame(width=3000, height=3000, margin=0.0625)  # margin kept from preset
    assert thumb.kind == "mask" and thumb.background is None and thumb.format == "webp"


def test_an_override_replaces_the_presets_alternatives() -> None:
    job = parse(
        {
            "input": "gs://inputs/a.png",
            "renditions": [
                {"preset": "amazon-main", "name": "a", "frame": {"margin_px": 40}},
                {"preset": "amazon-main", "name": "b", "frame": {"longest": 800}},
                {"preset": "amazon-main", "name": "c", "format": "png"},
            ],
        }
    )
    a, b, c = job.renditions
    assert a.frame == Frame(width=2000, height=2000, margin_px=40)
    assert b.frame == Frame(longest=800, margin=0.0625)
    assert (c.format, c.quality, c.background) == ("png", None, "#ffffff")


def test_rendition_jobs_round_trip_and_keep_their_id() -> None:
    job = new_job(
        "gs://inputs/a.png",
        OutputSpec("gs://outs/p"),
        renditions=presets("amazon-main", "thumbnail"),
    )
    again = parse(json.loads(job.to_message()))
    assert again.job_id == job.job_id
    assert again.renditions == job.renditions
    # without an explicit id the worker derives what the client derived
    body = json.loads(job.to_message())
    del body["job_id"]
    assert parse(body).job_id == job.job_id
    plain = new_job("gs://inputs/a.png", OutputSpec("gs://outs/p"))
    assert (
        len(
            {
                plain.job_id,
                job.job_id,
                new_job(
                    "gs://inputs/a.png",
                    OutputSpec("gs://outs/p"),
                    renditions=presets("amazon-main"),
                ).job_id,
            }
        )
        == 3
    )


def test_the_worker_default_output_does_not_change_a_rendition_job_id() -> None:
    body = {"input": "gs://inputs/a.png", "output": "gs://outs/p", "renditions": [{"name": "x"}]}
    other = parse_job(
        json.dumps(body).encode(), defaults=OutputSpec("gs://elsewhere", "png"), publish_time=WHEN
    )
    assert other.job_id == parse(body).job_id


@pytest.mark.parametrize(
    ("renditions", "words"),
    [
        ([], "non-empty list"),
        ("amazon-main", "non-empty list"),
        ([{"preset": "ebay"}], "renditions[0].preset: unknown preset 'ebay'"),
        ([{"preset": ["amazon-main"]}], "renditions[0].preset: unknown preset"),
        ([{"format": "png"}], "renditions[0].name: required"),
        ([{"name": "A b"}], "renditions[0].name"),
        ([{"name": "x"}, {"name": "x"}], "repeated: x"),
        ([{"name": "x", "format": "gif"}], "renditions[0].format"),
        ([{"name": "x", "kind": "both"}], "renditions[0].kind"),
        ([{"name": "x", "format": "jpeg"}], "renditions[0].background: format 'jpeg'"),
        ([{"name": "x", "kind": "mask", "background": "#fff"}], "renditions[0].background"),
        ([{"name": "x", "quality": 80}], "renditions[0].quality: only for formats"),
        ([{"name": "x", "color": "red"}], "renditions[0]: unknown field(s) color"),
        ([{"name": "x", "frame": {"margin": 0.6}}], "renditions[0].frame.margin"),
        ([{"name": "x", "frame": {"margin": 0.1, "margin_px": 3}}], "not both"),
        ([{"name": "x", "frame": {"width": 100}}], "width and height together"),
        ([{"name": "x", "frame": {"longest": 100, "width": 9, "height": 9}}], "not both"),
        ([{"name": "x", "frame": {"longest": 0}}], "frame.longest: must be 1-"),
        ([{"name": "x", "frame": {"longest": 1.5}}], "frame.longest: expected an integer"),
        ([{"name": "x", "frame": {"fit": "fill"}}], "frame.fit"),
        ([{"name": "x", "frame": {"position": "top"}}], "frame.position"),
        ([{"name": "x", "frame": {"crop": "yes"}}], "frame.crop"),
        ([{"name": "x", "frame": {"width": 10, "height": 10, "margin_px": 5}}], "no room"),
        ([{"name": f"r{i}"} for i in range(9)], "at most 8"),
    ],
)
def test_bad_renditions_are_refused_naming_the_field(renditions: object, words: str) -> None:
    assert words in refusal({"input": "gs://inputs/a.png", "renditions": renditions})


def test_with_renditions_output_gives_only_the_uri() -> None:
    words = refusal(
        {"input": "gs://inputs/a.png", "output": {"format": "png"}, "renditions": [{"name": "x"}]}
    )
    assert "output: with renditions" in words and "format" in words


def test_every_preset_parses_and_documents_itself() -> None:
    for name, preset in PRESETS.items():
        (rendition,) = presets(name)
        assert rendition.name == name and rendition.preset == name
        assert preset.summary and preset.rules.describe()


def test_every_rendition_frame_and_preset_field_is_in_the_contract_page() -> None:
    from pathlib import Path

    from cutq.core import renditions
    from cutq.worker.render.quality import FLAGS

    readme = (Path(__file__).resolve().parents[2] / "docs" / "contract.md").read_text()
    section = readme.split("### Renditions", 1)[1].split("### Presets", 1)[0]
    table_rows = [line for line in section.splitlines() if line.startswith("| `")]
    fields = renditions.RENDITION_FIELDS | renditions.FRAME_FIELDS
    missing = [f for f in sorted(fields) if not any(f"`{f}`" in row for row in table_rows)]
    missing += [p for p in PRESETS if f"| `{p}` |" not in readme]
    missing += [f for f in FLAGS if f"| `{f}` |" not in readme]
    assert missing == []
