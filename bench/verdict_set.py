"""Verdicts on a labelled set of real photographs: the confusion table (label × verdict) and
each flag's precision and recall, as JSON. Run from the repository root:

    .venv/bin/python -m bench.verdict_set --out /tmp/verdict-set --json report.json

The set is ``tests/data/verdict_set.json``: scikit-image's photographs and the repository's
samples, with crops that cut the subject off, background-only and blurred crops, two-product
composites and small sources made from them by the recipe written beside each image. Each
label (``good``, ``review``, ``fail``) and the flags a reader sees were decided by looking at
the image; nothing here computes them. The images go through ``cutq run --preset <preset>``
(the bundled u2netp; the set's preset) and each verdict is read back from the events.
A ``good`` image should ``pass``; a wrong ``pass`` (any other label passing) is the error
that matters.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageFilter, ImageOps

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SET_FILE = ROOT / "tests" / "data" / "verdict_set.json"
LABELS = ("good", "review", "fail")
VERDICT_FOR = {"good": "pass", "review": "review", "fail": "fail"}
FLAGS = ("empty", "edge", "multiple", "uncertain")


@dataclass(frozen=True)
class Labelled:
    """One image of the set: where it comes from, how it is made, and what a reader sees."""

    name: str
    source: str  # skimage:<file> | samples:<file>
    recipe: tuple[Mapping[str, Any], ...]
    label: str
    flags: tuple[str, ...]
    why: str


def load(path: Path = SET_FILE) -> tuple[str, tuple[Labelled, ...]]:
    """The set's preset and its images."""
    document = json.loads(path.read_text())
    images = tuple(
        Labelled(
            name=entry["name"],
            source=entry["source"],
            recipe=tuple(entry["recipe"]),
            label=entry["label"],
            flags=tuple(entry["flags"]),
            why=entry["why"],
        )
        for entry in document["images"]
    )
    return document["preset"], images


def source_path(source: str) -> Path:
    where, _, name = source.partition(":")
    if where == "samples":
        return ROOT / "samples" / name
    if where == "skimage":
        import skimage.data

        return Path(skimage.data.data_dir) / name
    raise ValueError(f"unknown source {source!r}: skimage:<file> or samples:<file>")


def open_source(source: str) -> Image.Image:
    with Image.open(source_path(source)) as image:
        upright = ImageOps.exif_transpose(image)
        return upright.convert("RGBA" if "A" in upright.getbands() else "RGB")


def make(image: Image.Image, recipe: Iterable[Mapping[str, Any]]) -> Image.Image:
    """``image`` with each step of ``recipe`` applied in order."""
    for step in recipe:
        ((op, arg),) = step.items()
        if op == "crop":
            image = image.crop(tuple(arg))
        elif op == "scale":
            size = (round(image.width * arg), round(image.height * arg))
            image = image.resize(size, Image.Resampling.LANCZOS)
        elif op == "blur":
            image = image.filter(ImageFilter.GaussianBlur(arg))
        elif op == "flatten":  # onto a colour, dropping the alpha
            canvas = Image.new("RGBA", image.size, arg)
            canvas.alpha_composite(image.convert("RGBA"))
            image = canvas.convert("RGB")
        elif op == "beside":  # another photo at the same height, joined on the right
            other = open_source(arg).convert("RGB")
            other = other.resize(
                (round(other.width * image.height / other.height), image.height),
                Image.Resampling.LANCZOS,
            )
            joined = Image.new("RGB", (image.width + other.width, image.height))
            joined.paste(image.convert("RGB"), (0, 0))
            joined.paste(other, (image.width, 0))
            image = joined
        else:
            raise ValueError(f"unknown recipe step {op!r}")
    return image


def build(folder: Path, images: Iterable[Labelled]) -> dict[str, Labelled]:
    """Write each image into ``folder`` (as its source file where the recipe is empty, so the
    samples keep their formats, EXIF and colour modes); file name → image."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for item in images:
        if item.recipe:
            name = f"{item.name}.png"
            make(open_source(item.source), item.recipe).save(folder / name)
        else:
            original = source_path(item.source)
            name = item.name + original.suffix
            shutil.copyfile(original, folder / name)
        written[name] = item
    return written


def verdicts(events_path: Path, preset: str) -> dict[str, dict[str, Any]]:
    """Input file name → its preset rendition's verdict, reasons and the job's flags."""
    found = {}
    for line in events_path.read_text().splitlines():
        data = json.loads(line)["data"]
        name = Path(data["input"] or "").name
        output = next((o for o in data.get("outputs", ()) if o.get("preset") == preset), None)
        found[name] = {
            "verdict": output["verdict"] if output else "error",
            "reasons": output.get("reasons", []) if output else [data.get("error")],
            "flags": data.get("flags", []),
        }
    return found


def score(written: Mapping[str, Labelled], seen: Mapping[str, Mapping[str, Any]]) -> dict:
    """The confusion table (label → verdict → count), the wrong passes, and per flag its
    precision and recall against the flags read off the images."""
    table = {label: {"pass": 0, "review": 0, "fail": 0, "error": 0} for label in LABELS}
    rows, wrong_passes = [], []
    flags = {flag: {"tp": 0, "fp": 0, "fn": 0} for flag in FLAGS}
    raised_on = {flag: dict.fromkeys(LABELS, 0) for flag in FLAGS}
    for name, item in written.items():
        got = seen.get(name, {"verdict": "error", "reasons": ["no event"], "flags": []})
        table[item.label][got["verdict"]] += 1
        if got["verdict"] == "pass" and item.label != "good":
            wrong_passes.append(name)
        for flag, count in flags.items():
            raised, present = flag in got["flags"], flag in item.flags
            raised_on[flag][item.label] += raised
            count["tp"] += raised and present
            count["fp"] += raised and not present
            count["fn"] += present and not raised
        rows.append({"image": name, "label": item.label, **got, "expected_flags": item.flags})
    goods = sum(table["good"].values())
    return {
        "images": len(written),
        "confusion": table,
        "wrong_passes": wrong_passes,
        "good_passed": table["good"]["pass"],
        "good_review_share": round(table["good"]["review"] / max(1, goods), 3),
        "flags": {flag: _flag_row(count, raised_on[flag]) for flag, count in flags.items()},
        "rows": rows,
    }


def _flag_row(count: dict[str, int], raised_on: dict[str, int]) -> dict[str, Any]:
    """Precision and recall against the flags read off the images; a flag nobody can see in
    a photo (``uncertain`` is about the mask) has no hand labels: only where it was raised."""
    labelled = count["tp"] + count["fn"]
    return {
        **count,
        "labelled": labelled,
        "precision": _ratio(count["tp"], count["tp"] + count["fp"]) if labelled else None,
        "recall": _ratio(count["tp"], labelled),
        "raised_on": raised_on,
    }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def run(out: Path, extra_args: Iterable[str] = ()) -> dict:
    """Build the set under ``out/inputs``, run ``cutq run`` on it, return the scored report."""
    from cutq.cli import main as cutq

    preset, images = load()
    written = build(out / "inputs", images)
    results = out / "results"
    if results.exists():
        shutil.rmtree(results)
    args = ["run", str(out / "inputs"), "--out", str(results), "--no-progress"]
    code = cutq([*args, "--preset", preset, "--accept-review", *extra_args])
    report = score(written, verdicts(results / "events.jsonl", preset))
    return {"preset": preset, "exit_code": code, **report}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the set and its results")
    parser.add_argument("--json", help="write the report here too")
    args = parser.parse_args(argv)
    from bench.harness import publish

    publish(run(Path(args.out)), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
