"""The dashboard's 2-D views: the incremental projection of embeddings, world positions, and the
hot index's read-only snapshot they are drawn from."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.hot_index import HotIndex
from pipelines.projection import IncrementalProjection, agent_positions, world_xy
from pipelines.store import StoredMemory

DIM = 384


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _groups(n: int = 300, seed: int = 1, noise: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """Two planted groups of unit vectors around two random centres, interleaved."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(2, DIM)))
    labels = np.arange(n) % 2
    x = _unit(centres[labels] + noise * rng.normal(size=(n, DIM)))
    return x.astype(np.float32), labels


def _feed(proj: IncrementalProjection, x: np.ndarray, sizes: list[int]) -> None:
    i = 0
    for s in sizes * (len(x) // max(1, sum(sizes)) + 1):
        if i >= len(x):
            break
        proj.learn(x[i : i + s], [f"m{j}" for j in range(i, min(i + s, len(x)))])
        i += s


def test_separates_two_planted_groups() -> None:
    x, labels = _groups()
    proj = IncrementalProjection(DIM)
    _feed(proj, x, [1, 7, 30, 64])
    xy = proj.project(x)
    a, b = xy[labels == 0], xy[labels == 1]
    gap = float(np.linalg.norm(a.mean(axis=0) - b.mean(axis=0)))
    spread = float(max(a.std(axis=0).max(), b.std(axis=0).max()))
    assert gap > 10 * spread, (gap, spread)
    # the first component carries the split: the groups fall on either side of 0
    assert (np.sign(a[:, 0]) == np.sign(a[0, 0])).all()
    assert (np.sign(b[:, 0]) == -np.sign(a[0, 0])).all()
    assert proj.n == len(x) and proj.version >= 2
    assert proj.explained[0] > proj.explained[1] >= 0


def test_deterministic_bit_for_bit() -> None:
    x, _ = _groups(seed=3)
    outs = []
    for _ in range(2):
        proj = IncrementalProjection(DIM)
        _feed(proj, x, [5, 50, 17])
        outs.append((proj.project(x), proj.version, proj.n))
    assert np.array_equal(outs[0][0], outs[1][0])
    assert outs[0][1:] == outs[1][1:]


def test_fewer_than_three_rows() -> None:
    rng = np.random.default_rng(0)
    v = _unit(rng.normal(size=(3, DIM))).astype(np.float32)
    proj = IncrementalProjection(DIM)
    assert proj.project(v).shape == (3, 2) and not proj.project(v).any()  # nothing learnt
    assert proj.project(np.zeros((0, DIM), np.float32)).shape == (0, 2)
    assert proj.learn(v[:1], ["a"]) is False  # one row: no direction yet
    assert not proj.project(v).any() and proj.version == 0
    assert proj.learn(v[1:2], ["b"]) is True  # two rows: the line through them
    xy = proj.project(v[:2])
    assert np.isfinite(xy).all()
    d = float(np.linalg.norm(v[0] - v[1]))
    assert abs(xy[0, 0] - xy[1, 0]) == pytest.approx(d, rel=1e-5)  # the difference is along x
    assert np.abs(xy[:, 1]).max() < 1e-5
    assert xy[0, 0] == pytest.approx(-xy[1, 0], rel=1e-5)  # centred between them


def test_stable_sign_and_order_across_refreshes() -> None:
    """Data with two planted directions of variance (3 and 1.5 times the noise): every refresh
    recomputes the eigenvectors (whose signs eigh picks freely), yet each axis keeps pointing
    the same way and the two never swap."""
    rng = np.random.default_rng(5)
    u, v = np.linalg.qr(rng.normal(size=(DIM, 2)))[0].T
    coef = rng.normal(size=(3000, 2)) * [3.0, 1.5]
    x = coef[:, :1] * u + coef[:, 1:] * v + 0.05 * rng.normal(size=(3000, DIM))
    proj = IncrementalProjection(DIM)
    probes = x[:100]
    proj.learn(x[:300], [f"m{i}" for i in range(300)])
    before = proj.project(probes)
    v0 = proj.version
    seen = [before]
    for lo in range(300, 3000, 100):
        if proj.learn(x[lo : lo + 100], [f"m{i}" for i in range(lo, lo + 100)]):
            seen.append(proj.project(probes))
    assert proj.version > v0 + 3
    for a, b in zip(seen, seen[1:], strict=False):
        for j in range(2):  # the same axis, the same way, at every refresh
            assert np.corrcoef(a[:, j], b[:, j])[0, 1] > 0.99
    assert np.corrcoef(seen[-1][:, 0], coef[:100, 0])[0, 1] ** 2 > 0.99  # x follows u


def test_projection_frozen_between_refreshes_and_geometric_schedule() -> None:
    x, _ = _groups(n=4000, seed=7)
    proj = IncrementalProjection(DIM, refresh_min=32, refresh_growth=0.25)
    versions = []
    for i in range(0, 4000, 8):
        changed = proj.learn(x[i : i + 8], [f"m{j}" for j in range(i, i + 8)])
        versions.append((proj.n, proj.version, changed))
    refresh_at = [n for n, _, changed in versions if changed]
    assert refresh_at[0] == 8  # as soon as there is a direction
    gaps = np.diff(refresh_at)
    assert (gaps >= 32).all() and gaps[-1] > gaps[0]  # refreshes grow rarer
    assert len(refresh_at) < 25
    # between refreshes the view does not move
    p1 = proj.project(x[:10])
    proj.learn(x[:8] * 0 + x[100:108], [f"extra{j}" for j in range(8)])
    assert proj.version == versions[-1][1]
    assert np.array_equal(p1, proj.project(x[:10]))


def test_ids_seen_are_not_learnt_twice_and_max_learn() -> None:
    x, _ = _groups(n=100)
    proj = IncrementalProjection(DIM, max_learn=60)
    proj.learn(x[:40], [f"m{i}" for i in range(40)])
    proj.learn(x[:40], [f"m{i}" for i in range(40)])  # again: nothing new
    assert proj.n == 40
    proj.learn(x[:2], ["dup", "dup"])  # the same id twice in one batch: once
    assert proj.n == 41
    proj.learn(x[40:], [f"m{i}" for i in range(40, 100)])
    assert proj.n == 60  # capped
    with pytest.raises(ValueError):
        proj.learn(np.zeros((2, 5)))
    with pytest.raises(ValueError):
        proj.learn(np.full((2, DIM), np.nan), ["n1", "n2"])


def test_world_positions() -> None:
    pos = np.array([[1.0, 2.0, np.nan], [np.nan, np.nan, np.nan], [3.0, 4.0, 5.0]])
    xy, known = world_xy(pos)
    assert known.tolist() == [True, False, True]
    assert xy[known].tolist() == [[1.0, 2.0], [3.0, 4.0]]
    latest = agent_positions(["a", "a", "a"], pos, np.array([1.0, 9.0, 2.0]))
    assert latest == {"a": (3.0, 4.0, 2.0)}  # the latest memory with a position


def _row(i: int, agent: str, ns: str = "w", pos: bool = True) -> StoredMemory:
    rng = np.random.default_rng(i)
    extra = {"position": {"x": float(i), "y": float(-i)}} if pos else {}
    return StoredMemory(
        f"m{i}", agent, ns, "episodic", f"memory {i}", 0.5, 1000.0 + i, "", rng.normal(size=DIM),
        extra,
    )  # fmt: skip


def test_hot_index_snapshot_samples_stably_and_projects_in_place() -> None:
    ix = HotIndex(DIM)
    ix.upsert([_row(i, f"a{i % 3}", pos=i % 4 != 0) for i in range(300)])
    ix.upsert([_row(1000, "a0", ns="other")])
    ix.set_cluster("w", "a1", "m1", "a1/c1")
    ix.update_life("w", "a2", "m2", "consolidated", 100.0, 1002.0, 3)
    full = ix.snapshot("w")
    assert full["total"] == 300 and len(full["memory_id"]) == 300
    assert full["vector"].shape == (300, DIM) and full["vector"].dtype == np.float32
    assert np.allclose(np.linalg.norm(full["vector"], axis=1), 1.0, atol=1e-5)
    at = full["memory_id"].index("m1")
    assert full["cluster_id"][at] == "a1/c1" and full["agent_id"][at] == "a1"
    assert full["state"][full["memory_id"].index("m2")] == "consolidated"
    assert full["content"][at] == "memory 1" and full["type"][at] == "episodic"
    assert np.isnan(full["position"][full["memory_id"].index("m0")]).all()
    # a sample: the same memories each time, and a larger one is a superset
    small, big = ix.snapshot("w", limit=50), ix.snapshot("w", limit=120)
    assert small["total"] == 300 and len(small["memory_id"]) == 50
    assert small["memory_id"] == ix.snapshot("w", limit=50)["memory_id"]
    assert set(small["memory_id"]) <= set(big["memory_id"])
    one = ix.snapshot("w", agent_id="a1", limit=10)
    assert one["total"] == 100 and set(one["agent_id"]) == {"a1"}
    # projected under the lock instead of copied
    proj = IncrementalProjection(DIM)
    proj.learn(full["vector"], full["memory_id"])
    pts = ix.snapshot("w", limit=50, project=proj.project)
    assert pts["vector"].shape == (50, 2)
    want = proj.project(
        np.stack([full["vector"][full["memory_id"].index(m)] for m in pts["memory_id"]])
    )
    assert np.allclose(pts["vector"], want, atol=1e-5)
    assert ix.snapshot("nowhere")["total"] == 0
    assert ix.snapshot("nowhere", project=proj.project)["vector"].shape == (0, 2)
    assert len(ix) == 301  # nothing changed
