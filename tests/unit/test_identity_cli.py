"""How ``cutq submit`` names each source and derives its ref, and the mistakes it refuses
before publishing anything (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutq.cli import main
from cutq.core.errors import InvalidJob
from cutq.core.naming import RefRule
from cutq.submitter.bulk import iter_inputs


def shoot(root: Path) -> Path:
    for relative in ("SKU-1/front.jpg", "SKU-1/back.jpg", "loose.png", "SKU-2/x/deep.jpg"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(b"x")
    return root


def names(origin: str) -> list[str]:
    return sorted(item.name for item in iter_inputs([origin]))


def test_names_are_relative_to_the_folder_or_prefix_given(tmp_path: Path) -> None:
    folder = shoot(tmp_path / "my shoot")
    inside = ["SKU-1/back.jpg", "SKU-1/front.jpg", "SKU-2/x/deep.jpg", "loose.png"]
    assert names(str(folder)) == names(str(folder) + "/") == inside
    assert names(folder.as_uri() + "/") == inside
    assert names(folder.as_uri()) == ["my shoot/" + name for name in inside]  # a prefix
    assert names(str(folder / "SKU-1" / "front.jpg")) == ["front.jpg"]


@pytest.mark.parametrize(
    ("spec", "name", "location", "ref"),
    [
        ("{parent}", "SKU-1/front.jpg", "/shoot/SKU-1/front.jpg", "SKU-1"),
        ("{parent}", "front.jpg", "gs://b/shoot/SKU-1/front.jpg", "SKU-1"),
        ("{stem}", "SKU-1/front.jpg", "/x", "front"),
        ("{file}", "SKU-1/front.jpg", "/x", "front.jpg"),
        ("{path}", "SKU-1/front.jpg", "/x", "SKU-1/front.jpg"),
        ("{parent}-{stem}", "SKU-1/front.jpg", "/s/SKU-1/front.jpg", "SKU-1-front"),
        (r"re:^(SKU-\d+)/", "SKU-1/front.jpg", "/x", "SKU-1"),
        (r"re:SKU-\d+", "a/SKU-22_front.jpg", "/x", "SKU-22"),
        ("SKU-9", "anything.jpg", "/x", "SKU-9"),
    ],
)
def test_ref_rules(spec: str, name: str, location: str, ref: str) -> None:
    assert RefRule(spec).ref_for(name, location) == ref


@pytest.mark.parametrize(
    ("spec", "name", "message"),
    [
        (r"re:^(SKU-\d+)/", "loose.png", "does not match the name 'loose.png'"),
        ("re:^(x?)", "loose.png", "gives an empty ref"),
        ("{parent}", "front.jpg", "gives an empty ref"),  # a source at the root: no folder
    ],
)
def test_a_rule_that_gives_no_ref_is_an_invalid_job(spec: str, name: str, message: str) -> None:
    with pytest.raises(InvalidJob, match=message):
        RefRule(spec).ref_for(name, name)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--ref", "{sku}"], "--ref: unknown placeholder {sku}"),
        (["--ref", "re:("], "--ref: bad regular expression"),
        (["--ref", "SKU\t1"], "--ref: contains control characters"),
        (["--names", "{stem}.{ext}"], "must contain {job_id} or {hash}"),
        (["--names", "{ref}-{hash}.{ext}", "--kind", "both"], "add {rendition}"),
        (["--names", "{hash}.{ext}", "--preset", "google-shopping", "--preset", "amazon-main"],
         "add {rendition}"),
    ],
)  # fmt: skip
def test_submit_refuses_a_bad_ref_or_template_before_publishing(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["submit", str(shoot(tmp_path)), "--topic", "projects/p/topics/nowhere",
            "--output", "gs://bucket/out", "--no-progress", *flags]  # fmt: skip
    assert main(argv) == 2
    assert message in capsys.readouterr().err
