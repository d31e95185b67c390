"""Hot recall index: filters, isolation, lifecycle states, scoring, consistency (vs a reference)."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pipelines import hot_index
from pipelines.hot_index import HotIndex, NearFilter, RecallFilters, ScoredHit, time_bonus_for
from pipelines.lexical import terms
from pipelines.lifecycle import LifecycleParams
from pipelines.scoring import ScoreWeights, TimeBonus, initial_stability
from pipelines.store import StoredMemory
from schemas.recall import RecallHit, RecallRequest

DIM = 8
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
TYPES = ("episodic", "semantic", "procedural")
TAGS = ("wolf", "river", "food", "night")
PARAMS = LifecycleParams()


def vec(seed: int, dim: int = DIM) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def mk(
    mid: str,
    agent: str = "ann",
    ns: str = "w",
    *,
    kind: str = "episodic",
    imp: float = 0.5,
    ts: float = T0,
    v: np.ndarray | None = None,
    pos: tuple[float, ...] | None = None,
    tags: tuple[str, ...] = (),
    arousal: float = 0.0,
    content: str | None = None,
) -> StoredMemory:
    extra: dict[str, Any] = {"emotion": {"valence": 0.0, "arousal": arousal}}
    if pos is not None:
        extra["position"] = dict(zip("xyz", pos, strict=False))
    if tags:
        extra["tags"] = list(tags)
    return StoredMemory(
        memory_id=mid,
        agent_id=agent,
        namespace=ns,
        type=kind,
        content=content or f"memory {mid} of {agent} in {ns}",
        importance=imp,
        event_ts=ts,
        event_time="2026-01-01T00:00:00+00:00",
        vector=vec(hash((ns, agent, mid)) % 2**32) if v is None else v,
        extra=extra,
    )


def ids(hits: list[ScoredHit]) -> list[str]:
    return [h.memory.memory_id for h in hits]


# -- a brute-force reference ---------------------------------------------------------------------


@dataclass
class Ref:
    """Plain-Python model of what the index should hold and return."""

    rows: dict[tuple[str, str], StoredMemory] = field(default_factory=dict)  # (ns, mid) -> row
    life: dict[tuple[str, str], tuple[str, float, float, int]] = field(default_factory=dict)
    cluster: dict[tuple[str, str], str | None] = field(default_factory=dict)
    clock: dict[tuple[str, str], float] = field(default_factory=dict)  # (ns, agent) -> time

    def upsert(self, r: StoredMemory) -> None:
        key = (r.namespace, r.memory_id)
        if self.life.get(key, ("active",))[0] in ("decayed", "deleted"):
            return
        self.rows[key] = r
        agent = (r.namespace, r.agent_id)
        self.clock[agent] = max(self.clock.get(agent, -math.inf), r.event_ts)

    def update_life(self, r: StoredMemory, life: tuple[str, float, float, int]) -> None:
        self.life[(r.namespace, r.memory_id)] = life
        agent = (r.namespace, r.agent_id)
        self.clock[agent] = max(self.clock.get(agent, -math.inf), life[2])
        if life[0] in ("decayed", "deleted"):
            self.rows.pop((r.namespace, r.memory_id), None)

    def search(
        self,
        q: np.ndarray,
        f: RecallFilters,
        now: float | None,
        w: ScoreWeights,
    ) -> dict[str, float]:
        mine = [
            r for (ns, _), r in self.rows.items() if ns == f.namespace and r.agent_id == f.agent_id
        ]
        if now is None:
            now = self.clock.get((f.namespace, f.agent_id), 0.0)
        qn = np.asarray(q, np.float64) / np.linalg.norm(q)
        out = {}
        wanted = set(f.states) - {"archived", "decayed", "deleted"}
        if f.include_archived:
            wanted.add("archived")
        for r in mine:
            key = (r.namespace, r.memory_id)
            arousal = r.extra["emotion"]["arousal"]
            state, s, rein, _ = self.life.get(
                key, ("active", initial_stability(r.type, r.importance, arousal), r.event_ts, 0)
            )
            if state not in wanted:
                continue
            if f.types is not None and r.type not in f.types:
                continue
            if f.since_ts is not None and r.event_ts < f.since_ts:
                continue
            if f.until_ts is not None and r.event_ts > f.until_ts:
                continue
            if f.cluster_id is not None and self.cluster.get(key) != f.cluster_id:
                continue
            if not set(f.tags) <= set(r.extra.get("tags", [])):
                continue
            if f.near is not None:
                p = r.extra.get("position")
                if p is None:
                    continue
                d2 = (p["x"] - f.near.x) ** 2 + (p["y"] - f.near.y) ** 2
                if f.near.z is not None:
                    if p.get("z") is None:
                        continue
                    d2 += (p["z"] - f.near.z) ** 2
                if d2 > f.near.radius**2:
                    continue
            rec = math.exp(-max(now - rein, 0.0) / s)
            if state == "active" and rec <= PARAMS.decay_threshold:
                continue
            v = np.asarray(r.vector, np.float64)
            cos = float(v @ qn / np.linalg.norm(v))
            out[r.memory_id] = w.relevance * cos + w.recency * rec + w.importance * r.importance
        return out


def check_against_ref(
    ix: HotIndex,
    ref: Ref,
    q: np.ndarray,
    f: RecallFilters,
    now: float | None = None,
    w: ScoreWeights | None = None,
) -> list[ScoredHit]:
    w = w or ScoreWeights()
    hits = ix.search(q, f, k=10_000, now_ts=now, weights=w)
    want = ref.search(q, f, now, w)
    assert sorted(ids(hits)) == sorted(want), f
    for h in hits:
        assert h.memory.namespace == f.namespace and h.memory.agent_id == f.agent_id
        assert h.score == pytest.approx(want[h.memory.memory_id], abs=1e-5)
    totals = [h.score for h in hits]
    assert totals == sorted(totals, reverse=True)
    return hits


# -- data sets generated by hypothesis ----------------------------------------------------------

positions = st.one_of(
    st.none(),
    st.tuples(st.integers(-5, 5), st.integers(-5, 5)).map(lambda t: tuple(map(float, t))),
    st.tuples(st.integers(-5, 5), st.integers(-5, 5), st.integers(-5, 5)).map(
        lambda t: tuple(map(float, t))
    ),
)


@st.composite
def datasets(draw: st.DrawFn) -> tuple[HotIndex, Ref]:
    ix, ref = HotIndex(dim=DIM), Ref()
    n = draw(st.integers(1, 30))
    rows = []
    for i in range(n):
        rows.append(
            mk(
                f"m{i}",
                agent=draw(st.sampled_from(["ann", "bob"])),
                ns=draw(st.sampled_from(["w", "x"])),
                kind=draw(st.sampled_from(TYPES)),
                imp=draw(st.floats(0, 1)),
                ts=T0 + draw(st.integers(0, 10)) * 3600.0,
                v=vec(draw(st.integers(0, 10**6))),
                pos=draw(positions),
                tags=tuple(draw(st.sets(st.sampled_from(TAGS), max_size=3))),
                arousal=draw(st.floats(0, 1)),
            )
        )
    ix.upsert(rows)
    for r in rows:
        ref.upsert(r)
    for r in rows:
        if draw(st.booleans()):
            state = draw(
                st.sampled_from(["active", "consolidated", "archived", "decayed", "deleted"])
            )
            s = draw(st.floats(600.0, 4e5))
            rein = r.event_ts + draw(st.integers(0, 5)) * 3600.0
            recalls = draw(st.integers(0, 5))
            ix.update_life(r.namespace, r.agent_id, r.memory_id, state, s, rein, recalls)
            ref.update_life(r, (state, s, rein, recalls))
        if draw(st.booleans()):
            cid = draw(st.sampled_from(["c1", "c2", None]))
            ix.set_cluster(r.namespace, r.agent_id, r.memory_id, cid)
            ref.cluster[(r.namespace, r.memory_id)] = cid
    return ix, ref


@st.composite
def filters(draw: st.DrawFn) -> RecallFilters:
    since = draw(st.none() | st.integers(0, 10).map(lambda h: T0 + h * 3600.0))
    until = draw(st.none() | st.integers(0, 10).map(lambda h: T0 + h * 3600.0))
    if since is not None and until is not None and since > until:
        since, until = until, since
    near = draw(
        st.none()
        | st.builds(
            NearFilter,
            st.integers(-5, 5).map(float),
            st.integers(-5, 5).map(float),
            st.none() | st.integers(-5, 5).map(float),
            st.sampled_from([0.5, 1.0, 2.0, 3.0, 5.0]),
        )
    )
    return RecallFilters(
        namespace=draw(st.sampled_from(["w", "x"])),
        agent_id=draw(st.sampled_from(["ann", "bob"])),
        types=draw(st.none() | st.frozensets(st.sampled_from(TYPES), min_size=1)),
        since_ts=since,
        until_ts=until,
        states=draw(
            st.frozensets(st.sampled_from(["active", "consolidated", "archived"]), min_size=1)
        ),
        include_archived=draw(st.booleans()),
        cluster_id=draw(st.none() | st.sampled_from(["c1", "c2", "c9"])),
        tags=draw(st.frozensets(st.sampled_from((*TAGS, "unknown")), max_size=2)),
        near=near,
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    datasets(),
    filters(),
    st.integers(0, 10**6),
    st.none() | st.integers(0, 60).map(lambda h: T0 + h * 3600.0),
)
def test_filters_combined_match_brute_force_reference(
    data: tuple[HotIndex, Ref], f: RecallFilters, qseed: int, now: float | None
) -> None:
    ix, ref = data
    check_against_ref(ix, ref, vec(qseed), f, now)


FILTER_ALONE = {
    "types": {"types": frozenset({"semantic"})},
    "since": {"since_ts": T0 + 3 * 3600.0},
    "until": {"until_ts": T0 + 3 * 3600.0},
    "since_until": {"since_ts": T0 + 2 * 3600.0, "until_ts": T0 + 4 * 3600.0},
    "states_consolidated": {"states": frozenset({"consolidated"})},
    "include_archived": {"include_archived": True},
    "archived_only": {"states": frozenset({"archived"}), "include_archived": True},
    "cluster": {"cluster_id": "c1"},
    "tags_one": {"tags": frozenset({"wolf"})},
    "tags_all": {"tags": frozenset({"wolf", "river"})},
    "near_2d": {"near": NearFilter(0.0, 0.0, None, 3.0)},
    "near_3d": {"near": NearFilter(0.0, 0.0, 0.0, 3.0)},
}


@pytest.fixture(scope="module")
def population() -> tuple[HotIndex, Ref]:
    """200 memories of one agent with every attribute varied (plus a second agent)."""
    rng = np.random.default_rng(7)
    ix, ref = HotIndex(dim=DIM), Ref()
    rows = []
    for i in range(200):
        dims = rng.integers(0, 3)
        pos = None if dims == 0 else tuple(float(x) for x in rng.integers(-4, 5, size=dims + 1))
        rows.append(
            mk(
                f"m{i:03d}",
                agent="ann" if i % 10 else "bob",
                kind=TYPES[i % 3],
                imp=float(rng.random()),
                ts=T0 + float(rng.integers(0, 8)) * 3600.0,
                v=vec(1000 + i),
                pos=pos,
                tags=tuple(t for t in TAGS if rng.random() < 0.4),
            )
        )
    ix.upsert(rows)
    for r in rows:
        ref.upsert(r)
    for j, r in enumerate(rows):
        state = ["active", "active", "consolidated", "archived", "decayed"][j % 5]
        life = (state, 5e4, r.event_ts, 1)
        ix.update_life(r.namespace, r.agent_id, r.memory_id, *life)
        ref.update_life(r, life)
        if j % 4 == 0:
            ix.set_cluster(r.namespace, r.agent_id, r.memory_id, "c1" if j % 8 else "c2")
            ref.cluster[(r.namespace, r.memory_id)] = "c1" if j % 8 else "c2"
    return ix, ref


@pytest.mark.parametrize("name", sorted(FILTER_ALONE))
def test_each_filter_alone(population: tuple[HotIndex, Ref], name: str) -> None:
    ix, ref = population
    f = RecallFilters("w", "ann", **FILTER_ALONE[name])
    unfiltered = check_against_ref(ix, ref, vec(3), RecallFilters("w", "ann"))
    hits = check_against_ref(ix, ref, vec(3), f)
    assert hits, "the population should match every filter at least once"
    if name not in ("include_archived", "archived_only"):
        assert len(hits) < len(unfiltered) and set(ids(hits)) <= set(ids(unfiltered))


def test_top_k_is_the_head_of_the_full_ranking(population: tuple[HotIndex, Ref]) -> None:
    ix, _ = population
    f = RecallFilters("w", "ann", include_archived=True)
    for seed in range(20):
        full = ix.search(vec(seed), f, k=1000)
        for k in (1, 5, 10):
            assert ids(ix.search(vec(seed), f, k=k)) == ids(full)[:k]


@pytest.mark.parametrize("chunk", [7, 4096])
def test_large_filtered_partition_gathers_and_scans_alike(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both search paths (gather rows under a selective filter, chunk by chunk, or scan all)."""
    monkeypatch.setattr(hot_index, "_GATHER_CHUNK", chunk)
    rng = np.random.default_rng(1)
    ix, ref = HotIndex(dim=DIM), Ref()
    rows = [
        mk(f"m{i}", kind=TYPES[int(rng.integers(0, 3))], ts=T0 + i, v=vec(i)) for i in range(3000)
    ]
    ix.upsert(rows)
    for r in rows:
        ref.upsert(r)
    for types in ({"episodic"}, {"episodic", "semantic"}, None):
        f = RecallFilters("w", "ann", types=None if types is None else frozenset(types))
        check_against_ref(ix, ref, vec(99), f)
    for since in (2900, 2400, 1000):  # 1/30, 1/5 (gathered), 2/3 (scanned) of the rows
        check_against_ref(ix, ref, vec(99), RecallFilters("w", "ann", since_ts=T0 + since))


# -- isolation -----------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 20), st.integers(0, 10**6))
def test_namespace_isolation_with_identical_agent_and_memory_ids(n: int, qseed: int) -> None:
    ix = HotIndex(dim=DIM)
    for ns in ("w", "x"):
        ix.upsert([mk(f"m{i}", "ann", ns, v=vec(i + (0 if ns == "w" else 500))) for i in range(n)])
    assert len(ix) == 2 * n
    for ns in ("w", "x"):
        hits = ix.search(vec(qseed), RecallFilters(ns, "ann"), k=100)
        assert len(hits) == n and {h.memory.namespace for h in hits} == {ns}
    assert ix.remove("w", [f"m{i}" for i in range(n)]) == n
    assert ix.search(vec(qseed), RecallFilters("w", "ann"), k=100) == []
    assert len(ix.search(vec(qseed), RecallFilters("x", "ann"), k=100)) == n
    ix.update_life("x", "ann", "m0", "decayed", 100.0, T0, 0)
    assert "m0" not in ids(ix.search(vec(qseed), RecallFilters("x", "ann"), k=100))
    ix.upsert([mk("m0", "ann", "w")])  # the tombstone is per namespace
    assert ids(ix.search(vec(qseed), RecallFilters("w", "ann"), k=100)) == ["m0"]


def test_agents_never_see_each_other() -> None:
    ix = HotIndex(dim=DIM)
    ix.upsert([mk(f"a{i}", "ann") for i in range(5)] + [mk(f"b{i}", "bob") for i in range(5)])
    assert {h.memory.agent_id for h in ix.search(vec(1), RecallFilters("w", "ann"), k=100)} == {
        "ann"
    }
    assert ix.search(vec(1), RecallFilters("w", "carl"), k=10) == []


# -- spatial boundary ----------------------------------------------------------------------------


def test_spatial_radius_boundary_2d() -> None:
    ix = HotIndex(dim=DIM)
    pts = {
        "pythagoras": (3.0, 4.0),
        "on_axis": (5.0, 0.0),
        "neg_axis": (0.0, -5.0),
        "beyond": (5.0 * (1 + 1e-9), 0.0),
        "beyond_diag": (3.0, 4.000001),
        "inside": (1.0, 1.0),
        "z_ignored": (3.0, 4.0, 100.0),
    }
    ix.upsert([mk(k, pos=p) for k, p in pts.items()] + [mk("nowhere")])
    hits = ix.search(vec(0), RecallFilters("w", "ann", near=NearFilter(0, 0, None, 5.0)), k=100)
    assert sorted(ids(hits)) == ["inside", "neg_axis", "on_axis", "pythagoras", "z_ignored"]


def test_spatial_radius_boundary_3d() -> None:
    ix = HotIndex(dim=DIM)
    c = (1.0, 2.0, 3.0)
    pts = {
        "triple": (1.0 + 3, 2.0 + 4, 3.0 + 12),  # 3-4-12 -> 13
        "on_z": (1.0, 2.0, 3.0 - 13),
        "beyond_z": (1.0, 2.0, 3.0 + 13.000001),
        "flat": (1.0, 2.0),  # no z: unknown height, never within a 3-D radius
        "inside": (2.0, 2.0, 2.0),
    }
    ix.upsert([mk(k, pos=p) for k, p in pts.items()])
    hits = ix.search(vec(0), RecallFilters("w", "ann", near=NearFilter(*c, 13.0)), k=100)
    assert sorted(ids(hits)) == ["inside", "on_z", "triple"]


@settings(max_examples=100, deadline=None)
@given(
    st.integers(-1000, 1000),
    st.integers(-1000, 1000),
    st.integers(-1000, 1000),
    st.integers(1, 1000),
    st.integers(0, 2),
    st.booleans(),
)
def test_spatial_boundary_property(
    x: int, y: int, z: int, r: int, axis: int, three_d: bool
) -> None:
    """A point exactly ``r`` away along an axis matches; one a hair further does not."""
    center = [float(x), float(y), float(z)]
    if not three_d and axis == 2:
        axis = 0
    at, past = list(center), list(center)
    at[axis] += r
    past[axis] += r * (1 + 1e-7)
    ix = HotIndex(dim=DIM)
    ix.upsert([mk("at", pos=tuple(at)), mk("past", pos=tuple(past))])
    near = NearFilter(center[0], center[1], center[2] if three_d else None, float(r))
    assert ids(ix.search(vec(0), RecallFilters("w", "ann", near=near), k=10)) == ["at"]


# -- lifecycle states ----------------------------------------------------------------------------


ALL_STATES = RecallFilters(
    "w", "ann", states=frozenset({"active", "consolidated", "archived"}), include_archived=True
)


def test_decayed_is_never_returned_even_after_a_redelivered_upsert() -> None:
    ix = HotIndex(dim=DIM)
    ix.upsert([mk("m1"), mk("m2")])
    ix.update_life("w", "ann", "m1", "decayed", 100.0, T0, 0)
    assert ids(ix.search(vec(0), ALL_STATES, k=10)) == ["m2"] and len(ix) == 1
    assert ix.upsert([mk("m1")]) == 0  # tombstone: a replay does not resurrect it
    ix.update_life("w", "ann", "m1", "deleted", 100.0, T0, 0)
    assert ids(ix.search(vec(0), ALL_STATES, k=10)) == ["m2"]
    assert ix.state_of("w", "m1") is None and ix.state_of("w", "m2") == "active"


def test_decay_reported_before_the_row_arrives() -> None:
    ix = HotIndex(dim=DIM)
    ix.update_life("w", "ann", "m1", "decayed", 100.0, T0, 0)
    assert ix.upsert([mk("m1")]) == 0 and len(ix) == 0


def test_faded_active_memory_is_not_returned_at_a_later_event_time() -> None:
    """R at the recall's time at or below the threshold: the lifecycle would decay it then."""
    ix = HotIndex(dim=DIM)
    s = 3600.0
    ix.upsert([mk("act"), mk("con")])
    ix.update_life("w", "ann", "act", "active", s, T0, 0)
    ix.update_life("w", "ann", "con", "consolidated", s, T0, 3)
    f = RecallFilters("w", "ann")
    fade = s * math.log(1 / PARAMS.decay_threshold)
    assert sorted(ids(ix.search(vec(0), f, k=10, now_ts=T0 + fade - 1))) == ["act", "con"]
    assert ids(ix.search(vec(0), f, k=10, now_ts=T0 + fade + 1)) == ["con"]


def test_archived_only_on_request() -> None:
    ix = HotIndex(dim=DIM)
    ix.upsert([mk("old"), mk("new")])
    ix.update_life("w", "ann", "old", "consolidated", 5e4, T0, 3)
    ix.update_life("w", "ann", "old", "archived", 5e4, T0, 3)
    assert ids(ix.search(vec(0), RecallFilters("w", "ann"), k=10)) == ["new"]
    archived_states = frozenset({"archived"})
    f = RecallFilters("w", "ann", states=archived_states)  # not asked with include_archived
    assert ix.search(vec(0), f, k=10) == []
    f = RecallFilters("w", "ann", include_archived=True)
    assert sorted(ids(ix.search(vec(0), f, k=10))) == ["new", "old"]
    f = RecallFilters("w", "ann", states=archived_states, include_archived=True)
    hits = ix.search(vec(0), f, k=10)
    assert ids(hits) == ["old"] and hits[0].state == "archived"


def test_reupsert_keeps_lifecycle_and_cluster() -> None:
    ix = HotIndex(dim=DIM)
    ix.upsert([mk("m1", content="first")])
    ix.update_life("w", "ann", "m1", "consolidated", 1234.0, T0 + 5, 3)
    ix.set_cluster("w", "ann", "m1", "ann/c1")
    ix.upsert([mk("m1", content="replayed")])
    (hit,) = ix.search(vec(0), RecallFilters("w", "ann"), k=10, now_ts=T0 + 5)
    assert hit.state == "consolidated" and hit.cluster_id == "ann/c1"
    assert hit.memory.content == "replayed" and hit.parts.recency == 1.0


def test_lifecycle_and_cluster_facts_before_the_row() -> None:
    ix = HotIndex(dim=DIM)
    ix.update_life("w", "ann", "m1", "consolidated", 1000.0, T0 + 100, 2)
    ix.set_cluster("w", "ann", "m1", "ann/c7")
    ix.upsert([mk("m1")])
    (hit,) = ix.search(vec(0), RecallFilters("w", "ann", cluster_id="ann/c7"), k=10)
    assert hit.state == "consolidated" and hit.cluster_id == "ann/c7"


def test_unknown_lifecycle_uses_fresh_stability_and_event_time() -> None:
    ix = HotIndex(dim=DIM)
    ix.upsert([mk("m1", kind="semantic", imp=0.8, arousal=0.4, ts=T0)])
    s = initial_stability("semantic", 0.8, 0.4)
    (hit,) = ix.search(vec(0), RecallFilters("w", "ann"), k=1, now_ts=T0 + 3600)
    assert hit.parts.recency == pytest.approx(math.exp(-3600 / s))


def test_now_defaults_to_the_agents_clock() -> None:
    ix = HotIndex(dim=DIM)
    ix.upsert([mk("early", ts=T0), mk("late", ts=T0 + 7200)])
    assert ix.clock("w", "ann") == T0 + 7200 and ix.clock("w", "bob") is None
    hits = {h.memory.memory_id: h for h in ix.search(vec(0), RecallFilters("w", "ann"), k=10)}
    assert hits["late"].parts.recency == 1.0 and hits["early"].parts.recency < 1.0
    ix.update_life("w", "ann", "early", "active", 5e4, T0 + 9000, 1)  # a recall moves the clock
    assert ix.clock("w", "ann") == T0 + 9000


# -- scoring -------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    st.floats(0, 5),
    st.floats(0, 5),
    st.floats(0, 5),
    st.integers(0, 10**6),
    st.integers(0, 12),  # hours: nothing fades before 18 h
)
def test_score_parts_sum_to_total_with_the_weights(
    wr: float, wc: float, wi: float, qseed: int, hours: int
) -> None:
    ix = HotIndex(dim=DIM)
    ix.upsert([mk(f"m{i}", imp=i / 10, ts=T0 + i * 600.0, v=vec(i)) for i in range(10)])
    w = ScoreWeights(wr, wc, wi)
    hits = ix.search(
        vec(qseed), RecallFilters("w", "ann"), k=10, now_ts=T0 + hours * 3600, weights=w
    )
    assert len(hits) == 10
    for h in hits:
        p = h.parts
        expect = wr * p.relevance + wc * p.recency + wi * p.importance
        assert p.total == pytest.approx(expect, rel=1e-9, abs=1e-9)
        assert -1.0 - 1e-6 <= p.relevance <= 1.0 + 1e-6 and 0.0 <= p.recency <= 1.0
        assert p.importance == h.memory.importance


def test_relevance_only_ranks_by_cosine_and_weights_reorder() -> None:
    ix = HotIndex(dim=2)
    two = lambda x, y: np.array([x, y], dtype=np.float32)  # noqa: E731
    ix.upsert(
        [
            mk("close_dull", v=two(1, 0.05), imp=0.0, ts=T0),
            mk("far_vivid", v=two(0.2, 1), imp=1.0, ts=T0 + 3600 * 3),
        ]
    )
    f = RecallFilters("w", "ann")
    q = two(1, 0)
    assert ids(ix.search(q, f, k=2, weights=ScoreWeights(1, 0, 0))) == ["close_dull", "far_vivid"]
    assert ids(ix.search(q, f, k=2, weights=ScoreWeights(1, 1, 1))) == ["far_vivid", "close_dull"]


def test_weights_are_validated() -> None:
    with pytest.raises(ValueError, match="recency"):
        ScoreWeights(1.0, -0.1, 0.0)
    with pytest.raises(ValueError, match="relevance"):
        ScoreWeights(float("nan"), 0.0, 0.0)


# -- remove/upsert consistency -------------------------------------------------------------------

ops = st.lists(
    st.tuples(
        st.sampled_from(["upsert", "remove", "decay"]),
        st.lists(st.integers(0, 15), min_size=1, max_size=6),
        st.integers(0, 3),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_remove_upsert_consistency(seq: list[tuple[str, list[int], int]]) -> None:
    ix, ref = HotIndex(dim=DIM), Ref()
    gen = 0
    for op, nums, agent_i in seq:
        agent = ["ann", "bob", "cid", "dee"][agent_i]
        gen += 1
        if op == "upsert":
            rows = [mk(f"m{i}", agent, v=vec(i * 100 + gen), ts=T0 + gen) for i in nums]
            ix.upsert(rows)
            for r in rows:
                ref.upsert(r)
        elif op == "remove":
            removed = ix.remove("w", [f"m{i}" for i in set(nums)])
            assert removed == sum(("w", f"m{i}") in ref.rows for i in set(nums))
            for i in nums:
                ref.rows.pop(("w", f"m{i}"), None)
        else:
            r = ref.rows.get(("w", f"m{nums[0]}"))
            if r is not None:
                ix.update_life("w", r.agent_id, r.memory_id, "decayed", 100.0, T0, 0)
                ref.update_life(r, ("decayed", 100.0, T0, 0))
        assert len(ix) == len(ref.rows)
    for agent in ("ann", "bob", "cid", "dee"):
        want = {mid: r for (_, mid), r in ref.rows.items() if r.agent_id == agent}
        for mid, r in want.items():  # each row's vector is still its own after the swaps
            (top,) = ix.search(
                r.vector, RecallFilters("w", agent), k=1, weights=ScoreWeights(1, 0, 0)
            )
            assert top.memory.memory_id == mid and top.parts.relevance == pytest.approx(1.0)
            assert top.memory.content == r.content
        hits = ix.search(vec(1), RecallFilters("w", agent), k=100, weights=ScoreWeights(1, 0, 0))
        assert sorted(ids(hits)) == sorted(want)


def test_memory_that_changes_agent_moves() -> None:
    ix = HotIndex(dim=DIM)
    ix.upsert([mk("m1", "ann")])
    ix.upsert([mk("m1", "bob")])
    assert len(ix) == 1 and ix.search(vec(0), RecallFilters("w", "ann"), k=5) == []
    assert ids(ix.search(vec(0), RecallFilters("w", "bob"), k=5)) == ["m1"]


def test_nbytes_versions_and_validation() -> None:
    ix = HotIndex(dim=DIM)
    assert ix.nbytes() == 0 and ix.version("w", "ann") == 0
    ix.upsert([mk(f"m{i}") for i in range(100)])
    assert ix.nbytes() >= 100 * DIM * 4
    v = ix.version("w", "ann")
    ix.set_cluster("w", "ann", "m1", "c")
    assert ix.version("w", "ann") > v
    with pytest.raises(ValueError, match="shape"):
        ix.upsert([mk("bad", v=np.zeros(3, np.float32))])
    with pytest.raises(ValueError, match="query shape"):
        ix.search(np.zeros(3, np.float32), RecallFilters("w", "ann"))
    with pytest.raises(ValueError):
        ix.update_life("w", "ann", "m1", "forgotten", 1.0, T0, 0)
    with pytest.raises(ValueError, match="stability"):
        ix.update_life("w", "ann", "m1", "active", 0.0, T0, 0)
    with pytest.raises(ValueError, match="radius"):
        NearFilter(0, 0, None, 0.0)
    with pytest.raises(ValueError, match="since"):
        RecallFilters("w", "ann", since_ts=2.0, until_ts=1.0)


def test_one_writer_one_reader_thread() -> None:
    ix = HotIndex(dim=DIM)
    ix.upsert([mk(f"m{i}", v=vec(i)) for i in range(200)])
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        try:
            for g in range(300):
                ix.upsert([mk(f"m{(g * 7) % 400}", v=vec(g))])
                ix.remove("w", [f"m{(g * 13) % 400}"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            stop.set()

    t = threading.Thread(target=writer)
    t.start()
    while not stop.is_set():
        hits = ix.search(vec(5), RecallFilters("w", "ann"), k=10)
        assert len({h.memory.memory_id for h in hits}) == len(hits)
    t.join()
    assert not errors


# -- request schema and hit conversion -----------------------------------------------------------

BASE = {"namespace": "w", "agent_id": "ann", "query": "a wolf"}


@pytest.mark.parametrize(
    ("patch", "match"),
    [
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
        ({"states": ["archived"]}, "include_archived"),
        ({"states": ["decayed"]}, "states"),
        ({"states": ["active", "active"]}, "duplicates"),
        ({"states": []}, "states"),
        ({"near": {"x": 0, "y": 0, "radius": 0}}, "radius"),
        ({"near": {"x": "nan", "y": 0, "radius": 1}}, "near.x"),
        ({"weights": {"relevance": -1}}, "relevance"),
        ({"tags": []}, "tags"),
        ({"since": "2026-01-01T00:00:00"}, "since"),
    ],
)
def test_bad_recall_requests_name_the_problem(patch: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        RecallRequest.model_validate({**BASE, **patch})


def test_request_drives_the_index_and_hits_convert() -> None:
    ix = HotIndex(dim=DIM)
    ix.upsert(
        [
            mk("m1", pos=(1.0, 2.0), tags=("wolf",), kind="episodic", ts=T0),
            mk("m2", pos=(50.0, 2.0), tags=("wolf",), ts=T0),
            mk("m3", tags=("river",), ts=T0 + 10),
        ]
    )
    ix.set_cluster("w", "ann", "m1", "ann/c1")
    req = RecallRequest.model_validate(
        {
            **BASE,
            "k": 5,
            "types": ["episodic"],
            "since": "2026-01-01T00:00:00Z",
            "until": "2026-01-01T00:00:05Z",
            "tags": ["wolf"],
            "near": {"x": 0, "y": 0, "radius": 3},
            "cluster_id": "ann/c1",
            "event_time": "2026-01-01T01:00:00Z",
            "weights": {"relevance": 0, "recency": 1, "importance": 0},
        }
    )
    (hit,) = ix.recall(req, vec(0), ScoreWeights())
    assert hit.memory.memory_id == "m1" and hit.score == pytest.approx(hit.parts.recency)
    rh = hit.to_recall_hit()
    assert isinstance(rh, RecallHit)
    assert rh.parts is not None and rh.parts.recency == hit.parts.recency
    assert rh.position is not None and (rh.position.x, rh.position.y) == (1.0, 2.0)
    assert rh.tags == ["wolf"] and rh.cluster_id == "ann/c1" and rh.state == "active"
    assert RecallFilters.from_request(RecallRequest.model_validate(BASE)) == RecallFilters(
        "w", "ann"
    )


# ------------------------------------------------------------------ memory bound


def test_past_its_memory_bound_the_index_evicts_the_least_recently_used_agents() -> None:
    one_agent = HotIndex(dim=DIM)
    one_agent.upsert([mk(f"a{i}", "a0", v=vec(i)) for i in range(50)])
    bound = int(one_agent.nbytes() * 3.5)  # room for three agents of 50 rows, not four
    ix = HotIndex(dim=DIM, max_bytes=bound)
    for a in range(3):
        ix.upsert([mk(f"{a}-{i}", f"a{a}", v=vec(i)) for i in range(50)])
    assert ix.agents() == 3 and ix.evicted_agents == 0
    ix.search(vec(1), RecallFilters("w", "a0"))  # a0 was used lately: a1 is the oldest now
    ix.upsert([mk(f"3-{i}", "a3", v=vec(i)) for i in range(50)])  # never a crash: eviction
    assert ix.evicted_agents >= 1 and ix.nbytes() <= bound
    assert ix.search(vec(1), RecallFilters("w", "a1")) == []  # gone from the index ...
    assert len(ix.search(vec(1), RecallFilters("w", "a0"), k=5)) == 5  # ... the recent stay
    assert len(ix.search(vec(1), RecallFilters("w", "a3"), k=5)) == 5  # ... and the new one
    # an evicted agent's rows can come back (the recall service warms it from L2)
    ix.upsert([mk(f"1-{i}", "a1", v=vec(i)) for i in range(50)])
    assert len(ix.search(vec(1), RecallFilters("w", "a1"), k=5)) == 5
    assert ix.nbytes() <= bound


def test_an_agent_written_alone_past_the_bound_is_kept_not_evicted_mid_write() -> None:
    ix = HotIndex(dim=DIM, max_bytes=1)  # smaller than any agent
    ix.upsert([mk(f"x{i}", "big", v=vec(i)) for i in range(20)])
    assert len(ix.search(vec(2), RecallFilters("w", "big"), k=3)) == 3
    ix.upsert([mk("y0", "other", v=vec(5))])  # the previous agent goes, the new one stays
    assert ix.agents() == 1 and ix.search(vec(2), RecallFilters("w", "big")) == []


# ------------------------------------------------------------------ time preference


def _with_bonus(plain: list[ScoredHit], prefer: TimeBonus) -> dict[str, tuple[float, float]]:
    """The reference: each row's total without a preference + weight x (in the window)."""
    lo, hi = prefer.window
    out = {}
    for h in plain:
        inside = 1.0 if lo <= h.memory.event_ts <= hi else 0.0
        out[h.memory.memory_id] = (h.score + prefer.weight * inside, inside)
    return out


bonuses = st.builds(
    TimeBonus,
    st.integers(-1, 10).map(lambda h: T0 + h * 3600.0) | st.just(-math.inf),
    st.just(math.inf) | st.integers(10, 12).map(lambda h: T0 + h * 3600.0),
    st.floats(0, 1),
    st.sampled_from([0.0, 1800.0, 3600.0 * 3]),
) | st.builds(
    lambda a, b, w, s: TimeBonus(T0 + min(a, b) * 3600.0, T0 + max(a, b) * 3600.0, w, s),
    st.integers(0, 10),
    st.integers(0, 10),
    st.floats(0, 1),
    st.sampled_from([0.0, 1800.0, 3600.0 * 3]),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets(), filters(), st.integers(0, 10**6), bonuses)
def test_time_bonus_adds_its_weight_to_rows_in_the_window(
    data: tuple[HotIndex, Ref], f: RecallFilters, qseed: int, prefer: TimeBonus
) -> None:
    ix, _ = data
    plain = ix.search(vec(qseed), f, k=10_000)
    assert all(h.parts.time is None for h in plain)
    hits = ix.search(vec(qseed), f, k=10_000, prefer=prefer)
    want = _with_bonus(plain, prefer)
    assert sorted(ids(hits)) == sorted(want)  # a bonus, never a filter
    for h in hits:
        total, inside = want[h.memory.memory_id]
        assert h.parts.time == inside and h.score == pytest.approx(total, abs=1e-9)
        p = h.parts
        assert p.total == pytest.approx(
            p.relevance + 0.5 * p.recency + 0.3 * p.importance + prefer.weight * inside, abs=1e-9
        )
    totals = [h.score for h in hits]
    assert totals == sorted(totals, reverse=True)
    for k in (1, 3):  # the head of the full ranking (rows tied at the k-th may differ)
        head = ix.search(vec(qseed), f, k=k, prefer=prefer)
        assert [h.score for h in head] == totals[:k]


def test_time_bonus_ranks_a_row_in_the_period_above_an_equal_one_outside() -> None:
    ix = HotIndex(dim=DIM, params=LifecycleParams(base_stability=1e9))  # nothing fades
    same = vec(1)
    day = 86400.0
    ix.upsert(
        [
            mk("a-before", v=same, ts=T0 - day),
            mk("b-in", v=same, ts=T0 + 3 * day),
            mk("c-slack", v=same, ts=T0 + 9 * day),
            mk("d-after", v=same, ts=T0 + 30 * day),
            mk("e-other", v=vec(2), ts=T0 - day),
        ]
    )
    f, w = RecallFilters("w", "ann"), ScoreWeights(1.0, 0.0, 0.0)
    plain = ix.search(same, f, k=5, weights=w)
    assert ids(plain)[:4] == ["a-before", "b-in", "c-slack", "d-after"]  # tie: by id
    week = TimeBonus(T0, T0 + 7 * day - 1e-6, slack_s=0.0)
    hits = ix.search(same, f, k=5, weights=w, prefer=week)
    assert ids(hits)[:1] == ["b-in"] and [h.parts.time for h in hits] == [1, 0, 0, 0, 0]
    assert hits[0].score == pytest.approx(hits[1].score + 0.1)
    slack = TimeBonus(T0, T0 + 7 * day - 1e-6)  # 14 days of slack by default
    assert ids(ix.search(same, f, k=5, weights=w, prefer=slack))[:2] == ["b-in", "c-slack"]
    # the bonus is soft: a clearly more relevant row outside the period stays ahead
    assert float(vec(1) @ vec(2)) < 0.8
    far = ix.search(vec(2), f, k=5, weights=w, prefer=week)
    assert ids(far)[0] == "e-other" and far[0].parts.time == 0.0
    # weight 0: the ranking of no preference, the part still reported
    zero = ix.search(same, f, k=5, weights=w, prefer=replace(week, weight=0.0))
    assert ids(zero) == ids(plain) and [h.parts.time for h in zero] == [0, 1, 0, 0, 0]
    # open ends
    after = TimeBonus(T0 + 20 * day, math.inf, slack_s=0.0)
    assert ids(ix.search(same, f, k=1, weights=w, prefer=after)) == ["d-after"]
    before = TimeBonus(-math.inf, T0 - day, slack_s=0.0)  # until is inclusive
    assert ids(ix.search(same, f, k=1, weights=w, prefer=before)) == ["a-before"]


def test_time_bonus_never_brings_back_a_faded_memory() -> None:
    ix = HotIndex(dim=DIM)
    ix.upsert([mk("act", ts=T0), mk("new", ts=T0 + 9e5)])
    ix.update_life("w", "ann", "act", "active", 3600.0, T0, 0)
    prefer = TimeBonus(T0 - 1, T0 + 1, weight=1.0)
    assert ids(ix.search(vec(0), RecallFilters("w", "ann"), k=10, prefer=prefer)) == ["new"]


@pytest.mark.parametrize("chunk", [7, 4096])
def test_time_bonus_on_both_search_paths(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hot_index, "_GATHER_CHUNK", chunk)
    ix = HotIndex(dim=DIM)
    ix.upsert([mk(f"m{i}", ts=T0 + i, v=vec(i)) for i in range(3000)])
    prefer = TimeBonus(T0 + 2950, T0 + 2960, weight=2.5, slack_s=0.0)  # > any cosine gap
    for since in (2900, 2400, 1000, None):  # gathered, gathered, scanned, all rows
        f = RecallFilters("w", "ann", since_ts=None if since is None else T0 + since)
        plain = ix.search(vec(99), f, k=10_000, weights=ScoreWeights(1.0, 0.0, 0.0))
        hits = ix.search(vec(99), f, k=11, weights=ScoreWeights(1.0, 0.0, 0.0), prefer=prefer)
        assert sorted(ids(hits)) == sorted(f"m{i}" for i in range(2950, 2961))
        want = _with_bonus(plain, prefer)
        for h in hits:
            assert h.parts.time == 1.0 and h.score == pytest.approx(want[h.memory.memory_id][0])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    datasets(),
    st.integers(0, 10**6),
    st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz ,.?"), min_size=1, max_size=60).filter(
        lambda q: q.strip() != ""
    ),
)
def test_a_query_naming_no_period_ranks_exactly_as_before(
    data: tuple[HotIndex, Ref], qseed: int, query: str
) -> None:
    """time_hints (the default) changes nothing when the query names no period."""
    ix, _ = data
    assume_no_period = time_bonus_for(RecallRequest.model_validate({**BASE, "query": query}))
    if assume_no_period is not None:  # e.g. "in june": a period, tested elsewhere
        return
    for ns, agent in (("w", "ann"), ("x", "bob")):
        base = {**BASE, "namespace": ns, "agent_id": agent, "query": query, "k": 100}
        hinted = ix.recall(RecallRequest.model_validate(base), vec(qseed), ScoreWeights())
        off = RecallRequest.model_validate({**base, "time_hints": False})
        plain = ix.recall(off, vec(qseed), ScoreWeights())
        before = ix.search(  # the pre-feature call
            vec(qseed), RecallFilters(ns, agent), k=100, query_terms=terms(query)
        )
        assert hinted == plain == before
        assert all(h.parts.time is None for h in hinted)
        assert all(h.to_recall_hit().parts.time is None for h in hinted)  # type: ignore[union-attr]


def test_request_time_preference_drives_the_index() -> None:
    ix = HotIndex(dim=DIM, params=LifecycleParams(base_stability=1e9))  # nothing fades
    same = vec(4)
    ix.upsert(
        [
            mk("a-2025", v=same, ts=T0 - 200 * 86400.0),
            mk("b-jan", v=same, ts=T0 + 3 * 86400.0),  # 2026-01-04
        ]
    )
    w = ScoreWeights(1.0, 0.0, 0.0)

    def ask(**kw: Any) -> list[str]:
        req = RecallRequest.model_validate({**BASE, "k": 2, **kw})
        return ids(ix.recall(req, same, w))

    assert ask() == ["a-2025", "b-jan"]  # "a wolf": no period, tie by id
    assert ask(query="a wolf in 2025") == ["a-2025", "b-jan"]
    assert ask(query="a wolf on 4 January 2026") == ["b-jan", "a-2025"]
    assert ask(query="a wolf on 4 January 2026", time_hints=False) == ["a-2025", "b-jan"]
    # a month without a year, at the agent's clock (January 2026) or the request's event time
    assert ask(query="a wolf in January") == ["b-jan", "a-2025"]
    assert ask(query="a wolf in June") == ["a-2025", "b-jan"]  # June 2025
    june_2026 = "2026-07-01T00:00:00Z"
    assert ask(query="a wolf in January", event_time=june_2026) == ["b-jan", "a-2025"]
    # an explicit period wins over the query's
    prefer = {"since": "2025-01-01T00:00:00Z", "until": "2025-12-31T00:00:00Z", "slack_s": 0}
    assert ask(query="a wolf on 4 January 2026", prefer=prefer) == ["a-2025", "b-jan"]
    # explicit prefer=None at the call: no preference at all
    req = RecallRequest.model_validate({**BASE, "k": 2, "query": "a wolf on 4 January 2026"})
    hits = ix.recall(req, same, w, prefer=None)
    assert ids(hits) == ["a-2025", "b-jan"] and hits[0].parts.time is None
    hit = ix.recall(req, same, w)[0].to_recall_hit()
    assert hit.parts is not None and hit.parts.time == 1.0
