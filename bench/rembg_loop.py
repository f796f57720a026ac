"""rembg's ``rembg p -m u2netp IN OUT`` loop, without the CLI's extra dependencies.

The ``p`` command of rembg 2.0.86 makes one session, then for each file under ``IN`` (sorted,
recursively) reads its bytes, calls ``rembg.remove(data, session=session)`` and writes
``OUT/<name>.png``. That is all this does; rembg's CLI needs click, watchdog, gradio and more,
which the ``cutq[peer]`` extra does not install. Run by :mod:`bench.peer` in a fresh process
with ``U2NET_HOME`` pointing at the u2netp.onnx taken from PyPI.

    python -m bench.rembg_loop IN OUT
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    source, target = Path(argv[0]), Path(argv[1])
    from rembg import new_session, remove

    session = new_session("u2netp")
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("**/*")):
        if path.is_file():
            (target / path.name).with_suffix(".png").write_bytes(
                remove(path.read_bytes(), session=session)  # type: ignore[arg-type]
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
