"""A Cloud Run function that turns each finished upload into a job.

Trigger: the CloudEvent ``google.cloud.storage.object.v1.finalized`` (Eventarc). The object is
matched against routes from ``CUTQ_FUNCTION_ROUTES``, a JSON list tried in order::

    [{"prefix": "shop/", "output": "gs://results/shop", "kind": "both"},
     {"bucket": "uploads", "prefix": "", "output": "gs://results/misc",
      "extensions": ["jpg", "png"], "format": "webp", "resize": "dynamic"}]

Keys: ``prefix`` (required), ``output`` (required), ``bucket``, ``extensions``, ``format``,
``kind``, ``background``, ``quality``, ``model``, ``resize``, ``threshold``, ``foreground``,
``matting``, ``post_process``, ``attributes``; ``presets`` (names, e.g. ``["amazon-main"]``)
and/or ``renditions`` (rendition objects as in a job) instead of ``format``/``kind``/
``background``/``quality``; ``ref`` (a literal, ``{parent}``/``{stem}``/``{file}``/``{path}``
or ``re:REGEX`` over the object's name below the prefix) and ``template`` (result names), as
in docs/identity.md. Each job's ``name`` is the object's name below the route's prefix. Objects that
match no route are ignored, and so are cutq's own writes (results carry ``cutq-job-id``
metadata, and anything under a route's output prefix), so results never loop back as jobs.
The job id derives from the object URI and generation, so a redelivered event is the same job.

Deploy with a ``main.py`` holding ``from cutq.submitter.function import on_upload`` beside a
``requirements.txt`` naming ``cutq[function]``; ``CUTQ_JOBS_TOPIC`` names the jobs topic.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import functions_framework
from cloudevents.http import CloudEvent

from cutq.core.contract import Job, Options, OutputSpec
from cutq.core.errors import ConfigError, CutqError
from cutq.core.naming import RefRule
from cutq.core.renditions import Rendition, parse_renditions
from cutq.core.request import JobRequest
from cutq.core.validation import flag
from cutq.submitter.bulk import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)

FINALIZED = "google.cloud.storage.object.v1.finalized"
PUBLISH_TIMEOUT_S = 60.0
_ROUTE_KEYS = {
    "prefix",
    "output",
    "bucket",
    "extensions",
    "format",
    "kind",
    "background",
    "model",
    "resize",
    "threshold",
    "quality",
    "foreground",
    "matting",
    "post_process",
    "attributes",
    "presets",
    "renditions",
    "ref",
    "template",
}
_OUTPUT_KEYS = ("format", "kind", "background", "quality")  # what renditions say themselves


@dataclass(frozen=True)
class Route:
    """Objects under ``bucket``/``prefix`` with one of ``extensions`` become jobs like this."""

    prefix: str
    output: OutputSpec
    bucket: str | None = None
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS
    model: str | None = None
    options: Options = field(default_factory=Options)
    attributes: Mapping[str, str] = field(default_factory=dict)
    renditions: tuple[Rendition, ...] = ()  # presets first, then the route's own renditions
    ref: RefRule | None = None

    def request(self, bucket: str, name: str) -> JobRequest:
        """The job request for ``gs://bucket/name``: named by the object's name below the
        prefix, with the ref the route derives from it (none, with a warning, when its
        pattern does not match: the upload is still processed)."""
        below = name[len(self.prefix) :] or name
        ref = None
        if self.ref is not None:
            try:
                ref = self.ref.ref_for(below, f"gs://{bucket}/{name}")
            except CutqError as error:
                log.warning("gs://%s/%s: no ref (%s)", bucket, name, error)
        return JobRequest(
            output=self.output,
            options=self.options,
            attributes=self.attributes,
            model=self.model,
            renditions=self.renditions,
            ref=ref,
            name=below,
        )

    def matches(self, bucket: str, name: str) -> bool:
        return (
            (self.bucket is None or self.bucket == bucket)
            and name.startswith(self.prefix)
            and name.lower().endswith(tuple("." + ext for ext in self.extensions))
        )


@dataclass(frozen=True)
class FunctionConfig:
    """The function's settings, read once from the environment."""

    jobs_topic: str
    routes: tuple[Route, ...]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FunctionConfig:
        env = os.environ if env is None else env
        topic = env.get("CUTQ_JOBS_TOPIC", "")
        if not topic.startswith("projects/") or "/topics/" not in topic:
            raise ConfigError(f"CUTQ_JOBS_TOPIC: expected projects/P/topics/T, got {topic!r}")
        try:
            raw = json.loads(env.get("CUTQ_FUNCTION_ROUTES", ""))
        except json.JSONDecodeError as error:
            raise ConfigError(f"CUTQ_FUNCTION_ROUTES: not JSON: {error}") from None
        if not isinstance(raw, list) or not raw:
            raise ConfigError("CUTQ_FUNCTION_ROUTES: expected a non-empty JSON list of routes")
        return cls(topic, tuple(_route(item, index) for index, item in enumerate(raw)))

    def route_for(self, bucket: str, name: str) -> Route | None:
        return next((route for route in self.routes if route.matches(bucket, name)), None)

    def is_output(self, bucket: str, name: str) -> bool:
        """Whether ``gs://bucket/name`` lies under some route's output prefix."""
        uri = f"gs://{bucket}/{name}"
        return any(uri.startswith(route.output.uri.rstrip("/") + "/") for route in self.routes)


def _route(item: Any, index: int) -> Route:
    where = f"CUTQ_FUNCTION_ROUTES[{index}]"
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: expected an object")
    unknown = sorted(set(item) - _ROUTE_KEYS)
    if unknown or "prefix" not in item or "output" not in item:
        raise ConfigError(
            f"{where}: needs prefix and output; unknown keys {unknown}; "
            f"allowed {sorted(_ROUTE_KEYS)}"
        )
    output = OutputSpec(
        item["output"],
        item.get("format", "png"),
        item.get("kind", "cutout"),
        item.get("background"),
        item.get("quality"),
        item.get("template"),
    )
    try:
        renditions = _renditions(item)
        ref = RefRule(item["ref"]) if item.get("ref") is not None else None
    except CutqError as error:
        raise ConfigError(f"{where}: {error}") from None
    route = Route(
        prefix=item["prefix"],
        output=output,
        bucket=item.get("bucket"),
        extensions=tuple(e.lower().lstrip(".") for e in item.get("extensions", IMAGE_EXTENSIONS)),
        model=item.get("model"),
        options=Options(
            resize=item.get("resize"),
            threshold=item.get("threshold"),
            foreground=item.get("foreground"),
            matting=item.get("matting", False),
            post_process=item.get("post_process", False),
        ),
        attributes=item.get("attributes", {}),
        renditions=renditions,
        ref=ref,
    )
    try:  # validate everything now, not on the first upload
        for key in ("matting", "post_process"):
            flag(item.get(key), key)
        _job(route, "check", route.prefix + "x.png", 1)
    except CutqError as error:
        raise ConfigError(f"{where}: {error}") from None
    return route


def _renditions(item: Mapping[str, Any]) -> tuple[Rendition, ...]:
    """A route's ``presets`` (names) and ``renditions`` (objects), in that order."""
    names = item.get("presets", [])
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ConfigError(f"presets: expected a list of preset names, got {names!r}")
    own = item.get("renditions", [])
    if not isinstance(own, list):
        raise ConfigError(f"renditions: expected a list of rendition objects, got {own!r}")
    wanted = [{"preset": name} for name in names] + own
    if not wanted:
        return ()
    given = [key for key in _OUTPUT_KEYS if key in item]
    if given:
        raise ConfigError(
            f"with presets or renditions, each rendition sets its own output: drop {given}"
        )
    return parse_renditions(wanted)


def _job(route: Route, bucket: str, name: str, generation: int | None) -> Job:
    return route.request(bucket, name).job(f"gs://{bucket}/{name}", route.output, generation)


class _State:
    """Configuration and publisher, created on the first event and reused while warm."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.config: FunctionConfig | None = None
        self.publisher: Any = None

    def get(self) -> tuple[FunctionConfig, Any]:
        with self.lock:
            if self.config is None:
                self.config = FunctionConfig.from_env()
            if self.publisher is None:
                from google.cloud import pubsub_v1

                self.publisher = pubsub_v1.PublisherClient()
            return self.config, self.publisher


_state = _State()


def reset() -> None:
    """Close the publisher and forget the configuration (tests; a changed environment)."""
    with _state.lock:
        if _state.publisher is not None:
            _state.publisher.stop()
            _state.publisher.transport.close()
        _state.publisher = _state.config = None


def handle_object(event_type: str, data: Mapping[str, Any]) -> Job | None:
    """Publish the job for one storage event; the job, or None when the object is ignored."""
    bucket, name = str(data.get("bucket", "")), str(data.get("name", ""))
    if event_type != FINALIZED or not bucket or not name or name.endswith("/"):
        log.info("ignored %s for gs://%s/%s", event_type, bucket, name)
        return None
    config, publisher = _state.get()
    if "cutq-job-id" in (data.get("metadata") or {}) or config.is_output(bucket, name):
        log.info("ignored gs://%s/%s: written by cutq", bucket, name)
        return None
    route = config.route_for(bucket, name)
    if route is None:
        log.info("ignored gs://%s/%s: no route", bucket, name)
        return None
    generation = data.get("generation")
    job = _job(route, bucket, name, int(generation) if generation is not None else None)
    message_id = publisher.publish(config.jobs_topic, job.to_message(), job_id=job.job_id).result(
        timeout=PUBLISH_TIMEOUT_S
    )
    log.info("job %s for %s (ref %s) published as %s", job.job_id, job.input, job.ref, message_id)
    return job


@functions_framework.cloud_event
def on_upload(cloud_event: CloudEvent) -> None:
    """Entry point: a finalized object becomes a job on ``CUTQ_JOBS_TOPIC``."""
    handle_object(cloud_event["type"], cloud_event.data or {})
