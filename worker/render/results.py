"""What a job writes: its renditions rendered from one mask, and their create-only upload.

:func:`render` refines the mask (post-processing, matting) once, keeps the input's own alpha,
finds the subject and the job's quality flags once, then makes each rendition the job plans
(:meth:`~cutq.core.contract.Job.planned`): edge colours, framing, compositing, encoding and,
for a preset's rendition, the verdict on the encoded bytes.
:func:`store` creates each object only if absent, in the job's order, so of two workers racing
on one job exactly one writes each object, and a redelivery after a partial write finishes the
rest without writing anything twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cutq.core.contract import CONTENT_TYPES, Job, Options
from cutq.core.errors import AlreadyExists, OutputCollision
from cutq.core.events import OutputInfo
from cutq.core.presets import PRESETS
from cutq.core.renditions import Rendition
from cutq.core.storage import ObjectInfo, Storage
from cutq.worker.render import canvas, framing, imaging, matting, quality, verdict
from cutq.worker.render.subject import find_subject


@dataclass(frozen=True)
class RenderSettings:
    """What the worker's configuration decides about rendering (the
    :class:`~cutq.worker.config.WorkerConfig` fields of the same names, passed in: render
    never reads the engine's configuration)."""

    default_foreground: str = "none"  # edge colours for jobs and renditions that do not say
    matting_max_pixels: int = 1_000_000
    matting_timeout_s: float = 10.0


def foreground_mode(rendition: Rendition, options: Options, settings: RenderSettings) -> str | None:
    """A cutout's edge mode: the rendition's, else the job's, else the worker's (None for a
    mask). The memory model charges by the same rule (:mod:`cutq.worker.memory`)."""
    if rendition.kind != "cutout":
        return None
    return rendition.foreground or options.foreground or settings.default_foreground


@dataclass(frozen=True)
class Result:
    """One object a job writes: ``uri`` as the job and its event name it, ``target`` as
    checked against the allow-lists (``file://``: the resolved path) and written."""

    rendition: Rendition
    uri: str
    target: str

    @property
    def name(self) -> str:
        return self.rendition.name


@dataclass(frozen=True)
class Picture:
    """One rendition's encoded bytes, its size and (from a preset) its verdict."""

    data: bytes
    width: int
    height: int
    verdict: verdict.Verdict | None = None


@dataclass(frozen=True)
class Rendering:
    """Every picture a job writes, by rendition name, and the job's quality flags."""

    pictures: dict[str, Picture]
    quality: quality.Quality


def plan(job: Job, target: Callable[[str], str]) -> tuple[Result, ...]:
    """The results ``job`` writes, in its order; ``target(uri)``: where each is written."""
    uris = job.result_uris()
    return tuple(Result(r, uris[r.name], target(uris[r.name])) for r in job.planned())


def render(
    image: imaging.Decoded,
    mask: np.ndarray,
    job: Job,
    results: tuple[Result, ...],
    settings: RenderSettings,
) -> Rendering:
    """Render each result of ``job`` from one model ``mask``."""
    options = job.options
    mask = matting.refine_mask(
        image.rgb,
        mask,
        post_process=options.post_process,
        matting=options.matting,
        max_pixels=settings.matting_max_pixels,
        timeout_s=settings.matting_timeout_s,
        label=job.job_id,
    )
    alpha = imaging.combine_alpha(mask, image.alpha)
    framed = any(result.rendition.frame is not None for result in results)
    box = find_subject(alpha).box if framed else None
    size = (image.width, image.height)
    colours: dict[str, np.ndarray] = {}  # unframed edge colours: estimated once per mode

    def mode_of(rendition: Rendition) -> str | None:
        return foreground_mode(rendition, options, settings)

    def rgb_for(mode: str) -> np.ndarray:
        if mode not in colours:
            colours[mode] = matting.foreground_colours(image.rgb, alpha, mode)
        return colours[mode]

    # Framed renditions share one scaled crop (and foreground) per region, edge mode and kind.
    plans: dict[str, framing.Plan] = {}
    groups: dict[tuple[Any, ...], list[str]] = {}
    for result in results:
        frame = result.rendition.frame
        if frame is not None:
            planned = framing.plan(size, box, frame)
            plans[result.name] = planned
            key = (planned.region, frame.crop, mode_of(result.rendition))
            groups.setdefault(key, []).append(result.name)
    works: dict[str, canvas.Work] = {}
    for (region, crop, mode), names in groups.items():
        scale = canvas.work_scale([plans[name] for name in names])
        estimate = None if mode is None else _estimator(mode)
        work = canvas.prepare(
            image.rgb,
            alpha if mode else mask,
            region,
            scale,
            crop=crop,
            colours=estimate,
            found=box is not None,
        )
        works.update((name, work) for name in names)

    judged = quality.assess(alpha)  # before the verdicts: a flag can hold one back
    pictures = {}
    for result in results:
        rendition = result.rendition
        if rendition.frame is not None:
            picture = canvas.draw(
                plans[result.name], works.pop(result.name), rendition.kind, rendition.background
            )
        elif rendition.kind == "cutout":
            mode = mode_of(rendition)
            assert mode is not None
            picture = imaging.cutout(rgb_for(mode), alpha, rendition.background)
        else:
            picture = imaging.mask_image(mask)
        carried = image.carried if rendition.kind == "cutout" else image.carried.for_mask()
        data = imaging.encode(picture, rendition.format, rendition.quality, carried)
        checked = None
        if rendition.preset is not None:
            background = rendition.background if rendition.kind == "cutout" else "#000000"
            rules = PRESETS[rendition.preset].rules
            checked = verdict.check(data, background, rules, size, judged.flags)
        pictures[result.name] = Picture(data, picture.width, picture.height, checked)
        del picture
    return Rendering(pictures, judged)


def _estimator(mode: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    return lambda rgb, alpha: matting.foreground_colours(rgb, alpha, mode)


def store(
    results: tuple[Result, ...],
    rendering: Rendering,
    job: Job,
    open_storage: Callable[[str], Storage],
) -> tuple[tuple[OutputInfo, ...], bool]:
    """Create each result only if absent; (what the event reports, whether another delivery
    wrote the last result: then this one is a duplicate and overwrote nothing).

    The last result decides: whichever delivery creates it is the one that made the job
    complete (each delivery writes in the same order, so every earlier result exists by then).
    """
    outputs, duplicate = [], False
    for result in results:
        picture = rendering.pictures.pop(result.name)
        info = _output(result, picture)
        storage = open_storage(result.target)
        try:
            stored = storage.write(
                result.target,
                picture.data,
                content_type=CONTENT_TYPES[result.rendition.format],  # type: ignore[index]
                metadata=_metadata(info, job, rendering.quality),
                if_absent=True,
            )
            duplicate = False
        except AlreadyExists:  # another delivery (another worker) got there first
            duplicate = True
            found = storage.stat(result.target)
            if found is None:  # pragma: no cover - created, then deleted at once
                raise
            stored = owned(found, job.job_id)
        outputs.append(_replace_size(info, stored.size))
    return tuple(outputs), duplicate


def _output(result: Result, picture: Picture) -> OutputInfo:
    rendition = result.rendition
    checked = picture.verdict
    return OutputInfo(
        kind=rendition.kind,
        uri=result.uri,
        size=len(picture.data),
        width=picture.width,
        height=picture.height,
        name=rendition.name,
        preset=rendition.preset,
        verdict=checked.verdict if checked else None,
        failed=checked.failed if checked else (),
        figures=checked.figures if checked else None,
        reasons=checked.reasons if checked else (),
    )


def _replace_size(info: OutputInfo, size: int) -> OutputInfo:
    return OutputInfo(**{**vars(info), "size": size})


# What the event said of the object and of the job (JSON), re-emitted on a redelivery.
OUTPUT_KEY, QUALITY_KEY, JOB_ID_KEY = "cutq-output", "cutq-quality", "cutq-job-id"


def owned(info: ObjectInfo, job_id: str) -> ObjectInfo:
    """``info``, an existing result, when it is this job's (or its backend keeps no metadata);
    another job's object under the same name raises :class:`OutputCollision`."""
    owner = info.metadata.get(JOB_ID_KEY)
    if owner is not None and owner != job_id:
        raise OutputCollision(
            f"{info.uri} exists and belongs to job {owner}: two jobs render the same name "
            "(put {job_id} or {hash} in output.template); nothing was overwritten"
        )
    return info


def _metadata(info: OutputInfo, job: Job, judged: quality.Quality) -> dict[str, str]:
    entry: dict[str, Any] = {k: v for k, v in vars(info).items() if k not in ("uri", "size")}
    identity = {"cutq-ref": job.ref, "cutq-name": job.name}
    return {
        **{key: value for key, value in identity.items() if value is not None},
        "cutq-width": str(info.width),
        "cutq-height": str(info.height),
        JOB_ID_KEY: job.job_id,
        OUTPUT_KEY: json.dumps(entry, separators=(",", ":")),
        QUALITY_KEY: json.dumps(
            {"flags": judged.flags, "figures": judged.figures}, separators=(",", ":")
        ),
    }


def found_quality(info: ObjectInfo) -> quality.Quality | None:
    """The job's quality flags as stored beside a result (None where the backend keeps no
    metadata)."""
    entry = info.metadata.get(QUALITY_KEY)
    if not entry:
        return None
    fields = json.loads(entry)
    return quality.Quality(tuple(fields["flags"]), fields["figures"])


def lookup(
    results: tuple[Result, ...], open_storage: Callable[[str], Storage], job_id: str
) -> tuple[tuple[OutputInfo, ...], quality.Quality | None] | None:
    """When every result exists already: what the event says of them, and the job's flags
    (:class:`OutputCollision` when one of them is another job's)."""
    outputs, judged = [], None
    for result in results:
        info = open_storage(result.target).stat(result.target)
        if info is None:
            return None
        owned(info, job_id)
        outputs.append(found(result, info))
        judged = judged or found_quality(info)
    return tuple(outputs), judged


def found(result: Result, info: ObjectInfo) -> OutputInfo:
    """What the event says of a result object found in storage (from its metadata, where the
    backend keeps metadata: on ``file://`` only the name, kind and size are known)."""
    entry = info.metadata.get(OUTPUT_KEY)
    if entry:
        fields = json.loads(entry)
        fields["failed"] = tuple(fields.get("failed") or ())
        fields["reasons"] = tuple(fields.get("reasons") or ())
        return OutputInfo(uri=result.uri, size=info.size, **fields)
    width, height = info.metadata.get("cutq-width"), info.metadata.get("cutq-height")
    return OutputInfo(
        kind=result.rendition.kind,
        uri=result.uri,
        size=info.size,
        width=int(width) if width else None,
        height=int(height) if height else None,
        name=result.name,
        preset=result.rendition.preset,
    )
