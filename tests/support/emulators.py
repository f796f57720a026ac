"""Google's own Pub/Sub emulator, started on a free port, and where a test's Pub/Sub is.

Google's emulator (Google Cloud CLI component ``pubsub-emulator``, Java 17) is the reference
for how Pub/Sub behaves in these tests. :func:`find_emulator` locates it (``CUTQ_PUBSUB_EMULATOR``
names the binary, else ``gcloud``'s SDK root); :class:`GoogleEmulator` runs one; it takes a few
seconds to start, so the test session starts one and gives each test fresh topics and
subscriptions (:meth:`PubSubEmulator.topic_path`).

Quirks of emulator 0.8.20 that tests must plan around:

- After a StreamingPull client disconnects from a subscription (the stream is cancelled or
  the process exits), the emulator logs ``NoSuchMethodError ... InternalStatus.asRuntimeException``
  and may stop delivering that subscription's messages — to the next streaming subscriber and to
  a synchronous Pull alike. So: **one subscription per worker-process lifetime**. A test that
  stops one worker and starts another needs the restart-capable double
  (``tests.doubles.pubsub``) or a fresh subscription for the new worker.
- Subscription filters are stored but not applied.
- ``ack_deadline_seconds`` below 10 is accepted (the service rejects it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.doubles.pubsub import LocalPubSubServer

EMULATOR_ENV = "CUTQ_PUBSUB_EMULATOR"
INSTALL_HINT = (
    "Google's Pub/Sub emulator is not installed: `sudo apt-get install "
    "google-cloud-cli-pubsub-emulator` (Debian/Ubuntu) or `gcloud components install "
    "pubsub-emulator`, plus Java 17; or set CUTQ_PUBSUB_EMULATOR to its "
    "cloud-pubsub-emulator binary"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_emulator() -> Path | None:
    """The ``cloud-pubsub-emulator`` launcher, or None when it (or java) is not installed."""
    named = os.environ.get(EMULATOR_ENV)
    if named:
        path = Path(named)
        return path if path.is_file() else None
    if shutil.which("java") is None:
        return None
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return None
    try:
        root = subprocess.run(
            [gcloud, "info", "--format=value(installation.sdk_root)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    path = Path(root) / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
    return path if path.is_file() else None


class GoogleEmulator:
    """``with GoogleEmulator() as emulator:`` runs Google's Pub/Sub emulator; ``.host``.

    It logs to ``.log_path``; the process (java, exec'd by the launcher script) is stopped on
    exit. It keeps everything in memory: nothing survives it.
    """

    def __init__(self, binary: Path | None = None, port: int | None = None) -> None:
        found = binary or find_emulator()
        if found is None:
            raise FileNotFoundError(INSTALL_HINT)
        self.binary = found
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._log_dir = tempfile.TemporaryDirectory(prefix="pubsub-emulator-")
        self.log_path = Path(self._log_dir.name) / "emulator.log"

    def __enter__(self) -> GoogleEmulator:
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [str(self.binary), "--host=127.0.0.1", f"--port={self.port}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            self._wait_until_serving(timeout_s=90.0)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_until_serving(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"the Pub/Sub emulator exited: {self.log()[-2000:]}")
            if "Server started" in self.log():
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", self.port), timeout=1),
                ):
                    return
            time.sleep(0.1)
        raise TimeoutError(f"the Pub/Sub emulator did not start: {self.log()[-2000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __exit__(self, *exc: object) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)  # its own session: java and nothing else
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self._log_dir.cleanup()


@dataclass(frozen=True)
class PubSubEmulator:
    """The Pub/Sub a test talks to: its PUBSUB_EMULATOR_HOST and project.

    ``server`` is our own double when the test runs on it (it can be restarted, has a clock,
    injects faults), None for Google's emulator or any other external one.
    """

    host: str
    project: str
    server: LocalPubSubServer | None = None

    @property
    def is_double(self) -> bool:
        return self.server is not None

    def topic_path(self, prefix: str = "topic") -> str:
        """A fresh topic name (a session shares one server, so names must not collide)."""
        return f"projects/{self.project}/topics/{_unique(prefix)}"

    def subscription_path(self, prefix: str = "sub") -> str:
        """A fresh subscription name."""
        return f"projects/{self.project}/subscriptions/{_unique(prefix)}"


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
