"""What a job writes: its pictures rendered from the mask, and their create-only upload.

:func:`render` refines the mask (post-processing, matting), keeps the input's own alpha,
estimates the subject's colours under soft edges and encodes each result;
:func:`store` creates each object only if absent, so of two workers racing on one job exactly
one writes, and says whether this delivery was that one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cutq.core.contract import CONTENT_TYPES, Job
from cutq.core.errors import AlreadyExists
from cutq.core.events import OutputInfo
from cutq.core.storage import ObjectInfo, Storage
from cutq.worker import imaging, matting
from cutq.worker.config import WorkerConfig


@dataclass(frozen=True)
class Result:
    """One object a job writes: ``uri`` as the job and its event name it, ``target`` as
    checked against the allow-lists (``file://``: the resolved path) and written."""

    kind: str
    uri: str
    target: str


def render(
    image: imaging.Decoded,
    mask: np.ndarray,
    job: Job,
    results: tuple[Result, ...],
    config: WorkerConfig,
) -> dict[str, bytes]:
    """The encoded bytes of each result kind the job asks for."""
    options = job.options
    mask = matting.refine_mask(
        image.rgb,
        mask,
        post_process=options.post_process,
        matting=options.matting,
        max_pixels=config.matting_max_pixels,
        timeout_s=config.matting_timeout_s,
        label=job.job_id,
    )
    alpha = imaging.combine_alpha(mask, image.alpha)
    encoded = {}
    for kind in (result.kind for result in results):
        if kind == "cutout":
            rgb = matting.foreground_colours(
                image.rgb, alpha, options.foreground or config.default_foreground
            )
            picture = imaging.cutout(rgb, alpha, job.output.background)
        else:
            picture = imaging.mask_image(mask)
        encoded[kind] = imaging.encode(picture, job.output.format, job.output.quality)
    return encoded


def store(
    results: tuple[Result, ...],
    encoded: dict[str, bytes],
    job: Job,
    image: imaging.Decoded,
    open_storage: Callable[[str], Storage],
) -> tuple[tuple[OutputInfo, ...], bool]:
    """Create each result only if absent; (what the event reports, whether another delivery
    wrote the first result: then this one is a duplicate and overwrote nothing)."""
    metadata = {
        "cutq-width": str(image.width),
        "cutq-height": str(image.height),
        "cutq-job-id": job.job_id,
    }
    outputs, duplicate = [], False
    for index, result in enumerate(results):
        storage = open_storage(result.target)
        try:
            info = storage.write(
                result.target,
                encoded.pop(result.kind),
                content_type=CONTENT_TYPES[job.output.format],
                metadata=metadata,
                if_absent=True,
            )
        except AlreadyExists:  # another delivery (another worker) got there first
            duplicate = duplicate or index == 0  # the first result decides who computed it
            found = storage.stat(result.target)
            if found is None:  # pragma: no cover - created, then deleted at once
                raise
            info = found
        outputs.append(OutputInfo(result.kind, result.uri, info.size, image.width, image.height))
    return tuple(outputs), duplicate


def found(result: Result, info: ObjectInfo) -> OutputInfo:
    """What the event says of a result object found in storage (sizes from its metadata)."""
    width, height = info.metadata.get("cutq-width"), info.metadata.get("cutq-height")
    return OutputInfo(
        kind=result.kind,
        uri=result.uri,
        size=info.size,
        width=int(width) if width else None,
        height=int(height) if height else None,
    )
