"""rembg 2.0.86 itself against cutq's model-spec path and against the tests' reference.

``tests/integration/test_rembg_graph.py`` cannot run rembg (it conflicts with the dev extra),
so it compares cutq with ``tests/support/rembg_reference.py``, a line-for-line copy of rembg's
u2netp path. This checks that copy, and cutq, against the real rembg 2.0.86 in its own venv
(as :mod:`bench.peer` runs it): the same photographs, the same u2netp.onnx from the PyPI wheel
(``U2NET_HOME``), ``rembg.remove(data, session=new_session("u2netp"), only_mask=True)``.

    python -m venv /tmp/rembg && /tmp/rembg/bin/pip install 'rembg[cpu]==2.0.86'
    python -m bench.rembg_masks --rembg-python /tmp/rembg/bin/python --photos 12

Prints JSON: per pair (cutq vs rembg, reference vs rembg) the largest difference in grey
levels and the share of pixels that differ.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from bench import peer

REMBG_SCRIPT = """
import sys
from pathlib import Path
from rembg import new_session, remove
session = new_session("u2netp")
out = Path(sys.argv[2])
for path in sorted(Path(sys.argv[1]).iterdir()):
    mask = remove(path.read_bytes(), session=session, only_mask=True)
    (out / (path.stem + ".png")).write_bytes(mask)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rembg-python", required=True, help="python of a venv with rembg")
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--cache", type=Path, default=peer.ROOT / ".cache" / "peer")
    args = parser.parse_args(argv)
    import onnxruntime as ort

    from cutq.worker.models.onnx_custom import CustomOnnx
    from cutq.worker.models.onnx_spec import ModelSpec
    from cutq.worker.runtime.inference import Runner
    from tests.support import rembg_reference

    home = peer.rembg_home(args.cache)
    graph = home / "u2netp.onnx"
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        photos = peer.make_photos(work / "photos", args.photos)
        (work / "rembg").mkdir()
        env = dict(os.environ, U2NET_HOME=str(home), OMP_NUM_THREADS="1")
        subprocess.run(
            [args.rembg_python, "-c", REMBG_SCRIPT, str(work / "photos"), str(work / "rembg")],
            env=env,
            check=True,
        )
        spec = work / "spec.json"
        spec.write_text(json.dumps({**rembg_reference.SPEC, "file": str(graph)}))
        runner = Runner(CustomOnnx(ModelSpec.load(spec)), "cpu")
        runner.setup()
        session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        rows = []
        for path in photos:
            real = np.asarray(Image.open(work / "rembg" / f"{path.stem}.png").convert("L"))
            photo = rembg_reference.open_photo(path)
            reference = rembg_reference.rembg_mask(session, photo)
            rgb = np.asarray(photo.convert("RGB"))
            saliency = runner.predict([runner.model.preprocess(rgb, (320, 320))])[0][0]
            cutq = rembg_reference.rembg_post(saliency, photo.size)
            rows.append({"photo": path.name, **_delta("cutq", cutq, real)})
            rows[-1].update(_delta("reference", reference, real))
    summary = {
        key: max(row[key] for row in rows)
        for key in ("cutq_max_delta", "cutq_pixels_differing", "reference_max_delta",
                    "reference_pixels_differing")
    }  # fmt: skip
    print(json.dumps({"photos": len(rows), "worst": summary, "rows": rows}, indent=1))
    return 0


def _delta(label: str, got: np.ndarray, real: np.ndarray) -> dict[str, float]:
    delta = np.abs(got.astype(np.int16) - real.astype(np.int16))
    return {
        f"{label}_max_delta": int(delta.max()),
        f"{label}_pixels_differing": round(float(np.count_nonzero(delta)) / delta.size, 6),
    }


if __name__ == "__main__":
    raise SystemExit(main())
