"""A job's identity for people: its client reference (``ref``, e.g. a SKU), its source's
original ``name``, and the template its result files may be named by.

Part of job contract v1 (:mod:`cutq.core.contract` parses ``ref``, ``name`` and
``output.template`` through this module). A template names each result file inside the
output's ``dt=`` partition, e.g. ``{ref}_{stem}_{hash}.{rendition}.{ext}``. It must hold
``{job_id}`` or ``{hash}`` (the first 12 characters of the job id), so two jobs never share a
name (their ids differ), and a redelivery, being the same job, renders the same names; each
result of one job needs a name of its own (``{rendition}`` where a job writes several).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cutq.core.errors import InvalidJob

MAX_REF_BYTES = 256
MAX_NAME_BYTES = 1024  # Pub/Sub's limit for an attribute value: the event carries it as one
MAX_TEMPLATE_CHARS = 200
MAX_VALUE_CHARS = 100  # a ref or stem in a file name is cut to this many characters
HASH_CHARS = 12  # {hash}: 48 bits of the job id
PLACEHOLDERS = ("job_id", "hash", "ref", "stem", "rendition", "preset", "ext")
UNIQUE_PLACEHOLDERS = ("job_id", "hash")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_UNSAFE = re.compile(r"[^\w.=+@-]")  # in a rendered file name, anything else becomes "_"


@dataclass(frozen=True)
class Identity:
    """What a job is for: the client's ``ref`` and the source's original ``name``."""

    ref: str | None = None
    name: str | None = None

    def canonical(self) -> dict[str, str]:
        """The fields that are set, as the job message carries them."""
        return {key: value for key, value in vars(self).items() if value is not None}

    def id_fields(self) -> dict[str, str]:
        """What of the identity is part of the job id: the ref, when set (the same photo for
        two products is two jobs). Not the name: the same bytes under another file name stay
        one job, so ids and skip-done are what they were before names travelled."""
        return {"ref": self.ref} if self.ref is not None else {}

    @property
    def stem(self) -> str | None:
        """The name's last segment without its extension (``SKU-1/front.jpg`` → ``front``)."""
        return stem_of(self.name) if self.name else None


def parse_identity(obj: Mapping[str, Any]) -> Identity:
    """``ref`` and ``name`` of a job object; raises :class:`InvalidJob` naming the field."""
    return Identity(
        ref=check_label(obj.get("ref"), "ref", MAX_REF_BYTES),
        name=check_label(obj.get("name"), "name", MAX_NAME_BYTES),
    )


def check_label(value: Any, field: str, max_bytes: int) -> str | None:
    """A non-empty string of at most ``max_bytes`` UTF-8 bytes without control characters
    (it goes into Pub/Sub attributes, object metadata and log lines)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidJob(f"{field}: expected a non-empty string, got {value!r}")
    if _CONTROL.search(value):
        raise InvalidJob(f"{field}: contains control characters")
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise InvalidJob(f"{field}: {size} bytes of UTF-8; the limit is {max_bytes}")
    return value


def check_template(value: Any, field: str = "output.template") -> str | None:
    """A result-name template: known placeholders only, no ``/``, and ``{job_id}`` or
    ``{hash}`` so that two jobs can never write the same object."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidJob(f"{field}: expected a non-empty string, got {value!r}")
    if len(value) > MAX_TEMPLATE_CHARS or _CONTROL.search(value) or "/" in value:
        raise InvalidJob(
            f"{field}: at most {MAX_TEMPLATE_CHARS} characters, no '/' and no control "
            f"characters; got {value[:80]!r}"
        )
    try:
        parsed = list(string.Formatter().parse(value))
    except ValueError as error:
        raise InvalidJob(f"{field}: {error} in {value!r} (write {{{{ for a brace)") from None
    used = set()
    for _, placeholder, spec, conversion in parsed:
        if placeholder is None:
            continue
        if placeholder not in PLACEHOLDERS or spec or conversion:
            raise InvalidJob(
                f"{field}: unknown placeholder {{{placeholder}}}; "
                f"known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
            )
        used.add(placeholder)
    if not used & set(UNIQUE_PLACEHOLDERS):
        raise InvalidJob(
            f"{field}: must contain {{job_id}} or {{hash}}, so that two jobs (two sources with "
            f"the same stem or ref) never write the same object; got {value!r}"
        )
    return value


def render(
    template: str,
    *,
    job_id: str,
    identity: Identity,
    input_uri: str,
    rendition: str,
    preset: str | None,
    ext: str,
) -> str:
    """One result's file name. ``{ref}`` is empty for a job without one; ``{stem}`` comes
    from the name, else from the input's last segment; ``{preset}`` is the rendition's
    preset, else its name. Characters other than letters, digits and ``. = + @ - _`` in a
    ref or stem become ``_``."""
    return template.format(
        job_id=job_id,
        hash=job_id[:HASH_CHARS],
        ref=_safe(identity.ref or ""),
        stem=_safe(identity.stem or stem_of(input_uri)),
        rendition=rendition,
        preset=preset or rendition,
        ext=ext,
    )


def stem_of(path: str) -> str:
    last = path.rstrip("/").rsplit("/", 1)[-1]
    stem, dot, _ = last.rpartition(".")
    return stem if dot and stem else last


def _safe(value: str) -> str:
    return _UNSAFE.sub("_", value[:MAX_VALUE_CHARS])


REF_FIELDS = ("path", "file", "stem", "parent")


@dataclass(frozen=True)
class RefRule:
    """How a bulk submission (``cutq submit --ref``, a function route's ``ref``) derives each
    job's ref from its source: a literal (``SKU-1``), a pattern over the source's name
    (``{parent}``, ``{stem}``, ``{file}``, ``{path}``), or ``re:REGEX`` searched in the name
    (its first group, else the whole match)."""

    spec: str

    def __post_init__(self) -> None:
        if self.spec.startswith("re:"):
            try:
                pattern = re.compile(self.spec[3:])
            except re.error as error:
                raise InvalidJob(
                    f"ref: bad regular expression {self.spec[3:]!r}: {error}"
                ) from None
            if pattern.groups > 1:
                raise InvalidJob(f"ref: {self.spec!r} has {pattern.groups} groups; give one")
            return
        try:
            parsed = list(string.Formatter().parse(self.spec))
        except ValueError as error:
            raise InvalidJob(f"ref: {error} in {self.spec!r}") from None
        for _, placeholder, spec, conversion in parsed:
            if placeholder is not None and (placeholder not in REF_FIELDS or spec or conversion):
                raise InvalidJob(
                    f"ref: unknown placeholder {{{placeholder}}} in {self.spec!r}; "
                    f"known: {', '.join('{' + f + '}' for f in REF_FIELDS)}"
                )
        if not any(placeholder is not None for _, placeholder, _, _ in parsed):
            check_label(self.spec, "ref", MAX_REF_BYTES)

    def ref_for(self, name: str, location: str) -> str:
        """The ref of the source named ``name`` (its path relative to what was submitted) at
        ``location`` (its full path or URI, whose folder is ``{parent}``)."""
        if self.spec.startswith("re:"):
            found = re.search(self.spec[3:], name)
            if found is None:
                raise InvalidJob(f"ref: {self.spec[3:]!r} does not match the name {name!r}")
            ref = found.group(1) if found.re.groups else found.group(0)
        else:
            folders = location.rstrip("/").split("/")[:-1]
            ref = self.spec.format(
                path=name,
                file=name.rsplit("/", 1)[-1],
                stem=stem_of(name),
                parent=folders[-1] if folders else "",
            )
        return check_label(ref or None, "ref", MAX_REF_BYTES) or _no_ref(self.spec, name)


def _no_ref(spec: str, name: str) -> str:
    raise InvalidJob(f"ref: {spec!r} gives an empty ref for {name!r}")
