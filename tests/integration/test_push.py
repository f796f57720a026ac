"""`cutq serve`: Pub/Sub push over real HTTP, with OIDC verification against local certs."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

from cutq.core.contract import new_job
from cutq.worker.config import WorkerConfig
from cutq.worker.service import Service
from cutq.worker.sources.push import PushSource, TokenVerifier
from tests.support.cloud import Cloud
from tests.support.emulators import PubSubEmulator

AUDIENCE = "https://cutq-worker.example.run.app/"
PUSHER = "pusher@project.iam.gserviceaccount.com"


class Endpoint:
    """A running `cutq serve` in this process."""

    def __init__(self, config: WorkerConfig, verifier: TokenVerifier | None = None) -> None:
        self.service = Service.warmed_up(config.replace(grace_period_s=10))
        ready = threading.Event()
        self.port = 0

        def on_ready(port: int) -> None:
            self.port = port
            ready.set()

        source = PushSource(
            host="127.0.0.1", port=0, verifier=verifier, timeout_s=60, on_ready=on_ready
        )
        self.thread = threading.Thread(
            target=self.service.run, args=(source,), kwargs={"handle_signals": False}, daemon=True
        )
        self.thread.start()
        assert ready.wait(30)

    def request(
        self,
        method: str,
        path: str,
        body: dict | bytes | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict]:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method
        )
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=90) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read())

    def stop(self) -> None:
        self.service.stop()
        self.thread.join(30)


def envelope(data: bytes, message_id: str = "1", attempt: int | None = None) -> dict:
    body: dict = {
        "message": {
            "data": base64.b64encode(data).decode(),
            "messageId": message_id,
            "publishTime": "2026-11-23T10:00:00.123Z",
            "attributes": {"origin": "push"},
        },
        "subscription": "projects/p/subscriptions/push",
    }
    if attempt is not None:
        body["deliveryAttempt"] = attempt
    return body


@pytest.fixture
def cloud(pubsub_emulator: PubSubEmulator, gcs_bucket: str) -> Iterator[Cloud]:
    cloud = Cloud(pubsub_emulator, gcs_bucket)
    yield cloud
    cloud.close()


def test_concurrent_pushes_share_batches_and_ack(cloud: Cloud) -> None:
    uris = cloud.upload_images(16)
    jobs = [new_job(uri, cloud.output) for uri in uris]
    endpoint = Endpoint(cloud.worker_config(max_batch=8, max_wait_ms=200))
    try:
        assert endpoint.request("GET", "/healthz")[0] == 200
        assert endpoint.request("GET", "/readyz") == (200, {"ready": True, "in_flight": 0})
        with ThreadPoolExecutor(16) as pool:
            replies = list(
                pool.map(
                    lambda pair: endpoint.request(
                        "POST", "/", envelope(pair[1].to_message(), str(pair[0]), attempt=1)
                    ),
                    enumerate(jobs),
                )
            )
        assert replies == [(200, {"acked": True})] * 16
        events = cloud.pull_all(cloud.events_sub, expected=16)
    finally:
        endpoint.stop()
    assert {e["body"]["data"]["job_id"] for e in events} == {job.job_id for job in jobs}
    assert max(e["body"]["data"]["batch_size"] for e in events) > 1  # pushes shared batches
    assert all("/dt=2026-11-23/" in e["body"]["data"]["outputs"][0]["uri"] for e in events)
    assert len(cloud.results()) == 16


def test_googles_emulator_pushes_jobs_to_cutq_serve(cloud: Cloud) -> None:
    """The real push path: a push subscription on Google's emulator POSTs each job to the
    endpoint, which answers 200 (ack) after the job's event is published."""
    uris = cloud.upload_images(6)
    endpoint = Endpoint(cloud.worker_config(max_batch=8, max_wait_ms=200))
    try:
        push_sub = cloud.emulator.subscription_path("push")
        cloud.subscriber.create_subscription(
            name=push_sub,
            topic=cloud.jobs_topic,
            push_config={"push_endpoint": f"http://127.0.0.1:{endpoint.port}/"},
            ack_deadline_seconds=60,
        )
        ids = cloud.publish_jobs(uris)
        cloud.publish_raw(b"{broken")
        events = cloud.pull_all(cloud.events_sub, expected=7, timeout_s=90)
        time.sleep(1.0)  # a retried (nacked) push would arrive now
        events += cloud.drain(cloud.events_sub)
    finally:
        endpoint.stop()
    completed = sorted(
        e["body"]["data"]["job_id"] for e in events if e["body"]["data"]["status"] == "completed"
    )
    failed = [
        e["body"]["data"]["error"]["code"]
        for e in events
        if e["body"]["data"]["status"] == "failed"
    ]
    assert completed == sorted(ids) and failed == ["invalid_message"]
    assert len(cloud.results()) == 6


def test_response_codes_map_to_ack_and_nack(cloud: Cloud) -> None:
    uri = cloud.upload_images(1)[0]
    endpoint = Endpoint(cloud.worker_config(events_topic=cloud.emulator.topic_path("gone")))
    try:
        # The event cannot be published (no such topic): transient, so 503 = nack, retry later.
        job = new_job(uri, cloud.output)
        assert endpoint.request("POST", "/", envelope(job.to_message()))[0] == 503
        assert endpoint.request("POST", "/", b"not an envelope")[0] == 400
        assert endpoint.request("GET", "/nope")[0] == 404
    finally:
        endpoint.stop()
    endpoint = Endpoint(cloud.worker_config())
    try:
        # A permanent error is answered 200 (ack) after its `failed` event is published.
        assert endpoint.request("POST", "/", envelope(b"{broken"))[0] == 200
        failed = cloud.pull_all(cloud.events_sub, expected=1)
        assert failed[0]["body"]["data"]["error"]["code"] == "invalid_message"
        endpoint.service.stop()
        endpoint.thread.join(30)
        assert not endpoint.thread.is_alive()
    finally:
        endpoint.stop()


class CertServer:
    """Serves {key id: x509 PEM} like Google's token signing-cert endpoint."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "local-signer")])
        now = dt.datetime.now(dt.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(1)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(self.key, hashes.SHA256())
        )
        body = json.dumps({"k1": cert.public_bytes(serialization.Encoding.PEM).decode()}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/certs"

    def token(self, audience: str = AUDIENCE, email: str = PUSHER, ttl_s: int = 600) -> str:
        pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        signer = crypt.RSASigner.from_string(pem, key_id="k1")
        now = int(time.time())
        payload = {
            "iss": "https://accounts.google.com",
            "aud": audience,
            "email": email,
            "email_verified": True,
            "iat": now,
            "exp": now + ttl_s,
            "sub": "1",
        }
        return jwt.encode(signer, payload).decode()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_oidc_tokens_are_verified(cloud: Cloud) -> None:
    certs = CertServer()
    verifier = TokenVerifier(AUDIENCE, PUSHER, certs_url=certs.url)
    endpoint = Endpoint(cloud.worker_config(), verifier=verifier)
    try:
        body = envelope(b"{broken")
        assert endpoint.request("POST", "/", body)[0] == 401
        assert endpoint.request("POST", "/", body, token="garbage")[0] == 401
        assert endpoint.request("POST", "/", body, token=certs.token(audience="other"))[0] == 401
        assert endpoint.request("POST", "/", body, token=certs.token(email="x@y.z"))[0] == 401
        assert endpoint.request("POST", "/", body, token=certs.token(ttl_s=-3600))[0] == 401
        # Not behind Cloud Run's IAM check (mode "verify"), an unsigned token proves nothing.
        stripped = strip_signature(certs.token())
        assert endpoint.request("POST", "/", body, token=stripped)[0] == 401
        good = certs.token()
        assert endpoint.request("POST", "/", body, token=good)[0] == 200
        assert endpoint.request("POST", "/", body, token=good)[0] == 200  # cached
        assert len(cloud.pull_all(cloud.events_sub, expected=2)) == 2
    finally:
        endpoint.stop()
        certs.close()


def strip_signature(token: str) -> str:
    """The token as a Cloud Run service behind run.invoker receives it: Cloud Run checked it,
    then replaced its signature (https://cloud.google.com/run/docs/troubleshooting#signature-removed)."""
    header, payload, _signature = token.split(".")
    return f"{header}.{payload}.SIGNATURE_REMOVED_BY_GOOGLE"


def forge(token: str, **claims: object) -> str:
    """The token with its claims rewritten and its (now wrong) signature kept."""
    header, payload, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    decoded.update(claims)
    forged = base64.urlsafe_b64encode(json.dumps(decoded).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def raw_post(port: int, head: str, body: bytes = b"", timeout_s: float = 5.0) -> str:
    """Send a hand-written request (headers urllib would refuse) and return the status line."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.split(b"\r\n", 1)[0].decode()


def test_signature_stripped_tokens_behind_cloud_run_iam(cloud: Cloud) -> None:
    """CUTQ_PUSH_AUTH=claims (the Terraform service shape): a token whose signature Cloud Run
    removed is accepted on its claims, which are still checked; signed tokens are verified."""
    certs = CertServer()
    verifier = TokenVerifier(AUDIENCE, PUSHER, certs_url=certs.url, mode="claims")
    endpoint = Endpoint(cloud.worker_config(), verifier=verifier)
    body = envelope(b"{broken")
    try:
        stripped = strip_signature(certs.token())
        assert endpoint.request("POST", "/", body, token=stripped)[0] == 200
        for bad in (
            strip_signature(certs.token(audience="https://other.example/")),
            strip_signature(certs.token(email="x@y.z")),
            strip_signature(certs.token(ttl_s=-3600)),
            strip_signature(forge(certs.token(), iss="https://evil.example")),
            strip_signature(forge(certs.token(), email_verified=False)),
            "e30.bm90IGpzb24.SIGNATURE_REMOVED_BY_GOOGLE",
        ):
            assert endpoint.request("POST", "/", body, token=bad)[0] == 401, bad
        # A token that still has a signature is verified in full: a forged one is refused.
        assert endpoint.request("POST", "/", body, token=certs.token())[0] == 200
        forged = forge(certs.token(), email=PUSHER, aud=AUDIENCE, exp=int(time.time()) + 900)
        assert endpoint.request("POST", "/", body, token=forged)[0] == 401
        assert len(cloud.pull_all(cloud.events_sub, expected=2)) == 2
    finally:
        endpoint.stop()
        certs.close()


def test_claims_are_read_from_the_header_cloud_run_checked(cloud: Cloud) -> None:
    """Issue 24: with both headers, Cloud Run's IAM check reads X-Serverless-Authorization
    (GoogleCloudPlatform/cloud-run-proxy#25), so any principal allowed to invoke the service
    passes it with its own token there; a forged signature-stripped token naming the pusher in
    Authorization must not be what the claims check reads."""
    certs = CertServer()
    verifier = TokenVerifier(AUDIENCE, PUSHER, certs_url=certs.url, mode="claims")
    endpoint = Endpoint(cloud.worker_config(), verifier=verifier)
    body = envelope(b"{broken")
    attacker = strip_signature(certs.token(email="invoker@project.iam.gserviceaccount.com"))
    forged = f"{JWT_HEADER}.{segment(pusher_claims())}.SIGNATURE_REMOVED_BY_GOOGLE"
    pusher = strip_signature(certs.token())
    try:
        both = {"X-Serverless-Authorization": f"Bearer {attacker}"}
        assert endpoint.request("POST", "/", body, token=forged, headers=both)[0] == 401
        # The pusher's token in X-Serverless-Authorization is the one that counts.
        own = {"X-Serverless-Authorization": f"Bearer {pusher}"}
        assert endpoint.request("POST", "/", body, token="app-token", headers=own)[0] == 200
        # A repeated token header is refused: which copy Cloud Run checked is unknown.
        head = "POST / HTTP/1.1\nHost: x\nContent-Type: application/json\n"
        twice = "".join(f"X-Serverless-Authorization: Bearer {t}\n" for t in (pusher, attacker))
        data = json.dumps(body).encode()
        line = raw_post(endpoint.port, head + twice + f"Content-Length: {len(data)}\n", data)
        assert line.startswith("HTTP/1.1 401 "), line
        assert len(cloud.pull_all(cloud.events_sub, expected=1)) == 1
    finally:
        endpoint.stop()
        certs.close()


JWT_HEADER = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0"  # {"alg":"RS256","kid":"k1"}


def segment(claims: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()


def pusher_claims() -> dict[str, object]:
    """Claims anyone can write: the pusher's email for the service's audience, unsigned."""
    now = int(time.time())
    return {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "email": PUSHER,
        "email_verified": True,
        "iat": now,
        "exp": now + 600,
        "sub": "1",
    }


def test_bad_content_length_is_refused_cleanly(cloud: Cloud) -> None:
    """Regression: a negative Content-Length read the body with no size limit (the handler
    blocked until the client went away) and a non-numeric one dropped the connection with a
    traceback. Each now gets its status, and the server keeps serving."""
    endpoint = Endpoint(cloud.worker_config())
    data = json.dumps(envelope(b"{broken")).encode()
    head = "POST / HTTP/1.1\nHost: x\nContent-Type: application/json\n"
    try:
        cases = {
            "Content-Length: -1\n": "400",
            "Content-Length: abc\n": "400",
            "Content-Length: +5\n": "400",
            "Content-Length: 1_0\n": "400",
            "Content-Length: 5\nContent-Length: 6\n": "400",
            "Content-Length: 99999999999\n": "413",
            "Transfer-Encoding: chunked\n": "411",
        }
        for headers, status in cases.items():
            line = raw_post(endpoint.port, head + headers, data)
            assert line.startswith(f"HTTP/1.1 {status} "), (headers, line)
        assert raw_post(endpoint.port, head + f"Content-Length: {len(data)}\n", data).startswith(
            "HTTP/1.1 200 "
        )
        assert endpoint.request("GET", "/healthz")[0] == 200
    finally:
        endpoint.stop()
