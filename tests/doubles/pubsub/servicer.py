"""google.pubsub.v1 Publisher and Subscriber services over `PubSubState`, for grpcio.

The installed `google.pubsub_v1` ships no `*_pb2_grpc` servicer bases, so the methods are
registered with `grpc.method_handlers_generic_handler`, (de)serialised with the raw protobuf
classes of its proto-plus types. Methods not listed (snapshots, seek, schemas, UpdateTopic,
DetachSubscription, ModifyPushConfig) answer UNIMPLEMENTED, as gRPC does for unknown methods.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import grpc
from google.protobuf import empty_pb2
from google.pubsub_v1.types import pubsub

from . import resources
from .model import AlreadyExists, InvalidArgument, NotFound, PubSubError, Stream, Unsupported
from .resources import Pb, check_name, received
from .state import PubSubState

logger = logging.getLogger(__name__)

MAX_MESSAGES_PER_RESPONSE = 1000
_STATUS = {
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    Unsupported: grpc.StatusCode.UNIMPLEMENTED,
}
_Method = Callable[[Pb, grpc.ServicerContext], Pb]
_Empty = empty_pb2.Empty
_STREAM_POLL_S = 1.0
"""A stream re-checks its RPC and the stop flag at least this often while idle."""


def _abort(context: grpc.ServicerContext, error: PubSubError) -> NoReturn:
    context.abort(_STATUS.get(type(error), grpc.StatusCode.INTERNAL), str(error))
    raise AssertionError("unreachable: context.abort raises")


def _message_class(name: str) -> Any:
    return _Empty if name == "Empty" else getattr(pubsub, name).pb()


def _unary(method: _Method, request: str, response: str) -> grpc.RpcMethodHandler:
    """A handler for `method(request, context)`, mapping PubSubError to its status."""

    def handle(message: Pb, context: grpc.ServicerContext) -> Pb:
        try:
            return method(message, context)
        except PubSubError as error:
            _abort(context, error)

    return grpc.unary_unary_rpc_method_handler(
        handle,
        request_deserializer=_message_class(request).FromString,
        response_serializer=_message_class(response).SerializeToString,
    )


def _service(
    name: str,
    methods: dict[str, tuple[_Method, str, str]],
    **streaming: grpc.RpcMethodHandler,
) -> grpc.GenericRpcHandler:
    handlers = {rpc: _unary(*spec) for rpc, spec in methods.items()}
    handlers.update(streaming)
    return grpc.method_handlers_generic_handler(f"google.pubsub.v1.{name}", handlers)


class PublisherServicer:
    """Topics and publishing."""

    def __init__(self, state: PubSubState) -> None:
        self._state = state

    def handler(self) -> grpc.GenericRpcHandler:
        return _service(
            "Publisher",
            {
                "CreateTopic": (self.create_topic, "Topic", "Topic"),
                "GetTopic": (self.get_topic, "GetTopicRequest", "Topic"),
                "DeleteTopic": (self.delete_topic, "DeleteTopicRequest", "Empty"),
                "Publish": (self.publish, "PublishRequest", "PublishResponse"),
            },
        )

    def create_topic(self, topic: Pb, context: grpc.ServicerContext) -> Pb:
        check_name(topic.name, "topics")
        resource = resources.Topic()
        resource.CopyFrom(topic)
        resource.state = resources.Topic.State.ACTIVE
        self._state.create_topic(topic.name, resource)
        return resource

    def get_topic(self, request: Pb, context: grpc.ServicerContext) -> Pb:
        return self._state.get_topic(request.topic)

    def delete_topic(self, request: Pb, context: grpc.ServicerContext) -> Pb:
        self._state.delete_topic(request.topic)
        return _Empty()

    def publish(self, request: Pb, context: grpc.ServicerContext) -> Pb:
        outgoing = [resources.outgoing(message) for message in request.messages]
        published = self._state.publish(request.topic, outgoing)
        ids = [message.message_id for message in published]
        return pubsub.PublishResponse.pb()(message_ids=ids)


class SubscriberServicer:
    """Subscriptions, Pull, StreamingPull, Acknowledge and ModifyAckDeadline."""

    def __init__(
        self, state: PubSubState, stopping: threading.Event, max_pull_wait_s: float
    ) -> None:
        self._state = state
        self._stopping = stopping
        self._max_pull_wait_s = max_pull_wait_s
        self._readers: set[threading.Thread] = set()
        self._readers_lock = threading.Lock()

    def handler(self) -> grpc.GenericRpcHandler:
        streaming_pull = grpc.stream_stream_rpc_method_handler(
            self.streaming_pull,
            request_deserializer=_message_class("StreamingPullRequest").FromString,
            response_serializer=_message_class("StreamingPullResponse").SerializeToString,
        )
        return _service(
            "Subscriber",
            {
                "CreateSubscription": (self.create_subscription, "Subscription", "Subscription"),
                "GetSubscription": (
                    self.get_subscription,
                    "GetSubscriptionRequest",
                    "Subscription",
                ),
                "DeleteSubscription": (
                    self.delete_subscription,
                    "DeleteSubscriptionRequest",
                    "Empty",
                ),
                "Pull": (self.pull, "PullRequest", "PullResponse"),
                "Acknowledge": (self.acknowledge, "AcknowledgeRequest", "Empty"),
                "ModifyAckDeadline": (
                    self.modify_ack_deadline,
                    "ModifyAckDeadlineRequest",
                    "Empty",
                ),
            },
            StreamingPull=streaming_pull,
        )

    # Administration ---------------------------------------------------------------------------

    def create_subscription(self, request: Pb, context: grpc.ServicerContext) -> Pb:
        config, resource = resources.subscription_config(request)
        self._state.create_subscription(config, resource)
        return resource

    def get_subscription(self, request: Pb, context: grpc.ServicerContext) -> Pb:
        return self._resource(request.subscription)

    def _resource(self, name: str) -> Pb:
        config, resource = self._state.get_subscription(name)
        answer = resources.Subscription()
        answer.CopyFrom(resource)
        answer.topic = config.topic  # reads _deleted-topic_ once the topic is gone
        return answer

    def delete_subscription(self, request: Pb, context: grpc.ServicerContext) -> Pb:
        self._state.delete_subscription(request.subscription)
        return _Empty()

    # Delivery ---------------------------------------------------------------------------------

    def acknowledge(self, request: Pb, context: grpc.ServicerContext) -> Pb:
        if not request.ack_ids:
            raise InvalidArgument("ack_ids must not be empty")
        self._state.acknowledge(request.subscription, request.ack_ids)
        return _Empty()

    def modify_ack_deadline(self, request: Pb, context: grpc.ServicerContext) -> Pb:
        if not request.ack_ids:
            raise InvalidArgument("ack_ids must not be empty")
        seconds = request.ack_deadline_seconds
        self._state.modify_ack_deadline(request.subscription, request.ack_ids, seconds)
        return _Empty()

    def pull(self, request: Pb, context: grpc.ServicerContext) -> Pb:
        """Unary Pull: wait (up to `max_pull_wait_s`) for messages unless return_immediately."""
        if request.max_messages <= 0:
            raise InvalidArgument(f"max_messages must be positive, got {request.max_messages}")
        limit = min(request.max_messages, MAX_MESSAGES_PER_RESPONSE)
        if request.return_immediately:
            deliveries = self._state.pull(request.subscription, limit)
        else:
            wait_s = self._max_pull_wait_s
            remaining = context.time_remaining()
            if remaining is not None:
                wait_s = max(0.0, min(wait_s, remaining - 0.25))
            deliveries = self._state.wait_and_pull(
                request.subscription,
                limit,
                wait_s,
                interrupted=lambda: self._stopping.is_set() or not context.is_active(),
            )
        messages = [received(delivery) for delivery in deliveries]
        return pubsub.PullResponse.pb()(received_messages=messages)

    def streaming_pull(self, requests: Iterator[Pb], context: grpc.ServicerContext) -> Iterator[Pb]:
        """Deliver as messages arrive, within the stream's flow control, until the RPC ends.

        Requests after the first (acks, modacks, deadline changes) are read on a helper thread.
        On server stop the stream ends with UNAVAILABLE, which tells clients to reconnect.
        """
        try:
            first = next(requests)
        except StopIteration:
            return
        try:
            if not first.subscription:
                raise InvalidArgument("the first StreamingPullRequest must name a subscription")
            stream = self._state.open_stream(
                first.subscription,
                ack_deadline_s=first.stream_ack_deadline_seconds,
                client_id=first.client_id,
                max_messages=first.max_outstanding_messages,
                max_bytes=first.max_outstanding_bytes,
            )
        except PubSubError as error:
            _abort(context, error)
        context.add_callback(lambda: self._state.close_stream(stream))
        reader = threading.Thread(
            target=self._read_stream,
            args=(first, requests, stream),
            name=f"local-pubsub-stream-reader-{first.client_id or id(stream)}",
            daemon=True,
        )
        with self._readers_lock:
            self._readers.add(reader)
        reader.start()
        try:
            yield from self._deliver(stream, context)
        finally:
            self._state.close_stream(stream)

    def _deliver(self, stream: Stream, context: grpc.ServicerContext) -> Iterator[Pb]:
        response = pubsub.StreamingPullResponse.pb()
        while True:
            if self._stopping.is_set():
                context.abort(grpc.StatusCode.UNAVAILABLE, "server shutting down; reconnect")
            if stream.error is not None:
                _abort(context, stream.error)
            if stream.closed or not context.is_active():
                return
            try:
                deliveries = self._state.wait_and_pull(
                    stream.subscription,
                    MAX_MESSAGES_PER_RESPONSE,
                    _STREAM_POLL_S,
                    stream=stream,
                    interrupted=self._stopping.is_set,
                )
            except PubSubError as error:
                _abort(context, error)
            if deliveries:
                yield response(received_messages=[received(d) for d in deliveries])

    def _read_stream(self, first: Pb, requests: Iterator[Pb], stream: Stream) -> None:
        try:
            self._apply_stream_request(stream, first)
            for request in requests:
                self._apply_stream_request(stream, request)
        except PubSubError as error:
            self._state.fail_stream(stream, error)
        except Exception as error:  # the RPC ended under the iterator: nothing left to read
            logger.debug("stream reader for %s ended: %r", stream.subscription, error)
        finally:
            self._state.close_stream(stream)
            with self._readers_lock:
                self._readers.discard(threading.current_thread())

    def _apply_stream_request(self, stream: Stream, request: Pb) -> None:
        if request.stream_ack_deadline_seconds:
            self._state.set_stream_ack_deadline(stream, request.stream_ack_deadline_seconds)
        ack_ids, seconds = request.modify_deadline_ack_ids, request.modify_deadline_seconds
        if len(ack_ids) != len(seconds):
            raise InvalidArgument(
                "modify_deadline_ack_ids and modify_deadline_seconds differ in length"
            )
        if request.ack_ids:
            self._state.acknowledge(stream.subscription, request.ack_ids)
        for ack_id, deadline_s in zip(ack_ids, seconds, strict=True):
            self._state.modify_ack_deadline(stream.subscription, [ack_id], deadline_s)

    def join_readers(self, timeout_s: float) -> None:
        """Wait for stream reader threads; they end once their RPC has ended."""
        with self._readers_lock:
            readers = list(self._readers)
        for reader in readers:
            reader.join(timeout_s)
