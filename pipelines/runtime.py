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
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelines.settings import Settings

log = logging.getLogger(__name__)


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
    object left to the permanent generation (never scanned again). Returns how many. With
    ``ARGOS_GC_REFREEZE`` too, the survivors of every later full collection follow them
    (:class:`FreezeSurvivors`)."""
    import gc

    if not settings.gc_freeze:
        return 0
    gc.collect()
    gc.freeze()
    if settings.gc_refreeze:
        FreezeSurvivors(settings.gc_refreeze).install()
    return gc.get_freeze_count()


class FreezeSurvivors:
    """A ``gc.callbacks`` hook: after each full collection, move what survived it to the
    permanent generation, so the next full collection scans only what the process made since,
    not the whole heap again. A worker's heap grows with its memories (lives, clusters, hot-index
    rows), and each full collection over it stopped every thread for longer (median 1.9 s at
    500k memories, ``bench.growth``). A frozen object is still freed when its last reference
    goes; only a reference cycle that dies frozen waits. So once ``sweep_every`` full
    collections have frozen their survivors and ``min_sweep_s`` have passed since the last
    sweep, the permanent generation is handed back instead (``gc.unfreeze``): the next full
    collection scans everything and frees those cycles. (Freezing keeps Python's old-generation
    count small, so full collections come more often, each short: the time floor keeps the
    long sweeps from coming more often than full collections did before.)

    >>> import gc
    >>> hook = FreezeSurvivors(sweep_every=2, min_sweep_s=0.0).install()
    >>> kept = [[i] for i in range(1000)]
    >>> _ = gc.collect()
    >>> hook.frozen, hook.swept, gc.get_freeze_count() >= 1000
    (1, 0, True)
    >>> _ = gc.collect(), gc.collect()
    >>> hook.frozen, hook.swept, gc.get_freeze_count()
    (2, 1, 0)
    >>> hook.uninstall(); gc.unfreeze()
    """

    def __init__(self, sweep_every: int = 8, min_sweep_s: float = 300.0) -> None:
        if sweep_every < 1:
            raise ValueError(f"sweep_every must be at least 1, not {sweep_every}")
        self.sweep_every = sweep_every
        self.min_sweep_s = min_sweep_s
        self.frozen = 0  # full collections whose survivors were frozen
        self.swept = 0  # full collections after which everything was handed back
        self._since = 0  # freezes since the last sweep
        self._last_sweep = time.monotonic()

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        import gc

        if phase != "stop" or info.get("generation") != 2:
            return
        now = time.monotonic()
        if self._since >= self.sweep_every and now - self._last_sweep >= self.min_sweep_s:
            gc.unfreeze()
            self.swept += 1
            self._since, self._last_sweep = 0, now
        else:
            # right after a full collection the young generations are empty: this freezes
            # exactly its survivors
            gc.freeze()
            self.frozen += 1
            self._since += 1

    def install(self) -> FreezeSurvivors:
        import gc

        gc.callbacks.append(self)
        return self

    def uninstall(self) -> None:
        import gc

        if self in gc.callbacks:
            gc.callbacks.remove(self)

    @staticmethod
    def installed() -> FreezeSurvivors | None:
        """The hook this process runs, if any (for its counters in ``/stats``)."""
        import gc

        return next((cb for cb in gc.callbacks if isinstance(cb, FreezeSurvivors)), None)


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


class RecallSwitching:
    """While any recall is being answered, a shorter GIL switch interval for the process.

    A recall's search makes a handful of numpy calls that each release the GIL; a stage thread
    running Python takes it at once and keeps it until the waiting thread's switch interval
    runs out, so each release costs the recall up to a whole interval (the convoy effect).
    Beside one busy Python thread, a 1,000-row search took 5.2 ms at the median (1 ms
    interval) against 0.4 ms alone, and 1.3 ms with the interval at 0.1 ms during the search
    only (``bench/gil_convoy.py``). Outside recalls the worker keeps its normal interval, so
    the stages do not pay for the extra switching the rest of the time.

    Nested and concurrent recalls share one counter: the interval goes back when the last ends.

    >>> import sys
    >>> sys.setswitchinterval(0.001)
    >>> fast = RecallSwitching(0.001, 0.0001)
    >>> with fast:
    ...     round(sys.getswitchinterval(), 6)
    0.0001
    >>> round(sys.getswitchinterval(), 6)
    0.001
    """

    def __init__(self, normal_s: float, recall_s: float) -> None:
        self.normal_s, self.recall_s = normal_s, recall_s
        self.on = 0 < recall_s < normal_s
        self._lock = threading.Lock()
        self._in_flight = 0

    def __enter__(self) -> RecallSwitching:
        if self.on:
            with self._lock:
                self._in_flight += 1
                if self._in_flight == 1:
                    sys.setswitchinterval(self.recall_s)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.on:
            with self._lock:
                self._in_flight -= 1
                if self._in_flight == 0:
                    sys.setswitchinterval(self.normal_s)


def stage_pool(name: str, nice: int) -> ThreadPoolExecutor:
    """A one-thread pool for one stage, its thread ``nice`` steps below the caller's."""
    return ThreadPoolExecutor(
        1, thread_name_prefix=name, initializer=lower_this_thread, initargs=(nice,)
    )
