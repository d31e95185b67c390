"""How a worker process runs: its interpreter settings, and its stages' threads.

:func:`tune_process` applies the worker's runtime settings once, before the app starts: the GIL
switch interval, numpy's BLAS threads, and the garbage collector's thresholds and start-up
freeze (a full collection stops every thread: with a worker's millions of long-lived objects it
takes hundreds of milliseconds, and it runs whenever what survived the young collections grows
by a quarter of the old generation).

:func:`stage_pool` makes the stages' one-thread pools, optionally at a lower OS priority.

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
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pipelines.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


def tune_process(settings: Settings) -> None:
    """The worker's interpreter settings: ``ARGOS_SWITCH_INTERVAL_MS``, ``ARGOS_BLAS_THREADS``,
    ``ARGOS_GC_THRESHOLD``. Call once, before the app is made (see :func:`freeze_start_up`)."""
    import gc

    sys.setswitchinterval(settings.switch_interval_ms / 1000.0)
    if settings.blas_threads:  # for the whole process (the stages' and the recall's numpy)
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=settings.blas_threads, user_api="blas")
    gc.set_threshold(*settings.gc_thresholds())


def freeze_start_up(settings: Settings) -> int:
    """With ``ARGOS_GC_FREEZE``, once the app and the model are loaded: collect, then move every
    object left to the permanent generation (never scanned again). Returns how many."""
    import gc

    if not settings.gc_freeze:
        return 0
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


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


class RecallPriority:
    """Recalls first: while the worker answers a recall, stage work waits to start.

    The recall handler brackets each recall with :meth:`begin` and :meth:`end` (or uses the
    object as a context manager); a stage pool made with it calls :meth:`wait` before each
    piece of work it runs. That wait returns at once when no recall is in flight, and
    otherwise when the last one ends or after ``max_wait_s``, whichever comes first (so a
    steady stream of recalls slows the stages but never stops them). A stage already running
    is not interrupted: the wait is at the boundaries of batches, where a stage thread would
    otherwise take the GIL from the recall for the whole batch. ``max_wait_s`` 0 turns it off.

    >>> p = RecallPriority(0.05)
    >>> with p:
    ...     p.in_flight
    1
    >>> p.wait()  # nothing in flight: no wait
    0.0
    """

    def __init__(self, max_wait_s: float) -> None:
        self.max_wait_s = max_wait_s
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self.in_flight = 0
        self.waits = 0  # stage work that found a recall in flight
        self.waited_s = 0.0  # time stage work spent waiting for recalls
        self.timeouts = 0  # waits that ran out before the recalls ended

    def begin(self) -> None:
        with self._lock:
            self.in_flight += 1
            self._idle.clear()

    def end(self) -> None:
        with self._lock:
            self.in_flight -= 1
            if self.in_flight <= 0:
                self.in_flight = 0
                self._idle.set()

    def __enter__(self) -> RecallPriority:
        self.begin()
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()

    def wait(self) -> float:
        """Block the calling stage thread while a recall is in flight (at most ``max_wait_s``);
        returns the seconds waited."""
        if self.max_wait_s <= 0 or self._idle.is_set():
            return 0.0
        t0 = time.perf_counter()
        ended = self._idle.wait(self.max_wait_s)
        waited = time.perf_counter() - t0
        with self._lock:
            self.waits += 1
            self.waited_s += waited
            self.timeouts += not ended
        return waited

    def stats(self) -> dict[str, float]:
        return {
            "max_wait_ms": self.max_wait_s * 1000.0,
            "waits": self.waits,
            "waited_s": self.waited_s,
            "timeouts": self.timeouts,
        }


class StagePool(ThreadPoolExecutor):
    """A stage's pool whose work first yields to recalls in flight (:class:`RecallPriority`)."""

    def __init__(self, name: str, nice: int, priority: RecallPriority | None) -> None:
        super().__init__(
            1, thread_name_prefix=name, initializer=lower_this_thread, initargs=(nice,)
        )
        self.priority = priority

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def,override]
        if self.priority is None or self.priority.max_wait_s <= 0:
            return super().submit(fn, *args, **kwargs)
        return super().submit(_after_recalls, self.priority, fn, *args, **kwargs)


def _after_recalls(priority: RecallPriority, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    priority.wait()
    return fn(*args, **kwargs)


def stage_pool(name: str, nice: int, priority: RecallPriority | None = None) -> StagePool:
    """A one-thread pool for one stage, its thread ``nice`` steps below the caller's, its work
    waiting for recalls in flight when ``priority`` is given."""
    return StagePool(name, nice, priority)
