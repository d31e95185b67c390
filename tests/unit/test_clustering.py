from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipelines.clustering import AgentClusters, ClusterParams


def _vecs(seed: int, n: int, groups: int, dim: int = 16, noise: float = 0.3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(groups, dim))
    return [centers[i % groups] + noise * rng.normal(size=dim) for i in range(n)]


def _invariants(ac: AgentClusters, n: int) -> None:
    members = [m for c in ac.clusters.values() for m in c.members]
    assert len(members) == len(set(members)) == n  # each memory in exactly one live cluster
    assert all(ac.where[m] == cid for cid, c in ac.clusters.items() for m in c.members)
    assert all(c.members for c in ac.clusters.values())


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 80), st.integers(1, 6), st.floats(0.05, 1.5))
def test_clusters_partition_the_memories(seed: int, n: int, groups: int, noise: float) -> None:
    ac = AgentClusters("a", ClusterParams(min_split_size=4))
    for i, v in enumerate(_vecs(seed, n, groups, noise=noise)):
        changes = ac.add(f"m{i}", v, float(i))
        assert changes
        for ch in changes:
            assert ch.size >= 1 and 0.0 <= ch.stability <= 1.0
        _invariants(ac, i + 1)


def test_well_separated_groups_are_found() -> None:
    ac = AgentClusters("a")
    vs = _vecs(1, 120, 4, dim=32, noise=0.15)
    for i, v in enumerate(vs):
        ac.add(f"m{i}", v, float(i))
    assert len(ac.clusters) == 4
    for c in ac.clusters.values():
        assert len({int(m[1:]) % 4 for m in c.members}) == 1


def test_merge_and_split_preserve_member_count() -> None:
    ac = AgentClusters("a", ClusterParams(join_threshold=0.99, merge_threshold=0.5))
    rng = np.random.default_rng(3)
    base = rng.normal(size=8)
    kinds = []
    for i in range(30):
        kinds += [c.kind for c in ac.add(f"m{i}", base + 0.3 * rng.normal(size=8), float(i))]
        _invariants(ac, i + 1)
    assert "merge" in kinds
    ac2 = AgentClusters("b", ClusterParams(join_threshold=-1.0, split_radius=0.2, min_split_size=6))
    kinds2 = []
    for i, v in enumerate(_vecs(5, 40, 2, noise=0.05)):
        kinds2 += [c.kind for c in ac2.add(f"m{i}", v, float(i))]
        _invariants(ac2, i + 1)
    assert "split" in kinds2 and len(ac2.clusters) >= 2


def test_same_input_same_clusters_and_replayed_memory_changes_nothing() -> None:
    def run() -> list[tuple]:
        ac = AgentClusters("a")
        out = []
        for i, v in enumerate(_vecs(9, 60, 3)):
            out += [(c.kind, c.cluster_id, c.size, c.related) for c in ac.add(f"m{i}", v, i)]
        assert ac.add("m0", _vecs(9, 1, 1)[0], 99.0) == []
        return out

    assert run() == run()


def test_remove_keeps_the_partition() -> None:
    ac = AgentClusters("a")
    for i, v in enumerate(_vecs(2, 30, 3)):
        ac.add(f"m{i}", v, float(i))
    for i in range(0, 30, 2):
        ac.remove(f"m{i}", 100.0)
    _invariants(ac, 15)


def test_state_round_trip_is_exact_and_continues_identically() -> None:
    import json

    from pipelines.clustering import from_state, to_state

    vs = _vecs(5, 40, 2, noise=0.05)
    known = {f"m{i}": v for i, v in enumerate(vs)}  # what the vector store would answer
    fetched: list[str] = []

    def fetch(ids: list[str]) -> dict[str, np.ndarray]:
        fetched.extend(ids)
        return {i: known[i] for i in ids}

    params = ClusterParams(join_threshold=-1.0, split_radius=0.2, min_split_size=6)
    straight = AgentClusters("a", params)
    restored = AgentClusters("a", params)
    a_changes, b_changes = [], []
    for i, v in enumerate(vs):
        a_changes += straight.add(f"m{i}", v, float(i))
        restored = from_state(json.loads(json.dumps(to_state(restored))), params, fetch)
        b_changes += restored.add(f"m{i}", v, float(i))
    assert a_changes == b_changes
    assert to_state(straight) == to_state(restored)
    assert any(c.kind == "split" for c in a_changes) and fetched  # splits needed the store


def test_split_waits_while_vectors_are_unavailable() -> None:
    from pipelines.clustering import from_state, to_state

    params = ClusterParams(join_threshold=-1.0, split_radius=0.2, min_split_size=6)
    ac = AgentClusters("a", params)
    vs = _vecs(5, 5, 2, noise=0.05)
    for i, v in enumerate(vs):
        ac.add(f"m{i}", v, float(i))
    blind = from_state(to_state(ac), params, fetch=lambda ids: {})
    changes = blind.add("m5", _vecs(5, 6, 2, noise=0.05)[5], 5.0)
    assert [c.kind for c in changes] == ["join"]  # no split without the members' vectors
    _invariants(blind, 6)


def test_identical_vectors_keep_metrics_in_range() -> None:
    ac = AgentClusters("a", ClusterParams(min_split_size=2))
    v = np.full(384, 0.05, dtype=np.float32)
    for i in range(20):
        for ch in ac.add(f"m{i}", v, float(i)):
            assert 0.0 <= ch.radius and 0.0 <= ch.stability <= 1.0


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 4), st.integers(0, 10_000)), min_size=1, max_size=60
    ),
    st.floats(0.2, 0.9),
)
@example([(False, 0, 16), (True, 0, 16), (True, 0, 16)], 0.5)  # equal vectors: a tie
def test_nearest_member_is_the_brute_force_one_whatever_came_and_went(
    steps: list[tuple[bool, int, int]], join: float
) -> None:
    """The near-duplicate test reads each cluster's member vectors from a matrix it keeps and
    grows between calls; after any mix of joins, merges, splits and removals it finds the same
    member as a scan of the clusters' current members."""
    rng = np.random.default_rng(0)
    themes = rng.normal(size=(5, 16))
    ac = AgentClusters("a", ClusterParams(join_threshold=join, min_split_size=4, split_radius=0.3))
    n = 0
    for add, theme, seed in steps:
        if add or not ac.where:
            v = themes[theme] + 0.4 * np.random.default_rng(seed).normal(size=16)
            ac.add(f"m{n:03d}", v, float(n))
            n += 1
        else:
            ac.remove(sorted(ac.where)[seed % len(ac.where)], float(n))
        q = themes[seed % 5] + 0.3 * np.random.default_rng(seed + 1).normal(size=16)
        got = ac.nearest(q)
        unit = (q / np.linalg.norm(q)).astype(np.float32)
        ranked = sorted(
            ac.clusters.values(),
            key=lambda c: (-float(c.centroid() @ unit), int(c.cluster_id.rpartition("/c")[2])),
        )
        scanned = [(mid, float(ac.vectors[mid] @ unit)) for c in ranked[:2] for mid in c.members]
        want = None
        if scanned:  # the best; within 1e-6 of it a tie, to the smallest id
            top = max(sim for _, sim in scanned)
            want = min((mid, sim) for mid, sim in scanned if sim >= top - 1e-6)
        if want is None:
            assert got is None
        else:
            assert got is not None and got[0] == want[0] and abs(got[1] - want[1]) < 1e-5


def _apply(saved: dict[str, list[str]], delta: dict[str, object]) -> None:
    """A clusters delta applied to saved member lists (as ``pipelines.agent_log`` merges)."""
    for entry in delta["put"]:  # type: ignore[attr-defined]
        if "add" in entry:
            saved[entry["id"]] = saved[entry["id"]] + entry["add"]
        else:
            saved[entry["id"]] = list(entry["members"])
    for cid in delta["drop"]:  # type: ignore[attr-defined]
        del saved[cid]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.integers(0, 3), min_size=1, max_size=60))
def test_clusters_delta_since_marks_rebuilds_the_members_after_any_changes(
    seed: int, ops: list[int]
) -> None:
    """Joins, removals, merges and splits between marks (a removal and a join in one batch
    leave a list as long as before): the deltas rebuild every cluster's members exactly, and a
    batch that changed nothing writes nothing."""
    from pipelines.clustering import cluster_marks, clusters_delta

    ac = AgentClusters("a", ClusterParams(min_split_size=4))
    vs = _vecs(seed, len(ops) * 2 + 2, 3, noise=0.6)
    saved: dict[str, list[str]] = {}
    marks = cluster_marks(ac)
    n = 0
    for i, op in enumerate(ops):
        if op == 0 and ac.where:  # remove one, then maybe add: same length, new content
            ac.remove(sorted(ac.where)[seed % len(ac.where)], float(i))
        if op != 3:
            ac.add(f"m{n}", vs[n], float(i))
            n += 1
        if op == 3 or i % 2:  # a save
            delta = clusters_delta(ac, marks)
            _apply(saved, delta)
            assert saved == {cid: c.members for cid, c in ac.clusters.items()}
            marks = cluster_marks(ac)
            assert clusters_delta(ac, marks)["put"] == []  # nothing changed since


def test_a_members_vector_is_kept_once_as_a_row_of_its_clusters_matrix() -> None:
    """After a near-duplicate test has built a cluster's member matrix, each member's vector
    is a view of its row there (one copy, the same bits), also after the matrix grew, and the
    answers are those of freshly made vectors."""
    vecs = _vecs(5, 300, 3, dim=32, noise=0.2)
    ac = AgentClusters("a")
    fresh = AgentClusters("a")
    for i, v in enumerate(vecs):
        assert ac.nearest(v) == fresh.nearest(v)  # fresh never builds a matrix before adding
        ac.add(f"m{i}", v, float(i))
        fresh.add(f"m{i}", v, float(i))
        fresh._members.clear()
    cid, c = max(ac.clusters.items(), key=lambda kv: len(kv[1].members))
    ids, buf = ac._members[cid]
    assert ids == c.members and len(ids) > 50
    for row, mid in enumerate(ids):
        assert np.shares_memory(ac.vectors[mid], buf)
        assert np.array_equal(ac.vectors[mid], buf[row])
        assert np.array_equal(ac.vectors[mid], fresh.vectors[mid])
