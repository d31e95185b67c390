from __future__ import annotations

import base64
import collections
import itertools
import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.ingest import RawRecord
from pipelines.population import (
    NamespaceClusters,
    PopulationChange,
    PopulationParams,
    decode_centroid,
    encode_centroid,
    from_state,
    near,
    population_batch,
    summary,
    to_state,
)
from schemas import ClusterEvent, DeadLetter, Position


def _ev(
    agent: str,
    cid: str,
    vec: np.ndarray | list[float] | None,
    size: int = 3,
    kind: str = "join",
    related: list[str] | None = None,
    ns: str = "sim",
    ts: float = 0.0,
    at: tuple[float, float] | None = None,
) -> ClusterEvent:
    return ClusterEvent(
        position=None if at is None else Position(x=at[0], y=at[1]),
        kind=kind,  # type: ignore[arg-type]
        namespace=ns,
        agent_id=agent,
        cluster_id=cid,
        size=size,
        radius=0.0,
        stability=1.0,
        event_ts=ts,
        related=related or [],
        centroid_f16=None if vec is None else encode_centroid(np.asarray(vec)),
    )


def _angle(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg)), 0.0]


def _invariants(nc: NamespaceClusters, live: dict[str, int] | None = None) -> None:
    """Every placed agent cluster is in exactly one live population cluster, whose weight is the
    sum of its members' sizes; ``live`` (key -> size) is what the agents' side says exists."""
    if live is not None:
        assert {k: ac.weight for k, ac in nc.clusters.items()} == live
    placed = [k for k, ac in nc.clusters.items() if ac.weight >= nc.params.min_size]
    members = [k for p in nc.pops.values() for k in p.members]
    assert sorted(members) == sorted(placed)  # each exactly once
    for k, ac in nc.clusters.items():
        if ac.weight >= nc.params.min_size:
            assert ac.pop_id is not None and k in nc.pops[ac.pop_id].members
        else:
            assert ac.pop_id is None
    for p in nc.pops.values():
        assert p.members
        assert p.weight == sum(nc.clusters[k].weight for k in p.members)
        assert p.agents == collections.Counter(nc.clusters[k].agent_id for k in p.members)
        want = sum(nc.clusters[k].contribution().astype(np.float64) for k in p.members)
        assert np.allclose(p.total, want, atol=1e-3 * p.weight)  # the running sum stays exact-ish
    assert sum(p.weight for p in nc.pops.values()) == sum(nc.clusters[k].weight for k in placed)
    assert nc.by_agent == {
        a: {k: None for k, ac in nc.clusters.items() if ac.agent_id == a}
        for a in {ac.agent_id for ac in nc.clusters.values()}
    }
    rows = summary(nc)
    assert [r["pop_id"] for r in rows] == sorted(
        nc.pops, key=lambda i: (-nc.pops[i].weight, int(i[3:]))
    )
    for r in rows:
        assert 0.0 <= float(r["cohesion"]) <= 1.0  # type: ignore[arg-type]
        assert r["shared"] == (int(r["n_agents"]) >= 2)  # type: ignore[call-overload]


def test_centroid_codec_round_trips_to_a_unit_vector_and_refuses_garbage() -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(size=384)
    back = decode_centroid(encode_centroid(v))
    assert back.dtype == np.float32 and back.shape == (384,)
    assert abs(float(np.linalg.norm(back)) - 1.0) < 1e-5
    assert float(back @ (v / np.linalg.norm(v))) > 0.9999
    nan = base64.b64encode(np.array([1.0, np.nan], dtype="<f2").tobytes()).decode()
    for bad in ["", "!!!not base64", "AAA=", "AAAA", nan]:
        with pytest.raises(ValueError):
            decode_centroid(bad)
    with pytest.raises(ValueError):
        encode_centroid(np.zeros(4))


def test_similar_clusters_of_two_agents_share_a_population_cluster() -> None:
    nc = NamespaceClusters("sim")
    a = nc.apply(_ev("agent-a", "agent-a/c1", [1.0, 0.05, 0.0], size=4, kind="create"))
    b = nc.apply(_ev("agent-b", "agent-b/c7", [1.0, 0.0, 0.05], size=2, kind="create"))
    c = nc.apply(_ev("agent-c", "agent-c/c1", [0.0, 0.0, 1.0], size=5, kind="create"))
    assert [(x.kind, x.pop_id, x.n_agents, x.size) for x in a + b + c] == [
        ("create", "pop1", 1, 4),
        ("join", "pop1", 2, 6),
        ("create", "pop2", 1, 5),
    ]
    assert nc.clusters["agent-a|agent-a/c1"].pop_id == nc.clusters["agent-b|agent-b/c7"].pop_id
    rows = summary(nc)
    assert [(r["pop_id"], r["n_agents"], r["size"], r["shared"]) for r in rows] == [
        ("pop1", 2, 6, True),
        ("pop2", 1, 5, False),
    ]
    assert rows[0]["agents"] == ["agent-a", "agent-b"] and rows[0]["n_agent_clusters"] == 2
    assert 0.99 < float(rows[0]["cohesion"]) <= 1.0  # type: ignore[arg-type]
    _invariants(nc)


def test_a_moved_cluster_leaves_and_an_emptied_population_cluster_is_removed() -> None:
    nc = NamespaceClusters("sim")
    nc.apply(_ev("a", "a/c1", _angle(0), size=3, kind="create"))
    nc.apply(_ev("b", "b/c1", _angle(10), size=1, kind="create"))
    nc.apply(_ev("c", "c/c1", _angle(90), size=2, kind="create"))
    # b's cluster turns towards c's: it leaves pop1 and joins pop2
    moved = nc.apply(_ev("b", "b/c1", _angle(85), size=2))
    assert [(x.kind, x.pop_id, x.key, x.size) for x in moved] == [
        ("leave", "pop1", "b|b/c1", 3),
        ("join", "pop2", "b|b/c1", 4),
    ]
    # a small move stays where it is and reports nothing
    assert nc.apply(_ev("a", "a/c1", _angle(3), size=4)) == []
    assert nc.clusters["a|a/c1"].pop_id == "pop1" and nc.pops["pop1"].weight == 4
    # a's cluster empties: pop1 goes away
    gone = nc.apply(_ev("a", "a/c1", None, size=0, kind="remove"))
    assert [(x.kind, x.pop_id, x.size) for x in gone] == [
        ("leave", "pop1", 0),
        ("remove", "pop1", 0),
    ]
    assert list(nc.pops) == ["pop2"] and "a|a/c1" not in nc.clusters
    _invariants(nc, {"b|b/c1": 2, "c|c/c1": 2})


def test_population_clusters_that_come_close_merge_heavier_survives() -> None:
    nc = NamespaceClusters("sim")
    nc.apply(_ev("a", "a/c1", _angle(0), size=3, kind="create"))
    nc.apply(_ev("b", "b/c1", _angle(45), size=5, kind="create"))  # cos 45° < 0.75: its own
    assert list(nc.pops) == ["pop1", "pop2"]
    merged = nc.apply(_ev("b", "b/c1", _angle(20), size=5))  # cos 20° >= 0.9
    assert merged == [PopulationChange("merge", "pop2", None, 2, 8, 0.0, ("pop1",))]
    assert list(nc.pops) == ["pop2"] and nc.clusters["a|a/c1"].pop_id == "pop2"
    _invariants(nc)
    tie = NamespaceClusters("sim")
    tie.apply(_ev("a", "a/c1", _angle(0), size=2, kind="create"))
    tie.apply(_ev("b", "b/c1", _angle(45), size=2, kind="create"))
    assert [c.pop_id for c in tie.apply(_ev("b", "b/c1", _angle(20), size=2))] == ["pop1"]
    _invariants(tie)


def test_agent_side_merge_and_split_events() -> None:
    nc = NamespaceClusters("sim")
    nc.apply(_ev("a", "a/c1", _angle(0), size=3, kind="create"))
    nc.apply(_ev("a", "a/c2", _angle(80), size=2, kind="create"))
    assert len(nc.pops) == 2
    # a/c1 absorbs a/c2 (agent-side merge): a/c2 no longer exists
    ch = nc.apply(_ev("a", "a/c1", _angle(30), size=5, kind="merge", related=["a/c2"]))
    assert ("leave", "a|a/c2") in [(c.kind, c.key) for c in ch]
    assert set(nc.clusters) == {"a|a/c1"} and len(nc.pops) == 1
    # a/c1 splits: it shrinks, and the new part arrives as its own create
    nc.apply(_ev("a", "a/c1", _angle(0), size=3, kind="split", related=["a/c3"]))
    nc.apply(_ev("a", "a/c3", _angle(90), size=2, kind="create", related=["a/c1"]))
    _invariants(nc, {"a|a/c1": 3, "a|a/c3": 2})
    assert len(nc.pops) == 2


def test_redelivered_and_centroidless_events() -> None:
    nc = NamespaceClusters("sim")
    first = _ev("a", "a/c1", _angle(0), size=3, kind="create")
    nc.apply(first)
    nc.apply(_ev("b", "b/c1", _angle(5), size=2, kind="create"))
    before = json.dumps(to_state(nc))
    assert nc.apply(first) == [] and json.dumps(to_state(nc)) == before  # bit for bit
    # no centroid: a known cluster's size changes; an unknown one cannot be placed
    assert nc.apply(_ev("a", "a/c1", None, size=4)) == []
    assert nc.pops["pop1"].weight == 6
    assert nc.apply(_ev("z", "z/c1", None, size=4)) == [] and "z|z/c1" not in nc.clusters
    with pytest.raises(ValueError, match="dimensions"):
        nc.apply(_ev("a", "a/c1", [1.0, 0.0], size=5))
    with pytest.raises(ValueError, match="namespace"):
        nc.apply(_ev("a", "a/c1", _angle(0), ns="other"))
    assert json.dumps(to_state(nc)) != before and nc.pops["pop1"].weight == 6  # refused: no change
    _invariants(nc, {"a|a/c1": 4, "b|b/c1": 2})


def test_min_size_keeps_small_clusters_out() -> None:
    nc = NamespaceClusters("sim", PopulationParams(min_size=3))
    assert nc.apply(_ev("a", "a/c1", _angle(0), size=2, kind="create")) == []
    assert [c.kind for c in nc.apply(_ev("a", "a/c1", _angle(0), size=3))] == ["create"]
    assert [c.kind for c in nc.apply(_ev("a", "a/c1", _angle(0), size=2))] == ["leave", "remove"]
    _invariants(nc, {"a|a/c1": 2})


def _agent_events(seed: int, steps: int, agents: int = 3, dim: int = 6) -> Iterator[ClusterEvent]:
    """Random but consistent agent-side cluster events: create, join, remove, merge, split,
    plus redeliveries and events without a centroid."""
    rng = np.random.default_rng(seed)
    themes = rng.normal(size=(4, dim))
    live: dict[tuple[str, str], tuple[int, np.ndarray]] = {}
    nxt = dict.fromkeys(range(agents), 0)
    last: ClusterEvent | None = None

    def vec_near(base: np.ndarray) -> np.ndarray:
        v = base + 0.4 * rng.normal(size=dim)
        return v / np.linalg.norm(v)

    def new_cid(a: int) -> str:
        nxt[a] += 1
        return f"agent-{a}/c{nxt[a]}"

    for t in range(steps):
        a = int(rng.integers(agents))
        agent = f"agent-{a}"
        mine = sorted(cid for ag, cid in live if ag == agent)
        op = int(rng.integers(7))
        ts = float(t)
        if op == 0 or not mine:
            cid = new_cid(a)
            v = vec_near(themes[rng.integers(len(themes))])
            live[(agent, cid)] = (1, v)
            last = _ev(agent, cid, v, 1, "create", ts=ts)
        elif op == 1 and last is not None:
            pass  # redeliver the last event
        elif op == 2:
            cid = mine[int(rng.integers(len(mine)))]
            size, v = live[(agent, cid)]
            if size == 1:
                del live[(agent, cid)]
                last = _ev(agent, cid, None, 0, "remove", ts=ts)
            else:
                live[(agent, cid)] = (size - 1, v)
                last = _ev(agent, cid, v, size - 1, "remove", ts=ts)
        elif op == 3 and len(mine) >= 2:
            keep, gone = (mine[i] for i in rng.choice(len(mine), 2, replace=False))
            (s1, v1), (s2, v2) = live[(agent, keep)], live.pop((agent, gone))
            v = s1 * v1 + s2 * v2
            v = v / np.linalg.norm(v)
            live[(agent, keep)] = (s1 + s2, v)
            last = _ev(agent, keep, v, s1 + s2, "merge", [gone], ts=ts)
        elif op == 4 and live[(agent, mine[-1])][0] >= 2:
            old = mine[-1]
            size, v = live[(agent, old)]
            cid = new_cid(a)
            part = int(rng.integers(1, size))
            v_old, v_new = vec_near(v), vec_near(themes[rng.integers(len(themes))])
            live[(agent, old)] = (size - part, v_old)
            live[(agent, cid)] = (part, v_new)
            yield _ev(agent, old, v_old, size - part, "split", [cid], ts=ts)
            last = _ev(agent, cid, v_new, part, "create", [old], ts=ts)
        elif op == 5:
            cid = mine[int(rng.integers(len(mine)))]
            size, v = live[(agent, cid)]
            live[(agent, cid)] = (size + 1, v)
            last = _ev(agent, cid, None, size + 1, "join", ts=ts)  # no centroid sent
        else:
            cid = mine[int(rng.integers(len(mine)))]
            size, v = live[(agent, cid)]
            v = vec_near(0.5 * v + 0.5 * vec_near(v))
            live[(agent, cid)] = (size + 1, v)
            last = _ev(agent, cid, v, size + 1, "join", ts=ts)
        if last is not None:
            yield last


def _live_sizes(events: list[ClusterEvent]) -> dict[str, int]:
    live: dict[str, int] = {}
    for ev in events:
        if ev.kind == "merge":
            for gone in ev.related:
                live.pop(f"{ev.agent_id}|{gone}", None)
        key = f"{ev.agent_id}|{ev.cluster_id}"
        if ev.size == 0:
            live.pop(key, None)
        else:
            live[key] = ev.size
    return live


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(1, 150),
    st.floats(0.0, 0.95),
    st.floats(0.5, 0.99),
    st.integers(1, 3),
)
def test_invariants_hold_over_random_event_sequences(
    seed: int, steps: int, join: float, merge: float, min_size: int
) -> None:
    params = PopulationParams(join_threshold=join, merge_threshold=merge, min_size=min_size)
    nc = NamespaceClusters("sim", params)
    seen: list[ClusterEvent] = []
    for ev in _agent_events(seed, steps):
        seen.append(ev)
        for ch in nc.apply(ev):
            assert ch.kind in {"create", "join", "leave", "merge", "remove"}
            if ch.kind == "remove":
                assert ch.pop_id not in nc.pops and ch.size == 0
            if ch.kind == "merge":
                assert ch.related and ch.related[0] not in nc.pops
        _invariants(nc, _live_sizes(seen))


def _themed(seed: int, n: int) -> list[ClusterEvent]:
    return list(_agent_events(seed, n, agents=4, dim=8))


def test_state_round_trip_is_exact_and_continues_identically() -> None:
    events = _themed(7, 300)
    params = PopulationParams(join_threshold=0.6, merge_threshold=0.85)
    straight = NamespaceClusters("sim", params)
    restored = NamespaceClusters("sim", params)
    a_changes: list[PopulationChange] = []
    b_changes: list[PopulationChange] = []
    for i, ev in enumerate(events):
        a_changes += straight.apply(ev)
        if i % 13 == 0:  # restart now and then
            restored = from_state(json.loads(json.dumps(to_state(restored))), params)
        b_changes += restored.apply(ev)
    assert a_changes == b_changes
    assert {c.kind for c in a_changes} >= {"create", "join", "leave", "remove"}
    assert json.dumps(to_state(straight)) == json.dumps(to_state(restored))
    again = from_state(to_state(straight), params)
    for k, ac in straight.clusters.items():
        assert again.clusters[k].centroid.tobytes() == ac.centroid.tobytes()
    for pid, p in straight.pops.items():
        assert again.pops[pid].total.tobytes() == p.total.tobytes()
        assert again.pops[pid].agents == p.agents and again.pops[pid].weight == p.weight
    assert summary(again) == summary(straight)


def test_same_events_same_ids_and_bits() -> None:
    def run() -> tuple[str, list[PopulationChange]]:
        nc = NamespaceClusters("sim", PopulationParams(join_threshold=0.5, merge_threshold=0.8))
        changes = [c for ev in _themed(11, 400) for c in nc.apply(ev)]
        return json.dumps(to_state(nc)), changes

    first, second = run(), run()
    assert first == second
    assert any(c.kind == "merge" for c in first[1])


def test_population_batch_groups_by_namespace_and_dead_letters_garbage() -> None:
    params = PopulationParams()
    events = [
        _ev("a", "a/c1", _angle(0), kind="create", ns="ns1"),
        _ev("b", "b/c1", _angle(2), kind="create", ns="ns1"),
        _ev("a", "a/c1", _angle(0), kind="create", ns="ns2"),
        _ev("c", "c/c1", _angle(90), kind="create", ns="ns1"),
    ]
    recs = [
        RawRecord(e.model_dump_json().encode(), e.agent_id.encode(), "argos.clusters")
        for e in events
    ]
    bad_centroid = events[0].model_copy(update={"centroid_f16": "AAA="}).model_dump_json().encode()
    wrong_dim = _ev("d", "d/c1", [1.0, 0.0], kind="create", ns="ns1").model_dump_json().encode()
    garbage = [
        RawRecord(b"{not json", b"k", "argos.clusters", 0, 17),
        RawRecord(None, None, "argos.clusters"),
        RawRecord(b'{"kind": "create"}', b"k", "argos.clusters"),
        RawRecord(bad_centroid, b"a", "argos.clusters"),
        RawRecord(wrong_dim, b"d", "argos.clusters"),
    ]
    batch = recs[:2] + garbage[:3] + recs[2:] + garbage[3:]
    states, dead, counts = population_batch(batch, {}, params, now=123.0)
    assert set(states) == {b"ns1", b"ns2"}
    assert counts == {"events": 4, "create": 3, "join": 1}
    assert len(dead) == 5
    letters = [DeadLetter.model_validate_json(v) for _, v in dead]
    assert all(d.stage == "population" and d.refused_ts == 123.0 for d in letters)
    assert [k for k, _ in dead] == [r.key for r in garbage]
    assert letters[0].source_offset == 17
    ns1 = from_state(json.loads(states[b"ns1"]), params)
    assert [(r["n_agents"], r["size"]) for r in summary(ns1)] == [(2, 6), (1, 3)]
    # two batches with the state carried over == one batch
    s1, _, _ = population_batch(recs[:2], {b"ns1": None}, params, now=1.0)
    s2, _, _ = population_batch(recs[2:], dict(s1), params, now=2.0)
    assert {**s1, **s2} == states


def _cluster_event(ns: str, ch: object, centroid: np.ndarray | None) -> ClusterEvent:
    return ClusterEvent(
        kind=ch.kind,  # type: ignore[attr-defined]
        namespace=ns,
        agent_id=ch.agent_id,  # type: ignore[attr-defined]
        cluster_id=ch.cluster_id,  # type: ignore[attr-defined]
        memory_id=ch.memory_id,  # type: ignore[attr-defined]
        size=ch.size,  # type: ignore[attr-defined]
        radius=ch.radius,  # type: ignore[attr-defined]
        stability=ch.stability,  # type: ignore[attr-defined]
        event_ts=ch.ts,  # type: ignore[attr-defined]
        related=list(ch.related),  # type: ignore[attr-defined]
        centroid_f16=None if centroid is None else encode_centroid(centroid),
    )


def test_end_to_end_agents_sharing_themes_share_population_clusters() -> None:
    from pipelines.clustering import AgentClusters
    from pipelines.embed import HashingEmbedder
    from pipelines.simulation import Population, theme_of

    events = list(Population(8, seed=3).events(400))
    vectors = HashingEmbedder().embed_many([e.content for e in events])
    theme = {e.memory_id: theme_of(e) for e in events}
    agents: dict[str, AgentClusters] = {}
    nc = NamespaceClusters("sim")
    for e, v in zip(events, vectors, strict=True):
        ac = agents.setdefault(e.agent_id, AgentClusters(e.agent_id))
        for ch in ac.add(e.memory_id, v, e.event_ts):
            centroid = getattr(ch, "centroid", None)
            if centroid is None and ch.size and ch.cluster_id in ac.clusters:
                centroid = ac.clusters[ch.cluster_id].centroid()
            nc.apply(_cluster_event("sim", ch, centroid if ch.size else None))
    live = {
        f"{a}|{cid}": len(c.members) for a, ac in agents.items() for cid, c in ac.clusters.items()
    }
    _invariants(nc, live)
    majority = {
        f"{a}|{cid}": collections.Counter(theme[m] for m in c.members).most_common(1)[0][0]
        for a, ac in agents.items()
        for cid, c in ac.clusters.items()
    }
    together = [0, 0]  # pairs of clusters of different agents in one population cluster
    apart = [0, 0]  # ... in different ones: [pairs, pairs with the same theme]
    for x, y in itertools.combinations(sorted(nc.clusters), 2):
        if nc.clusters[x].agent_id == nc.clusters[y].agent_id:
            continue
        side = together if nc.clusters[x].pop_id == nc.clusters[y].pop_id else apart
        side[0] += 1
        side[1] += majority[x] == majority[y]
    assert together[0] >= 50 and apart[0] >= 50
    p_together, p_apart = together[1] / together[0], apart[1] / apart[0]
    assert p_together > 0.6 and p_together > 2 * p_apart  # chance is ~1/5 (five themes)
    shared = [r for r in summary(nc) if r["shared"]]
    assert len(shared) >= 5 and max(int(r["n_agents"]) for r in shared) >= 5  # type: ignore[call-overload]


def test_saved_state_keeps_float16_centroids_and_old_float32_states_still_load() -> None:
    """The state saves each agent cluster's float16 source (half the bytes of float32), and
    restoring it gives the same float32 bits; a state saved with float32 centroids loads too."""
    params = PopulationParams()
    nc = NamespaceClusters("ns", params)
    rng = np.random.default_rng(3)
    for i in range(6):
        vec = rng.normal(size=384)
        nc.apply(_ev(f"a{i}", f"a{i}/c1", vec, size=2, kind="create", ns="ns", ts=float(i)))
    state = to_state(nc)
    assert all(len(row[4]) == 1024 for row in state["clusters"])  # 384 float16 in base64
    back = from_state(json.loads(json.dumps(state)), params)
    for key, ac in nc.clusters.items():
        assert back.clusters[key].centroid.tobytes() == ac.centroid.tobytes()
    legacy = json.loads(json.dumps(state))
    for row in legacy["clusters"]:
        row[4] = base64.b64encode(nc.clusters[row[0]].centroid.astype("<f4").tobytes()).decode()
    old = from_state(legacy, params)
    assert old.clusters["a0|a0/c1"].centroid.tobytes() == nc.clusters["a0|a0/c1"].centroid.tobytes()
    assert to_state(old)["pops"] == state["pops"]


def test_population_batch_reuses_the_live_state_it_saved() -> None:
    """With a cache, a namespace whose stored state is what the last batch saved is not parsed
    again, and the result is the same as without the cache."""
    params = PopulationParams()
    recs = [
        RawRecord(
            value=_ev(
                f"a{i}",
                f"a{i}/c1",
                np.eye(8)[i % 8] + 0.1,
                size=1,
                kind="create",
                ns="ns",
                ts=float(i),
            )
            .model_dump_json()
            .encode(),
            key=b"ns",
            topic="clusters",
            partition=0,
            offset=i,
        )
        for i in range(10)
    ]
    cache: dict[bytes, Any] = {}
    s1, _, _ = population_batch(recs[:5], {}, params, 1.0, cache)
    live = cache[b"ns"][1]
    s2, _, _ = population_batch(recs[5:], dict(s1), params, 2.0, cache)
    assert cache[b"ns"][1] is live  # reused, not rebuilt
    plain1, _, _ = population_batch(recs[:5], {}, params, 1.0)
    plain2, _, _ = population_batch(recs[5:], dict(plain1), params, 2.0)
    assert s2 == plain2


def test_near_gives_the_nearby_agents_part_of_each_population_cluster() -> None:
    """Three agents share a theme; two are near the origin. ``near`` names those two and their
    part of the shared cluster, follows an agent that moves (its latest event), ignores a late
    event from where it was, and survives a state round trip; bad input is refused."""
    nc = NamespaceClusters("sim", PopulationParams(cell=5.0))
    nc.apply(_ev("a", "a/c1", _angle(0), 3, "create", ts=1.0, at=(1.0, 1.0)))
    nc.apply(_ev("b", "b/c1", _angle(5), 2, "create", ts=1.0, at=(-2.0, 3.0)))
    nc.apply(_ev("c", "c/c1", _angle(3), 4, "create", ts=1.0, at=(50.0, 50.0)))
    nc.apply(_ev("b", "b/c2", _angle(90), 1, "create", ts=2.0, at=(-2.0, 2.0)))
    out = near(nc, 0.0, 0.0, 5.0)
    assert [a["agent_id"] for a in out["agents"]] == ["a", "b"]
    assert out["agents_placed"] == 3 and out["touched_agents"] == 2
    shared = out["clusters"][0]
    assert (shared["n_agents_near"], shared["size_near"], shared["n_agents"], shared["size"]) == (
        2,
        5,
        3,
        9,
    )
    assert shared["shared_near"] and sorted(shared["agents_near"]) == ["a", "b"]
    assert [c["size_near"] for c in out["clusters"]] == [5, 1]  # b's other theme

    nc.apply(_ev("a", "a/c1", _angle(1), 4, "join", ts=5.0, at=(49.0, 50.0)))  # a moves away
    nc.apply(_ev("a", "a/c1", _angle(1), 4, "join", ts=4.0, at=(0.0, 0.0)))  # late: ignored
    assert [a["agent_id"] for a in near(nc, 0.0, 0.0, 5.0)["agents"]] == ["b"]
    assert [a["agent_id"] for a in near(nc, 50.0, 50.0, 2.0)["agents"]] == ["c", "a"]
    _invariants(nc)

    again = from_state(json.loads(json.dumps(to_state(nc))), nc.params)
    assert near(again, 50.0, 50.0, 2.0) == near(nc, 50.0, 50.0, 2.0)
    old = to_state(nc)
    del old["places"]  # a state saved before the index: it loads, and learns places anew
    assert from_state(old, nc.params).places.at == {}
    for bad in ((math.nan, 0.0, 1.0), (0.0, 0.0, -1.0), (0.0, math.inf, 1.0)):
        with pytest.raises(ValueError, match="finite"):
            near(nc, *bad)
