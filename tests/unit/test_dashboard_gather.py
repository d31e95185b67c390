"""Gathering the dashboard from several workers: merged samples are one worker's sample."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.dashboard import columns
from pipelines.dashboard_gather import (
    POINT_COLUMNS,
    decode_vectors,
    encode_vectors,
    merge_held,
    merge_points,
    row_from_wire,
    row_to_wire,
    sample_order,
    sum_counters,
)
from pipelines.store import StoredMemory


def _snap(ids: list[str], agents: list[str], clusters: list[str | None]) -> dict:
    n = len(ids)
    return {
        "total": n,
        "memory_id": ids,
        "agent_id": agents,
        "type": ["episodic"] * n,
        "state": ["active"] * n,
        "cluster_id": clusters,
        "content": [f"text of {m}" for m in ids],
        "event_ts": np.arange(n, dtype=np.float64),
        "position": np.full((n, 3), np.nan),
        "vector": np.zeros((n, 2), dtype=np.float32),
    }


def _payload(ids: list[str], limit: int) -> dict:
    """One worker's points payload of ``ids`` (agent = the id's prefix), sampled to limit."""
    keep = sample_order(ids, limit).tolist()
    kept = [ids[i] for i in keep]
    snap = _snap(kept, [m.split(":")[0] for m in kept], [f"c-{m[-1]}" for m in kept])
    snap["total"] = len(ids)
    return {"namespace": "w", "total": len(ids), **columns(snap, snap["vector"])}


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 300),
    workers=st.integers(1, 4),
    limit=st.integers(1, 200),
    seed=st.integers(0, 2**16),
)
def test_merged_worker_samples_are_the_sample_of_everything(
    n: int, workers: int, limit: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    ids = [f"a{rng.integers(0, 9)}:m{i}" for i in range(n)]
    owner = rng.integers(0, workers, n)
    payloads = [
        _payload([m for m, o in zip(ids, owner, strict=True) if o == w], limit)
        for w in range(workers)
    ]
    merged = merge_points(payloads, limit)
    want = [ids[i] for i in sample_order(ids, limit).tolist()]
    assert sorted(merged["memory_id"]) == sorted(want)
    assert merged["total"] == n and merged["n"] == len(want)
    for k in ("x", "y", "wx", "content", "event_ts", "type", "state", "agent", "cluster"):
        assert len(merged[k]) == merged["n"], k
    # codes point at the right names after remapping
    for i, m in enumerate(merged["memory_id"]):
        assert merged["agents"][merged["agent"][i]] == m.split(":")[0]
        assert merged["clusters"][merged["cluster"][i]] == f"c-{m[-1]}"
        assert merged["content"][i] == f"text of {m}"


def test_point_columns_are_the_columns_with_a_value_per_point() -> None:
    payload = columns(_snap(["a:1", "a:2", "b:3"], ["a", "a", "b"], [None, "c", "c"]), None)
    per_point = {k for k, v in payload.items() if isinstance(v, list) and len(v) == 3}
    assert per_point - {"types", "states", "agents", "clusters"} == set(POINT_COLUMNS)


def test_merge_keeps_no_cluster_and_world_agents() -> None:
    a = columns(_snap(["x:1"], ["x"], [None]), None)
    b = columns(_snap(["y:1"], ["y"], ["c"]), None)
    a["world_agents"] = [{"agent_id": "x", "x": 1.0, "y": 2.0, "event_ts": 0.0}]
    b["world_agents"] = [{"agent_id": "y", "x": 3.0, "y": 4.0, "event_ts": 0.0}]
    m = merge_points([a | {"total": 1}, b | {"total": 1}], 10)
    assert m["cluster"] == [-1, 0] and m["clusters"] == ["c"]
    assert [w["agent_id"] for w in m["world_agents"]] == ["x", "y"]
    with pytest.raises(ValueError, match="no payloads"):
        merge_points([], 10)


def test_vectors_and_rows_travel_as_float16() -> None:
    v = np.random.default_rng(1).normal(size=(3, 8)).astype(np.float32)
    back = decode_vectors(encode_vectors(v), 8)
    assert back.shape == (3, 8) and np.allclose(back, v, atol=1e-2)
    with pytest.raises(ValueError, match="not rows of 8"):
        decode_vectors(encode_vectors(v)[:-4], 8)
    row = StoredMemory(
        memory_id="w:a:1",
        agent_id="a",
        namespace="w",
        type="episodic",
        content="a héron by the ford",
        importance=0.7,
        event_ts=12.5,
        event_time="2026-05-01T08:00:00+00:00",
        vector=v[0],
        extra={"position": {"x": 1.0, "y": 2.0}},
    )
    got = row_from_wire(row_to_wire(row), 8)
    assert got == row  # vector and extra are not compared: check them too
    assert np.allclose(got.vector, v[0], atol=1e-2) and got.extra == row.extra


def test_counters_sum_over_workers() -> None:
    local = {"stored": 5, "ingested": 7, "lag_total": 1, "lag": {"t/0": 1}, "uptime_s": 9.0}
    peers = [{"stored": 3, "ingested": 4, "lag_total": 2, "lag": {"t/1": 2}, "uptime_s": 99.0}]
    out = sum_counters(local, peers)
    assert out["stored"] == 8 and out["ingested"] == 11 and out["lag_total"] == 3
    assert out["lag"] == {"t/0": 1, "t/1": 2} and out["workers"] == 2
    assert out["uptime_s"] == 9.0  # not a count: this worker's
    assert local["lag"] == {"t/0": 1}  # the input is not changed


def test_held_maps_merge() -> None:
    held = merge_held([{"w": {"a": 3}}, {"w": {"b": 2}, "v": {"c": 1}}, {"w": {"a": 2}}])
    assert held == {"w": {"a": 3, "b": 2}, "v": {"c": 1}}
