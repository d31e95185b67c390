"""The memory stage's batch core: lifecycle, clusters, near-duplicates, consolidation, archive
and watermark sweeps -- and that none of it depends on where batches are cut."""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.agent_log import OUTBOX, SEQ, saved_from
from pipelines.clustering import ClusterParams
from pipelines.ingest import RawRecord
from pipelines.lifecycle import LifecycleParams
from pipelines.memory_state import MemoryParams
from pipelines.stage_batches import MemoryOut, drop_forgotten, memory_batch
from pipelines.store import InMemoryStore, StoredMemory
from schemas import AccessEvent, ClusterEvent, EmbeddedMemory, LifecycleEvent, MemoryEvent

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DIM = 16
P = MemoryParams(stable_size=4, stable_age_s=3600.0)


def _vec(seed: str, theme: int | None = None, noise: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16))
    if theme is None:
        v = rng.normal(size=DIM)
    else:
        v = np.zeros(DIM)
        v[theme] = 1.0
        v += noise * rng.normal(size=DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


def _event(mid: str, when: datetime, agent: str = "ann", **kw: object) -> MemoryEvent:
    fields = {"type": "episodic", "content": f"memory {mid}", "importance": 0.1, **kw}
    return MemoryEvent(
        schema_version=1,
        memory_id=mid,
        agent_id=agent,
        namespace="w",
        event_time=when,
        **fields,  # type: ignore[arg-type]
    )


def _mem(mid: str, when: datetime, vec: np.ndarray | None = None, **kw: object) -> RawRecord:
    ev = _event(mid, when, **kw)
    rec = EmbeddedMemory.build(ev, _vec(mid) if vec is None else vec, "test", 0.0)
    return RawRecord(rec.model_dump_json().encode(), ev.agent_id.encode(), "emb")


def _access(mids: list[str], when: datetime, agent: str = "ann", **kw: object) -> RawRecord:
    a = AccessEvent(namespace="w", agent_id=agent, memory_ids=mids, event_ts=when.timestamp(), **kw)  # type: ignore[arg-type]
    return RawRecord(a.model_dump_json().encode(), agent.encode(), "acc")


def _run(
    records: list[RawRecord],
    states: dict,
    params: MemoryParams = P,
    store: InMemoryStore | None = None,
    sweep: dict[str, float] | None = None,
) -> tuple[dict, list[LifecycleEvent], MemoryOut]:
    out = memory_batch(records, saved_from(states), params, "emb", 0.0, store, "test", sweep)
    assert out.dead == [] and sum(out.lifecycle_kinds.values()) == len(out.lifecycle)
    evs = [LifecycleEvent.model_validate_json(v) for _, v in out.lifecycle]
    return {**states, **out.states}, evs, out


def _core(table: dict) -> dict:
    """Each agent's logical state (snapshot and deltas merged) without its outbox (what the
    last batch sent, not the memory itself) and sequence number (how many batches wrote it)."""
    out = {}
    for k, saved in saved_from(table).items():
        if saved is not None:
            d = dict(saved.state())
            d.pop(OUTBOX, None)
            d.pop(SEQ, None)
            out[k] = d
    return out


def _moves(evs: list[LifecycleEvent]) -> list[tuple[str, str, str]]:
    return [(e.memory_id, e.from_state, e.to_state) for e in evs]


def test_forgotten_memory_decays_when_the_agents_clock_moves_on() -> None:
    states, evs, out = _run([_mem("old", T0)], {})
    assert _moves(evs) == [("old", "created", "active")] and out.forget == []
    states, evs, out = _run([_mem("new", T0 + timedelta(days=60))], states)
    decay = [e for e in evs if e.to_state == "decayed"]
    assert [(e.memory_id, e.cause) for e in decay] == [("old", "clock")]
    assert decay[0].event_ts < (T0 + timedelta(days=60)).timestamp()  # stamped when it fell due
    assert decay[0].retention <= P.lifecycle.decay_threshold + 1e-6
    assert out.forget == [("w", "old")]
    again, evs2, out2 = _run([_mem("new", T0 + timedelta(days=60))], states)
    assert evs2 == [] and out2.forget == []  # a replay changes nothing
    assert _core(again) == _core(states)


def test_recalled_memory_consolidates_instead_of_decaying() -> None:
    states, _, _ = _run([_mem("kept", T0), _mem("lost", T0)], {})
    for h in (1, 2, 3):
        states, evs, _ = _run([_access(["kept"], T0 + timedelta(hours=h))], states)
    assert ("kept", "active", "consolidated") in _moves(evs)
    assert [e.cause for e in evs if e.to_state == "consolidated"] == ["recall"]
    _, evs, out = _run([_mem("later", T0 + timedelta(days=60))], states)
    assert out.forget == [("w", "lost")]
    assert "kept" not in {e.memory_id for e in evs if e.to_state == "decayed"}


def test_a_successful_use_reinforces_a_procedure_more_than_a_recall() -> None:
    recs = [_mem("skill", T0, type="procedural", steps=["a", "b"]), _mem("plain", T0)]
    states, _, _ = _run(recs, {})
    used, _, _ = _run([_access(["skill"], T0 + timedelta(hours=1), outcome="success")], states)
    asked, _, _ = _run([_access(["skill"], T0 + timedelta(hours=1), outcome="failure")], states)
    life_used = _core(used)[b"ann"]["w"]["m"]["skill"]
    life_asked = _core(asked)[b"ann"]["w"]["m"]["skill"]
    assert life_used[4] == life_asked[4] == 1  # one recall each
    assert (life_used[6], life_asked[6]) == (1, 0)  # one successful use


def test_a_near_duplicate_strengthens_the_original_and_is_not_stored() -> None:
    v = _vec("x", theme=2)
    first = [_mem("orig", T0, v)]
    store = _store_for([(0.0, r) for r in first])  # a new batch finds vectors in the store
    states, _, _ = _run(first, {}, store=store)
    near = (v + 0.01 * _vec("n")).astype(np.float32)
    states, evs, out = _run([_mem("copy", T0 + timedelta(minutes=5), near)], states, store=store)
    assert [(e.memory_id, e.cause, e.related) for e in evs] == [("orig", "duplicate", ["copy"])]
    assert out.forget == [("w", "copy")] and out.strengthened == 1
    assert _core(states)[b"ann"]["w"]["m"]["orig"][4] == 1  # counted as a recall
    rows = [StoredMemory(m, "ann", "w", "episodic", "t", 0.1, 0.0, "", v) for m in ("orig", "copy")]
    saved = saved_from(states)
    assert [r.memory_id for r in drop_forgotten(rows, saved)] == ["orig"]
    cache: dict[bytes, Any] = {b"ann": (-1, set())}  # read from another value: not trusted
    assert [r.memory_id for r in drop_forgotten(rows, saved, cache)] == ["orig"]
    seq = saved[b"ann"].seq  # type: ignore[union-attr]
    assert cache[b"ann"] == (seq, {("w", "copy")})  # now from this value
    assert [r.memory_id for r in drop_forgotten(rows, saved, cache)] == ["orig"]
    _, evs, _ = _run([_mem("other", T0 + timedelta(minutes=6), _vec("far"))], states)
    assert _moves(evs) == [("other", "created", "active")]  # a different memory is stored


def test_a_stable_cluster_consolidates_and_is_distilled_into_a_semantic_memory() -> None:
    recs = [
        _mem(
            f"e{i}",
            T0 + timedelta(minutes=30 * i),
            _vec(f"e{i}", theme=1, noise=0.1),
            content=f"fed the river fish at dawn {i}",
        )
        for i in range(5)
    ]
    states, evs, out = _run(recs, {})
    assert len(out.derived) == 1
    rec = EmbeddedMemory.model_validate_json(out.derived[0][1])
    sem = rec.event
    assert sem.type.value == "semantic" and sem.tags == ["derived"]
    # distilled when the 4th member made it big enough (P.stable_size); the 5th joins later
    assert sorted(sem.derived_from or []) == [f"e{i}" for i in range(4)]
    assert "river" in sem.content and "fish" in sem.content
    assert float(rec.vector() @ _vec("e0", theme=1, noise=0.1)) > 0.9  # the centroid
    consolidated = [e for e in evs if e.to_state == "consolidated"]
    assert {e.memory_id for e in consolidated} == {f"e{i}" for i in range(5)}
    assert all(e.cause == "cluster" and sem.memory_id in e.related for e in consolidated)
    # the derived record coming back through the embedded topic is already known
    back = RawRecord(out.derived[0][1], b"ann", "emb")
    again, evs2, out2 = _run([back], states)
    assert evs2 == [] and out2.clusters == [] and _core(again) == _core(states)


def test_consolidated_memories_are_archived_after_long_idleness() -> None:
    params = MemoryParams(lifecycle=LifecycleParams(archive_idle=7 * 86400.0))
    states, _, _ = _run([_mem("k", T0)], {}, params)
    for h in (1, 2, 3):
        states, _, _ = _run([_access(["k"], T0 + timedelta(hours=h))], states, params)
    states, evs, out = _run([_mem("z", T0 + timedelta(days=8))], states, params)
    assert ("k", "consolidated", "archived") in _moves(evs)
    assert out.archive == [("w", "k")]
    assert (
        drop_forgotten(
            [StoredMemory("k", "ann", "w", "episodic", "t", 0.1, 0.0, "", _vec("k"))],
            saved_from(states),
        )
        == []
    )


def test_a_silent_agent_decays_when_the_namespace_watermark_moves_on() -> None:
    states, _, _ = _run([_mem("quiet", T0, agent="bob"), _mem("a1", T0)], {})
    later = (T0 + timedelta(days=60)).timestamp()
    states, evs, out = _run([_mem("a2", T0 + timedelta(days=60))], states, sweep={"w": later})
    assert ("quiet", "active", "decayed") in _moves(evs)  # bob sent nothing
    assert ("w", "quiet") in out.forget and ("w", "a1") in out.forget
    assert {e.agent_id for e in evs if e.memory_id == "quiet"} == {"bob"}


def test_cluster_events_carry_the_centroid_and_are_keyed_by_namespace() -> None:
    _, _, out = _run([_mem("c1", T0, _vec("c1", theme=3, noise=0.01))], {})
    key, value = out.clusters[0]
    ev = ClusterEvent.model_validate_json(value)
    assert key == b"w" and ev.kind == "create" and ev.centroid_f16
    assert ev.position is None  # the memory had none


def test_cluster_events_carry_where_the_memory_formed() -> None:
    pos = {"x": 3.5, "y": -2.0, "z": 1.0}
    _, _, out = _run([_mem("c1", T0, _vec("c1", theme=3, noise=0.01), position=pos)], {})
    ev = ClusterEvent.model_validate_json(out.clusters[0][1])
    assert ev.memory_id == "c1" and ev.position is not None
    assert ev.position.model_dump() == pos


# -- batch boundaries never matter ------------------------------------------------------------

SMALL = MemoryParams(
    lifecycle=LifecycleParams(base_stability=3 * 3600.0),
    clusters=ClusterParams(min_split_size=4, split_radius=0.3),
    stable_size=3,
    stable_age_s=1800.0,
)


@st.composite
def _streams(draw: st.DrawFn) -> list[tuple[float, RawRecord]]:
    """Two agents' memories (a few themes, noisy) and recalls, in event-time order."""
    n = draw(st.integers(4, 22))
    t = T0
    out: list[tuple[float, RawRecord]] = []
    seen: dict[str, list[str]] = {"ann": [], "bob": []}
    for i in range(n):
        t += timedelta(minutes=draw(st.integers(1, 600)))
        agent = draw(st.sampled_from(["ann", "bob"]))
        if seen[agent] and draw(st.integers(0, 4)) == 0:
            mids = draw(st.lists(st.sampled_from(seen[agent]), min_size=1, max_size=2))
            out.append((t.timestamp(), _access(mids, t, agent=agent)))
            continue
        mid = f"{agent}-{i}"
        theme = draw(st.integers(0, 3))
        vec = _vec(mid, theme=theme, noise=draw(st.sampled_from([0.0, 0.2, 0.6])))
        out.append((t.timestamp(), _mem(mid, t, vec, agent=agent)))
        seen[agent].append(mid)
    return out


def _store_for(stream: list[tuple[float, RawRecord]]) -> InMemoryStore:
    store = InMemoryStore(dim=DIM)
    rows = [
        StoredMemory.from_embedded(EmbeddedMemory.model_validate_json(r.value or b""))
        for _, r in stream
        if r.topic == "emb"
    ]
    store.upsert(rows)
    return store


def _per_agent(kvs: list[tuple[bytes | None, bytes]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for _, v in kvs:
        agent = json.loads(v)["agent_id"]
        out.setdefault(agent, []).append(v.decode())
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_streams(), st.lists(st.integers(1, 21), max_size=4), st.booleans())
def test_batch_cuts_and_sweeps_never_change_states_or_events(
    stream: list[tuple[float, RawRecord]], cuts: list[int], sweeps: bool
) -> None:
    store = _store_for(stream)
    records = [r for _, r in stream]
    whole = memory_batch(records, {}, SMALL, "emb", 0.0, store, "test")
    bounds = sorted({c for c in cuts if c < len(records)} | {0, len(records)})
    states: dict[bytes, bytes | None] = {}
    lifecycle: list[tuple[bytes | None, bytes]] = []
    clusters: list[tuple[bytes | None, bytes]] = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        # a sweep may settle everyone up to the next event's time (the lateness assumption)
        sweep = {"w": stream[hi][0]} if sweeps and hi < len(stream) else None
        both = {**states, **{k: None for k in (b"ann", b"bob") if k not in states}}
        out = memory_batch(
            records[lo:hi], saved_from(both), SMALL, "emb", 0.0, store, "test", sweep
        )
        states.update(out.states)
        lifecycle += out.lifecycle
        clusters += out.clusters
    # settle both paths to the end of time and compare everything
    end = {"w": stream[-1][0] + 365 * 86400.0}
    final_whole = memory_batch([], saved_from(whole.states), SMALL, "emb", 0.0, store, "test", end)
    final_cut = memory_batch([], saved_from(states), SMALL, "emb", 0.0, store, "test", end)
    assert _core({**whole.states, **final_whole.states}) == _core({**states, **final_cut.states})
    assert _per_agent(whole.lifecycle + final_whole.lifecycle) == _per_agent(
        lifecycle + final_cut.lifecycle
    )
    assert _per_agent(whole.clusters + final_whole.clusters) == _per_agent(
        clusters + final_cut.clusters
    )


CHURN = {  # on these streams: ~1 split per 10 joins; ~1 merge per 10 new clusters
    "splits": dataclasses.replace(
        SMALL, clusters=ClusterParams(join_threshold=-0.2, split_radius=0.35, min_split_size=3)
    ),
    "merges": dataclasses.replace(
        SMALL, clusters=ClusterParams(join_threshold=0.8, merge_threshold=0.5, split_radius=0.25)
    ),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_streams(), st.lists(st.integers(1, 21), max_size=4), st.sampled_from(sorted(CHURN)))
def test_the_index_learns_each_memorys_cluster_as_the_clusters_hold_it(
    stream: list[tuple[float, RawRecord]], cuts: list[int], churn: str
) -> None:
    """``out.members`` sends only the memories whose cluster changed (a join's one memory, a
    merge's or split's every member); applied batch after batch, through splits, merges,
    decay and removals, they give every memory's cluster as the agent's clusters hold it at
    the end."""
    params = CHURN[churn]
    store = _store_for(stream)
    records = [r for _, r in stream]
    bounds = sorted({c for c in cuts if c < len(records)} | {0, len(records)})
    batches = [records[lo:hi] for lo, hi in zip(bounds, bounds[1:], strict=False)] + [[]]
    end = {"w": stream[-1][0] + 365 * 86400.0}  # the last, empty batch settles everyone
    states: dict[bytes, bytes | None] = {}
    cache: dict[bytes, Any] = {}
    index: dict[tuple[str, str], str] = {}
    for i, batch in enumerate(batches):
        both = {**states, **{k: None for k in (b"ann", b"bob") if k not in states}}
        sweep = end if i == len(batches) - 1 else None
        out = memory_batch(batch, saved_from(both), params, "emb", 0.0, store, "test", sweep, cache)
        states.update(out.states)
        for _, agent, mid, cid in out.members:
            if cid is None:
                index.pop((agent, mid), None)
            else:
                index[(agent, mid)] = cid
        want = {  # the live clusters (the cache holds each agent's as the batch left them)
            (am.agent_id, mid): cid
            for hit in cache.values()
            for am in hit[2].values()
            for mid, cid in am.clusters.where.items()
        }
        assert index == want


def test_effects_a_crash_cut_off_are_sent_again_by_the_next_process() -> None:
    states, _, first = _run([_mem("old", T0), _mem("new", T0 + timedelta(days=60))], {})
    assert first.forget == [("w", "old")] and first.lifecycle
    # the state was saved with its outbox; this process sent it (settled): nothing again
    again = memory_batch([], saved_from(states), P, "emb", 0.0, None, "test", None, None, {b"ann"})
    assert again.lifecycle == [] and again.forget == [] and again.replayed == 0
    # a new process does not know whether it went out: it sends the same records again
    fresh = memory_batch([], saved_from(states), P, "emb", 0.0, None, "test", None, None, set())
    assert fresh.replayed == 1
    assert (fresh.lifecycle, fresh.clusters, fresh.forget) == (
        first.lifecycle,
        first.clusters,
        first.forget,
    )
    # the next batch of that agent keeps what it replayed in its outbox until it went out
    recs = [_mem("later", T0 + timedelta(days=60, hours=1))]
    nxt = memory_batch(recs, saved_from(states), P, "emb", 0.0, None, "test", None, None, set())
    assert nxt.forget == [("w", "old")] and len(nxt.lifecycle) == len(first.lifecycle) + 1


def test_records_redelivered_after_a_crash_act_on_the_state_once() -> None:
    """The state is saved before the source offsets are committed, so a crash redelivers
    records the state already holds: they are skipped (an access must not reinforce twice)."""

    def at(rec: RawRecord, offset: int) -> RawRecord:
        return dataclasses.replace(rec, partition=3, offset=offset)

    t1 = T0 + timedelta(hours=1)
    batch = [at(_mem("m1", T0), 0), at(_access(["m1"], t1), 0)]
    states, _, first = _run(batch, {})
    assert first.skipped == 0 and first.memories == 1
    again, evs, out = _run(batch, states)  # the same records, delivered again
    assert out.skipped == 2 and evs == [] and out.memories == 0
    assert _core(again) == _core(states)
    # a record past the saved offsets still acts: one more recall in the memory's life
    later, _, out = _run([at(_access(["m1"], t1 + timedelta(hours=1)), 1)], states)
    assert out.skipped == 0
    assert _core(later)[b"ann"]["w"]["m"] != _core(states)[b"ann"]["w"]["m"]


def test_cached_states_keep_lives_out_of_the_garbage_collectors_care() -> None:
    """A full collection visits every tracked object: the lives of the agents the stage keeps
    cached are saved as tuples of numbers and strings, which the collector stops tracking."""
    cache: dict[bytes, Any] = {}
    recs = [_mem(f"m{i}", T0 + timedelta(minutes=i)) for i in range(20)]
    out = memory_batch(recs, saved_from({}), P, "emb", 0.0, None, "test", None, cache)
    recs = [_access(["m1", "m2"], T0 + timedelta(hours=1))]
    memory_batch(recs, saved_from(out.states), P, "emb", 0.0, None, "test", None, cache)
    lives = cache[b"ann"][1]["w"]["m"]
    gc.collect()
    assert len(lives) == 20 and not any(gc.is_tracked(raw) for raw in lives.values())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 40_000)), min_size=1, max_size=40))
def test_the_next_due_time_is_the_earliest_of_every_life(ops: list[tuple[int, int]]) -> None:
    """The agent's due-time heap (lazy deletion) answers what a min over every life would,
    through creations, recalls, decays and consolidations; reloaded from its saved state, it
    agrees again."""
    from pipelines.memory_state import AgentMemory, Effects, due

    am = AgentMemory("w", "ann", P)
    t = T0
    for i, (op, dt) in enumerate(ops):
        t += timedelta(seconds=dt)
        fx = Effects()
        if op == 0 or not am.lives:
            am.on_memory(_event(f"m{i}", t), _vec(f"m{i}"), fx)
        elif op == 1:
            am.on_access(sorted(am.lives)[dt % len(am.lives) :][:2], t.timestamp(), True, fx)
        else:
            am.settle(t.timestamp(), fx)
        exact = [d[0] for life in am.lives.values() if (d := due(life, P.lifecycle))]
        assert am._exact_due() == (min(exact) if exact else None)
        assert am.next_due <= (min(exact) if exact else float("inf"))
    back = AgentMemory.from_state("w", "ann", json.loads(json.dumps(am.to_state())), P)
    assert back._exact_due() == am._exact_due()
