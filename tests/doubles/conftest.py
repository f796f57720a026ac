"""Prints the differential suite's table (tests/doubles/test_differential.py) after the run."""

from __future__ import annotations

import pytest

from tests.doubles.differential import ROWS, format_table


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if ROWS:
        terminalreporter.write_sep("=", "Pub/Sub: Google's emulator vs our double")
        terminalreporter.write_line(format_table(ROWS))
