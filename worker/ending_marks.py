"""Whether a job's ending was already reported: one create-only mark per failed or cancelled job.

Pub/Sub delivers at least once, and the same job may be published twice: a worker must tell
the first report of a job's ending from a repeat (``duplicate: true``), on any worker. A
completed job's proof is its result object (create-only: :mod:`cutq.worker.render.results`). A job
that failed, expired or was cancelled writes nothing, so before its event is published the
worker creates, only if absent, a small mark in the control prefix (:mod:`cutq.core.control`)::

    <control>/endings/<job_id>      {"v": 1, "job_id": …, "status": …, "code": …, "claim": …}

The delivery whose create lands reports the ending as news (``duplicate: false``); every other
delivery of the job, on this worker or another, finds the mark and reports ``duplicate:
true``. The store decides (a generation precondition on Cloud Storage, ``O_EXCL`` on a file
system), so two workers racing on one job cannot both win, which neither the delivery attempt
(a duplicate *publish* is attempt 1 again; an attempt 2 follows a nack that published
nothing) nor a worker's memory could promise.

**A completed job whose news was not published** (its result object was written, then its
event could not be published) leaves an IOU, created when that publish failed::

    <control>/unreported/<job_id>

and the redelivery that finds the result deletes it: the one delete that succeeds reports the
completion as news (the store decides again: of two deletes, one finds the object gone).
Nothing is written for a completion whose event was published: only a repeat pays one
delete request.

**Publish after the mark, and take it back if the publish fails**: the mark is claimed first
(else two racing deliveries could both publish ``duplicate: false`` before either wrote it);
when the event cannot be published the mark is deleted again, so the redelivery that follows
the nack reports the ending as news. Only a process killed between the claim and the publish
(milliseconds) leaves a mark without its event; its redelivery then reports ``duplicate:
true``, exactly as a completed job does whose result object was written just before such a
kill.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from cutq.core.contract import JOB_ID_RE
from cutq.core.errors import AlreadyExists, CutqError, PermanentError
from cutq.core.events import Event
from cutq.core.storage import Stores

log = logging.getLogger(__name__)
ENDINGS_DIR = "endings"
UNREPORTED_DIR = "unreported"
MAX_MARK_BYTES = 64 * 1024


@dataclass(frozen=True)
class Claim:
    """What to undo if this delivery's news cannot be published: delete the mark it created
    (``uri``, ``token`` inside it), or, for a completion (``owed``), leave an IOU at ``uri``."""

    uri: str
    token: str
    generation: int | None
    owed: bool = False


@dataclass(frozen=True)
class Claimed:
    """The event as it is to be published (``duplicate`` set), and the mark it holds if any."""

    event: Event
    claim: Claim | None


class EndingMarks:
    """Create-only marks under ``<control>/endings/`` for jobs ending without a result, and
    the IOUs under ``<control>/unreported/`` of completions whose news was not published."""

    def __init__(self, storage: Stores, control: str) -> None:
        self.storage = storage
        self.control = control.rstrip("/")
        self.prefix = f"{self.control}/{ENDINGS_DIR}"

    def uri(self, job_id: str) -> str | None:
        """The mark of ``job_id``; None for an id that is no object name (never for a job's
        own id, which the contract restricts; ``message-<n>`` of an unparsable message is one
        when its message id is)."""
        return f"{self.prefix}/{job_id}" if JOB_ID_RE.match(job_id) else None

    def claim(self, event: Event) -> Claimed:
        """``event`` as news when this delivery is the first to end its job this way, else as
        a repeat (``duplicate: true``); a completion's result object decides (see
        :meth:`_completed`). A transient storage error propagates (the job goes back to the
        queue); a permanent one (the control prefix refuses writes: a deployment error) is
        logged and the event published as news, never withheld."""
        if event.status == "completed":
            return self._completed(event)
        uri = self.uri(event.job_id)
        if uri is None or event.duplicate:
            return Claimed(event, None)
        token = secrets.token_hex(8)
        body = {
            "v": 1,
            "job_id": event.job_id,
            "status": event.status,
            "code": event.error_code,
            "claim": token,
            "at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        }
        storage = self.storage.open(uri)
        try:
            info = storage.write(
                uri, json.dumps(body).encode(), content_type="application/json", if_absent=True
            )
        except AlreadyExists:
            if self._holds(uri, token):  # a retried create whose first try landed
                return Claimed(event, Claim(uri, token, None))
            return Claimed(event.as_duplicate(), None)
        except PermanentError as error:
            log.error("could not mark the ending of %s (%s): reported as news", event.job_id, error)
            return Claimed(event, None)
        return Claimed(event, Claim(uri, token, info.generation))

    def release(self, claim: Claim | None) -> None:
        """This delivery's news could not be published: take its mark back, or leave the IOU
        of a completion, so the redelivery reports news (best effort: logged)."""
        if claim is None:
            return
        storage = self.storage.open(claim.uri)
        try:
            if claim.owed:
                storage.write(claim.uri, b"{}", content_type="application/json", if_absent=True)
            else:
                storage.delete(claim.uri, generation=claim.generation)
        except AlreadyExists:
            pass  # an IOU already left by an earlier delivery: still owed
        except CutqError as error:
            log.warning(
                "could not undo %s: the redelivery will report a repeat (%s)", claim.uri, error
            )

    def _completed(self, event: Event) -> Claimed:
        """A completion is news when this delivery wrote the result (``duplicate`` false), or
        when it found the result and settles an IOU (the news was never published)."""
        if self.uri(event.job_id) is None:
            return Claimed(event, None)
        uri = f"{self.control}/{UNREPORTED_DIR}/{event.job_id}"
        owed = Claim(uri, "", None, owed=True)
        if not event.duplicate:
            return Claimed(event, owed)
        try:
            settled = self.storage.open(uri).delete(uri)
        except PermanentError as error:
            log.error("could not check %s (%s): reported as a repeat", uri, error)
            return Claimed(event, None)
        return Claimed(replace(event, duplicate=False), owed) if settled else Claimed(event, None)

    def _holds(self, uri: str, token: str) -> bool:
        try:
            mark = json.loads(self.storage.open(uri).read(uri, max_bytes=MAX_MARK_BYTES))
        except (ValueError, CutqError):
            return False
        return isinstance(mark, dict) and mark.get("claim") == token
