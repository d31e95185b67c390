"""Spatial partitioning: radius recalls through the grid give exactly the answers of a full scan,
through inserts, moves and removals, and look at only the nearby rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipelines.hot_index import HotIndex, NearFilter, RecallFilters
from pipelines.spatial import Grid, Places
from pipelines.store import StoredMemory

DIM = 8


def _row(i: int, pos: tuple[float, float, float | None] | None, seed: int = 0) -> StoredMemory:
    v = np.random.default_rng(i * 7919 + seed).standard_normal(DIM).astype(np.float32)
    extra = {} if pos is None else {"position": {"x": pos[0], "y": pos[1], "z": pos[2]}}
    return StoredMemory(f"m{i}", "ann", "w", "episodic", f"memory {i}", 0.5, 0.0, "", v, extra)


coord = st.floats(-150.0, 150.0, allow_nan=False)
positions = st.one_of(st.none(), st.tuples(coord, coord, st.one_of(st.none(), coord)))
ops = st.lists(
    st.tuples(st.sampled_from(["put", "put", "move", "decay"]), st.integers(0, 60), positions),
    min_size=1,
    max_size=80,
)
queries = st.lists(
    st.tuples(coord, coord, st.one_of(st.none(), coord), st.floats(0.01, 200.0)),
    min_size=1,
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(ops, queries, st.sampled_from([0.5, 3.0, 10.0, 40.0]))
def test_grid_answers_exactly_as_a_full_scan(script: list, asks: list, cell: float) -> None:
    with_grid, without = HotIndex(dim=DIM, spatial_cell=cell), HotIndex(dim=DIM, spatial_cell=None)
    for op, i, pos in script:
        for ix in (with_grid, without):
            if op == "decay":
                ix.remove("w", [f"m{i}"])
            else:  # a put, or a move: the same memory upserted at a new position
                ix.upsert([_row(i, pos, seed=op == "move")])
    q = np.ones(DIM, dtype=np.float32)
    for x, y, z, r in asks:
        f = RecallFilters("w", "ann", near=NearFilter(x, y, z, r))
        got = [h.memory.memory_id for h in with_grid.search(q, f, k=100)]
        want = [h.memory.memory_id for h in without.search(q, f, k=100)]
        assert got == want


def test_a_small_radius_looks_at_the_nearby_cells_only() -> None:
    """10,000 memories over a 1,000 x 1,000 world: a radius-15 recall tests a few dozen rows."""
    rng = np.random.default_rng(0)
    g = Grid(cell=10.0)
    pts = rng.uniform(0, 1000, (10_000, 2))
    for i, (x, y) in enumerate(pts):
        g.set(i, float(x), float(y))
    cand = g.candidates(500.0, 500.0, 15.0, limit=2500)
    assert cand is not None and 10 < cand.size < 150
    inside = np.flatnonzero(np.hypot(pts[:, 0] - 500, pts[:, 1] - 500) <= 15.0)
    assert set(inside.tolist()) <= set(cand.tolist())  # a superset of the answer
    assert g.candidates(500.0, 500.0, 600.0, limit=2500) is None  # most of the world: scan


def test_bad_cell_sizes_and_far_points_are_handled() -> None:
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="cell"):
            Grid(bad)
    g = Grid(1.0)
    g.set(0, 1e300, 0.0)
    assert g.candidates(0.0, 0.0, 1e308, limit=10) is None  # the box overflows: scan


sightings = st.lists(
    st.tuples(
        st.integers(0, 30),
        st.one_of(coord, st.just(math.nan)),
        coord,
        st.floats(0.0, 100.0, allow_nan=False),
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(sightings, queries, st.sampled_from([0.5, 3.0, 10.0, 40.0]))
# just below the box's edge, a distance that rounds to exactly the radius (found by CI)
@example([(0, 0.0, -4.1049301196804183e-258, 0.0)], [(0.0, 1.0, None, 1.0)], 0.5)
def test_places_answers_as_a_scan_of_each_agents_latest_position(
    seen: list, asks: list, cell: float
) -> None:
    """The namespace-wide index: each agent is where its latest (event-time) finite sighting put
    it (an older sighting never moves it back), and ``near`` equals a brute-force scan."""
    places = Places(cell)
    latest: dict[str, tuple[float, float, float]] = {}
    for a, x, y, ts in seen:
        agent = f"agent-{a}"
        places.see(agent, x, y, ts)
        if math.isfinite(x) and (agent not in latest or ts >= latest[agent][2]):
            latest[agent] = (x, y, ts)
    assert places.at == latest
    again = Places.from_rows(cell, places.rows())
    assert again.at == places.at
    for x, y, _, r in asks:
        want = sorted(
            (round(math.hypot(ax - x, ay - y), 6), a)
            for a, (ax, ay, _) in latest.items()
            if math.hypot(ax - x, ay - y) <= r
        )
        got, _ = places.near(x, y, r)
        assert [(d, a) for a, d, _ in got] == want
        assert [(d, a) for a, d, _ in again.near(x, y, r)[0]] == want


def test_places_near_looks_at_the_nearby_agents_only() -> None:
    """5,000 agents over a 1,000 x 1,000 world, 10-unit cells: a radius-15 question looks at a
    few agents, a radius-2,000 one at all of them (a scan), both exact."""
    rng = np.random.default_rng(1)
    places = Places(10.0)
    xy = rng.uniform(0, 1000, size=(5000, 2))
    for i, (x, y) in enumerate(xy):
        places.see(f"a{i}", float(x), float(y), 1.0)
    got, touched = places.near(500.0, 500.0, 15.0)
    want = int((np.hypot(xy[:, 0] - 500, xy[:, 1] - 500) <= 15.0).sum())
    assert len(got) == want and want > 0
    assert touched <= 60, touched  # 4x4 cells of ~0.5 agents each
    wide, touched = places.near(500.0, 500.0, 2000.0)
    assert len(wide) == 5000 and touched == 5000
