"""Every error cutq raises on purpose, and the one place that decides what each means.

A job that fails with a :class:`PermanentError` can never succeed as sent: the worker publishes a
``failed`` event carrying the error's stable ``code`` and acks the message. A
:class:`TransientError` may succeed later: the worker nacks, Pub/Sub's retry policy backs off,
and after the subscription's max delivery attempts the message lands in the dead-letter topic.
Anything else that escapes a job is treated as transient (see :func:`is_permanent`), so an
unexpected bug parks messages in the dead-letter topic instead of silently dropping them;
except while parsing a message: whatever raises there, the message cannot be parsed and is
:class:`InvalidJob` (:func:`cutq.core.contract.parse_job`), since retrying the same bytes
cannot help.
"""

from __future__ import annotations


class CutqError(Exception):
    """Root of every cutq error; ``code`` is stable and goes into events and logs."""

    code = "internal"


# --- permanent: publish `failed`, ack -------------------------------------------------------


class PermanentError(CutqError):
    """The job can never succeed as sent."""

    code = "permanent"


class InvalidMessage(PermanentError):
    """The message body is not UTF-8 JSON, or is over the size limit."""

    code = "invalid_message"


class InvalidJob(PermanentError):
    """The message is JSON but breaks the job schema (unknown field, wrong type, bad value)."""

    code = "invalid_job"


class InputNotFound(PermanentError):
    """The input object, its bucket or the requested generation does not exist."""

    code = "input_not_found"


class AccessDenied(PermanentError):
    """Storage refused access, or the URI is outside the configured allow-list."""

    code = "access_denied"


class InputTooLarge(PermanentError):
    """The input object has more bytes than ``max_input_bytes``."""

    code = "input_too_large"


class UndecodableImage(PermanentError):
    """The bytes are not an image Pillow can decode (empty, truncated, not an image)."""

    code = "image_undecodable"


class ImageTooLarge(PermanentError):
    """The image has more pixels than ``max_pixels`` (this includes decompression bombs)."""

    code = "image_too_large"


class TooLarge(PermanentError):
    """A rendition's planned canvas is over the worker's ceilings (``max_canvas_side``,
    ``max_canvas_pixels``), or the memory the job's path needs is more than the worker's whole
    in-flight budget: refused before any pixel is decoded (:mod:`cutq.worker.memory`)."""

    code = "too_large"


class UnsupportedImage(PermanentError):
    """The image decodes but cannot be processed (animated, zero-sized, exotic mode)."""

    code = "image_unsupported"


class StorageRejected(PermanentError):
    """Storage refused the request as malformed (HTTP 400), e.g. an object name it won't take."""

    code = "storage_rejected"


class OutputUnencodable(PermanentError):
    """The result cannot be written in the requested format (e.g. WebP past 16383 px a side)."""

    code = "output_unencodable"


class OutputCollision(PermanentError):
    """A result's name is taken by another job's object (an ``output.template`` too narrow):
    create-only, so nothing was overwritten."""

    code = "output_collision"


class UnknownModel(PermanentError):
    """The job names a model this worker does not serve."""

    code = "unknown_model"


class ModelOutputNotFinite(PermanentError):
    """The model returned NaN or infinite values for the image, also when re-run in fp32."""

    code = "model_output_not_finite"


class DeadlineExceeded(PermanentError):
    """The job's ``deadline`` or ``ttl_s`` had passed when it was admitted or batched."""

    code = "deadline_exceeded"


# --- transient: nack, retry, dead-letter ------------------------------------------------------


class TransientError(CutqError):
    """The job may succeed if retried later."""

    code = "transient"


class StorageUnavailable(TransientError):
    """Storage kept failing (5xx, 429, timeouts, connection errors) after bounded retries."""

    code = "storage_unavailable"


class InputChanged(TransientError):
    """The input object was overwritten while it was being read; a retry reads the new one."""

    code = "input_changed"


class PublishFailed(TransientError):
    """An event could not be published after bounded retries."""

    code = "publish_failed"


class AckFailed(TransientError):
    """Pub/Sub refused an ack or nack (exactly-once delivery: the lease had expired, or the
    message was already settled); the message may be delivered again."""

    code = "ack_failed"


class DeviceOutOfMemory(TransientError):
    """The accelerator ran out of memory even for a batch of one."""

    code = "device_out_of_memory"


class ShuttingDown(TransientError):
    """The worker is stopping; the job goes back to the queue untouched."""

    code = "shutting_down"


# --- neither: a signal between stages -------------------------------------------------------


class AlreadyExists(CutqError):
    """A create-only write found the object already there: another delivery wrote it first."""

    code = "already_exists"


class JobCancelled(CutqError):
    """The job, or its bulk run, was cancelled: a ``cancelled`` event (not a failure), ack."""

    code = "cancelled"


# --- start-up: exit non-zero, never serve -----------------------------------------------------


class ConfigError(CutqError):
    """Configuration is missing, malformed or has unknown keys."""

    code = "config_error"


class UnsupportedScheme(ConfigError):
    """A URI uses a scheme no storage backend handles."""

    code = "unsupported_scheme"


class WarmupFailed(CutqError):
    """The model loaded but its warm-up output was wrong: the worker must not take traffic."""

    code = "warmup_failed"


def is_permanent(error: BaseException) -> bool:
    """True when the job that raised ``error`` should be acked with a ``failed`` event."""
    return isinstance(error, PermanentError)


def error_code(error: BaseException) -> str:
    """The stable code for ``error``; ``internal`` for anything cutq did not raise on purpose."""
    return error.code if isinstance(error, CutqError) else "internal"
