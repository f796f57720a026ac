"""Jobs from Pub/Sub push requests (a Cloud Run service with request-based scale to zero).

Each push request waits for its job to settle; concurrent requests feed the same pipeline, so
they share GPU batches. The response decides Pub/Sub's next step: 2xx acks (a result, or a
``failed`` event for a permanent error), 503 nacks (retry with backoff, then dead-letter).
``/healthz`` answers while the process lives; ``/readyz`` says what the service says: ready
after a successful warm-up, until shutdown begins or the model thread dies. With an audience
configured, every push must carry an OIDC token for that audience (and, if set, from that
service account);
``CUTQ_PUSH_AUTH`` says how much of it this process checks (see :class:`TokenVerifier`). The
token is read from ``X-Serverless-Authorization`` when present, else ``Authorization``: the
header Cloud Run's own IAM check reads (see :func:`token_header`).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cutq.worker.sources import Intake, StopReason

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1 << 20  # a push envelope around a job: jobs themselves are ≤ 64 KiB
PUSH_AUTH_MODES = ("verify", "claims", "none")
# What Cloud Run puts in place of a token's signature once its own IAM check (run.invoker)
# has verified the token: https://cloud.google.com/run/docs/troubleshooting#signature-removed
SIGNATURE_REMOVED = "SIGNATURE_REMOVED_BY_GOOGLE"
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
# Where the push token is: when a request carries both, Cloud Run's IAM check reads
# X-Serverless-Authorization and leaves Authorization to the app (GoogleCloudPlatform/
# cloud-run-proxy#25), so the token checked here must be the one Cloud Run checked.
TOKEN_HEADERS = ("X-Serverless-Authorization", "Authorization")
_DIGITS = re.compile(r"[0-9]{1,19}")


class PushDelivery:
    """One push request's message; the handler thread waits on :meth:`wait`."""

    def __init__(self, envelope: Mapping[str, Any]) -> None:
        message = envelope["message"]
        self.data = base64.b64decode(message.get("data", ""), validate=True)
        self.attributes: Mapping[str, str] = message.get("attributes") or {}
        self.message_id = str(message.get("messageId") or message.get("message_id") or "")
        published = message.get("publishTime") or message.get("publish_time")
        self.publish_time = (
            datetime.fromisoformat(published.replace("Z", "+00:00"))
            if published
            else datetime.now(timezone.utc)
        )
        attempt = envelope.get("deliveryAttempt")
        self.delivery_attempt = int(attempt) if attempt is not None else None
        self.last_attempt = False  # the push subscription's dead-letter policy decides
        self.acked: bool | None = None
        self._settled = threading.Event()

    def ack(self) -> None:
        self.acked = True
        self._settled.set()

    def nack(self) -> None:
        self.acked = False
        self._settled.set()

    def wait(self, timeout_s: float) -> bool:
        """True when acked; False when nacked or not settled in time."""
        return self._settled.wait(timeout_s) and bool(self.acked)


class TokenVerifier:
    """Checks Pub/Sub push OIDC tokens; caches accepted tokens until they expire.

    ``mode="verify"``: the token's RS256 signature must check out against Google's signing
    certificates, then its claims (audience, issuer, expiry, and the service account when one
    is configured). Use it wherever the endpoint is reachable without Cloud Run's IAM check.

    ``mode="claims"``: for a Cloud Run service that requires ``run.invoker`` (the Terraform
    service shape). Cloud Run verifies the token itself and, before the request reaches the
    container, replaces its signature with ``SIGNATURE_REMOVED_BY_GOOGLE`` (Cloud Run's
    troubleshooting guide, https://cloud.google.com/run/docs/troubleshooting#signature-removed),
    so a signature check here would refuse every push. A token in exactly that shape has its
    claims checked from the unsigned payload: audience, issuer, expiry, the service account
    and ``email_verified``. Any other token is verified in full, as in ``verify``. The
    signature-less path is only as strong as the IAM check in front of it: never use
    ``claims`` on an endpoint that ``allUsers`` may invoke.
    """

    def __init__(
        self,
        audience: str,
        service_account: str | None = None,
        certs_url: str | None = None,
        *,
        mode: str = "verify",
    ) -> None:
        import google.auth.transport.requests

        if mode not in ("verify", "claims"):
            raise ValueError(f"token mode must be verify or claims, not {mode!r}")
        self.audience = audience
        self.service_account = service_account
        self.certs_url = certs_url
        self.mode = mode
        self._request = google.auth.transport.requests.Request()
        self._verified: dict[str, float] = {}
        self._lock = threading.Lock()

    def verify(self, header: str | None) -> str | None:
        """None when the token is good, else why not."""
        if not header or not header.startswith("Bearer "):
            return "missing bearer token"
        token = header.removeprefix("Bearer ").strip()
        now = time.time()
        with self._lock:
            if self._verified.get(token, 0) > now:
                return None
        try:
            if token.endswith("." + SIGNATURE_REMOVED):
                if self.mode != "claims":
                    return (
                        "token signature was removed (a Cloud Run IAM check in front?); "
                        "set CUTQ_PUSH_AUTH=claims only behind Cloud Run's run.invoker check"
                    )
                claims = self._unsigned_claims(token, now)
            else:
                claims = self._signed_claims(token)
        except Exception as error:  # malformed, expired, bad signature, wrong audience
            return f"invalid token: {redact(str(error), token)}"
        if self.service_account and (
            claims.get("email") != self.service_account or claims.get("email_verified") is not True
        ):
            return f"token is for {claims.get('email')!r}, not {self.service_account!r}"
        with self._lock:
            if len(self._verified) > 1000:
                self._verified = {t: e for t, e in self._verified.items() if e > now}
            self._verified[token] = float(claims.get("exp", now + 300))
        return None

    def _signed_claims(self, token: str) -> Mapping[str, Any]:
        from google.oauth2 import id_token

        kwargs = {"certs_url": self.certs_url} if self.certs_url else {}
        claims = id_token.verify_token(token, self._request, audience=self.audience, **kwargs)
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise ValueError(f"issuer {claims.get('iss')!r} is not Google")
        return claims

    def _unsigned_claims(self, token: str, now: float) -> Mapping[str, Any]:
        """The claims of a token whose signature Cloud Run removed, checked as google-auth
        checks a signed one (audience, expiry with its clock skew) plus the issuer."""
        from google.auth import jwt

        claims = jwt.decode(token, verify=False)  # parses; refuses non-object segments
        if claims.get("aud") != self.audience:
            raise ValueError(f"token audience {claims.get('aud')!r} is not {self.audience!r}")
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise ValueError(f"issuer {claims.get('iss')!r} is not Google")
        expires, issued = claims.get("exp"), claims.get("iat")
        if not isinstance(expires, (int, float)) or not isinstance(issued, (int, float)):
            raise ValueError("token has no numeric exp/iat")
        skew = 10  # google-auth's default clock skew for verify_token
        if now > expires + skew:
            raise ValueError("token expired")
        if issued > now + skew:
            raise ValueError("token used too early")
        return claims


def verifier_from_config(
    audience: str | None, service_account: str | None, certs_url: str | None, mode: str | None
) -> TokenVerifier | None:
    """The verifier ``cutq serve`` runs with: ``mode`` None means verify when an audience is
    set and no check otherwise (``WorkerConfig`` has already refused contradictions)."""
    mode = mode or ("verify" if audience else "none")
    if mode == "none":
        return None
    assert audience, "verify and claims need an audience"
    return TokenVerifier(audience, service_account, certs_url, mode=mode)


def token_header(headers: Message) -> tuple[str | None, str | None]:
    """``(value, None)`` of the header holding the push token, ``(None, why)`` when a token
    header is repeated (which of the copies Cloud Run checked is unknown), ``(None, None)``
    without one. ``X-Serverless-Authorization`` wins over ``Authorization``: otherwise a
    principal allowed to invoke the service could pass Cloud Run's check with its own token
    there and put a forged ``…SIGNATURE_REMOVED_BY_GOOGLE`` token in ``Authorization``."""
    for name in TOKEN_HEADERS:
        values = headers.get_all(name) or []
        if len(values) > 1:
            return None, f"more than one {name} header"
        if values:
            return values[0], None
    return None, None


def redact(text: str, token: str) -> str:
    """``text`` without ``token`` or any of its dot-separated parts (they may be credentials).

    google-auth quotes malformed tokens in its errors ("Wrong number of segments in token:
    b'…'"); a misconfigured pusher sending an OAuth access token would otherwise have it
    written to the log and echoed in the 401 body.
    """
    for secret in sorted({token, *token.split(".")}, key=len, reverse=True):
        if len(secret) >= 8:
            text = text.replace(secret, "<redacted>")
    return text[:300]


class PushServer(ThreadingHTTPServer):
    """The HTTP front of a worker's intake."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        intake: Intake,
        *,
        timeout_s: float = 300.0,
        verifier: TokenVerifier | None = None,
    ) -> None:
        self.intake = intake
        self.timeout_s = timeout_s
        self.verifier = verifier
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: PushServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply(HTTPStatus.OK, {"status": "alive"})
        elif self.path == "/readyz":
            ready = self.server.intake.ready()
            self._reply(
                HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE,
                {"ready": ready, "in_flight": self.server.intake.in_flight()},
            )
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def do_POST(self) -> None:
        if self.server.verifier is not None:
            header, problem = token_header(self.headers)
            problem = problem or self.server.verifier.verify(header)
            if problem:
                log.warning("rejected push: %s", problem)
                self._reply(HTTPStatus.UNAUTHORIZED, {"error": problem})
                return
        length, problem = self._content_length()
        if problem is not None:
            status, message = problem
            self.close_connection = True  # the body, if any, was not read
            self._reply(status, {"error": message})
            return
        try:
            delivery = PushDelivery(json.loads(self.rfile.read(length)))
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as error:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": f"not a Pub/Sub push envelope: {error}"})
            return
        if not self.server.intake.ready():
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "not ready"})
            return
        self.server.intake.submit(delivery)
        if delivery.wait(self.server.timeout_s):
            self._reply(HTTPStatus.OK, {"acked": True})
        else:
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, {"acked": False})

    def _content_length(self) -> tuple[int, tuple[HTTPStatus, str] | None]:
        """The body's length, or the status that refuses the request: 411 without a length
        (chunked bodies included), 400 when it is not one non-negative decimal number, 413
        over MAX_BODY_BYTES. ``int()`` alone would take "-1", "+5", " 5" and "1_0"."""
        values = self.headers.get_all("Content-Length") or []
        if not values:
            return 0, (HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
        if len(set(values)) != 1 or not _DIGITS.fullmatch(values[0]):
            return 0, (HTTPStatus.BAD_REQUEST, "invalid Content-Length")
        length = int(values[0])
        if length > MAX_BODY_BYTES:
            return 0, (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
        return length, None

    def _reply(self, status: HTTPStatus, body: Mapping[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("push %s - " + format, self.address_string(), *args)


class PushSource:
    """An HTTP server taking Pub/Sub push requests for the pipeline."""

    def __init__(
        self,
        *,
        host: str = "0.0.0.0",
        port: int = 8080,
        timeout_s: float = 300.0,
        verifier: TokenVerifier | None = None,
        on_ready: Callable[[int], None] | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.timeout_s = timeout_s
        self.verifier = verifier
        self.on_ready = on_ready
        self.server: PushServer | None = None

    def start(self, intake: Intake) -> None:
        server = PushServer(
            (self.host, self.port), intake, timeout_s=self.timeout_s, verifier=self.verifier
        )
        self.server = server
        threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="cutq-http",
            daemon=True,
        ).start()
        log.info("serving Pub/Sub push on %s:%d", self.host, server.server_address[1])
        if self.on_ready is not None:
            self.on_ready(server.server_address[1])

    def ended(self) -> StopReason | None:
        return None  # pushes come while the platform routes them here

    def stop_intake(self) -> None:
        """Nothing to tell: /readyz went unready when the service began stopping, and a push
        arriving now is answered 503 (a nack)."""

    def close(self, deadline: float) -> None:
        """Stop the server once the held requests have had their 503 (a nack each)."""
        server, self.server = self.server, None
        if server is not None:
            server.shutdown()
            server.server_close()
