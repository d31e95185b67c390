"""Counters a worker keeps about its own stages (served at ``/stats``)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field


@dataclass
class StageStats:
    """Events seen by each stage since the worker started (not durable; Milvus is the truth)."""

    started_ts: float = field(default_factory=time.time)
    ingested: int = 0
    valid: int = 0
    dead_lettered: int = 0
    embedded: int = 0
    stored: int = 0  # rows the store stage handled: upserted, or skipped as already decayed
    skipped_decayed: int = 0
    clustered: int = 0
    cluster_changes: int = 0
    cluster_kinds: dict[str, int] = field(default_factory=dict)
    lifecycle_inputs: int = 0
    lifecycle_events: int = 0
    lifecycle_kinds: dict[str, int] = field(default_factory=dict)
    decayed: int = 0
    recalls: int = 0
    store_retries: int = 0
    batches: int = 0
    embed_busy_s: float = 0.0
    store_busy_s: float = 0.0
    first_event_ts: float = 0.0
    last_stored_ts: float = 0.0
    last_store_latency_s: float = 0.0

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["uptime_s"] = round(time.time() - self.started_ts, 3)
        return d
