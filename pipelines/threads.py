"""The stages' worker threads, optionally at a lower OS priority than the event loop's.

A worker has one event-loop thread (Kafka I/O, HTTP, recall on the loop) and one thread per
stage pool (embed, store, memory, analytics). When the cores are busy the OS shares them out
by niceness; a stage thread made nicer (``ARGOS_STAGE_THREAD_NICE``) yields its core to the
loop thread, so a recall waits less. Linux applies ``setpriority(PRIO_PROCESS, tid)`` to one
thread; elsewhere it would renice the whole process, so it is skipped there.

>>> pool = stage_pool("doc", 0)
>>> pool.submit(lambda: 1 + 1).result()
2
>>> pool.shutdown()
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)


def lower_this_thread(nice: int) -> int | None:
    """Add ``nice`` to the calling thread's niceness (Linux); returns the new value or None."""
    if nice <= 0 or not sys.platform.startswith("linux"):
        return None
    tid = threading.get_native_id()
    try:
        now = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, now + nice))
        return os.getpriority(os.PRIO_PROCESS, tid)
    except OSError as exc:  # a sandbox that forbids it: the thread keeps its priority
        log.warning("cannot lower the priority of thread %s: %s", tid, exc)
        return None


def stage_pool(name: str, nice: int) -> ThreadPoolExecutor:
    """A one-thread pool for one stage, its thread ``nice`` steps below the caller's."""
    return ThreadPoolExecutor(
        1, thread_name_prefix=name, initializer=lower_this_thread, initargs=(nice,)
    )
