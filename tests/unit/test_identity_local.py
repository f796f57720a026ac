"""``cutq run``'s jobs carry their source's name too: its path relative to the folder given,
so two products' ``front.jpg`` stay apart in the events, without changing any job id."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutq.core.contract import OutputSpec, parse_job
from cutq.worker.sources.local import LocalSource, expand_paths, names_of


def test_a_local_run_names_each_job_relative_to_the_folder_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for relative in ("shoot/SKU-1/front.png", "shoot/SKU-2/front.png", "single.png"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    inputs = ["shoot", "single.png", str(tmp_path / "shoot" / "SKU-1")]
    files = list(expand_paths(inputs))
    names = names_of(files, inputs)
    assert names == [
        "SKU-1/front.png",
        "SKU-2/front.png",
        "single.png",
        "SKU-1/front.png",  # found again under the third input: the first folder names it
    ]
    output = OutputSpec((tmp_path / "out").as_uri())
    named = [
        parse_job(d.data, defaults=output)
        for d in LocalSource(files, output, names=names).deliveries()
    ]
    plain = [parse_job(d.data, defaults=output) for d in LocalSource(files, output).deliveries()]
    assert [job.name for job in named] == names
    assert [job.name for job in plain] == [None] * 4
    assert [job.job_id for job in named] == [job.job_id for job in plain]  # reruns find them
