"""Counters a worker keeps about its own stages (served at ``/stats``)."""

from __future__ import annotations

import gc
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.stage_batches import MemoryOut


class LatencyWindow:
    """Rolling quantiles (p50, p95, p99) of the last ``size`` latencies, in milliseconds."""

    def __init__(self, size: int = 2000) -> None:
        from river import stats

        self._q = {p: stats.RollingQuantile(p / 100, window_size=size) for p in (50, 95, 99)}
        self.n = 0

    def note(self, seconds: float) -> None:
        ms = seconds * 1000.0
        for q in self._q.values():
            q.update(ms)
        self.n += 1

    def summary(self) -> dict[str, float | int | None]:
        out: dict[str, float | int | None] = {f"p{p}_ms": q.get() for p, q in self._q.items()}
        out["n"] = self.n
        return out


class GcPauses:
    """Time the process spends in Python's cyclic garbage collector (``gc.callbacks``). Every
    thread waits while it runs, so a full (generation 2) collection over a worker's millions of
    long-lived objects (tables, hot-index rows, lives) is added whole to any recall it meets.

    >>> pauses = GcPauses().install()
    >>> _ = gc.collect(0), gc.collect()
    >>> s = pauses.summary(); pauses.uninstall()
    >>> s["gc_collections_gen2"] >= 1 and s["gc_seconds"] > 0
    True
    >>> s["gc_young_pause_max_ms"] >= s["gc_young_pause_p50_ms"] > 0
    True
    """

    def __init__(self, keep: int = 512) -> None:
        self.count = [0, 0, 0]
        self.seconds = 0.0
        self.max_s = 0.0
        self.recent_full: deque[float] = deque(maxlen=keep)  # generation-2 pauses, seconds
        # generation 0 and 1 pauses, seconds: each visits the objects made since the last one
        # (up to the young threshold) and what they hold, so they are short but frequent
        self.recent_young: deque[float] = deque(maxlen=keep)
        self.frozen = 0  # objects moved to the permanent generation at start-up
        self.refreeze: Any = None  # pipelines.runtime.FreezeSurvivors, with ARGOS_GC_REFREEZE
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
            return
        took = time.perf_counter() - self._t0
        gen = info.get("generation", 0)
        self.count[gen] += 1
        self.seconds += took
        self.max_s = max(self.max_s, took)
        (self.recent_full if gen == 2 else self.recent_young).append(took)

    def install(self) -> GcPauses:
        gc.callbacks.append(self)
        return self

    def uninstall(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)

    def summary(self) -> dict[str, float]:
        full, young = sorted(self.recent_full), sorted(self.recent_young)
        return {
            "gc_seconds": self.seconds,
            "gc_collections_gen0": float(self.count[0]),
            "gc_collections_gen1": float(self.count[1]),
            "gc_collections_gen2": float(self.count[2]),
            "gc_max_pause_ms": self.max_s * 1000.0,
            "gc_full_pause_p50_ms": full[len(full) // 2] * 1000.0 if full else 0.0,
            "gc_young_pause_p50_ms": young[len(young) // 2] * 1000.0 if young else 0.0,
            "gc_young_pause_max_ms": young[-1] * 1000.0 if young else 0.0,
            "gc_frozen_objects": float(self.frozen),  # get_freeze_count walks them all: O(n)
            "gc_refrozen": float(self.refreeze.frozen if self.refreeze else 0),
            "gc_refreeze_sweeps": float(self.refreeze.swept if self.refreeze else 0),
        }


@dataclass
class StageStats:
    """Events seen by each stage since the worker started (not durable; Milvus is the truth)."""

    started_ts: float = field(default_factory=time.time)
    ingested: int = 0
    valid: int = 0
    dead_lettered: int = 0
    embedded: int = 0
    stored: int = 0  # rows the store stage handled: upserted, or skipped as already forgotten
    skipped_decayed: int = 0  # skipped: decayed, archived or a near-duplicate
    resent_after_restart: int = 0  # rows written again after the Milvus Lite process restarted
    clustered: int = 0  # memories (embedded records) the memory stage handled
    cluster_changes: int = 0
    cluster_kinds: dict[str, int] = field(default_factory=dict)
    lifecycle_inputs: int = 0  # memories and recalls the memory stage handled
    lifecycle_events: int = 0
    lifecycle_kinds: dict[str, int] = field(default_factory=dict)
    decayed: int = 0  # deleted from the hot collection on decay
    archived: int = 0
    strengthened: int = 0  # near-duplicates that reinforced a memory instead of being stored
    derived: int = 0  # new semantic memories distilled from stable clusters
    rederived: int = 0  # semantic memories distilled again as their cluster grew
    replayed_outboxes: int = 0  # agents whose effects a crash cut off, sent again
    redelivered_skipped: int = 0  # records whose effect the recovered state already held
    analytics_inputs: int = 0
    analytics_restored: bool = False  # the models came from a checkpoint
    predictions: int = 0
    metrics: int = 0
    population_inputs: int = 0
    population_kinds: dict[str, int] = field(default_factory=dict)
    recalls: int = 0
    access_send_failures: int = 0  # recall reinforcements Kafka did not take
    routed: int = 0  # requests forwarded to the worker that owns the agent
    denied: int = 0  # events and requests refused by policy (401/403/429), each audited
    store_retries: int = 0
    stalled_partitions: int = 0  # partitions found with records waiting and no progress
    stall_resumed: int = 0  # of those, found out of Faust's fetcher and put back
    stall_rewound: int = 0  # of those, read again from the stage's position (records dropped)
    gaps_read_again: int = 0  # partitions a stage found skipped records in, and read again
    batches: int = 0
    embed_busy_s: float = 0.0
    store_busy_s: float = 0.0
    first_event_ts: float = 0.0
    last_stored_ts: float = 0.0
    last_store_latency_s: float = 0.0

    def note_memory_batch(self, out: MemoryOut) -> None:
        self.clustered += out.memories
        self.lifecycle_inputs += out.inputs
        self.dead_lettered += len(out.dead)
        self.lifecycle_events += len(out.lifecycle)
        self.cluster_changes += len(out.clusters)
        self.decayed += out.lifecycle_kinds.get("decayed", 0)
        self.archived += out.lifecycle_kinds.get("archived", 0)
        self.strengthened += out.strengthened
        self.derived += out.derived_count
        self.rederived += out.rederived_count
        self.replayed_outboxes += out.replayed
        self.redelivered_skipped += out.skipped
        for kind, n in out.cluster_kinds.items():
            self.cluster_kinds[kind] = self.cluster_kinds.get(kind, 0) + n
        for state, n in out.lifecycle_kinds.items():
            self.lifecycle_kinds[state] = self.lifecycle_kinds.get(state, 0) + n

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["uptime_s"] = round(time.time() - self.started_ts, 3)
        return d


class OperationLatency:
    """Latency by operation (``milvus.upsert``, ``l2.write``, ...): rolling quantiles for
    ``/stats`` ``operations``, and each sample handed to ``record`` (the OTel histogram
    ``argos.operation.latency``). Thread-safe: stages note from their threads.

    >>> ops = OperationLatency()
    >>> with ops.timed("milvus.get"):
    ...     pass
    >>> ops.summary()["milvus.get"]["n"]
    1
    """

    def __init__(self, record: Callable[[str, float], None] | None = None) -> None:
        self._windows: dict[str, LatencyWindow] = {}
        self._record = record
        self._lock = threading.Lock()

    def note(self, operation: str, seconds: float) -> None:
        with self._lock:
            window = self._windows.get(operation)
            if window is None:
                window = self._windows[operation] = LatencyWindow()
            window.note(seconds)
        if self._record is not None:
            self._record(operation, seconds)

    @contextmanager
    def timed(self, operation: str) -> Iterator[None]:
        """Time the block as ``operation`` (also when it raises)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.note(operation, time.perf_counter() - t0)

    def summary(self) -> dict[str, dict[str, float | int | None]]:
        with self._lock:
            return {op: w.summary() for op, w in sorted(self._windows.items())}


class TimedStore:
    """A vector store whose calls are timed as ``<name>.<method>`` (every other attribute is
    the store's own).

    >>> from pipelines.store import InMemoryStore
    >>> ops = OperationLatency()
    >>> store = TimedStore(InMemoryStore(), ops, "milvus")
    >>> store.count("w"), list(ops.summary())
    (0, ['milvus.count'])
    """

    TIMED = frozenset({"upsert", "search", "count", "get", "agent_rows", "delete"})

    def __init__(self, inner: Any, ops: OperationLatency, name: str) -> None:
        self._inner, self._ops, self._name = inner, ops, name

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._inner, attr)
        if attr not in self.TIMED or not callable(value):
            return value
        op = f"{self._name}.{attr}"

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self._ops.timed(op):
                return value(*args, **kwargs)

        return timed
