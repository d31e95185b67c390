from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from pipelines.ingest import RawRecord
from pipelines.lifecycle import LifecycleParams
from pipelines.stage_batches import lifecycle_batch
from schemas import AccessEvent, EmbeddedMemory, LifecycleEvent, MemoryEvent, MemoryType

T0 = datetime(2026, 1, 1, tzinfo=UTC)
P = LifecycleParams()


def _mem(mid: str, when: datetime, importance: float = 0.1) -> RawRecord:
    ev = MemoryEvent(
        schema_version=1,
        memory_id=mid,
        agent_id="ann",
        namespace="w",
        type=MemoryType.episodic,
        content=f"memory {mid}",
        importance=importance,
        event_time=when,
    )
    rec = EmbeddedMemory.build(ev, np.ones(4, dtype=np.float32) / 2, "test", 0.0)
    return RawRecord(rec.model_dump_json().encode(), b"ann", "emb")


def _access(mids: list[str], when: datetime) -> RawRecord:
    a = AccessEvent(namespace="w", agent_id="ann", memory_ids=mids, event_ts=when.timestamp())
    return RawRecord(a.model_dump_json().encode(), b"ann", "acc")


def _run(records: list[RawRecord], states: dict) -> tuple[dict, list[LifecycleEvent], list]:
    new, events, deletes, dead, kinds = lifecycle_batch(records, states, P, "emb", 0.0)
    assert dead == [] and sum(kinds.values()) == len(events)
    return new, [LifecycleEvent.model_validate_json(v) for _, v in events], deletes


def test_forgotten_memory_decays_when_the_agents_clock_moves_on() -> None:
    states, evs, deletes = _run([_mem("old", T0)], {})
    assert [(e.from_state, e.to_state) for e in evs] == [("created", "active")]
    assert deletes == []
    states, evs, deletes = _run([_mem("new", T0 + timedelta(days=60))], states)
    assert ("old", "active", "decayed") in [(e.memory_id, e.from_state, e.to_state) for e in evs]
    assert deletes == [("w", "old")]
    # a replay of the same records changes nothing and emits nothing
    again, evs2, deletes2 = _run([_mem("new", T0 + timedelta(days=60))], states)
    assert evs2 == [] and deletes2 == [] and again == states


def test_recalled_memory_consolidates_instead_of_decaying() -> None:
    states, _, _ = _run([_mem("kept", T0), _mem("lost", T0)], {})
    for h in (1, 2, 3):
        states, evs, _ = _run([_access(["kept"], T0 + timedelta(hours=h))], states)
    assert ("kept", "consolidated") in [(e.memory_id, e.to_state) for e in evs]
    _, evs, deletes = _run([_mem("later", T0 + timedelta(days=60))], states)
    assert deletes == [("w", "lost")]
    assert "kept" not in {e.memory_id for e in evs if e.to_state == "decayed"}


def test_store_skips_memories_the_lifecycle_already_decayed() -> None:
    from pipelines.stage_batches import drop_forgotten
    from pipelines.store import StoredMemory

    states, _, _ = _run([_mem("old", T0)], {})
    states, _, deletes = _run([_mem("new", T0 + timedelta(days=60))], states)
    assert deletes == [("w", "old")]
    v = np.ones(4, dtype=np.float32)
    rows = [
        StoredMemory(m, "ann", ns, "episodic", "t", 0.1, 0.0, "", v)
        for m, ns in (("old", "w"), ("new", "w"), ("old", "elsewhere"))
    ]
    kept = drop_forgotten(rows, states)
    assert [(r.memory_id, r.namespace) for r in kept] == [("new", "w"), ("old", "elsewhere")]
