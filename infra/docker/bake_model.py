"""Bake an ONNX model and its spec into the image at build time (``build-steps.sh model``).

A deployment's model belongs in its image, not fetched at start-up (Cloud Run's guidance for
large models): the graph comes from a file in the build context (``infra/docker/models/``) or
a URL fetched during the build (``https://``, ``file://``), its SHA-256 is mandatory and
checked, and the spec (a JSON file in the build context, :mod:`cutq.worker.models.onnx_spec`)
is written beside it as ``model.json`` pointing at the baked file and pinning its hash. The
image then sets ``CUTQ_MODEL_SPEC`` to it. No ``MODEL_URL``: nothing is baked and the worker
serves the bundled u2netp.

Settings (environment, from the Dockerfile's build arguments):

    MODEL_URL      a file name in the context folder, or an https:// or file:// URL
    MODEL_SHA256   64 hex digits: the graph's SHA-256 (required with MODEL_URL)
    MODEL_SPEC     the spec's file name in the context folder (required with MODEL_URL)
    MODEL_SOURCE_DIR   the context folder (default: infra/docker/models beside this script)
    MODEL_DIR      where to bake (the image's /opt/cutq/models)

Standard library only: the stage that runs it has no cutq installed (``build-steps.sh app``
then loads the baked spec with cutq's own parser). Every failure is one line on stderr and
exit status 1, so a build log says at once what was wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

GRAPH = "model.onnx"
SPEC = "model.json"
CHUNK = 1 << 20


class BakeError(Exception):
    """What stops the build: said in one line."""


def bake(env: dict[str, str]) -> str:
    """Bake what ``env`` names into ``MODEL_DIR``; the line to print."""
    out = Path(env.get("MODEL_DIR") or "/opt/cutq/models")
    out.mkdir(parents=True, exist_ok=True)
    url = env.get("MODEL_URL", "").strip()
    if not url:
        return "no model baked (MODEL_URL is empty): the worker serves the bundled u2netp"
    expected = env.get("MODEL_SHA256", "").strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise BakeError(f"MODEL_SHA256 must be the graph's 64-hex-digit SHA-256, got {expected!r}")
    source_dir = Path(env.get("MODEL_SOURCE_DIR") or Path(__file__).parent / "models")
    spec_name = env.get("MODEL_SPEC", "").strip()
    if not spec_name:
        raise BakeError("MODEL_SPEC must name the model's spec (a JSON file in the build context)")
    spec = _read_spec(source_dir / spec_name, expected)
    scratch = out / (GRAPH + ".part")
    digest = _fetch(url, source_dir, scratch)
    if digest != expected:
        scratch.unlink()
        raise BakeError(f"sha256 of {url} is {digest}, but MODEL_SHA256 says {expected}")
    os.replace(scratch, out / GRAPH)
    spec.update(file=GRAPH, sha256=digest)
    (out / SPEC).write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    size_mb = (out / GRAPH).stat().st_size / 1e6
    return f"baked model {spec['name']} ({size_mb:.1f} MB, sha256 {digest[:12]}) into {out}"


def _read_spec(path: Path, expected: str) -> dict[str, object]:
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise BakeError(f"model spec {path}: {error.strerror or error}") from None
    except json.JSONDecodeError as error:
        raise BakeError(f"model spec {path} is not JSON: {error}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise BakeError(f"model spec {path} must be a JSON object with a name")
    pinned = str(spec.get("sha256") or expected).lower()
    if pinned != expected:
        raise BakeError(f"model spec {path} pins sha256 {pinned}, MODEL_SHA256 says {expected}")
    return spec


def _fetch(url: str, source_dir: Path, target: Path) -> str:
    """Copy or download ``url`` to ``target``; its SHA-256."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme in ("https", "http", "file"):
        opened = _open_url(url)
    elif not scheme:
        local = source_dir / url
        try:
            opened = local.open("rb")
        except OSError as error:
            raise BakeError(f"model file {local}: {error.strerror or error}") from None
    else:
        raise BakeError(f"MODEL_URL {url}: use a file in the build context, https:// or file://")
    digest = hashlib.sha256()
    with opened as source, tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as sink:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            sink.write(chunk)
    shutil.move(sink.name, target)
    return digest.hexdigest()


def _open_url(url: str):  # type: ignore[no-untyped-def]
    try:
        return urllib.request.urlopen(url, timeout=60)  # the scheme is checked
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or error
        raise BakeError(f"cannot fetch {url}: {reason}") from None


def main() -> int:
    try:
        print(f"build-steps: {bake(dict(os.environ))}")
    except BakeError as error:
        print(f"build-steps: model: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
