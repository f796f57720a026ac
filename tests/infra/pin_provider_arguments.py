"""Pin the google provider's documented arguments for the resources the module uses.

Reads each resource's page in hashicorp/terraform-provider-google
(``website/docs/r/<name>.html.markdown``, ``website/docs/d/`` for data sources) at one release
tag and writes ``provider_arguments.json``: for every resource type, its arguments as a tree
(a nested block maps to its own arguments, a plain argument to null). The provider's pages
list arguments as ``* `name` -`` lines; a nested block's list sits under
``<a name="nested_…"></a>The `block` block supports:`` and is linked from its argument by
``documented below](#nested_…)``. ``test_provider_arguments.py`` then fails when the module
uses an argument the pinned documentation does not have (a misspelt or removed argument).

Regenerate after a provider upgrade (and when the module starts using a new resource type)::

    git clone https://github.com/hashicorp/terraform-provider-google /tmp/tpg
    python -m tests.infra.pin_provider_arguments /tmp/tpg v7.45.0
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.infra.tfconfig import EXAMPLES, MODULE, TerraformConfig

OUTPUT = Path(__file__).with_name("provider_arguments.json")
_ARG = re.compile(r"^\* `([A-Za-z0-9_/]+)`")
_ANCHOR = re.compile(r'^<a name="(nested_[A-Za-z0-9_]+)"></a>')
_LINK = re.compile(r"documented below\]\(#(nested_[A-Za-z0-9_]+)\)")


def doc_path(kind: str, rtype: str) -> str:
    """The provider's documentation page for a resource or data source type."""
    name = rtype.removeprefix("google_")
    folder = "r" if kind == "resource" else "d"
    if name.endswith("_iam_member"):
        name = name.removesuffix("_member")
    special = {"project_iam", "project_service", "service_account", "service_account_iam"}
    if kind == "resource" and name in special:
        name = f"google_{name}"
    return f"website/docs/{folder}/{name}.html.markdown"


def sections(markdown: str) -> tuple[list[str], dict[str, list[str]]]:
    """The top-level argument lines and each nested block's lines."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("## Argument Reference"))
    top: list[str] = []
    nested: dict[str, list[str]] = {}
    current = top
    for line in lines[start + 1 :]:
        anchor = _ANCHOR.match(line)
        if anchor:
            current = nested.setdefault(anchor.group(1), [])
            continue
        if line.startswith("## "):
            current = []  # Attributes/Import sections: not arguments, until the next anchor
        current.append(line)
    return top, nested


def arguments(lines: list[str]) -> dict[str, str | None]:
    """{argument: anchor of its nested block, or None} for one section."""
    found: dict[str, str | None] = {}
    names: list[str] = []
    for line in lines:
        match = _ARG.match(line)
        if match:
            names = match.group(1).split("/")  # IAM pages document `member/members`
            for name in names:
                found.setdefault(name, None)
        link = _LINK.search(line)
        if link and names:
            for name in names:
                found[name] = link.group(1)
    return found


def tree(markdown: str) -> dict[str, Any]:
    top, nested = sections(markdown)

    def build(section: dict[str, str | None], seen: frozenset[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, anchor in sorted(section.items()):
            if anchor and anchor in nested and anchor not in seen:
                out[name] = build(arguments(nested[anchor]), seen | {anchor})
            else:
                out[name] = None
        return out

    return build(arguments(top), frozenset())


def used_types() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {"resource": set(), "data": set()}
    for directory in [MODULE, *sorted(p for p in EXAMPLES.iterdir() if p.is_dir())]:
        config = TerraformConfig.load(directory)
        used["resource"] |= set(config.resources)
        used["data"] |= set(config.data)
    return used


def main(argv: list[str]) -> int:
    repo, ref = Path(argv[1]), argv[2]
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", f"{ref}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    pinned: dict[str, Any] = {
        "provider": "hashicorp/google",
        "version": ref.removeprefix("v"),
        "source": f"https://github.com/hashicorp/terraform-provider-google/tree/{commit}",
        "resource": {},
        "data": {},
        "pages": {},
    }
    for kind, types in used_types().items():
        for rtype in sorted(types):
            path = doc_path(kind, rtype)
            markdown = subprocess.run(
                ["git", "-C", str(repo), "show", f"{commit}:{path}"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            pinned[kind][rtype] = tree(markdown)
            pinned["pages"][f"{kind}.{rtype}"] = path
    OUTPUT.write_text(json.dumps(pinned, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"pinned {sum(len(v) for v in (pinned['resource'], pinned['data']))} types → {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
