"""Batch functions the stream agents run in worker threads: pure cores + (de)serialisation.

They take raw Kafka records and return ready-to-send ``(key, value)`` byte pairs, so the event
loop only moves bytes (every microsecond of Python on the loop is a microsecond the model waits
for the GIL on a 2-core machine).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import ValidationError

from pipelines.clustering import AgentClusters, ClusterParams, Fetch, from_state, to_state
from pipelines.embed import Embedder
from pipelines.embed_stage import embed_events
from pipelines.errors import InvalidEventError
from pipelines.ingest import RawRecord, dead_letter, ingest_batch
from pipelines.lifecycle import (
    LifecycleParams,
    MemoryLife,
    MemoryState,
    advance,
    on_created,
    on_recalled,
)
from pipelines.store import StoredMemory, VectorStore
from schemas import AccessEvent, ClusterEvent, EmbeddedMemory, LifecycleEvent

KV = tuple[bytes | None, bytes]


@dataclass
class BatchOut:
    """What one batch produced: records for the next topic, dead letters, counts."""

    forward: list[KV] = field(default_factory=list)
    dead: list[KV] = field(default_factory=list)
    valid: int = 0


def _dead(rec: RawRecord, err: InvalidEventError, stage: str, now: float) -> KV:
    """A dead letter for ``rec``, ready to send (keyed like the original)."""
    return (rec.key, dead_letter(rec, err, stage, now).model_dump_json().encode())


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
        out.dead.append(_dead(rec, err, "embed", now))
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
            dead.append(_dead(rec, err, "store", now))
    return rows, dead


def cluster_batch(
    records: Sequence[RawRecord],
    states: dict[bytes, bytes | None],
    params: ClusterParams,
    now: float,
    store: VectorStore | None = None,
    forgotten: set[tuple[str, str]] | None = None,
) -> tuple[dict[bytes, bytes], list[KV], list[KV], dict[str, int]]:
    """Place a batch of embedded memories into their agents' clusters.

    ``states`` maps each agent key to its stored state (JSON: namespace -> ``to_state``), or None.
    ``store`` answers for member vectors a split needs that this batch did not bring;
    ``forgotten`` names ``(namespace, memory_id)`` pairs the lifecycle already decayed (their
    vectors left the store: no use waiting for them).
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
            dead.append(_dead(rec, err, "cluster", now))
            continue
        key = m.event.agent_id.encode()
        if key not in loaded:
            raw = states.get(key)
            by_ns = json.loads(raw) if raw else {}
            loaded[key] = {
                ns: from_state(st, params, _fetcher(store, ns, forgotten))
                for ns, st in by_ns.items()
            }
        ns = m.event.namespace
        ac = loaded[key].setdefault(
            ns, AgentClusters(m.event.agent_id, params, _fetcher(store, ns, forgotten))
        )
        try:
            placed = ac.add(m.event.memory_id, m.vector(), m.event.event_ts)
        except ValueError as exc:  # e.g. a zero vector: this memory can never be clustered
            err = InvalidEventError(f"cannot cluster memory: {exc}")
            dead.append(_dead(rec, err, "cluster", now))
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


def _fetcher(
    store: VectorStore | None,
    namespace: str,
    forgotten: set[tuple[str, str]] | None = None,
    wait_s: float = 2.0,
) -> Fetch | None:
    """Member vectors for a split, from the store. The store stage consumes the same records
    beside this one and may lag a little, so missing vectors are asked again for up to
    ``wait_s`` -- unless a missing member already decayed out of the store: then the split is
    skipped at once (see the README)."""
    if store is None:
        return None
    gone = {mid for ns, mid in forgotten or () if ns == namespace}

    def fetch(ids: list[str]) -> dict[str, np.ndarray]:
        import time

        found: dict[str, np.ndarray] = {}
        deadline = time.monotonic() + wait_s
        while True:
            want = [i for i in ids if i not in found]
            found.update({m.memory_id: m.vector for m in store.get(namespace, want)})
            missing = [i for i in ids if i not in found]
            if not missing or time.monotonic() >= deadline or gone.intersection(missing):
                return found
            time.sleep(0.1)

    return fetch


def lifecycle_batch(
    records: Sequence[RawRecord],
    states: dict[bytes, bytes | None],
    params: LifecycleParams,
    embedded_topic: str,
    now: float,
) -> tuple[dict[bytes, bytes], list[KV], list[tuple[str, str]], list[KV], dict[str, int]]:
    """New memories (embedded topic) and recalls (access topic) -> lifecycle transitions.

    Per agent and namespace the state holds a clock (the latest event time seen: the agent's
    watermark) and every memory's life. After the batch, each touched agent's memories are
    advanced to its clock. Returns new states, lifecycle events, ``(namespace, memory_id)`` pairs
    to delete from the hot collection (they decayed), dead letters, and transitions per target
    state.
    """
    import json

    loaded: dict[bytes, dict[str, dict[str, Any]]] = {}
    events: list[KV] = []
    dead: list[KV] = []
    touched: set[tuple[bytes, str]] = set()
    kinds: dict[str, int] = {}

    def ns_state(key: bytes, ns: str) -> dict[str, Any]:
        if key not in loaded:
            raw = states.get(key)
            loaded[key] = json.loads(raw) if raw else {}
        return loaded[key].setdefault(ns, {"clock": 0.0, "m": {}})

    def emit(key: bytes, ns: str, agent: str, old: MemoryLife, new: MemoryLife, ts: float) -> None:
        ev = LifecycleEvent(
            namespace=ns,
            agent_id=agent,
            memory_id=new.memory_id,
            from_state=old.state.value,
            to_state=new.state.value,
            event_ts=ts,
            retention=round(new.retention(params, ts), 6),
            stability_s=new.stability(params),
            recalls=new.recalls,
        )
        events.append((key, ev.model_dump_json().encode()))
        kinds[ev.to_state] = kinds.get(ev.to_state, 0) + 1

    for rec in records:
        try:
            if rec.topic == embedded_topic:
                m = EmbeddedMemory.model_validate_json(rec.value or b"").event
                key, st = m.agent_id.encode(), ns_state(m.agent_id.encode(), m.namespace)
                st["clock"] = max(st["clock"], m.event_ts)
                if m.memory_id not in st["m"]:
                    life = on_created(
                        m.memory_id, m.type.value, m.importance, m.emotion.arousal, m.event_ts
                    )
                    born = MemoryLife(life.memory_id, life.kind, life.importance, life.arousal)
                    emit(key, m.namespace, m.agent_id, born, life, m.event_ts)
                    st["m"][m.memory_id] = _dump_life(life)
                touched.add((key, m.namespace))
            else:
                a = AccessEvent.model_validate_json(rec.value or b"")
                key, st = a.agent_id.encode(), ns_state(a.agent_id.encode(), a.namespace)
                ts = st["clock"] if a.event_ts is None else a.event_ts
                st["clock"] = max(st["clock"], ts)
                for mid in a.memory_ids:
                    if mid in st["m"]:
                        life = _load_life(mid, st["m"][mid])
                        st["m"][mid] = _dump_life(on_recalled(life, ts))
                touched.add((key, a.namespace))
        except (ValidationError, ValueError) as exc:
            err = InvalidEventError(f"not a valid lifecycle input: {str(exc)[:500]}")
            dead.append(_dead(rec, err, "lifecycle", now))
    deletes: list[tuple[str, str]] = []
    for key, ns in sorted(touched):
        st = loaded[key][ns]
        clock = st["clock"]
        agent = key.decode()
        for mid, raw_life in st["m"].items():
            life = _load_life(mid, raw_life)
            if life.state not in (MemoryState.active, MemoryState.consolidated):
                continue
            new = advance(life, params, clock)
            if new.state is not life.state:
                emit(key, ns, agent, life, new, clock)
                st["m"][mid] = _dump_life(new)
                if new.state is MemoryState.decayed:
                    deletes.append((ns, mid))
    new_states = {k: json.dumps(v, sort_keys=True).encode() for k, v in loaded.items()}
    return new_states, events, deletes, dead, kinds


def _dump_life(life: MemoryLife) -> list[Any]:
    return [
        life.state.value,
        life.kind,
        life.importance,
        life.arousal,
        life.recalls,
        life.reinforced_ts,
    ]


def _load_life(memory_id: str, raw: list[Any]) -> MemoryLife:
    state, kind, importance, arousal, recalls, reinforced = raw
    return MemoryLife(memory_id, kind, importance, arousal, MemoryState(state), recalls, reinforced)


def drop_forgotten(
    rows: Sequence[StoredMemory], states: dict[bytes, bytes | None]
) -> list[StoredMemory]:
    """Rows whose memory the lifecycle has not already decayed (by the lifecycle table).

    A redelivered or late store of a memory must not bring it back after the lifecycle removed
    it from the hot collection.
    """
    gone = forgotten_in(states)
    return [r for r in rows if (r.namespace, r.memory_id) not in gone]


def forgotten_in(states: dict[bytes, bytes | None]) -> set[tuple[str, str]]:
    """``(namespace, memory_id)`` of every decayed or deleted memory in lifecycle states."""
    import json

    gone: set[tuple[str, str]] = set()
    for raw in states.values():
        if not raw:
            continue
        for ns, st in json.loads(raw).items():
            for mid, life in st["m"].items():
                if life[0] in (MemoryState.decayed.value, MemoryState.deleted.value):
                    gone.add((ns, mid))
    return gone
