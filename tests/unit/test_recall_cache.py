"""L1 recall caches: keys, invalidation on state change, byte bounds, embedding reuse."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.hot_index import HotIndex
from pipelines.recall_cache import RecallCache, estimate_nbytes, request_key
from pipelines.scoring import ScoreWeights
from pipelines.store import StoredMemory
from schemas.recall import RecallRequest

T0 = 1_767_225_600.0
DIM = 4


def req(**kw: object) -> RecallRequest:
    return RecallRequest.model_validate({"namespace": "w", "agent_id": "ann", "query": "fox", **kw})


def row(mid: str, agent: str = "ann", ns: str = "w", content: str = "a fox") -> StoredMemory:
    v = np.ones(DIM, dtype=np.float32) / 2
    return StoredMemory(mid, agent, ns, "episodic", content, 0.5, T0, "", v)


def test_request_key_is_canonical() -> None:
    assert request_key(req(tags=["a", "b"], types=["semantic", "episodic"])) == request_key(
        req(tags=["b", "a", "a"], types=["episodic", "semantic"])
    )
    base = request_key(req())
    for other in (
        req(k=5),
        req(query="wolf"),
        req(include_archived=True),
        req(near={"x": 0, "y": 0, "radius": 1}),
        req(weights={"recency": 0}),
        req(event_time="2026-01-01T00:00:00Z"),
        req(since="2026-01-01T00:00:00Z"),
        req(cluster_id="c1"),
        req(states=["active"]),
    ):
        assert request_key(other) != base


def test_hits_and_misses_are_counted() -> None:
    c = RecallCache()
    assert c.get(req()) is None
    c.put(req(), ["r"])
    assert c.get(req()) == ["r"] and c.get(req(k=3)) is None
    s = c.stats()["results"]
    assert (s["hits"], s["misses"], s["items"]) == (1, 2, 1)


def test_invalidation_on_state_change_with_the_hot_index() -> None:
    """A lifecycle change of one of the agent's memories makes its cached results stale."""
    ix, c = HotIndex(dim=DIM), RecallCache()
    ix.upsert([row("m1"), row("m2")])
    r = req()
    q = np.ones(DIM, dtype=np.float32)
    hits = ix.recall(r, q, ScoreWeights())
    c.put(r, hits)
    assert c.get(r) is hits
    ix.update_life("w", "ann", "m1", "decayed", 100.0, T0, 0)  # the stage that does this ...
    c.invalidate("w", "ann", ["m1"])  # ... invalidates the agent
    assert c.get(r) is None
    fresh = ix.recall(r, q, ScoreWeights())
    assert [h.memory.memory_id for h in fresh] == ["m2"]


def test_index_version_as_generation_invalidates_every_write() -> None:
    ix, c = HotIndex(dim=DIM), RecallCache()
    ix.upsert([row("m1")])
    r = req()
    c.put(r, "v1", generation=ix.version("w", "ann"))
    assert c.get(r, generation=ix.version("w", "ann")) == "v1"
    for change in (
        lambda: ix.update_life("w", "ann", "m1", "consolidated", 9e4, T0 + 1, 3),
        lambda: ix.set_cluster("w", "ann", "m1", "c1"),
        lambda: ix.upsert([row("m2")]),
        lambda: ix.remove("w", ["m2"]),
    ):
        before = ix.version("w", "ann")
        change()
        assert c.get(r, generation=ix.version("w", "ann")) is None, before
        c.put(r, "v", generation=ix.version("w", "ann"))


def test_invalidation_is_per_agent_and_namespace() -> None:
    c = RecallCache()
    mine, bobs, other_ns = req(), req(agent_id="bob"), req(namespace="x")
    for r in (mine, bobs, other_ns):
        c.put(r, r.namespace + r.agent_id)
    c.invalidate("w", "ann")
    assert c.get(mine) is None
    assert c.get(bobs) == "wbob" and c.get(other_ns) == "xann"
    assert c.version("w", "ann") == 1 and c.version("x", "ann") == 0


def test_records_are_dropped_on_invalidation() -> None:
    c = RecallCache()
    c.put_record(row("m1"))
    c.put_record(row("m1", ns="x"))
    assert c.get_record("w", "m1") is not None
    c.invalidate("w", "ann", ["m1"])
    assert c.get_record("w", "m1") is None and c.get_record("x", "m1") is not None


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1_000, 50_000),
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 20_000)), max_size=80),
)
def test_byte_bound_is_respected(limit: int, puts: list[tuple[int, int]]) -> None:
    c = RecallCache(results_bytes=limit, records_bytes=limit, embeddings_bytes=limit)
    for i, size in puts:
        stored = c.put(req(k=i + 1), "x" * size)
        assert stored == (estimate_nbytes("x" * size) + 200 <= limit)
        c.put_record(row(f"m{i}", content="y" * size))
        s = c.stats()
        for part in ("results", "records"):
            assert s[part]["bytes"] <= limit
        assert c.nbytes() <= 3 * limit
    if puts:  # the most recent item that fits is always there
        i, size = puts[-1]
        assert (c.get(req(k=i + 1)) is not None) == (estimate_nbytes("x" * size) + 200 <= limit)


def test_too_large_result_is_not_cached_and_replaces_nothing() -> None:
    c = RecallCache(results_bytes=4096)
    c.put(req(), "small")
    assert c.put(req(), "z" * 10_000) is False
    assert c.get(req()) is None  # the stale smaller value for the same key is gone too
    assert c.stats()["results"]["too_large"] == 1


def test_sizes_of_hits_and_responses_are_estimated() -> None:
    ix = HotIndex(dim=DIM)
    ix.upsert([row("m1", content="x" * 5000)])
    hits = ix.recall(req(), np.ones(DIM, np.float32), ScoreWeights())
    assert estimate_nbytes(hits) > 5000
    assert estimate_nbytes({"a": hits[0].to_recall_hit()}) > 5000


def test_query_embeddings_are_computed_once() -> None:
    calls: list[list[str]] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        return np.full((len(texts), DIM), len(calls), dtype=np.float32)

    c = RecallCache(embeddings_bytes=1 << 16)
    a = c.embedding("a wolf", embed)
    b = c.embedding("a wolf", embed)
    assert calls == [["a wolf"]] and a is b and not a.flags.writeable
    c.embedding("a fox", embed)
    assert len(calls) == 2
    s = c.stats()["embeddings"]
    assert (s["hits"], s["misses"], s["items"]) == (1, 2, 2)
    with pytest.raises(ValueError):
        a[0] = 1.0
