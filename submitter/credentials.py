"""Google credentials, checked once before a command touches the cloud.

Without Application Default Credentials the client libraries fail deep inside their first
call, after google-auth has logged a warning for each way it tried: a new user gets a
traceback. :func:`require_credentials` asks google-auth first, quietly, and turns its answer
into one configuration error (exit 2) that says what to run. Against the emulators (the
``*_EMULATOR_HOST`` variables of the services a command uses, as ``out/stack.env`` sets them)
no credentials are needed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from cutq.core.errors import ConfigError

NO_CREDENTIALS = (
    "no Google credentials found: run `gcloud auth application-default login` (Application "
    "Default Credentials) or set GOOGLE_APPLICATION_CREDENTIALS; for the local stack, "
    "`source out/stack.env` first"
)
EMULATORS = ("PUBSUB_EMULATOR_HOST", "STORAGE_EMULATOR_HOST")


def require_credentials(env: Mapping[str, str] = os.environ, *, storage: bool = True) -> None:
    """Raise :class:`ConfigError` naming ADC and the stack's env file when google-auth finds
    no credentials and a service the command uses is not emulated: Pub/Sub always, Cloud
    Storage when ``storage`` (some URI is ``gs://``)."""
    if all(env.get(name) for name in EMULATORS[: 2 if storage else 1]):
        return
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    auth = logging.getLogger("google.auth")
    level = auth.level
    auth.setLevel(logging.ERROR)  # its per-method warnings would bury the one line
    try:
        google.auth.default()
    except DefaultCredentialsError:
        raise ConfigError(NO_CREDENTIALS) from None
    finally:
        auth.setLevel(level)
