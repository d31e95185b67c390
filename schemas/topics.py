"""Topic registry: every Kafka topic of the pipeline, its key, contract and retention.

Names here are suffixes: a deployment puts its prefix in front (``argos`` by default, so
``memory.events`` is the topic ``argos.memory.events``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    suffix: str
    key: str
    contract: str
    cleanup_policy: str
    retention_ms: int
    description: str
    max_message_bytes: int | None = None  # None: the broker's default (1 MiB)


_WEEK = 7 * 24 * 3600 * 1000
_FOREVER = -1
# Largest record the input topics take (Kafka's default, stated so the dead-letter topic can be
# sized from it). A refused record is dead-lettered whole, base64 (4/3 of its size) inside an
# envelope with the reason, so the dead-letter topic takes twice as much: an oversized event
# is refused with a reason, never lost nor stuck (a dead letter the broker refused would stop
# the ingest stage at that record).
EVENT_MAX_BYTES = 1024 * 1024
DEADLETTER_MAX_BYTES = 2 * EVENT_MAX_BYTES

TOPICS: dict[str, Topic] = {
    t.suffix: t
    for t in (
        Topic(
            "memory.events",
            "agent_id",
            "memory_event.v1.json",
            "delete",
            _FOREVER,
            "Memory events as agents publish them (raw bytes; validated by ingest).",
            EVENT_MAX_BYTES,
        ),
        Topic(
            "memory.embedded",
            "agent_id",
            "embedded_memory.v1.json",
            "delete",
            _WEEK,
            "Validated events with their embedding; consumed by store (and later clustering).",
        ),
        Topic(
            "memory.access",
            "agent_id",
            "access_event.v1.json",
            "delete",
            _WEEK,
            "Recalls: which memories an agent recalled, at what simulation time.",
            EVENT_MAX_BYTES,
        ),
        Topic(
            "memory.lifecycle",
            "agent_id",
            "lifecycle_event.v1.json",
            "delete",
            _FOREVER,
            "Every lifecycle transition of every memory (the tombstones of decayed ones too).",
        ),
        Topic(
            "clusters",
            "namespace",
            "cluster_event.v1.json",
            "delete",
            _WEEK,
            "Changes of each agent's memory micro-clusters (create/join/merge/split/remove), "
            "with the centroid; keyed by namespace so the population stage sees them in order.",
        ),
        Topic(
            "analytics.predictions",
            "namespace",
            "prediction_event.v1.json",
            "delete",
            _WEEK,
            "Online models' predictions, each with its progressive score beside a baseline's.",
        ),
        Topic(
            "analytics.metrics",
            "namespace",
            "metric_event.v1.json",
            "delete",
            _WEEK,
            "Dataset statistics, rates, latency quantiles and correlations, per namespace.",
        ),
        Topic(
            "audit",
            "namespace",
            "audit_record.v1.json",
            "delete",
            _FOREVER,
            "Audit trail: every create, recall, lifecycle transition, delete, archive and denied "
            "request (actor, namespace, agent, memory, action, outcome, trace id, time); "
            "audit_id is deterministic, so a record replayed after a crash dedupes.",
        ),
        Topic(
            "deadletter",
            "agent_id (original key)",
            "deadletter.v1.json",
            "delete",
            _FOREVER,
            "Refused events with the reason and the original bytes.",
            DEADLETTER_MAX_BYTES,
        ),
    )
}
