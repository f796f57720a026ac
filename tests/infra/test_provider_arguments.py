"""Every argument the Terraform uses exists in the google provider's documentation.

``provider_arguments.json`` pins, per resource and data source type, the argument tree the
provider documents at one release (its ``version`` and ``source`` say which;
``pin_provider_arguments.py`` regenerates it from website/docs/r|d/*.html.markdown). A
misspelt argument, one the provider removed, or a plain argument written as a block fails
here, since no terraform binary can run ``validate`` in CI.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import hcl2
import pytest

from tests.infra.tfconfig import EXAMPLES, MODULE, TerraformConfig, all_tf_files, unquote

PINNED = json.loads(Path(__file__).with_name("provider_arguments.json").read_text("utf-8"))
META = {"count", "for_each", "depends_on", "lifecycle", "provider"}


def is_block(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, dict) and item.get("__is_block__") for item in value
    )


def problems(
    body: dict[str, Any], schema: dict[str, Any], where: str, top: bool = True
) -> list[str]:
    """Arguments in ``body`` (raw python-hcl2 output) that ``schema`` does not document;
    Terraform's meta-arguments are allowed at the top level only."""
    found: list[str] = []
    for raw_key, value in body.items():
        key = unquote(raw_key)
        if key.startswith("__") or (key in META and top):
            continue
        if key == "dynamic":
            for entry in value:
                for raw_name, dynamic in entry.items():
                    name = unquote(raw_name)
                    if name.startswith("__"):
                        continue
                    if name not in schema:
                        found.append(f"{where}: dynamic {name!r} is not an argument")
                    elif schema[name] is None:
                        found.append(f"{where}: {name!r} is not a block")
                    else:
                        for content in dynamic["content"]:
                            found += problems(content, schema[name], f"{where}.{name}", False)
            continue
        if key not in schema:
            found.append(f"{where}: {key!r} is not an argument")
        elif is_block(value):
            if schema[key] is None:
                found.append(f"{where}: {key!r} is not a block")
            else:
                for item in value:
                    found += problems(item, schema[key], f"{where}.{key}", False)
    return found


def blocks(kind: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    out = []
    for path in all_tf_files():
        with path.open(encoding="utf-8") as handle:
            parsed = hcl2.load(handle)
        for entry in parsed.get(kind, []):
            for raw_type, named in entry.items():
                for raw_name, body in named.items():
                    if not raw_name.startswith("__"):
                        out.append((path.name, unquote(raw_type), unquote(raw_name), body))
    return out


def test_pinned_documentation_is_recent_enough() -> None:
    assert PINNED["provider"] == "hashicorp/google"
    version = tuple(int(p) for p in PINNED["version"].split("."))
    assert version >= (7, 18), "pin from a provider at least as new as the module's floor"
    assert re.fullmatch(
        r"https://github.com/hashicorp/terraform-provider-google/tree/[0-9a-f]{40}",
        PINNED["source"],
    )


@pytest.mark.parametrize("kind", ["resource", "data"])
def test_every_argument_is_documented(kind: str) -> None:
    found: list[str] = []
    seen = set()
    for filename, rtype, name, body in blocks(kind):
        assert rtype in PINNED[kind], (
            f"{rtype} is not pinned: rerun python -m tests.infra.pin_provider_arguments"
        )
        seen.add(rtype)
        found += problems(body, PINNED[kind][rtype], f"{filename}:{rtype}.{name}")
    assert seen, kind
    assert not found, "\n".join(found)


def test_the_check_catches_a_misspelt_argument() -> None:
    schema = PINNED["resource"]["google_pubsub_subscription"]
    good = hcl2.loads('x { ack_deadline_seconds = 10\n retry_policy { minimum_backoff = "1s" } }')
    bad = hcl2.loads('x { ack_deadline_second = 10\n retry_policy { minimum_backof = "1s" } }')
    assert problems(good["x"][0], schema, "r.x") == []
    assert len(problems(bad["x"][0], schema, "r.x")) == 2


def test_examples_pass_only_variables_the_module_declares(
    module: TerraformConfig, examples: list[TerraformConfig]
) -> None:
    declared = set(module.variables) | {"source", "depends_on", "providers"}
    for example in examples:
        passed = set(example.modules["cutq"])
        assert passed <= declared, (example.directory, sorted(passed - declared))
    assert EXAMPLES.is_dir() and MODULE.is_dir()
