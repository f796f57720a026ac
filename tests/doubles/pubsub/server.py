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
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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

    `port=0` picks a free port at the first `start()`; later starts bind the same one.
    `clock` drives ack deadlines, backoffs and publish times (pass a `FakeClock` to make
    leases expire on demand); `tick_s` is how often a background thread settles expired
    leases and finished backoffs; a unary Pull without return_immediately waits up to
    `max_pull_wait_s` for messages before answering empty, as Pub/Sub may.

    The port is bound with SO_REUSEPORT so that `restart()` can hand it over without a gap.
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
        self._run: _Run | None = None

    @property
    def address(self) -> str:
        """`host:port` for PUBSUB_EMULATOR_HOST (known once the server has started)."""
        if self.port == 0:
            raise RuntimeError("the port is chosen at start(); start the server first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._run is not None

    def start(self) -> LocalPubSubServer:
        if self._run is not None:
            raise RuntimeError("LocalPubSubServer is already running")
        self._run = self._serve()
        logger.info("local Pub/Sub server listening on %s", self.address)
        return self

    def stop(self, grace_s: float = 1.0) -> None:
        """End every stream with UNAVAILABLE, then shut down; idempotent. State is kept."""
        run, self._run = self._run, None
        if run is not None:
            run.shutdown(self.state, grace_s)
            logger.info("local Pub/Sub server on port %d stopped", self.port)

    def restart(self, grace_s: float = 1.0, *, downtime_s: float | None = None) -> None:
        """Break every stream and serve again on the same port; topics, messages, leases stay.

        By default a new server takes over the bound port before the old one ends its streams
        with UNAVAILABLE, so clients reconnect at once. With `downtime_s` the port is closed
        for that long: a real outage, where google-cloud-pubsub's reopen throttle (5 attempts
        per 10 s) can delay the subscriber's return by up to ten seconds.
        """
        if downtime_s is not None:
            self.stop(grace_s)
            time.sleep(downtime_s)
            self.start()
            return
        if self._run is None:
            raise RuntimeError("LocalPubSubServer is not running")
        old, self._run = self._run, self._serve()
        old.shutdown(self.state, grace_s)
        logger.info("local Pub/Sub server on %s restarted", self.address)

    def __enter__(self) -> LocalPubSubServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self) -> _Run:
        stopping = threading.Event()
        executor = ThreadPoolExecutor(self._max_workers, thread_name_prefix="local-pubsub")
        server = grpc.server(
            executor,
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 1),
            ],
        )
        subscriber = SubscriberServicer(self.state, stopping, self._max_pull_wait_s)
        server.add_generic_rpc_handlers(
            (PublisherServicer(self.state).handler(), subscriber.handler())
        )
        try:
            self.port = server.add_insecure_port(f"{self.host}:{self.port}")
        except RuntimeError:
            executor.shutdown(wait=False)
            raise
        server.start()
        ticker = threading.Thread(
            target=_tick,
            args=(self.state, stopping, self._tick_s),
            name="local-pubsub-ticker",
            daemon=True,
        )
        ticker.start()
        return _Run(server, executor, subscriber, stopping, ticker)


@dataclass
class _Run:
    """One serving period of the server: what `start()` creates and `stop()` ends."""

    server: grpc.Server
    executor: ThreadPoolExecutor
    subscriber: SubscriberServicer
    stopping: threading.Event
    ticker: threading.Thread

    def shutdown(self, state: PubSubState, grace_s: float) -> None:
        # Close the listener first, then end the streams: a client reconnecting at once
        # then reaches whatever listens on the port now (after restart, the new server).
        stopped = self.server.stop(grace_s)
        self.stopping.set()
        state.interrupt()
        stopped.wait()
        self.ticker.join()
        self.subscriber.join_readers(grace_s)
        self.executor.shutdown(wait=True)


def _tick(state: PubSubState, stopping: threading.Event, tick_s: float) -> None:
    while not stopping.wait(tick_s):
        try:
            state.expire()
        except Exception:  # keep ticking: a bug here must not stop redelivery
            logger.exception("expiring leases failed")
