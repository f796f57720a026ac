"""``cutq worker`` and ``cutq serve``: the cloud worker, pulling or pushed to."""

from __future__ import annotations

import argparse
import logging

from cutq.core.errors import ConfigError
from cutq.worker.commands.args import add_model_args, worker_config
from cutq.worker.config import WorkerConfig

log = logging.getLogger(__name__)


def register(commands: argparse._SubParsersAction) -> None:
    pull = commands.add_parser(
        "worker",
        help="process jobs from a Pub/Sub subscription (StreamingPull)",
        description="Load and verify the model, then pull jobs until SIGTERM (or until idle "
        "with --drain-idle-s). Exits non-zero if start-up or warm-up fails.",
    )
    pull.add_argument(
        "--subscription",
        help="projects/P/subscriptions/S: the interactive lane, or the only one "
        "(or CUTQ_SUBSCRIPTION)",
    )
    pull.add_argument(
        "--bulk-subscription",
        help="the bulk lane's subscription, served behind the interactive one "
        "(or CUTQ_BULK_SUBSCRIPTION)",
    )
    pull.add_argument("--events-topic", help="projects/P/topics/T (or CUTQ_EVENTS_TOPIC)")
    pull.add_argument(
        "--drain-idle-s",
        type=float,
        help="exit 0 after this many idle seconds (Cloud Run jobs, scale to zero; "
        "or CUTQ_DRAIN_IDLE_S)",
    )
    add_model_args(pull)
    pull.set_defaults(handler=handle_worker)

    push = commands.add_parser(
        "serve",
        help="process jobs pushed by a Pub/Sub push subscription (HTTP)",
        description="HTTP endpoint for Pub/Sub push on $PORT (default 8080): 2xx acks, 503 "
        "nacks. /healthz and /readyz (ready only after a successful warm-up).",
    )
    push.add_argument("--host", help="listen address (default 0.0.0.0; or CUTQ_PUSH_HOST)")
    push.add_argument(
        "--port", type=int, help="listen port (default $PORT, else 8080; or CUTQ_PUSH_PORT)"
    )
    push.add_argument("--events-topic", help="projects/P/topics/T (or CUTQ_EVENTS_TOPIC)")
    add_model_args(push)
    push.set_defaults(handler=handle_serve)


def _config(args: argparse.Namespace) -> WorkerConfig:
    return worker_config(
        args,
        events_topic=getattr(args, "events_topic", None),
        subscription=getattr(args, "subscription", None),
        bulk_subscription=getattr(args, "bulk_subscription", None),
        drain_idle_s=getattr(args, "drain_idle_s", None),
        push_host=getattr(args, "host", None),
        push_port=getattr(args, "port", None),
    )


def handle_worker(args: argparse.Namespace) -> int:
    config = _config(args)
    if not config.subscription:
        raise ConfigError("no subscription: pass --subscription or set CUTQ_SUBSCRIPTION")
    from cutq.worker.service import Service, exit_code
    from cutq.worker.sources.pubsub import PubSubSource

    service = Service.warmed_up(config)
    source = PubSubSource.from_config(config)
    return exit_code(service.run(source))


def handle_serve(args: argparse.Namespace) -> int:
    config = _config(args)
    from cutq.worker.service import Service, exit_code
    from cutq.worker.sources.push import PushSource, verifier_from_config

    verifier = verifier_from_config(
        config.push_audience, config.push_service_account, config.push_certs_url, config.push_auth
    )
    service = Service.warmed_up(config)
    source = PushSource(
        host=config.push_host,
        port=config.push_port,
        timeout_s=config.push_timeout_s,
        verifier=verifier,
    )
    return exit_code(service.run(source))
