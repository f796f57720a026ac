"""A drawing of the worker's real import graph (docs/architecture.md).

Reads the package as installed (grimp, the library import-linter runs on) from a throwaway
non-editable copy, as `make lint` does, leaving type-only imports out as its contracts do;
collapses each sub-package of ``cutq.worker`` into one box (``render``, ``runtime``,
``models``, ``sources`` …) and keeps the engine's modules as their own boxes, then draws the
edges as a PNG (networkx + matplotlib) and prints them as JSON.

    python -m tools.import_graph --out docs/import-graph.png
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Colours by role: a reader tells a leaf from a load-bearing wall at a glance.
ROLES = {
    "render": "#8fd19e",
    "runtime": "#9ec5fe",
    "models": "#9ec5fe",
    "review": "#ffe69c",
    "commands": "#dee2e6",
    "evaluation": "#ffe69c",
    "sources": "#f1aeb5",
}
ENGINE_COLOUR = "#f1aeb5"
CORE_COLOUR = "#e9ecef"


def node(module: str) -> str | None:
    """The box a module is drawn in: a worker sub-package, an engine module, or the core."""
    parts = module.split(".")
    if parts[:2] == ["cutq", "core"]:
        return "core"
    if parts[:2] != ["cutq", "worker"] or len(parts) < 3:
        return None
    name = parts[2]
    return name


def edges(package_dir: Path) -> tuple[set[str], set[tuple[str, str]]]:
    sys.path.insert(0, str(package_dir))
    import grimp

    graph = grimp.build_graph("cutq", cache_dir=None, exclude_type_checking_imports=True)
    nodes, found = set(), set()
    for module in graph.modules:
        source = node(module)
        if source is None:
            continue
        nodes.add(source)
        for imported in graph.find_modules_directly_imported_by(module):
            target = node(imported)
            if target is not None and target != source:
                found.add((source, target))
    return nodes, found


def subpackages(package_dir: Path) -> set[str]:
    worker = package_dir / "cutq" / "worker"
    return {p.name for p in worker.iterdir() if (p / "__init__.py").is_file()}


def draw(nodes: set[str], found: set[tuple[str, str]], packages: set[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from(found)
    # layers from the top: what imports most sits high, the core at the bottom
    depth = {n: 0 for n in graph}
    for _ in range(len(graph)):
        for a, b in graph.edges:
            if (a, b) in found and depth[b] <= depth[a] and not nx.has_path(graph, b, a):
                depth[b] = depth[a] + 1
    for n in graph:
        graph.nodes[n]["layer"] = depth[n]
    position = nx.multipartite_layout(graph, subset_key="layer", align="horizontal", scale=3)
    position = {n: (x, -y) for n, (x, y) in position.items()}
    colours = [
        CORE_COLOUR if n == "core" else ROLES.get(n, "#cfe2ff") if n in packages else ENGINE_COLOUR
        for n in graph
    ]
    labels = {n: f"{n}/" if n in packages else n for n in graph}
    plt.figure(figsize=(16, 9))
    nx.draw_networkx_edges(graph, position, alpha=0.35, arrowsize=10, node_size=2200)
    nx.draw_networkx_nodes(graph, position, node_color=colours, node_size=2200, node_shape="s")
    nx.draw_networkx_labels(graph, position, labels, font_size=8)
    plt.title(
        f"cutq.worker imports: {len(graph)} boxes, {graph.number_of_edges()} edges "
        "(packages end in /; green: render, blue: runtime and models, red: engine)"
    )
    plt.axis("off")
    plt.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    plt.savefig(out, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "import-graph.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", tmp, str(ROOT)],
            check=True,
        )
        nodes, found = edges(Path(tmp))
        draw(nodes, found, subpackages(Path(tmp)), args.out)
    print(json.dumps({"boxes": sorted(nodes), "edges": sorted(found), "png": str(args.out)}))


if __name__ == "__main__":
    main()
