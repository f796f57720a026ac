"""Fixtures for the infrastructure checks (Terraform, checkov, Dockerfile)."""

from __future__ import annotations

import pytest

from tests.infra.tfconfig import EXAMPLES, MODULE, TerraformConfig


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "checkov: runs the checkov IaC scanner (needs checkov installed: "
        "bash infra/scripts/install-checkov.sh); fails, never skips, when it is missing",
    )


@pytest.fixture(scope="session")
def module() -> TerraformConfig:
    return TerraformConfig.load(MODULE)


@pytest.fixture(scope="session")
def examples() -> list[TerraformConfig]:
    return [TerraformConfig.load(path) for path in sorted(EXAMPLES.iterdir()) if path.is_dir()]
