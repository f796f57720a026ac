"""Job contract v1: the message a client publishes and the event the worker answers with.

A job is UTF-8 JSON, parsed strictly: unknown fields, wrong types and bad values are errors
that name the field. A GCS ``OBJECT_FINALIZE`` notification is also a job (with the worker's
defaults). The event is a CloudEvents 1.0 JSON document.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from cutq.core import validation as v
from cutq.core.control import Expiry, parse_expiry
from cutq.core.errors import CutqError, InvalidJob, InvalidMessage
from cutq.core.naming import Identity, parse_identity
from cutq.core.options import (
    RESIZES,
    Options,
    Resize,
    parse_options,
)
from cutq.core.output import (  # re-exported: the contract's names, as before
    COLOR_RE,
    CONTENT_TYPES,
    EXTENSIONS,
    FOREGROUNDS,
    FORMATS,
    KINDS,
    LOSSY_FORMATS,
    RENDITION_OUTPUT_FIELDS,
    Foreground,
    Format,
    Kind,
    OutputSpec,
    Planned,
    check_output,
    check_result_names,
    output_uri,
    parse_output,
    result_uris,
)
from cutq.core.renditions import Rendition, parse_renditions
from cutq.core.validation import MAX_ATTRIBUTE_KEY_BYTES, MAX_ATTRIBUTE_VALUE_BYTES, MAX_ATTRIBUTES

log = logging.getLogger(__name__)

CONTRACT_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024  # far below Pub/Sub's 10 MB: a job is a pointer, never an image
JOB_ID_RE = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.=-]{0,127}\Z")  # \Z: "id\n" is not an id


@dataclass(frozen=True)
class Job:
    """One image to process. ``publish_time`` dates the result path (stable on redelivery)."""

    job_id: str
    input: str
    output: OutputSpec
    input_generation: int | None = None
    model: str | None = None
    options: Options = field(default_factory=Options)
    attributes: Mapping[str, str] = field(default_factory=dict)
    publish_time: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    renditions: tuple[Rendition, ...] = ()  # empty: the one or two results ``output`` names
    expiry: Expiry | None = None  # deadline and/or ttl_s (not part of the job id)
    ref: str | None = None  # the client's reference (a SKU): events, metadata, logs, names
    name: str | None = None  # the source's original name (a path relative to what was sent)

    @property
    def identity(self) -> Identity:
        return Identity(self.ref, self.name)

    def planned(self) -> tuple[Rendition, ...]:
        """What this job writes, in order: its renditions, or ``output``'s cutout and/or mask
        (named ``cutout`` and ``mask``)."""
        if self.renditions:
            return self.renditions
        spec = self.output
        planned = []
        if spec.kind in ("cutout", "both"):
            planned.append(
                Rendition("cutout", spec.format, "cutout", spec.background, spec.quality)
            )
        if spec.kind in ("mask", "both"):
            planned.append(Rendition("mask", spec.format, "mask", None, spec.quality))
        return tuple(planned)

    def result_uris(self) -> dict[str, str]:
        """``{name: uri}`` for each result this job writes, in :meth:`planned` order."""
        return result_uris(
            self.output,
            job_id=self.job_id,
            input_uri=self.input,
            identity=self.identity,
            publish_time=self.publish_time,
            planned=tuple(Planned(r.name, r.format, r.preset) for r in self.planned()),
            renditions=bool(self.renditions),
        )

    def to_message(self) -> bytes:
        """The JSON body a client publishes for this job."""
        body: dict[str, Any] = {
            "v": CONTRACT_VERSION,
            "job_id": self.job_id,
            "input": self.input,
            "output": (
                self.output.canonical_for_renditions()
                if self.renditions
                else _drop_none(self.output.canonical())
            ),
        }
        if self.renditions:
            body["renditions"] = [rendition.canonical() for rendition in self.renditions]
        if self.input_generation is not None:
            body["input_generation"] = self.input_generation
        if self.model is not None:
            body["model"] = self.model
        options = _drop_none(self.options.canonical())
        if options:
            body["options"] = options
        if self.attributes:
            body["attributes"] = dict(self.attributes)
        body.update(self.expiry.body() if self.expiry else {})
        body.update(self.identity.canonical())
        return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def derive_job_id(
    input_uri: str,
    generation: int | None,
    output: OutputSpec,
    model: str | None,
    options: Options,
    renditions: tuple[Rendition, ...] = (),
    identity: Identity | None = None,
) -> str:
    """Same input, generation, options and ref → same id, so a resubmission is the same job
    (and the same bytes for two products' refs are two jobs)."""
    fields: dict[str, Any] = {
        "input": input_uri,
        "generation": generation,
        "output": output.canonical(),
        "model": model,
        "options": options.canonical(),
    }
    if renditions:  # only when given: the ids of jobs without renditions stay the same
        fields["output"] = output.canonical_for_renditions()  # the renditions say the rest
        fields["renditions"] = [rendition.canonical() for rendition in renditions]
    if identity is not None:  # only a ref that is set: ids of jobs without one stay the same
        fields.update(identity.id_fields())
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def new_job(
    input_uri: str,
    output: OutputSpec,
    *,
    input_generation: int | None = None,
    model: str | None = None,
    options: Options | None = None,
    attributes: Mapping[str, str] | None = None,
    job_id: str | None = None,
    renditions: tuple[Rendition, ...] = (),
    expiry: Expiry | None = None,
    identity: Identity | None = None,
) -> Job:
    """Build a validated job the way a client would publish it (``identity``: its ``ref`` and
    ``name``)."""
    options = options or Options()
    renditions = tuple(renditions)
    identity = identity or Identity()
    job = Job(
        job_id=job_id
        or derive_job_id(input_uri, input_generation, output, model, options, renditions, identity),
        input=input_uri,
        output=output,
        input_generation=input_generation,
        model=model,
        options=options,
        attributes=dict(attributes or {}),
        renditions=renditions,
        expiry=expiry,
        ref=identity.ref,
        name=identity.name,
    )
    return parse_job(job.to_message(), defaults=output)


# --- parsing ---------------------------------------------------------------------------------

_JOB_FIELDS = {
    "v",
    "job_id",
    "input",
    "input_generation",
    "output",
    "model",
    "options",
    "attributes",
    "renditions",
    "deadline",
    "ttl_s",
    "ref",
    "name",
}


def salvage_job_id(data: bytes) -> str | None:
    """The ``job_id`` of a message that failed validation, when it has a well-formed one.

    A client waits for its own id, so a ``failed`` event should carry it even when another
    field was wrong.
    """
    try:
        body = json.loads(data.decode("utf-8")) if len(data) <= MAX_MESSAGE_BYTES else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    job_id = body.get("job_id") if isinstance(body, dict) else None
    return job_id if isinstance(job_id, str) and JOB_ID_RE.match(job_id) else None


def parse_job(
    data: bytes,
    *,
    defaults: OutputSpec,
    attributes: Mapping[str, str] | None = None,
    publish_time: datetime | None = None,
) -> Job:
    """Parse a message body (a v1 job, or a GCS notification when ``attributes`` say so).

    ``defaults`` supplies the output for notifications and for jobs that give no ``output``;
    a job's partial ``output`` object is completed from it field by field.
    Raises :class:`InvalidMessage` or :class:`InvalidJob`, naming the offending field.
    """
    attributes = attributes or {}
    publish_time = publish_time or datetime.now(timezone.utc)
    if len(data) > MAX_MESSAGE_BYTES:
        raise InvalidMessage(f"message is {len(data)} bytes; the limit is {MAX_MESSAGE_BYTES}")
    try:
        body = json.loads(data.decode("utf-8"))
        # JSON may spell lone UTF-16 surrogates ("\\ud800"), which no UTF-8 consumer (Pub/Sub
        # attributes, storage paths, logs) accepts: refuse them here, wherever they are.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidMessage(f"message is not UTF-8: {error}") from None
    except UnicodeEncodeError:
        raise InvalidMessage(
            "message contains unpaired UTF-16 surrogates (\\ud800-\\udfff)"
        ) from None
    except json.JSONDecodeError as error:
        raise InvalidMessage(f"message is not JSON: {error}") from None
    except RecursionError:
        raise InvalidMessage("message is not JSON a worker accepts: nested too deeply") from None
    try:
        if attributes.get("eventType") == "OBJECT_FINALIZE" and "bucketId" in attributes:
            return _parse_notification(body, attributes, defaults, publish_time)
        return _parse_v1(body, defaults, publish_time)
    except (CutqError, MemoryError):
        raise
    except Exception as error:
        # One rule: a message that cannot be parsed is invalid, whatever raised. A surprise
        # here is a gap in a field's checks (a bug to fix), never a reason to retry: retried,
        # the same bytes fail the same way, five times, then dead-letter with no event.
        log.warning(
            "parsing a job raised %s; refused as invalid_job", type(error).__name__, exc_info=True
        )
        raise InvalidJob(f"job: cannot be parsed ({type(error).__name__}: {error})"[:300]) from None


def _parse_v1(body: Any, defaults: OutputSpec, publish_time: datetime) -> Job:
    obj = v.require_object(body, "job")
    v.reject_unknown(obj, _JOB_FIELDS, "job")
    version = obj.get("v", CONTRACT_VERSION)
    if version != CONTRACT_VERSION:
        raise InvalidJob(f"v: unsupported contract version {version!r}; this worker speaks 1")
    if "input" not in obj:
        raise InvalidJob("input: required (gs://bucket/object or file:///path)")
    input_uri = v.uri(obj["input"], "input")
    generation = v.generation(obj.get("input_generation"), "input_generation")
    renditions: tuple[Rendition, ...] = ()
    if obj.get("renditions") is not None:
        renditions = parse_renditions(obj["renditions"])
        given = obj.get("output")
        extra = set(given) - RENDITION_OUTPUT_FIELDS if isinstance(given, dict) else set()
        if extra:
            raise InvalidJob(
                "output: with renditions, output gives only the uri and template; "
                f"put {', '.join(sorted(extra))} in each rendition"
            )
        kept = {
            k: given[k] for k in RENDITION_OUTPUT_FIELDS if isinstance(given, dict) and k in given
        }
        output = parse_output({**kept, "uri": output_uri(given, defaults)}, defaults)
    else:
        output = parse_output(obj.get("output"), defaults)
    model = v.optional_str(obj.get("model"), "model", pattern=r"^[a-z0-9_-]{1,64}$")
    options = parse_options(obj.get("options"))
    attributes = v.attributes(obj.get("attributes"))
    identity = parse_identity(obj)
    job_id = obj.get("job_id")
    if job_id is None:
        job_id = derive_job_id(input_uri, generation, output, model, options, renditions, identity)
    elif not isinstance(job_id, str) or not JOB_ID_RE.match(job_id):
        raise InvalidJob(
            "job_id: must be 1-128 characters of A-Z a-z 0-9 _ . = -, "
            f"not starting with '.' or '-'; got {job_id!r}"
        )
    return _results_fit(
        Job(
            job_id=job_id,
            input=input_uri,
            output=output,
            input_generation=generation,
            model=model,
            options=options,
            attributes=attributes,
            publish_time=publish_time,
            renditions=renditions,
            expiry=parse_expiry(obj),
            ref=identity.ref,
            name=identity.name,
        )
    )


def _results_fit(job: Job) -> Job:
    """The result objects' names, too, must be ones storage accepts, one per result."""
    check_result_names(job.result_uris())
    return job


def _parse_notification(
    body: Any, attributes: Mapping[str, str], defaults: OutputSpec, publish_time: datetime
) -> Job:
    """A GCS Pub/Sub notification (payload JSON_API_V1) for a finalized object."""
    bucket, name = attributes.get("bucketId", ""), attributes.get("objectId", "")
    if not bucket or not name:
        raise InvalidJob("notification: bucketId and objectId attributes are required")
    generation = v.generation(attributes.get("objectGeneration"), "objectGeneration")
    if generation is None and isinstance(body, dict):
        generation = v.generation(body.get("generation"), "generation")
    input_uri = v.uri(f"gs://{bucket}/{name}", "objectId")
    options = Options()
    job_id = derive_job_id(input_uri, generation, defaults, None, options)
    return _results_fit(
        Job(
            job_id=job_id,
            input=input_uri,
            output=defaults,
            input_generation=generation,
            options=options,
            publish_time=publish_time,
        )
    )


def _drop_none(mapping: dict[str, Any]) -> dict[str, Any]:
    return {key: item for key, item in mapping.items() if item is not None}


__all__ = [  # the output's names stay importable from here, as before core/output.py
    "COLOR_RE",
    "CONTENT_TYPES",
    "EXTENSIONS",
    "FOREGROUNDS",
    "FORMATS",
    "KINDS",
    "LOSSY_FORMATS",
    "MAX_ATTRIBUTES",
    "MAX_ATTRIBUTE_KEY_BYTES",
    "MAX_ATTRIBUTE_VALUE_BYTES",
    "RESIZES",
    "Foreground",
    "Format",
    "Identity",
    "Job",
    "Kind",
    "Options",
    "OutputSpec",
    "Resize",
    "check_output",
    "derive_job_id",
    "new_job",
    "parse_job",
    "salvage_job_id",
]
