"""The "Product photos" figure (docs/product-photos.md): samples before, and after each preset.

    .venv/bin/python -m tools.make_product_figure docs/product-photos.png

Runs ``cutq run`` on three samples with every preset (one model run per image) and lays out
input | amazon-main | google-shopping | square-2048 | thumbnail, each scaled into a cell,
transparent results on a checkerboard, each cell captioned with its verdict.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ("red-ball.jpg", "blue-pair.png", "green-rotated-exif.jpg")
PRESETS = ("amazon-main", "google-shopping", "square-2048", "thumbnail")
CELL, CAPTION = 220, 34


def checker(size: tuple[int, int], square: int = 10) -> Image.Image:
    board = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(board)
    for y in range(0, size[1], square):
        for x in range((y // square) % 2 * square, size[0], 2 * square):
            draw.rectangle((x, y, x + square - 1, y + square - 1), fill=(221, 221, 221))
    return board


def cell(path: Path, caption: str) -> Image.Image:
    out = Image.new("RGB", (CELL, CELL + CAPTION), (250, 250, 250))
    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGBA")
    image.thumbnail((CELL - 10, CELL - 10))
    left, top = (CELL - image.width) // 2, (CELL - image.height) // 2
    backdrop = checker(image.size)
    backdrop.paste(image, (0, 0), image)
    out.paste(backdrop, (left, top))
    ImageDraw.Draw(out).text((6, CELL + 4), caption, fill=(20, 20, 20))
    return out


def main(target: str) -> int:
    sys.path.insert(0, str(ROOT))
    from cutq.cli import main as cutq

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        arguments = ["run", *(str(ROOT / "samples" / name) for name in SAMPLES)]
        arguments += ["--out", str(out), "--no-progress"]
        for preset in PRESETS:
            arguments += ["--preset", preset]
        cutq(arguments)
        events = [json.loads(line)["data"] for line in (out / "events.jsonl").open()]
        by_input = {Path(e["input"]).name: e for e in events}
        figure = Image.new("RGB", (CELL * (1 + len(PRESETS)), (CELL + CAPTION) * len(SAMPLES)))
        for row, name in enumerate(SAMPLES):
            data = by_input[name]
            cells = [cell(ROOT / "samples" / name, f"input {name}")]
            for output in data["outputs"]:
                text = f"{output['name']} {output['width']}px\n{output['verdict']}"
                if output["failed"]:
                    text += " (" + output["failed"][0].split(":")[0] + ")"
                cells.append(cell(Path(output["uri"].removeprefix("file://")), text))
            for column, picture in enumerate(cells):
                figure.paste(picture, (column * CELL, row * (CELL + CAPTION)))
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        figure.save(target, optimize=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
