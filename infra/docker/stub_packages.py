"""Create empty stand-ins for the packages pyproject.toml declares.

Used by the Dockerfile's deps stage: with these, ``pip install '.[worker,inspyrenet]'``
resolves and installs every dependency from pyproject.toml alone, so that layer is reused
until the dependencies change rather than on every source edit.

Usage: python stub_packages.py [PYPROJECT]   (default: ./pyproject.toml; stubs go next to it)
"""

from __future__ import annotations

import pathlib
import sys
import tomllib


def package_paths(pyproject: dict) -> list[pathlib.PurePosixPath]:
    """Directory of each package in [tool.setuptools] packages, honouring package-dir."""
    setuptools = pyproject["tool"]["setuptools"]
    package_dir: dict[str, str] = setuptools.get("package-dir", {})
    paths = []
    for package in setuptools["packages"]:
        roots = [p for p in package_dir if package == p or package.startswith(p + ".")]
        if roots:
            root = max(roots, key=len)
            rest = package[len(root) :].lstrip(".").replace(".", "/")
            base = pathlib.PurePosixPath(package_dir[root])
            paths.append(base / rest if rest else base)
        else:
            paths.append(pathlib.PurePosixPath(package.replace(".", "/")))
    return paths


def main(argv: list[str]) -> int:
    pyproject_path = pathlib.Path(argv[1] if len(argv) > 1 else "pyproject.toml")
    pyproject = tomllib.loads(pyproject_path.read_text(encoding="utf-8"))
    for rel in package_paths(pyproject):
        path = pyproject_path.parent / rel
        path.mkdir(parents=True, exist_ok=True)
        (path / "__init__.py").touch()
        print(f"stub package {rel}")
    # The readme pyproject.toml names must exist for the build, not its text: the Dockerfile
    # leaves the real one out of the dependency layer so that README edits do not rebuild it.
    readme = pyproject.get("project", {}).get("readme")
    if isinstance(readme, str):
        (pyproject_path.parent / readme).touch()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
