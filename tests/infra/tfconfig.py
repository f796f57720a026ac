"""Terraform parsed with python-hcl2, as plain Python, for the infrastructure checks.

No terraform binary and no cloud. python-hcl2 8 keeps HCL's quoting in its output (labels
and string literals arrive as '"name"'); ``normalize`` strips that so tests compare plain
values, and expressions stay as '${...}' strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "infra" / "terraform"
MODULE = TERRAFORM / "modules" / "cutq"
EXAMPLES = TERRAFORM / "examples"


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def normalize(node: Any) -> Any:
    """python-hcl2 output → plain Python: unquoted keys and strings, no bookkeeping keys."""
    if isinstance(node, dict):
        return {
            unquote(key): normalize(value)
            for key, value in node.items()
            if not (key.startswith("__") and key.endswith("__"))
        }
    if isinstance(node, list):
        return [normalize(item) for item in node]
    if isinstance(node, str):
        return unquote(node)
    return node


def load_tf(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return normalize(hcl2.load(handle))


@dataclass
class TerraformConfig:
    """The blocks of one Terraform directory, merged across its files."""

    directory: Path
    resources: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    data: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)
    moved: dict[str, str] = field(default_factory=dict)  # from address → to address

    @classmethod
    def load(cls, directory: Path) -> TerraformConfig:
        config = cls(directory)
        for path in sorted(directory.glob("*.tf")):
            parsed = load_tf(path)
            for entry in parsed.get("resource", []):
                for rtype, named in entry.items():
                    config.resources.setdefault(rtype, {}).update(named)
            for entry in parsed.get("data", []):
                for dtype, named in entry.items():
                    config.data.setdefault(dtype, {}).update(named)
            for entry in parsed.get("variable", []):
                config.variables.update(entry)
            for entry in parsed.get("output", []):
                config.outputs.update(entry)
            for entry in parsed.get("locals", []):
                config.locals.update(entry)
            for entry in parsed.get("module", []):
                config.modules.update(entry)
            for entry in parsed.get("moved", []):
                config.moved[entry["from"][2:-1]] = entry["to"][2:-1]
        return config

    def resource(self, rtype: str, name: str) -> dict[str, Any]:
        assert name in self.resources.get(rtype, {}), f"missing resource {rtype}.{name}"
        return self.resources[rtype][name]

    def all_resources(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """Every resource body; one ``for_each`` over the lanes map yields one body per lane
        (:meth:`per_lane`), named ``name["lane"]``."""
        for rtype, named in self.resources.items():
            for name, body in named.items():
                if body.get("for_each") in LANE_MAPS:
                    for lane, instance in self.per_lane(rtype, name).items():
                        yield rtype, f'{name}["{lane}"]', instance
                else:
                    yield rtype, name, body

    def per_lane(self, rtype: str, name: str) -> dict[str, dict[str, Any]]:
        """A resource declared ``for_each`` over the lanes map (``local.lanes``, or its pull
        or push subset), as Terraform expands it: lane → its body with ``each.key`` and
        ``each.value.*`` replaced by that lane's key and values."""
        body = self.resource(rtype, name)
        assert body.get("for_each") in LANE_MAPS, f"{rtype}.{name} is not per lane"
        return {
            lane: _substitute({k: v for k, v in body.items() if k != "for_each"}, lane, values)
            for lane, values in self.locals["lanes"].items()
        }


#: The ``for_each`` expressions that mean "one per lane" (pubsub.tf's ``locals``).
LANE_MAPS = ("${local.lanes}", "${local.pull_lanes}", "${local.push_lanes}")


def _substitute(node: Any, lane: str, values: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {key: _substitute(value, lane, values) for key, value in node.items()}
    if isinstance(node, list):
        return [_substitute(item, lane, values) for item in node]
    if not isinstance(node, str):
        return node
    node = re.sub(r"\$\{each\.value\.(\w+)\}", lambda m: str(values[m.group(1)]), node)
    return node.replace("[each.key]", f'["{lane}"]')


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The single nested block ``name`` of a resource body."""
    blocks = body.get(name)
    assert isinstance(blocks, list) and len(blocks) == 1, f"expected one {name!r} block"
    return blocks[0]


def dynamic(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The ``dynamic "<name>"`` block of a resource body."""
    for entry in body.get("dynamic", []):
        if name in entry:
            return entry[name]
    raise AssertionError(f"no dynamic {name!r} block")


def all_tf_files() -> list[Path]:
    return sorted(TERRAFORM.rglob("*.tf"))
