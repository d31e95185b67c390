"""2-D views of the memory for the dashboard: an incremental projection of the embeddings, and
the agents' world positions.

**Embedding view** (``IncrementalProjection``): principal component analysis kept up to date one
batch at a time. The running mean and scatter matrix (sum of outer products of centred rows)
are merged per batch (Chan et al.'s pairwise update, in float64), and the top two
eigenvectors of the covariance (``numpy.linalg.eigh``) are recomputed on a geometric schedule:
when the rows learnt since the last refresh reach ``max(refresh_min, refresh_growth × rows at
the last refresh)``. So the basis settles as data accumulates (about 35 refreshes up to 100k
rows with the defaults), and points already on screen keep their place between refreshes: the
centre and the basis used to project are frozen until the next refresh (``version`` counts
them; a client re-fetches its points when it changes).

The basis is made stable: at a refresh the new components are matched to the old ones (swapped
if that fits better, each sign flipped to point the same way), and the first basis points each
component's largest coordinate to +. Everything is deterministic: the same rows in the same
batches give the same coordinates, bit for bit. Fewer than two rows have no direction: the
points project to (0, 0) until there are two.

**World view** (``world_xy``, ``agent_positions``): where memories happened (their
``position``), and each agent's latest known position.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> a, b = rng.normal(size=(2, 16))
>>> x = np.vstack([a + 0.1 * rng.normal(size=(20, 16)), b + 0.1 * rng.normal(size=(20, 16))])
>>> proj = IncrementalProjection(dim=16)
>>> proj.learn(x)
True
>>> xy = proj.project(x)
>>> bool(np.sign(xy[:20, 0]).std() == 0 and np.sign(xy[20:, 0]).std() == 0)
True
>>> bool(np.sign(xy[0, 0]) != np.sign(xy[20, 0]))
True
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

import numpy as np


class IncrementalProjection:
    """Running PCA to 2-D of ``dim``-dimensional vectors (see the module docstring).

    Thread-safe: ``learn`` and ``project`` may be called from different threads.
    ``max_learn``: rows learnt at most (then it only projects), which bounds the ids it keeps
    to skip rows it has seen (when ``learn`` is given ids).
    """

    def __init__(
        self,
        dim: int = 384,
        *,
        refresh_min: int = 32,
        refresh_growth: float = 0.25,
        max_learn: int = 200_000,
    ) -> None:
        if dim < 2:
            raise ValueError("dim must be >= 2")
        self.dim = dim
        self.refresh_min = max(1, int(refresh_min))
        self.refresh_growth = float(refresh_growth)
        self.max_learn = int(max_learn)
        self.n = 0
        self._mean = np.zeros(dim, dtype=np.float64)
        self._scatter = np.zeros((dim, dim), dtype=np.float64)
        self._seen: set[str] = set()
        self._n_refreshed = 0
        # the frozen view, (centre, basis (dim, 2) with orthonormal columns): what ``project``
        # uses until the next refresh; one tuple, swapped at once, so readers need no lock
        self._view: tuple[np.ndarray, np.ndarray] | None = None
        self.version = 0
        self.explained = (0.0, 0.0)  # variance along each component at the last refresh
        self._lock = threading.Lock()

    # -- learning -------------------------------------------------------------------------------

    def learn(self, vectors: np.ndarray, ids: Sequence[str] | None = None) -> bool:
        """Add rows (``ids``, if given, skip rows learnt before); returns True when the basis
        was refreshed (``version`` moved)."""
        x = np.asarray(vectors, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"vectors must be (n, {self.dim}), got {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("vectors must be finite")
        with self._lock:
            if ids is not None:
                if len(ids) != len(x):
                    raise ValueError("ids and vectors differ in length")
                keep, fresh = [], set()
                for i, m in enumerate(ids):
                    if m not in self._seen and m not in fresh:
                        fresh.add(m)
                        keep.append(i)
                if len(keep) < len(x):
                    x = x[keep]
            room = self.max_learn - self.n
            if room <= 0 or len(x) == 0:
                return False
            if len(x) > room:
                x = x[:room]
            if ids is not None:
                self._seen.update(ids[i] for i in (keep[: len(x)]))
            self._merge(x)
            if self._due():
                self._refresh()
                return True
            return False

    def _merge(self, x: np.ndarray) -> None:
        nb = len(x)
        mb = x.mean(axis=0)
        xc = x - mb
        sb = xc.T @ xc
        na = self.n
        n = na + nb
        delta = mb - self._mean
        self._scatter += sb + np.outer(delta, delta) * (na * nb / n)
        self._mean += delta * (nb / n)
        self.n = n

    def _due(self) -> bool:
        if self.n < 2:
            return False
        if self._view is None:
            return True
        step = max(self.refresh_min, self.refresh_growth * self._n_refreshed)
        return self.n - self._n_refreshed >= step

    def refresh(self) -> None:
        """Recompute the basis now (normally done on the schedule)."""
        with self._lock:
            if self.n >= 2:
                self._refresh()

    def _refresh(self) -> None:
        cov = self._scatter / (self.n - 1)
        vals, vecs = np.linalg.eigh(cov)  # ascending
        w = vecs[:, [-1, -2]].copy()
        old = None if self._view is None else self._view[1]
        if old is None:
            for j in range(2):  # the largest coordinate of each component points to +
                if w[int(np.argmax(np.abs(w[:, j]))), j] < 0:
                    w[:, j] = -w[:, j]
        else:
            c = w.T @ old
            if abs(c[0, 1]) + abs(c[1, 0]) > abs(c[0, 0]) + abs(c[1, 1]):
                w = w[:, ::-1].copy()
                c = w.T @ old
            for j in range(2):
                if c[j, j] < 0:
                    w[:, j] = -w[:, j]
        self._view = (self._mean.copy(), w)
        self._n_refreshed = self.n
        self.explained = (float(max(vals[-1], 0.0)), float(max(vals[-2], 0.0)))
        self.version += 1

    # -- projecting -----------------------------------------------------------------------------

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """(n, 2) float32 coordinates of rows in the current view ((0, 0) before two rows)."""
        x = np.asarray(vectors)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"vectors must be (n, {self.dim}), got {x.shape}")
        return project_with(self._view, x)

    @property
    def view(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The current (centre (dim,), basis (dim, 2)), or None before two rows: what another
        worker needs to project its rows into this worker's picture (``project_with``)."""
        return self._view

    def state(self) -> dict[str, float | int]:
        """What the dashboard shows about the projection."""
        return {
            "version": self.version,
            "rows_learnt": self.n,
            "explained_1": self.explained[0],
            "explained_2": self.explained[1],
        }


def project_with(view: tuple[np.ndarray, np.ndarray] | None, vectors: np.ndarray) -> np.ndarray:
    """(n, 2) float32 coordinates of ``vectors`` in a given view (``IncrementalProjection.view``
    of another worker; (0, 0) for None)."""
    x = np.asarray(vectors)
    if view is None:
        return np.zeros((len(x), 2), dtype=np.float32)
    center, basis = view
    if x.ndim != 2 or x.shape[1] != len(center) or basis.shape != (len(center), 2):
        raise ValueError(f"vectors {x.shape} and view {basis.shape} do not fit")
    return ((x - center) @ basis).astype(np.float32)


def world_xy(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The plane coordinates (n, 2) of memories' positions (n, 3), and the mask of rows that
    have one (NaN = no position)."""
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    known = np.isfinite(pos[:, 0]) & np.isfinite(pos[:, 1])
    return pos[:, :2].astype(np.float32), known


def agent_positions(
    agent_ids: Iterable[str], positions: np.ndarray, event_ts: np.ndarray
) -> dict[str, tuple[float, float, float]]:
    """Each agent's latest known position: agent -> (x, y, event time), from its memories'
    positions (the one with the latest event time; ties: the later row).

    >>> import numpy as np
    >>> pos = np.array([[0, 0, np.nan], [5, 5, np.nan], [9, 9, np.nan], [np.nan] * 3])
    >>> agent_positions(["a", "a", "b", "b"], pos, np.array([1.0, 2.0, 1.0, 3.0]))
    {'a': (5.0, 5.0, 2.0), 'b': (9.0, 9.0, 1.0)}
    """
    xy, known = world_xy(positions)
    ts = np.asarray(event_ts, dtype=np.float64)
    out: dict[str, tuple[float, float, float]] = {}
    for i, agent in enumerate(agent_ids):
        if not known[i]:
            continue
        prev = out.get(agent)
        if prev is None or ts[i] >= prev[2]:
            out[agent] = (float(xy[i, 0]), float(xy[i, 1]), float(ts[i]))
    return out
