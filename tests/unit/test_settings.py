"""One settings surface per side, as the command line reads them: its log settings, `cutq
cancel`'s output and control prefix through the submitter's configuration, and the extra a
command needs (the smallest that serves: `cpu`, never torch's `worker`)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cutq.cli import build_parser, install_hint, main
from cutq.core.control import control_uri, list_cancellations
from cutq.core.errors import ConfigError
from cutq.core.logs import LogSettings
from cutq.core.storage import Storage, Stores, open_storage
from cutq.worker.config import DEPRECATED_UNTIL, WorkerConfig
from cutq.worker.models.fetch import fetch_checkpoint


def test_log_settings_come_from_the_environment_and_the_flags_win() -> None:
    env = {"CUTQ_LOG_FORMAT": "json", "CUTQ_LOG_LEVEL": "DEBUG"}
    assert LogSettings.from_env(env) == LogSettings("json", "DEBUG")
    assert LogSettings.from_env(env, format="text", level="warning") == LogSettings(
        "text", "warning"
    )
    assert LogSettings.from_env({}) == LogSettings("auto", "INFO")
    with pytest.raises(ConfigError, match="log format must be one of"):
        LogSettings.from_env({"CUTQ_LOG_FORMAT": "xml"})
    with pytest.raises(ConfigError, match="unknown log level"):
        LogSettings.from_env({}, level="LOUD")


def test_a_bad_log_level_in_the_environment_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CUTQ_LOG_LEVEL", "LOUD")
    assert main(["cancel", "job-1", "--output", "file:///tmp/cutq-unused"]) == 2
    assert "unknown log level 'LOUD'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "worker", "serve", "report"])
def test_a_worker_command_missing_its_packages_recommends_the_cpu_extra(command: str) -> None:
    """Plausible mistake this catches: recommending the `worker` extra (torch and CUDA
    libraries, ~5.9 GB) to someone who needs `cpu` (274 MB)."""
    extra = build_parser().parse_args(_args(command)).extra
    assert extra == "cpu"
    line = install_hint(command, ModuleNotFoundError("No module named 'onnxruntime'"), extra)
    assert f"cutq {command}: No module named 'onnxruntime'" in line
    assert "pip install 'cutq[cpu]'" in line and "'cutq[gpu-onnx]'" in line
    assert "cutq[worker]" not in line


def _args(command: str) -> list[str]:
    return {"run": ["run", "x", "--out", "y"], "report": ["report", "x"]}.get(command, [command])


def test_cutq_cancel_reads_its_output_through_the_submitters_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    output = (tmp_path / "out").as_uri()
    monkeypatch.delenv("CUTQ_CONTROL", raising=False)
    monkeypatch.setenv("CUTQ_SUBMITTER_OUTPUT", output)
    assert main(["cancel", "job-1"]) == 0
    control = control_uri(output)
    assert list_cancellations(open_storage(control), control, limit=10).jobs == {"job-1"}
    # The same surface as `cutq submit`'s: a misspelt setting is named, not ignored.
    monkeypatch.setenv("CUTQ_SUBMITTER_OUTPTU", output)
    assert main(["cancel", "job-2"]) == 2
    assert "CUTQ_SUBMITTER_OUTPTU" in capsys.readouterr().err


def test_each_deprecated_name_has_its_removal_version_in_the_changelog(
    caplog: pytest.LogCaptureFixture,
) -> None:

    changelog = (Path(__file__).resolve().parents[2] / "CHANGELOG.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in changelog.splitlines() if "| 0." in line}
    lanes = next(line for name, line in rows.items() if name.startswith("`CUTQ_LANES`"))
    extra = next(line for name, line in rows.items() if "`worker` extra" in name)
    assert lanes.rstrip(" |").endswith(DEPRECATED_UNTIL) and extra.rstrip(" |").endswith(
        DEPRECATED_UNTIL
    )
    with caplog.at_level(logging.WARNING, logger="cutq.worker.config"):
        WorkerConfig.from_env({"CUTQ_LANES": "1"})
    assert f"removed in {DEPRECATED_UNTIL}" in caplog.text


class Handed(Stores):
    """The owner's backends: records what is opened through it; a download writes ``data``."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.data, self.opened = data, []

    def open(self, uri: str) -> Storage:
        self.opened.append(uri)
        stores = self

        class Downloads:
            def download_to_path(self, uri: str, path: Path) -> None:
                Path(path).write_bytes(stores.data)

        return Downloads()  # type: ignore[return-value]


def test_a_gs_checkpoint_is_fetched_through_the_storage_its_owner_passes(tmp_path: Path) -> None:
    """Plausible mistake this catches: the process-wide ``open_storage`` (its own retry
    policy, not the worker's) instead of the backends the worker built and passed in."""
    storage = Handed(b"weights")
    uri = "gs://models/graph.onnx"
    path = fetch_checkpoint(uri, tmp_path / "cache", storage=storage)
    assert path.read_bytes() == b"weights" and storage.opened == [uri]
