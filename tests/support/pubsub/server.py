"""LocalPubSubServer: an in-process gRPC server speaking google.pubsub.v1.

Point the real google-cloud-pubsub client at it with `PUBSUB_EMULATOR_HOST=<address>`:

    with LocalPubSubServer() as server:
        os.environ["PUBSUB_EMULATOR_HOST"] = server.address
        ...

State lives in `server.state` (a `PubSubState`) and survives `restart()`, so fault tests can
break every open stream (clients see UNAVAILABLE and reconnect) without losing messages.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

import grpc

from .clock import Clock
from .servicer import PublisherServicer, SubscriberServicer
from .state import PubSubState

logger = logging.getLogger(__name__)

_MAX_MESSAGE_BYTES = 32 * 1024 * 1024
"""gRPC frame limit: above Pub/Sub's 10 MB per message and per publish request."""


class LocalPubSubServer:
    """Publisher and Subscriber services over one `PubSubState`, on `host:port`.

    `port=0` picks a free port at the first `start()`; `restart()` binds the same one again.
    `clock` drives ack deadlines, backoffs and publish times (pass a `FakeClock` to make
    leases expire on demand); `tick_s` is how often a background thread settles expired
    leases and finished backoffs; a unary Pull without return_immediately waits up to
    `max_pull_wait_s` for messages before answering empty, as Pub/Sub may.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Clock | None = None,
        state: PubSubState | None = None,
        tick_s: float = 0.05,
        max_pull_wait_s: float = 2.0,
        max_workers: int = 64,
    ) -> None:
        if state is not None and clock is not None:
            raise ValueError("pass either a state or a clock for a new state, not both")
        self.state = state if state is not None else PubSubState(clock)
        self.host = host
        self.port = port
        self._tick_s = tick_s
        self._max_pull_wait_s = max_pull_wait_s
        self._max_workers = max_workers
        self._server: grpc.Server | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._subscriber: SubscriberServicer | None = None
        self._stopping = threading.Event()
        self._ticker: threading.Thread | None = None

    @property
    def address(self) -> str:
        """`host:port` for PUBSUB_EMULATOR_HOST (known once the server has started)."""
        if self.port == 0:
            raise RuntimeError("the port is chosen at start(); start the server first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> LocalPubSubServer:
        if self._server is not None:
            raise RuntimeError("LocalPubSubServer is already running")
        self._stopping = threading.Event()
        self._executor = ThreadPoolExecutor(self._max_workers, thread_name_prefix="local-pubsub")
        server = grpc.server(
            self._executor,
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ],
        )
        self._subscriber = SubscriberServicer(self.state, self._stopping, self._max_pull_wait_s)
        server.add_generic_rpc_handlers(
            (PublisherServicer(self.state).handler(), self._subscriber.handler())
        )
        try:
            self.port = server.add_insecure_port(f"{self.host}:{self.port}")
        except RuntimeError:
            self._executor.shutdown(wait=False)
            raise
        server.start()
        self._server = server
        self._ticker = threading.Thread(
            target=self._tick, args=(self._stopping,), name="local-pubsub-ticker", daemon=True
        )
        self._ticker.start()
        logger.info("local Pub/Sub server listening on %s", self.address)
        return self

    def stop(self, grace_s: float = 1.0) -> None:
        """End every stream with UNAVAILABLE, then shut down; idempotent. State is kept."""
        if self._server is None:
            return
        self._stopping.set()
        self.state.interrupt()
        self._server.stop(grace_s).wait()
        assert self._ticker is not None and self._executor is not None
        assert self._subscriber is not None
        self._ticker.join()
        self._subscriber.join_readers(grace_s)
        self._executor.shutdown(wait=True)
        self._server = self._ticker = self._executor = self._subscriber = None
        logger.info("local Pub/Sub server on port %d stopped", self.port)

    def restart(self, grace_s: float = 1.0) -> None:
        """Stop and start again on the same port, keeping topics, messages and leases."""
        self.stop(grace_s)
        self.start()

    def __enter__(self) -> LocalPubSubServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _tick(self, stopping: threading.Event) -> None:
        while not stopping.wait(self._tick_s):
            try:
                self.state.expire()
            except Exception:  # keep ticking: a bug here must not stop redelivery
                logger.exception("expiring leases failed")
