"""Counters a worker keeps about its own stages (served at ``/stats``)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

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
