"""An HTTP proxy that forwards to a real server and injects faults on request.

Point ``STORAGE_EMULATOR_HOST`` at it to make the real google-cloud-storage client see 503s,
slow answers or dropped connections for chosen paths, for a while, then recover.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# A rule sees (method, path) and returns None (forward) or a Fault.
Rule = Callable[[str, str], "Fault | None"]


@dataclass(frozen=True)
class Fault:
    status: int = 503
    delay_s: float = 0.0
    drop: bool = False  # close the connection without answering


@dataclass
class FaultyProxy:
    """``with FaultyProxy(upstream) as proxy: proxy.rule = ...``; ``proxy.url`` to connect."""

    upstream: str
    rule: Rule | None = None
    faults_served: int = 0
    requests_seen: list[tuple[str, str]] = field(default_factory=list)

    def __enter__(self) -> FaultyProxy:
        target = urlsplit(self.upstream)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                proxy.requests_seen.append((self.command, self.path))
                fault = proxy.rule(self.command, self.path) if proxy.rule else None
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if fault is not None:
                    proxy.faults_served += 1
                    time.sleep(fault.delay_s)
                    if fault.drop:
                        self.close_connection = True
                        return
                    self.send_response(fault.status)
                    self.send_header("Content-Type", "application/json")
                    payload = b'{"error": {"code": %d, "message": "injected"}}' % fault.status
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                connection.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
