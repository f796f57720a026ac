"""What a hostile publisher or pusher must not get: other buckets, other directories, or its
credentials in the worker's logs."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cutq.core.errors import AccessDenied
from cutq.worker.access import check_allowed
from cutq.worker.config import WorkerConfig
from cutq.worker.sources.push import TokenVerifier, redact


@pytest.fixture
def jail(tmp_path: Path) -> Path:
    """An allowed directory holding a symlink that escapes it, and a secret outside it."""
    root = tmp_path / "allowed"
    (root / "in").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "key.png").write_bytes(b"not for jobs")
    (root / "in" / "escape").symlink_to(tmp_path / "secret")
    (root / "in" / "escape.png").symlink_to(tmp_path / "secret" / "key.png")
    (root / "in" / "inside.png").symlink_to(root / "in" / "real.png")
    return root


def local_config(root: Path) -> WorkerConfig:
    return WorkerConfig(allowed_dirs=(root.as_uri(),), warmup=False)


@pytest.mark.parametrize(
    "relative",
    [
        "../secret/key.png",  # ..
        "in/../../secret/key.png",
        "in/escape/key.png",  # a symlinked directory pointing out
        "in/escape.png",  # a symlinked file pointing out
    ],
)
def test_file_uris_cannot_leave_the_allowed_directories(jail: Path, relative: str) -> None:
    uri = f"file://{jail}/{relative}"  # unnormalised on purpose
    with pytest.raises(AccessDenied):
        check_allowed(uri, local_config(jail), "input")
    with pytest.raises(AccessDenied):
        check_allowed(uri + "/dt=2026-01-01/x.png", local_config(jail), "output")


@pytest.mark.parametrize(
    ("relative", "resolved"),
    [
        ("in/a.png", "in/a.png"),
        ("in/../in/a.png", "in/a.png"),
        ("in/inside.png", "in/real.png"),  # a symlink inside: the target that was checked
        ("new/x.png", "new/x.png"),
    ],
)
def test_file_uris_inside_the_allowed_directories_pass_as_the_path_checked(
    jail: Path, relative: str, resolved: str
) -> None:
    """The URI to use is the resolved path that passed the check: a symlink swapped in after
    the check cannot redirect the read or the write."""
    uri = check_allowed(f"file://{jail}/{relative}", local_config(jail), "input")
    assert uri == (jail.resolve() / resolved).as_uri()


def test_bucket_allow_list_is_exact() -> None:
    config = WorkerConfig(allowed_buckets=("inputs", "results"), warmup=False)
    check_allowed("gs://inputs/a.png", config, "input")
    check_allowed("gs://results/x/dt=2026-01-01/a.png", config, "output")
    for uri in ("gs://inputs-evil/a.png", "gs://inputsx/a.png", "gs://other/inputs/a.png"):
        with pytest.raises(AccessDenied):
            check_allowed(uri, config, "input")


def test_a_bucket_allow_list_also_locks_local_files(tmp_path: Path) -> None:
    """Regression: with only CUTQ_ALLOWED_BUCKETS set (what Terraform deploys), file:// jobs
    could read the container's files and write results anywhere in it."""
    config = WorkerConfig(allowed_buckets=("inputs",), warmup=False)
    for uri in ("file:///etc/passwd", f"file://{tmp_path}/x.png"):
        with pytest.raises(AccessDenied):
            check_allowed(uri, config, "input")
    dirs_only = WorkerConfig(allowed_dirs=(tmp_path.as_uri(),), warmup=False)
    with pytest.raises(AccessDenied):
        check_allowed("gs://inputs/a.png", dirs_only, "input")
    open_config = WorkerConfig(warmup=False)  # nothing configured: local runs and tests
    check_allowed("file:///etc/x.png", open_config, "input")
    check_allowed("gs://anything/a.png", open_config, "input")


@pytest.fixture
def empty_certs() -> Iterator[str]:
    """A signing-key endpoint with no keys: every token fails after being parsed."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/certs"
    server.shutdown()
    server.server_close()


def _segment(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


JWT_HEADER = _segment('{"alg": "RS256", "kid": "k1"}')


@pytest.mark.parametrize(
    "token",
    [
        "ya29.a0SECRETaccessTOKENthatIsNotAJwt",  # an OAuth access token sent by mistake
        "SECRETsingleSegmentCredential",
        JWT_HEADER + "." + _segment("{}") + ".SECRETsignaturePart",
        "SECRET.!!!.x",
    ],
)
def test_rejected_push_tokens_never_reach_the_log(
    empty_certs: str, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: google-auth quotes malformed tokens in its errors, and the push source logged
    that error (and returned it in the 401 body) verbatim."""
    verifier = TokenVerifier("https://aud.example/", certs_url=empty_certs)
    with caplog.at_level(logging.DEBUG):
        problem = verifier.verify(f"Bearer {token}")
        logging.getLogger("cutq.worker.sources.push").warning("rejected push: %s", problem)
    assert problem is not None and problem.startswith("invalid token")
    secret_parts = [part for part in token.split(".") if "SECRET" in part]
    assert secret_parts
    for part in secret_parts:
        assert part not in problem and part not in caplog.text


def test_redact_removes_the_token_and_its_parts() -> None:
    text = "Wrong number of segments in token: b'aaaaaaaaaa.bbbbbbbbbb' (bbbbbbbbbb)"
    assert redact(text, "aaaaaaaaaa.bbbbbbbbbb") == (
        "Wrong number of segments in token: b'<redacted>' (<redacted>)"
    )
