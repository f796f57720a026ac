"""Which forward passes go first on a shared CPU: interactive ones, by thread priority.

With several model streams on a CPU (onnxruntime), bulk forwards keep every core busy. An
interactive job must neither wait for one of them to end nor share the cores with them as an
equal. So the :class:`~cutq.worker.model_loop.ModelLoop` keeps one extra thread for
interactive jobs (its forwards are urgent: they take the wide session at once, see
:class:`~cutq.worker.models.onnx_engine.Streams`), and a stream thread that runs bulk work
lowers its own CPU priority by :data:`BULK_NICE` (:func:`yield_to_interactive`); the lane
policy (:mod:`cutq.worker.lane_policy`) says when. While an
interactive forward runs, Linux's scheduler then gives it about nine tenths of every core
(weights 1024 against 110 per bulk thread at nice +10); with no interactive work the bulk
threads have the cores to themselves, at full speed: a nice value only matters to threads
that compete.

Lowering is per thread (Linux's ``setpriority`` on a thread id) and one way: an unprivileged
process cannot raise a priority again, so a stream that has run bulk work stays low. Where
that is not possible (not Linux, or refused) bulk runs at normal priority and interactive
forwards still start at once on their own thread.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from cutq.worker.lane_policy import BULK_NICE

log = logging.getLogger(__name__)

__all__ = ["BULK_NICE", "started_pool", "yield_to_interactive"]

_this_thread = threading.local()  # whether this thread's priority was lowered (OS state)


def yield_to_interactive() -> bool:
    """Lower this thread's CPU priority by :data:`BULK_NICE`, once; whether it is lowered."""
    if getattr(_this_thread, "lowered", None) is not None:
        return bool(_this_thread.lowered)
    _this_thread.lowered = False
    if not sys.platform.startswith("linux"):  # elsewhere PRIO_PROCESS means the whole process
        return False
    thread = threading.get_native_id()
    try:
        nice = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, nice + BULK_NICE))
    except OSError as error:
        log.warning("bulk forwards run at normal priority: setpriority failed: %s", error)
        return False
    _this_thread.lowered = True
    return True


def started_pool(threads: int, name: str) -> ThreadPoolExecutor:
    """A thread pool whose ``threads`` are all started now, by the calling thread.

    A pool starts its threads as work comes, from whichever thread submits it, and a new thread
    inherits its creator's priority: a writers' pool first fed by a bulk stream would run every
    encode, upload and event at the stream's lowered priority (and, on a busy machine, hold up
    shutdown). Started here, they keep the caller's."""
    pool = ThreadPoolExecutor(threads, thread_name_prefix=name)
    everyone = threading.Barrier(threads + 1)
    for _ in range(threads):  # no thread is idle until all are started: each submit adds one
        pool.submit(everyone.wait, 30)
    everyone.wait(30)
    return pool
