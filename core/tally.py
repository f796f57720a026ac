"""What a run's verdicts add up to: the counts its summary line prints, and its exit code.

Shared by ``cutq run`` and ``cutq submit --wait``, so both count the same way and exit with
the same codes (docs/verdicts.md, "Exit codes"). Verdicts are counted per rendition made
from a preset, flags per completed job; a job that failed is not counted here (the commands
count those themselves). A preset's rendition whose verdict is not known (found already
written where storage keeps no metadata: a ``file://`` rerun) counts as ``unknown`` and
exits like a ``review``: nobody has judged it in this run.
"""

from __future__ import annotations

import threading
from collections import Counter
from enum import IntEnum

from cutq.core.events import Event


class Exit(IntEnum):
    """The exit status of ``cutq run`` and ``cutq submit``; the first that applies wins."""

    OK = 0  # every job completed; every verdict ``pass`` (or ``review`` with --accept-review)
    FAILED = 1  # a job failed, or was left unprocessed (stopped, timed out, not submitted)
    CONFIG = 2  # a configuration or usage error: nothing was done
    VERDICT_FAIL = 3  # every job completed, but a result failed its verdict
    REVIEW = 4  # every job completed, no verdict failed, but a result needs review (or its
    # verdict is unknown: already written where storage keeps no metadata)
    NO_INPUT = 5  # the inputs held no image at all (an empty folder, only skipped files)


VERDICT_ORDER = ("pass", "review", "fail", "unknown")


class Tally:
    """Verdict and flag counts over a run's events; :meth:`add` is safe from any thread."""

    def __init__(self) -> None:
        self.verdicts: Counter[str] = Counter()
        self.flags: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, event: Event) -> None:
        if event.status != "completed":
            return
        with self._lock:
            for output in event.outputs:
                if output.verdict is not None:
                    self.verdicts[output.verdict] += 1
                elif output.preset is not None:
                    self.verdicts["unknown"] += 1
            self.flags.update(event.flags or ())

    def add_unknown(self, renditions: int) -> None:
        """A completed job seen without its event (only its objects): its verdicts unknown."""
        with self._lock:
            self.verdicts["unknown"] += renditions

    def render(self) -> str:
        """One line, e.g. ``verdicts: 4 pass, 1 review, 1 fail · flags: 1 edge, 1 empty``
        (empty when no result had a verdict and no job a flag)."""
        parts = []
        if self.verdicts:
            counts = ", ".join(
                f"{self.verdicts[v]} {v}"
                for v in VERDICT_ORDER
                if v != "unknown" or self.verdicts[v]
            )
            parts.append(f"verdicts: {counts}")
        if self.flags:
            flags = ", ".join(f"{count} {flag}" for flag, count in sorted(self.flags.items()))
            parts.append(f"flags: {flags}")
        elif self.verdicts:
            parts.append("flags: none")
        return " · ".join(parts)

    def exit_code(self, accept_review: bool = False) -> Exit:
        """The status once every job completed: a failed verdict, then a review, then OK."""
        if self.verdicts["fail"]:
            return Exit.VERDICT_FAIL
        if (self.verdicts["review"] or self.verdicts["unknown"]) and not accept_review:
            return Exit.REVIEW
        return Exit.OK
