"""`cutq submit` asks for Google credentials only for the APIs it uses without an emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutq.core.errors import ConfigError
from cutq.submitter.credentials import NO_CREDENTIALS, require_credentials


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """google-auth finds none: a credentials file that does not exist is an error it raises."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))


@pytest.mark.usefixtures("no_credentials")
def test_the_emulators_need_no_credentials() -> None:
    both = {"PUBSUB_EMULATOR_HOST": "127.0.0.1:8085", "STORAGE_EMULATOR_HOST": "http://x"}
    require_credentials(both, storage=True)
    require_credentials({"PUBSUB_EMULATOR_HOST": "127.0.0.1:8085"}, storage=False)


@pytest.mark.usefixtures("no_credentials")
@pytest.mark.parametrize(
    ("storage", "env"),
    [
        (True, {"PUBSUB_EMULATOR_HOST": "127.0.0.1:8085"}),  # gs:// with no GCS emulator
        (False, {"STORAGE_EMULATOR_HOST": "http://x"}),  # real Pub/Sub
    ],
)
def test_a_real_api_without_credentials_is_one_configuration_error(
    storage: bool, env: dict[str, str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        require_credentials(env, storage=storage)
    assert str(caught.value) == NO_CREDENTIALS
    assert "application-default login" in NO_CREDENTIALS and "out/stack.env" in NO_CREDENTIALS
