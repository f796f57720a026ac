"""What colour management costs at decode: a 12 MP photo as an untagged sRGB JPEG, tagged
Adobe RGB (converted to sRGB by LittleCMS), and tagged with ``colour: keep`` (its pixels kept,
plus the model's sRGB copy), decoded side by side, alternating round by round.

    .venv/bin/python -m bench.colour [--rounds 3] [--megapixels 12]

Prints one JSON object: the best decode time of each and their ratios to the untagged one.
Needs the Adobe RGB profile of Debian's icc-profiles-free (tools/install-icc-profiles.sh).
"""

from __future__ import annotations

import argparse
import io
import json
import time

from PIL import Image, ImageCms

from cutq.worker.render import colour, imaging
from tests.support.icc import PROFILES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--megapixels", type=float, default=12.0)
    args = parser.parse_args(argv)
    from skimage import data

    adobe = ImageCms.getOpenProfile(str(PROFILES["adobe"]))
    width = int((args.megapixels * 1e6 * 4 / 3) ** 0.5)
    photo = Image.fromarray(data.coffee()).resize((width, width * 3 // 4))
    in_adobe = ImageCms.profileToProfile(photo, colour.srgb_profile(), adobe, outputMode="RGB")
    assert in_adobe is not None
    cases = {
        "untagged": (_jpeg(photo), False),
        "adobe_rgb": (_jpeg(in_adobe, icc_profile=adobe.tobytes()), False),
        "adobe_rgb_keep": (_jpeg(in_adobe, icc_profile=adobe.tobytes()), True),
    }
    best = {name: float("inf") for name in cases}
    for _ in range(args.rounds):
        for name, (payload, keep) in cases.items():
            started = time.perf_counter()
            imaging.decode(payload, max_pixels=10**9, keep_colour=keep)
            best[name] = min(best[name], time.perf_counter() - started)
    report = {
        "megapixels": round(photo.width * photo.height / 1e6, 1),
        "rounds": args.rounds,
        **{f"decode_{name}_s": round(seconds, 3) for name, seconds in best.items()},
        "ratio_adobe_rgb": round(best["adobe_rgb"] / best["untagged"], 2),
        "ratio_adobe_rgb_keep": round(best["adobe_rgb_keep"] / best["untagged"], 2),
    }
    print(json.dumps(report))
    return 0


def _jpeg(image: Image.Image, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, **params)
    return buffer.getvalue()


if __name__ == "__main__":
    raise SystemExit(main())
