"""Batch functions the stream agents run in worker threads: pure cores + (de)serialisation.

They take raw Kafka records and return ready-to-send ``(key, value)`` byte pairs, so the event
loop only moves bytes (every microsecond of Python on the loop is a microsecond the model waits
for the GIL on a 2-core machine).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from pipelines.clustering import AgentClusters, ClusterParams, Fetch, from_state, to_state
from pipelines.embed import Embedder
from pipelines.embed_stage import embed_events
from pipelines.errors import InvalidEventError
from pipelines.ingest import RawRecord, dead_letter, ingest_batch
from pipelines.store import StoredMemory, VectorStore
from schemas import ClusterEvent, EmbeddedMemory

KV = tuple[bytes | None, bytes]


@dataclass
class BatchOut:
    """What one batch produced: records for the next topic, dead letters, counts."""

    forward: list[KV] = field(default_factory=list)
    dead: list[KV] = field(default_factory=list)
    valid: int = 0


def ingest_and_embed(records: Sequence[RawRecord], embedder: Embedder, now: float) -> BatchOut:
    """Validate raw events (bad ones -> dead letters), embed the good ones in one model call."""
    out = BatchOut()
    good, bad = ingest_batch(records, now)
    out.valid = len(good)
    for rec, dl in bad:
        out.dead.append((rec.key, dl.model_dump_json().encode()))
    embedded, refused = embed_events(good, embedder, now)
    for ev, err in refused:
        rec = RawRecord(ev.to_json_bytes(), ev.agent_id.encode(), records[0].topic)
        out.dead.append((rec.key, dead_letter(rec, err, "embed", now).model_dump_json().encode()))
    for m in embedded:
        out.forward.append((m.event.agent_id.encode(), m.model_dump_json().encode()))
    return out


def parse_embedded(records: Sequence[RawRecord], now: float) -> tuple[list[StoredMemory], list[KV]]:
    """Embedded-topic records -> store rows; anything unreadable -> dead letters."""
    rows: list[StoredMemory] = []
    dead: list[KV] = []
    for rec in records:
        try:
            rows.append(
                StoredMemory.from_embedded(EmbeddedMemory.model_validate_json(rec.value or b""))
            )
        except (ValidationError, ValueError) as exc:
            err = InvalidEventError(f"not a valid embedded memory: {str(exc)[:500]}")
            dead.append((rec.key, dead_letter(rec, err, "store", now).model_dump_json().encode()))
    return rows, dead


def cluster_batch(
    records: Sequence[RawRecord],
    states: dict[bytes, bytes | None],
    params: ClusterParams,
    now: float,
    store: VectorStore | None = None,
) -> tuple[dict[bytes, bytes], list[KV], list[KV], dict[str, int]]:
    """Place a batch of embedded memories into their agents' clusters.

    ``states`` maps each agent key to its stored state (JSON: namespace -> ``to_state``), or None.
    ``store`` answers for member vectors a split needs that this batch did not bring.
    Returns the new states of the touched agents, the cluster events, any dead letters, and how
    many changes of each kind happened.
    """
    import json

    loaded: dict[bytes, dict[str, AgentClusters]] = {}
    kinds: dict[str, int] = {}
    changes: list[KV] = []
    dead: list[KV] = []
    for rec in records:
        try:
            m = EmbeddedMemory.model_validate_json(rec.value or b"")
        except (ValidationError, ValueError) as exc:
            err = InvalidEventError(f"not a valid embedded memory: {str(exc)[:500]}")
            dead.append((rec.key, dead_letter(rec, err, "cluster", now).model_dump_json().encode()))
            continue
        key = m.event.agent_id.encode()
        if key not in loaded:
            raw = states.get(key)
            by_ns = json.loads(raw) if raw else {}
            loaded[key] = {
                ns: from_state(st, params, _fetcher(store, ns)) for ns, st in by_ns.items()
            }
        ns = m.event.namespace
        ac = loaded[key].setdefault(
            ns, AgentClusters(m.event.agent_id, params, _fetcher(store, ns))
        )
        try:
            placed = ac.add(m.event.memory_id, m.vector(), m.event.event_ts)
        except ValueError as exc:  # e.g. a zero vector: this memory can never be clustered
            err = InvalidEventError(f"cannot cluster memory: {exc}")
            dead.append((rec.key, dead_letter(rec, err, "cluster", now).model_dump_json().encode()))
            continue
        for ch in placed:
            kinds[ch.kind] = kinds.get(ch.kind, 0) + 1
            ev = ClusterEvent(
                kind=ch.kind,  # type: ignore[arg-type]
                namespace=ns,
                agent_id=ch.agent_id,
                cluster_id=ch.cluster_id,
                memory_id=ch.memory_id,
                size=ch.size,
                radius=ch.radius,
                stability=ch.stability,
                event_ts=ch.ts,
                related=list(ch.related),
            )
            changes.append((key, ev.model_dump_json().encode()))
    new_states = {
        k: json.dumps({ns: to_state(ac) for ns, ac in sorted(by_ns.items())}).encode()
        for k, by_ns in loaded.items()
    }
    return new_states, changes, dead, kinds


def _fetcher(store: VectorStore | None, namespace: str) -> Fetch | None:
    if store is None:
        return None
    return lambda ids: {m.memory_id: m.vector for m in store.get(namespace, ids)}
