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
from typing import Any, Literal

from cutq.core import validation as v
from cutq.core.control import Expiry, parse_expiry
from cutq.core.errors import CutqError, InvalidJob, InvalidMessage
from cutq.core.renditions import Rendition, parse_renditions

log = logging.getLogger(__name__)
CONTRACT_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024  # far below Pub/Sub's 10 MB: a job is a pointer, never an image
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_KEY_BYTES = 256  # Pub/Sub's own limits for attribute keys and values
MAX_ATTRIBUTE_VALUE_BYTES = 1024
JOB_ID_RE = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.=-]{0,127}\Z")  # \Z: "id\n" is not an id
COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$")

Format = Literal["png", "webp", "jpeg", "avif"]
Kind = Literal["cutout", "mask", "both"]
Resize = Literal["static", "dynamic"]
Foreground = Literal["none", "ml"]
Colour = Literal["srgb", "keep"]
Metadata = Literal["minimal", "keep"]
FORMATS: tuple[Format, ...] = ("png", "webp", "jpeg", "avif")
KINDS: tuple[Kind, ...] = ("cutout", "mask", "both")
RESIZES: tuple[Resize, ...] = ("static", "dynamic")
#: ``none``: edge pixels keep the input's colours; ``ml``: multi-level foreground estimation.
FOREGROUNDS: tuple[Foreground, ...] = ("none", "ml")
#: ``srgb``: outputs converted to sRGB with the sRGB profile embedded (marketplaces expect
#: sRGB); ``keep``: an RGB input's own ICC profile, its pixel values unconverted.
COLOURS: tuple[Colour, ...] = ("srgb", "keep")
#: ``minimal``: DPI and the colour profile only; ``keep``: also the input's EXIF (orientation
#: reset, GPS removed) and XMP.
METADATA: tuple[Metadata, ...] = ("minimal", "keep")
CONTENT_TYPES = {
    "png": "image/png",
    "webp": "image/webp",
    "jpeg": "image/jpeg",
    "avif": "image/avif",
}
EXTENSIONS = {"png": "png", "webp": "webp", "jpeg": "jpg", "avif": "avif"}
#: Formats that take a ``quality`` (WebP: lossy at that quality, lossless without one).
LOSSY_FORMATS = ("webp", "jpeg", "avif")


@dataclass(frozen=True)
class OutputSpec:
    """Where and how results are written."""

    uri: str
    format: Format = "png"
    kind: Kind = "cutout"
    background: str | None = None  # "#rrggbb[aa]": composite the cutout onto this colour
    quality: int | None = None  # 1-100 for jpeg, webp (lossy; lossless without), avif

    def canonical(self) -> dict[str, Any]:
        canonical: dict[str, Any] = {
            "uri": self.uri,
            "format": self.format,
            "kind": self.kind,
            "background": self.background,
        }
        if self.quality is not None:  # only when set: ids of jobs without one stay the same
            canonical["quality"] = self.quality
        return canonical

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


@dataclass(frozen=True)
class Options:
    """How the model runs on this image."""

    resize: Resize | None = None  # None: the worker's configured mode
    threshold: float | None = None  # binarise the mask at this probability
    foreground: Foreground | None = None  # edge colours; None: the worker's configured default
    matting: bool = False  # refine the mask by closed-form alpha matting on a trimap
    post_process: bool = False  # open, blur and re-threshold the mask (rembg's post-process)
    colour: Colour = "srgb"  # the outputs' colour space (COLOURS)
    metadata: Metadata = "minimal"  # what the outputs carry of the input's metadata (METADATA)

    def canonical(self) -> dict[str, Any]:
        canonical: dict[str, Any] = {"resize": self.resize, "threshold": self.threshold}
        # Newer fields only when set: the ids of jobs that do not use them stay the same.
        if self.foreground is not None:
            canonical["foreground"] = self.foreground
        if self.matting:
            canonical["matting"] = True
        if self.post_process:
            canonical["post_process"] = True
        if self.colour != "srgb":
            canonical["colour"] = self.colour
        if self.metadata != "minimal":
            canonical["metadata"] = self.metadata
        return canonical


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
        day = self.publish_time.astimezone(timezone.utc).strftime("%Y-%m-%d")
        base = f"{self.output.uri.rstrip('/')}/dt={day}"
        if self.renditions:
            return {
                r.name: f"{base}/{self.job_id}.{r.name}.{EXTENSIONS[r.format]}"  # type: ignore[index]
                for r in self.renditions
            }
        ext = self.output.extension
        uris = {}
        if self.output.kind in ("cutout", "both"):
            uris["cutout"] = f"{base}/{self.job_id}.{ext}"
        if self.output.kind in ("mask", "both"):
            uris["mask"] = f"{base}/{self.job_id}.mask.{ext}"
        return uris

    def to_message(self) -> bytes:
        """The JSON body a client publishes for this job."""
        body: dict[str, Any] = {
            "v": CONTRACT_VERSION,
            "job_id": self.job_id,
            "input": self.input,
            "output": _output_canonical(self.output, self.renditions),
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
        return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def derive_job_id(
    input_uri: str,
    generation: int | None,
    output: OutputSpec,
    model: str | None,
    options: Options,
    renditions: tuple[Rendition, ...] = (),
) -> str:
    """Same input, generation and options → same id, so a resubmission is the same job."""
    fields: dict[str, Any] = {
        "input": input_uri,
        "generation": generation,
        "output": output.canonical(),
        "model": model,
        "options": options.canonical(),
    }
    if renditions:  # only when given: the ids of jobs without renditions stay the same
        fields["output"] = {"uri": output.uri}  # the renditions say the rest
        fields["renditions"] = [rendition.canonical() for rendition in renditions]
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
) -> Job:
    """Build a validated job the way a client would publish it."""
    options = options or Options()
    renditions = tuple(renditions)
    job = Job(
        job_id=job_id
        or derive_job_id(input_uri, input_generation, output, model, options, renditions),
        input=input_uri,
        output=output,
        input_generation=input_generation,
        model=model,
        options=options,
        attributes=dict(attributes or {}),
        renditions=renditions,
        expiry=expiry,
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
}
_OUTPUT_FIELDS = {"uri", "format", "kind", "background", "quality"}
_OPTION_FIELDS = {
    "resize",
    "threshold",
    "foreground",
    "matting",
    "post_process",
    "colour",
    "metadata",
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
        if isinstance(given, dict) and set(given) - {"uri"}:
            raise InvalidJob(
                "output: with renditions, output gives only the uri; "
                f"put {', '.join(sorted(set(given) - {'uri'}))} in each rendition"
            )
        output = _parse_output({"uri": _output_uri(given, defaults)}, defaults)
    else:
        output = _parse_output(obj.get("output"), defaults)
    model = v.optional_str(obj.get("model"), "model", pattern=r"^[a-z0-9_-]{1,64}$")
    options = _parse_options(obj.get("options"))
    attributes = _parse_attributes(obj.get("attributes"))
    job_id = obj.get("job_id")
    if job_id is None:
        job_id = derive_job_id(input_uri, generation, output, model, options, renditions)
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
        )
    )


def _results_fit(job: Job) -> Job:
    """The result objects' names, too, must be ones storage accepts."""
    for kind, uri in job.result_uris().items():
        v.object_name_fits(uri, f"output ({kind} result)")
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


def _output_uri(value: Any, defaults: OutputSpec) -> Any:
    if isinstance(value, dict):
        return value.get("uri", defaults.uri)
    return defaults.uri if value is None else value


def _output_canonical(output: OutputSpec, renditions: tuple[Rendition, ...]) -> dict[str, Any]:
    return {"uri": output.uri} if renditions else _drop_none(output.canonical())


def _parse_output(value: Any, defaults: OutputSpec) -> OutputSpec:
    if value is None:
        return defaults
    if isinstance(value, str):
        value = {"uri": value}
    obj = v.require_object(value, "output")
    v.reject_unknown(obj, _OUTPUT_FIELDS, "output")
    uri = v.uri(obj.get("uri", defaults.uri), "output.uri")
    fmt = v.choice(obj.get("format", defaults.format), FORMATS, "output.format")
    kind = v.choice(obj.get("kind", defaults.kind), KINDS, "output.kind")
    background = obj.get("background", defaults.background)
    # A default quality belongs to the default format: a job choosing png drops it.
    quality = obj.get("quality", defaults.quality if fmt == defaults.format else None)
    return check_output(
        OutputSpec(uri=uri, format=fmt, kind=kind, background=background, quality=quality)
    )


def check_output(spec: OutputSpec) -> OutputSpec:
    """The checks an output needs beyond its fields' own types; raises :class:`InvalidJob`."""
    background, quality = spec.background, spec.quality
    if background is not None and (
        not isinstance(background, str) or not COLOR_RE.match(background)
    ):
        raise InvalidJob(
            f"output.background: expected '#rrggbb' or '#rrggbbaa', got {background!r}"
        )
    if background is not None and spec.kind == "mask":
        raise InvalidJob("output.background: only applies to kind 'cutout' or 'both'")
    if spec.format == "jpeg" and spec.kind != "mask":
        if background is None:
            raise InvalidJob(
                "output.background: format 'jpeg' has no transparency: a cutout needs an "
                "opaque background colour to be composited on, e.g. '#ffffff'"
            )
        if len(background) == 9 and background[7:].lower() != "ff":
            raise InvalidJob(
                f"output.background: format 'jpeg' has no transparency; {background!r} is "
                "translucent: use '#rrggbb'"
            )
    if quality is not None:
        if isinstance(quality, bool) or not isinstance(quality, int):
            raise InvalidJob(f"output.quality: expected an integer 1-100, got {quality!r}")
        if not 1 <= quality <= 100:
            raise InvalidJob(f"output.quality: must be 1-100, got {quality}")
        if spec.format not in LOSSY_FORMATS:
            raise InvalidJob(
                f"output.quality: only for formats {', '.join(LOSSY_FORMATS)}; "
                f"{spec.format} is lossless"
            )
    return spec


def _parse_options(value: Any) -> Options:
    if value is None:
        return Options()
    obj = v.require_object(value, "options")
    v.reject_unknown(obj, _OPTION_FIELDS, "options")
    resize = obj.get("resize")
    if resize is not None:
        resize = v.choice(resize, RESIZES, "options.resize")
    threshold = obj.get("threshold")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise InvalidJob(f"options.threshold: expected a number, got {threshold!r}")
        if not 0.0 < threshold < 1.0:
            raise InvalidJob(f"options.threshold: must be between 0 and 1, got {threshold}")
        threshold = float(threshold)
    foreground = obj.get("foreground")
    if foreground is not None:
        foreground = v.choice(foreground, FOREGROUNDS, "options.foreground")
    return Options(
        resize=resize,
        threshold=threshold,
        foreground=foreground,
        matting=v.flag(obj.get("matting"), "options.matting"),
        post_process=v.flag(obj.get("post_process"), "options.post_process"),
        colour=v.choice(obj.get("colour", "srgb"), COLOURS, "options.colour"),
        metadata=v.choice(obj.get("metadata", "minimal"), METADATA, "options.metadata"),
    )


def _parse_attributes(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    obj = v.require_object(value, "attributes")
    if len(obj) > MAX_ATTRIBUTES:
        raise InvalidJob(f"attributes: at most {MAX_ATTRIBUTES} entries, got {len(obj)}")
    for key, item in obj.items():
        if not isinstance(item, str):
            raise InvalidJob(f"attributes.{key}: values must be strings, got {item!r}")
        if len(key.encode()) > MAX_ATTRIBUTE_KEY_BYTES or not key or key.startswith("goog"):
            raise InvalidJob(
                f"attributes: invalid key {key[:40]!r} (1-256 bytes, no 'goog' prefix)"
            )
        if len(item.encode()) > MAX_ATTRIBUTE_VALUE_BYTES:
            raise InvalidJob(f"attributes.{key}: value over {MAX_ATTRIBUTE_VALUE_BYTES} bytes")
    return dict(obj)


def _drop_none(mapping: dict[str, Any]) -> dict[str, Any]:
    return {key: item for key, item in mapping.items() if item is not None}
