"""Right colours through ``cutq run`` for each kind of photo a shop gets.

A real photograph (scikit-image's ``coffee``, sRGB) is saved as each input kind: an untagged
sRGB JPEG, JPEGs tagged Adobe RGB (1998) and Display P3 (cameras, phones), a CMYK JPEG with
its profile (Adobe's inverted CMYK, as Pillow and Photoshop write it), a 16-bit PNG and a HEIC
in Display P3 (iPhones). The profiles are real ones from Debian's packages
(tools/install-icc-profiles.sh). Each goes through ``cutq run`` beside the same photo saved as
sRGB in the same format (the floor its own compression sets); the opaque pixels of each result,
read through the profile it embeds as a colour-managed viewer reads them, are compared with the
photo's true sRGB colours in CIEDE2000 (scikit-image). A CMYK photo's true colours are what
its CMYK pixels mean (print gamut is smaller than sRGB's). docs/colour.md shows the table.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from cutq.cli import main
from tests.conftest import ROOT
from tests.support.icc import FLAGS, INTENT, profiles

QUALITY = 92  # the inputs' own compression (and their floors')
DOCS = ROOT / "docs" / "colour.md"
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@dataclass(frozen=True)
class Kind:
    """One input kind: its file, the same photo saved as sRGB, and the colours both mean."""

    label: str
    stem: str
    suffix: str
    truth: np.ndarray
    keep: bool  # an RGB profile: also run with --colour keep


def _convert(rgb: np.ndarray, target: ImageCms.ImageCmsProfile, mode: str) -> Image.Image:
    converted = ImageCms.profileToProfile(
        Image.fromarray(rgb), SRGB, target, renderingIntent=INTENT, outputMode=mode, flags=FLAGS
    )
    assert converted is not None
    return converted


def _heic(image: Image.Image, path: Path, icc: bytes | None) -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()
    extra = {"icc_profile": icc} if icc else {}
    image.save(path, format="HEIF", quality=QUALITY, **extra)


def make_inputs(folder: Path) -> list[Kind]:
    """Each kind's input file and its sRGB floor in ``folder``."""
    from skimage import data

    found = profiles()
    truth = np.ascontiguousarray(data.coffee())  # 400×600 sRGB photograph
    icc = {name: profile.tobytes() for name, profile in found.items()}
    kinds = []

    def jpeg(image: Image.Image, stem: str, profile: bytes | None = None) -> None:
        extra = {"icc_profile": profile} if profile else {}
        image.save(folder / f"{stem}.jpg", quality=QUALITY, **extra)

    jpeg(Image.fromarray(truth), "srgb")
    jpeg(Image.fromarray(truth), "srgb-floor")
    kinds.append(Kind("sRGB (JPEG, untagged)", "srgb", ".jpg", truth, False))
    for name, label in (("adobe", "Adobe RGB (1998) (JPEG)"), ("p3", "Display P3 (JPEG)")):
        jpeg(_convert(truth, found[name], "RGB"), name, icc[name])
        jpeg(Image.fromarray(truth), f"{name}-floor")
        kinds.append(Kind(label, name, ".jpg", truth, True))
    cmyk = _convert(truth, found["cmyk"], "CMYK")
    seen = ImageCms.profileToProfile(
        cmyk, found["cmyk"], SRGB, renderingIntent=INTENT, outputMode="RGB", flags=FLAGS
    )
    assert seen is not None
    jpeg(cmyk, "cmyk", icc["cmyk"])  # Pillow writes Adobe's inverted CMYK (APP14)
    jpeg(seen, "cmyk-floor")
    kinds.append(Kind("CMYK + SWOP profile (JPEG)", "cmyk", ".jpg", np.asarray(seen), False))
    # 16 bits a channel whose values round, not truncate, to the photo's 8-bit ones.
    import cv2

    noise = np.random.default_rng(7).integers(-128, 128, truth.shape)
    wide = np.clip(truth.astype(np.int64) * 257 + noise, 0, 65535).astype(np.uint16)
    assert cv2.imwrite(str(folder / "png16.png"), wide[:, :, ::-1])
    Image.fromarray(truth).save(folder / "png16-floor.png")
    kinds.append(Kind("16-bit PNG (sRGB)", "png16", ".png", truth, False))
    _heic(_convert(truth, found["p3"], "RGB"), folder / "heic.heic", icc["p3"])
    _heic(Image.fromarray(truth), folder / "heic-floor.heic", None)
    kinds.append(Kind("HEIC, Display P3 (iPhone)", "heic", ".heic", truth, True))
    return kinds


@dataclass(frozen=True)
class Measured:
    mean: float
    p99: float
    profile: str  # the embedded profile's description ("" when untagged)
    opaque: int


def measure(result: Path, truth: np.ndarray) -> Measured:
    """CIEDE2000 of the result's opaque pixels (read through its own profile) vs ``truth``."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    image = Image.open(result)
    image.load()
    icc = image.info.get("icc_profile")
    rgba = np.asarray(image.convert("RGBA"))
    rgb = Image.fromarray(np.ascontiguousarray(rgba[:, :, :3]))
    description = ""
    if icc:
        own = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = ImageCms.getProfileDescription(own).strip()
        seen = ImageCms.profileToProfile(
            rgb, own, SRGB, renderingIntent=INTENT, outputMode="RGB", flags=FLAGS
        )
        assert seen is not None
        rgb = seen
    opaque = rgba[:, :, 3] == 255
    got = rgb2lab(np.asarray(rgb)[opaque][None] / 255.0)
    want = rgb2lab(truth[opaque][None] / 255.0)
    delta = deltaE_ciede2000(want, got)[0]
    return Measured(float(delta.mean()), float(np.percentile(delta, 99)), description, opaque.sum())


def results_by_stem(out: Path) -> dict[str, Path]:
    found = {}
    for line in (out / "events.jsonl").read_text().splitlines():
        event = json.loads(line)["data"]
        assert event["status"] == "completed", event
        stem = Path(event["input"].removeprefix("file://")).stem
        found[stem] = Path(event["outputs"][0]["uri"].removeprefix("file://"))
    return found


def table(rows: list[tuple[Kind, Measured, Measured, Measured | None]]) -> str:
    lines = [
        "| input | ΔE00 mean / p99 | same photo as sRGB (floor) | output profile "
        "| `colour: keep`: ΔE00 mean / p99, profile |",
        "| --- | --- | --- | --- | --- |",
    ]
    for kind, got, floor, kept in rows:
        keep = f"{kept.mean:.2f} / {kept.p99:.2f}, {kept.profile}" if kept else "sRGB (as left)"
        lines.append(
            f"| {kind.label} | {got.mean:.2f} / {got.p99:.2f} | {floor.mean:.2f} / "
            f"{floor.p99:.2f} | {got.profile} | {keep} |"
        )
    return "\n".join(lines)


@pytest.mark.timeout(600)  # two `cutq run`s over 15 photos: ~1 min alone, 4 on a busy CPU
def test_every_input_kind_comes_out_in_its_true_colours(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    kinds = make_inputs(inputs)
    out, kept_out = tmp_path / "out", tmp_path / "kept"
    assert main(["run", str(inputs), "--out", str(out), "--no-progress"]) == 0
    keep_inputs = tmp_path / "in-keep"
    keep_inputs.mkdir()
    for kind in kinds:
        if kind.keep:
            (keep_inputs / f"{kind.stem}{kind.suffix}").write_bytes(
                (inputs / f"{kind.stem}{kind.suffix}").read_bytes()
            )
    flags = ["--colour", "keep", "--no-progress"]
    assert main(["run", str(keep_inputs), "--out", str(kept_out), *flags]) == 0
    results, kept = results_by_stem(out), results_by_stem(kept_out)
    rows = []
    for kind in kinds:
        got = measure(results[kind.stem], kind.truth)
        floor = measure(results[f"{kind.stem}-floor"], kind.truth)
        keep = measure(kept[kind.stem], kind.truth) if kind.keep else None
        rows.append((kind, got, floor, keep))
    shown = table(rows)
    print(shown)
    for kind, got, floor, keep in rows:
        assert got.opaque > 10_000, (kind.label, got)
        assert got.profile == "sRGB built-in", (kind.label, got)  # LittleCMS's sRGB
        assert got.mean <= floor.mean + 0.5, (kind.label, got, floor)
        assert got.p99 <= floor.p99 + 1.5, (kind.label, got, floor)
        if keep is not None:
            source = "DisplayP3" if "P3" in kind.label else "Adobe RGB"
            assert source in keep.profile, (kind.label, keep)
            assert keep.mean <= floor.mean + 0.5, (kind.label, keep, floor)
            assert keep.p99 <= floor.p99 + 1.5, (kind.label, keep, floor)
    assert_documented(shown)


def assert_documented(shown: str) -> None:
    """docs/colour.md shows this table (its numbers within 0.1 of this run's)."""
    documented = DOCS.read_text(encoding="utf-8")
    number = re.compile(r"\d+\.\d\d")
    for line in shown.splitlines()[2:]:
        label = line.split("|")[1].strip()
        found = [row for row in documented.splitlines() if row.startswith(f"| {label} |")]
        assert found, f"docs/colour.md has no row for {label!r}; the table is:\n{shown}"
        assert number.sub("#", found[0]) == number.sub("#", line), f"{found[0]}\n{line}"
        for ours, theirs in zip(number.findall(line), number.findall(found[0]), strict=True):
            assert abs(float(ours) - float(theirs)) <= 0.1, f"{found[0]}\nnow: {line}"
