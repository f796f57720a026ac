"""The push source's intake on a real local HTTP server, without a pipeline: the envelope a
push carries, the status each request gets (ack = 2xx, nack = 503, refusals before any job
is taken), health and readiness, and a server that is gone once closed."""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from email.message import Message
from typing import Any

import pytest

from cutq.worker.sources import Intake
from cutq.worker.sources.push import MAX_BODY_BYTES, PushDelivery, PushSource, token_header


def envelope(data: bytes = b'{"input": "gs://b/i.png"}', **message: Any) -> dict[str, Any]:
    body = {"data": base64.b64encode(data).decode(), "messageId": "m1"}
    body.update(message)
    return {"message": body, "subscription": "projects/p/subscriptions/s"}


class Worker:
    """The intake: ``settle`` decides what happens to each submitted delivery."""

    def __init__(self) -> None:
        self.ready = True
        self.in_flight = 2
        self.submitted: list[PushDelivery] = []
        self.settle: Callable[[PushDelivery], None] = lambda delivery: delivery.ack()

    def submit(self, delivery: Any) -> None:
        self.submitted.append(delivery)
        self.settle(delivery)

    def intake(self) -> Intake:
        return Intake(self.submit, lambda: self.ready, lambda: self.in_flight)


class Verifier:
    def __init__(self, problem: str | None = None) -> None:
        self.problem = problem
        self.headers: list[str | None] = []

    def verify(self, header: str | None) -> str | None:
        self.headers.append(header)
        return self.problem


@pytest.fixture
def served() -> Iterator[tuple[PushSource, Worker]]:
    ports: list[int] = []
    source = PushSource(host="127.0.0.1", port=0, timeout_s=5.0, on_ready=ports.append)
    worker = Worker()
    source.start(worker.intake())
    assert source.server is not None and ports == [source.server.server_address[1]]
    yield source, worker
    source.close(0.0)


def request(
    source: PushSource,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> tuple[int, dict[str, Any], http.client.HTTPResponse]:
    assert source.server is not None
    connection = http.client.HTTPConnection("127.0.0.1", source.server.server_address[1], 3)
    connection.putrequest(method, path)
    for name, value in headers or []:
        connection.putheader(name, value)
    if body is not None and not any(n.lower() == "content-length" for n, _ in headers or []):
        connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, json.loads(data), response


def push(source: PushSource, body: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    raw = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    status, reply, _ = request(source, "POST", "/", raw, **kwargs)
    return status, reply


def test_an_envelope_becomes_a_delivery_with_its_message_fields() -> None:
    delivery = PushDelivery(
        {
            "message": {
                "data": base64.b64encode(b"job").decode(),
                "attributes": {"k": "v"},
                "message_id": 42,
                "publish_time": "2026-12-01T10:00:00.5Z",
            },
            "deliveryAttempt": "3",
        }
    )
    assert delivery.data == b"job" and delivery.attributes == {"k": "v"}
    assert delivery.message_id == "42" and delivery.delivery_attempt == 3
    assert delivery.publish_time == datetime(2026, 12, 1, 10, 0, 0, 500000, timezone.utc)
    assert delivery.last_attempt is False and delivery.acked is None
    camel = PushDelivery(envelope(messageId="m7", publishTime="2026-12-01T10:00:00Z"))
    assert camel.message_id == "m7" and camel.publish_time.hour == 10
    assert camel.attributes == {} and camel.delivery_attempt is None
    before = datetime.now(timezone.utc)
    bare = PushDelivery({"message": {"attributes": None}})
    assert bare.data == b"" and bare.message_id == "" and bare.attributes == {}
    assert before <= bare.publish_time <= datetime.now(timezone.utc)


def test_a_delivery_waits_for_its_settle_and_says_whether_it_was_acked() -> None:
    acked, nacked, unsettled = (PushDelivery(envelope()) for _ in range(3))
    acked.ack()
    nacked.nack()
    assert acked.wait(0) is True and acked.acked is True
    assert nacked.wait(0) is False and nacked.acked is False
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(unsettled.wait(0.01)), daemon=True)
    waiter.start()
    waiter.join(5)  # the request's time runs out: it does not wait on
    assert result == [False]


def test_the_token_comes_from_the_header_cloud_run_checked() -> None:
    headers = Message()
    assert token_header(headers) == (None, None)
    headers["Authorization"] = "Bearer app"
    assert token_header(headers) == ("Bearer app", None)
    headers["X-Serverless-Authorization"] = "Bearer run"
    assert token_header(headers) == ("Bearer run", None)
    headers["X-Serverless-Authorization"] = "Bearer again"
    assert token_header(headers) == (None, "more than one X-Serverless-Authorization header")


def test_a_push_is_acked_with_200_once_its_job_settles(served: tuple[PushSource, Worker]) -> None:
    source, worker = served
    status, reply, response = request(source, "POST", "/", json.dumps(envelope()).encode())
    assert (status, reply) == (200, {"acked": True})
    assert response.getheader("Content-Type") == "application/json"
    (delivery,) = worker.submitted
    assert delivery.data == b'{"input": "gs://b/i.png"}' and delivery.message_id == "m1"


def test_a_nacked_or_unfinished_push_gets_503(served: tuple[PushSource, Worker]) -> None:
    source, worker = served
    worker.settle = lambda delivery: delivery.nack()
    assert push(source, envelope()) == (503, {"acked": False})
    assert source.server is not None
    source.server.timeout_s = 0.05
    worker.settle = lambda delivery: None  # never settled within the request's time
    assert push(source, envelope()) == (503, {"acked": False})


def test_a_worker_that_is_not_ready_refuses_pushes_and_says_so(
    served: tuple[PushSource, Worker],
) -> None:
    source, worker = served
    assert request(source, "GET", "/readyz")[:2] == (200, {"ready": True, "in_flight": 2})
    worker.ready = False
    assert push(source, envelope()) == (503, {"error": "not ready"})
    assert worker.submitted == []
    assert request(source, "GET", "/readyz")[:2] == (503, {"ready": False, "in_flight": 2})
    assert request(source, "GET", "/healthz")[:2] == (200, {"status": "alive"})
    assert request(source, "GET", "/other")[:2] == (404, {"error": "not found"})


@pytest.mark.parametrize(
    ("body", "headers", "status", "error"),
    [
        (b"{}", [("Content-Length", "2"), ("Content-Length", "3")], 400, "invalid Content-Length"),
        (b"{}", [("Content-Length", "+2")], 400, "invalid Content-Length"),
        (None, [("Transfer-Encoding", "chunked")], 411, "Content-Length required"),
        # (the body is announced, never sent: the server answers without reading it)
        (b"", [("Content-Length", str(MAX_BODY_BYTES + 1))], 413, "body too large"),
        (b"not json", None, 400, "not a Pub/Sub push envelope"),
        (b'{"message": {"data": "***"}}', None, 400, "not a Pub/Sub push envelope"),
        (b'{"no": "message"}', None, 400, "not a Pub/Sub push envelope"),
    ],
)
def test_malformed_requests_are_refused_before_any_job_is_taken(
    served: tuple[PushSource, Worker],
    body: bytes | None,
    headers: list[tuple[str, str]] | None,
    status: int,
    error: str,
) -> None:
    source, worker = served
    got, reply = push(source, body, headers=headers)
    assert got == status and reply["error"].startswith(error)
    assert worker.submitted == []


def test_a_body_of_exactly_the_limit_is_read(served: tuple[PushSource, Worker]) -> None:
    source, _ = served
    data = json.dumps(envelope()).encode()
    padded = data[:-1] + b" " * (MAX_BODY_BYTES - len(data)) + b"}"
    assert len(padded) == MAX_BODY_BYTES
    assert push(source, padded) == (200, {"acked": True})


def test_pushes_need_a_token_the_verifier_accepts(served: tuple[PushSource, Worker]) -> None:
    source, worker = served
    assert source.server is not None
    source.server.verifier = refusing = Verifier("invalid token: expired")  # type: ignore[assignment]
    bearer = [("Authorization", "Bearer t1")]
    assert push(source, envelope(), headers=bearer) == (401, {"error": "invalid token: expired"})
    assert refusing.headers == ["Bearer t1"] and worker.submitted == []
    twice = [*bearer, ("Authorization", "Bearer t2")]
    assert push(source, envelope(), headers=twice) == (
        401,
        {"error": "more than one Authorization header"},
    )
    assert refusing.headers == ["Bearer t1"]  # a repeated header is refused before verifying
    source.server.verifier = accepting = Verifier()  # type: ignore[assignment]
    assert push(source, envelope(), headers=bearer) == (200, {"acked": True})
    assert accepting.headers == ["Bearer t1"]


def test_closing_stops_the_server_once(served: tuple[PushSource, Worker]) -> None:
    source, _ = served
    assert source.server is not None and source.ended() is None
    port = source.server.server_address[1]
    source.stop_intake()
    assert request(source, "GET", "/healthz")[0] == 200  # stop_intake alone changes nothing
    source.close(0.0)
    assert source.server is None
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection("127.0.0.1", port, 2).request("GET", "/healthz")
    source.close(0.0)  # a second close does nothing


def test_a_request_refused_unread_closes_its_connection(
    served: tuple[PushSource, Worker],
) -> None:
    """Its body was not read: kept open, the connection would parse that body as a request."""
    source, _ = served
    assert source.server is not None
    connection = http.client.HTTPConnection("127.0.0.1", source.server.server_address[1], 3)
    connection.putrequest("POST", "/")
    connection.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413
    response.read()
    sock = connection.sock
    assert sock is not None
    sock.settimeout(5)
    assert sock.recv(1) == b""  # closed by the server
    connection.close()


def test_the_defaults_are_cloud_run_s_port_on_every_interface() -> None:
    source = PushSource()
    assert (source.host, source.port, source.timeout_s) == ("0.0.0.0", 8080, 300.0)
    assert source.verifier is None and source.on_ready is None and source.server is None


def test_the_server_runs_on_a_named_daemon_thread_and_closes_promptly() -> None:
    source = PushSource(host="127.0.0.1", port=0)
    source.start(Worker().intake())
    threads = [t for t in threading.enumerate() if t.name == "cutq-http" and t.is_alive()]
    assert threads and all(t.daemon for t in threads)  # never holds the process's exit
    started = time.monotonic()
    source.close(0.0)
    assert time.monotonic() - started < 0.8  # the server looks for shutdown every 0.2 s


def test_the_source_s_request_time_and_verifier_are_its_server_s() -> None:
    refusing = Verifier("invalid token: expired")
    source = PushSource(host="127.0.0.1", port=0, timeout_s=0.05, verifier=refusing)  # type: ignore[arg-type]
    worker = Worker()
    source.start(worker.intake())
    try:
        assert push(source, envelope(), headers=[("Authorization", "Bearer t")])[0] == 401
        assert source.server is not None
        source.server.verifier = None
        worker.settle = lambda delivery: None  # never settled: the 0.05 s run out
        assert push(source, envelope()) == (503, {"acked": False})
    finally:
        source.close(0.0)
