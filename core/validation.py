"""Field checks for the job contract: each raises :class:`InvalidJob` naming the field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from cutq.core.errors import InvalidJob

MAX_URI_CHARS = 2048
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_KEY_BYTES = 256  # Pub/Sub's own limits for attribute keys and values
MAX_ATTRIBUTE_VALUE_BYTES = 1024
MAX_OBJECT_NAME_BYTES = 1024  # Cloud Storage's limit, in UTF-8 bytes
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # CR and LF included: never in a name or a log line
_DOT_SEGMENTS = {".", ".."}
_RESERVED_PREFIX = ".well-known/acme-challenge/"
GS_URI_RE = re.compile(r"^gs://[a-z0-9][a-z0-9._-]{1,221}[a-z0-9](/|$)")


def require_object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidJob(f"{name}: expected a JSON object, got {type(value).__name__}")
    return value


def reject_unknown(obj: Mapping[str, Any], allowed: set[str], name: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise InvalidJob(
            f"{name}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def uri(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidJob(f"{name}: expected a non-empty URI string, got {value!r}")
    if len(value) > MAX_URI_CHARS:
        raise InvalidJob(f"{name}: URI longer than {MAX_URI_CHARS} characters")
    if _CONTROL.search(value):
        raise InvalidJob(f"{name}: URI contains control characters")
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in ("gs", "file"):
        raise InvalidJob(
            f"{name}: unsupported URI {value[:80]!r}; use gs://bucket/object "
            "or file:///absolute/path"
        )
    if scheme == "gs" and not GS_URI_RE.match(value):
        raise InvalidJob(f"{name}: invalid bucket name in {value[:80]!r}")
    if scheme == "gs" and _DOT_SEGMENTS & set(value[len("gs://") :].split("/")[1:]):
        # A literal object name on Cloud Storage, never what a user meant (and file:// refuses
        # the same path as an escape): refuse it here rather than after the model ran.
        raise InvalidJob(f"{name}: '.' and '..' are not allowed as path segments in {value[:80]!r}")
    if scheme == "file" and not value.startswith("file:///"):
        raise InvalidJob(f"{name}: file URIs must be absolute (file:///path), got {value[:80]!r}")
    if scheme == "file" and _CONTROL.search(unquote(value)):  # %00, %0A…: no path holds them
        raise InvalidJob(f"{name}: file URI encodes control characters")
    object_name_fits(value, name)
    return value


def object_name_fits(value: str, name: str) -> None:
    """Cloud Storage refuses object names over 1024 bytes of UTF-8 and names under
    ``.well-known/acme-challenge/`` (its "Object naming requirements"): refuse them here,
    once, as ``invalid_job``, instead of as a storage error after the model ran."""
    if value.startswith("gs://"):
        object_name = value[len("gs://") :].partition("/")[2]
        size = len(object_name.encode("utf-8", "surrogatepass"))
        if size > MAX_OBJECT_NAME_BYTES:
            raise InvalidJob(
                f"{name}: object name is {size} bytes; Cloud Storage allows {MAX_OBJECT_NAME_BYTES}"
            )
        if object_name.startswith(_RESERVED_PREFIX):
            raise InvalidJob(f"{name}: Cloud Storage refuses object names under {_RESERVED_PREFIX}")


def generation(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidJob(f"{name}: expected a non-negative integer, got {value!r}")
    return value


def choice(value: Any, choices: tuple[str, ...], name: str) -> Any:
    if value not in choices:
        raise InvalidJob(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def optional_str(value: Any, name: str, *, pattern: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.match(pattern, value):
        raise InvalidJob(f"{name}: expected a string matching {pattern}, got {value!r}")
    return value


def flag(value: Any, name: str) -> bool:
    """An optional JSON boolean (absent: false)."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidJob(f"{name}: expected true or false, got {value!r}")
    return value


def attributes(value: Any) -> dict[str, str]:
    """A job's ``attributes``: string values within Pub/Sub's limits, echoed into events."""
    if value is None:
        return {}
    obj = require_object(value, "attributes")
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
