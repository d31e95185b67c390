"""Spatial partitioning of one agent's memories: a uniform grid over world positions (x, y).

A radius recall ("what do I remember near here?") then tests only the rows in the cells that the
circle's bounding box touches, instead of every row of the agent: at 100k memories spread over a
world, a small radius touches a few hundred. The exact distance test still decides (z included),
so the grid changes the cost, never the answer. Rows are numbered like the hot index partition's
and follow its swap-with-last removal.

>>> g = Grid(cell=10.0)
>>> g.set(0, 1.0, 1.0); g.set(1, 15.0, 1.0); g.set(2, 95.0, 95.0); g.set(3, math.nan, 0.0)
>>> sorted(g.candidates(0.0, 0.0, 5.0, limit=10).tolist())
[0]
>>> sorted(g.candidates(10.0, 0.0, 6.0, limit=10).tolist())
[0, 1]
>>> g.remove_at(0, 3)  # row 3 (no position) moves to 0
>>> sorted(g.candidates(10.0, 0.0, 6.0, limit=10).tolist())
[1]
>>> g.candidates(50.0, 50.0, 100.0, limit=1) is None  # too many: scan instead
True
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

import numpy as np

Cell = tuple[int, int]
# Past this many cells to visit, or this share of the rows as candidates (``candidates``'
# ``limit``, see ``HotIndex``), a vectorised scan of every row is cheaper than the grid: each
# candidate costs a Python set iteration (~50 ns) where the scan costs a few ns a row
# (bench/spatial.py: the grid wins 2-3x at radius 5-20 of a 10-unit cell, loses beyond ~100).
MAX_CELLS = 256


class Grid:
    """Rows by the cell of their (x, y) position; rows without a position are not in it."""

    def __init__(self, cell: float) -> None:
        if not (math.isfinite(cell) and cell > 0):
            raise ValueError(f"grid cell size must be finite and > 0, got {cell!r}")
        self.cell = float(cell)
        self.cells: dict[Cell, set[Any]] = {}
        self.of_row: dict[Any, Cell] = {}

    def __len__(self) -> int:
        return len(self.of_row)

    def key(self, x: float, y: float) -> Cell | None:
        if not (math.isfinite(x) and math.isfinite(y)):
            return None
        return (math.floor(x / self.cell), math.floor(y / self.cell))

    def set(self, i: Hashable, x: float, y: float) -> None:
        """Row ``i`` is at (x, y) now (NaN: it has no position)."""
        self.discard(i)
        k = self.key(x, y)
        if k is not None:
            self.cells.setdefault(k, set()).add(i)
            self.of_row[i] = k

    def discard(self, i: Hashable) -> None:
        k = self.of_row.pop(i, None)
        if k is not None:
            rows = self.cells[k]
            rows.discard(i)
            if not rows:
                del self.cells[k]

    def remove_at(self, i: int, last: int) -> None:
        """Drop row ``i``; row ``last`` (the final one) takes its number."""
        self.discard(i)
        if i != last:
            k = self.of_row.pop(last, None)
            if k is not None:
                rows = self.cells[k]
                rows.discard(last)
                rows.add(i)
                self.of_row[i] = k

    def candidates(self, x: float, y: float, radius: float, limit: int) -> np.ndarray | None:
        """Rows in the cells the circle's bounding box touches (a superset of those within
        ``radius`` in the plane), or None when there would be more than ``limit`` (a full scan
        is then as cheap)."""
        found = self.near_sets(x, y, radius, limit)
        if found is None:
            return None
        out = np.empty(sum(len(rows) for rows in found), dtype=np.int64)
        at = 0
        for rows in found:
            out[at : at + len(rows)] = np.fromiter(rows, dtype=np.int64, count=len(rows))
            at += len(rows)
        return out

    def near_sets(
        self, x: float, y: float, radius: float, limit: float, max_cells: int = MAX_CELLS
    ) -> list[set[Any]] | None:
        """The occupied cells' row sets that the circle's bounding box touches, or None when
        the walk would visit more than ``max_cells`` cells or gather more than ``limit`` rows,
        or the box is not finite (the caller scans every row instead)."""
        c = self.cell
        # a point just outside the circle can round to a distance of exactly ``radius`` (and
        # count as inside): widen the box by a hair so its cell is walked too
        r = radius + 1e-9 * (abs(radius) + abs(x) + abs(y)) + 1e-300
        box = ((x - r) / c, (x + r) / c, (y - r) / c, (y + r) / c)
        if not all(math.isfinite(v) and abs(v) < 2**52 for v in box):
            return None
        x0, x1 = math.floor(box[0]), math.floor(box[1])
        y0, y1 = math.floor(box[2]), math.floor(box[3])
        span = (x1 - x0 + 1) * (y1 - y0 + 1)
        if span <= len(self.cells):  # walk the box
            if span > max_cells:  # a wide circle: the walk would cost more than the scan
                return None
            keys = ((cx, cy) for cx in range(x0, x1 + 1) for cy in range(y0, y1 + 1))
            sets = (self.cells[k] for k in keys if k in self.cells)
        else:  # fewer occupied cells than cells in the box: walk those
            if len(self.cells) > max_cells:
                return None
            sets = (
                rows for (cx, cy), rows in self.cells.items() if x0 <= cx <= x1 and y0 <= cy <= y1
            )
        found, total = [], 0
        for rows in sets:
            total += len(rows)
            if total > limit:  # give up early: the caller scans
                return None
            found.append(rows)
        return found

    def nbytes(self) -> int:
        """A rough size: two dict entries and a set slot per row, a set per cell."""
        return 120 * len(self.of_row) + 250 * len(self.cells)


class Places:
    """Where each agent of a namespace was last seen: the namespace-wide spatial index.

    Keyed by agent, fed with the position of every memory an agent forms (the latest event time
    wins, so a late event never moves an agent back), and gridded like ``Grid``: "which agents
    are near (x, y)?" visits only the cells the circle's bounding box touches (it also says how
    many agents it looked at), with an exact distance test deciding.

    >>> p = Places(cell=10.0)
    >>> [p.see("a", 1.0, 1.0, ts=5.0), p.see("b", 40.0, 0.0, ts=5.0), p.see("c", 4.0, 3.0, ts=1.0)]
    [True, True, True]
    >>> found, touched = p.near(0.0, 0.0, 6.0)
    >>> [(a, d) for a, d, _ in found], touched
    ([('a', 1.414214), ('c', 5.0)], 2)
    >>> p.see("a", 100.0, 100.0, ts=4.0)  # older than what it knows: ignored
    False
    >>> p.at["a"]
    (1.0, 1.0, 5.0)
    """

    def __init__(self, cell: float) -> None:
        self.grid = Grid(cell)
        self.at: dict[str, tuple[float, float, float]] = {}  # agent -> (x, y, event time)

    def __len__(self) -> int:
        return len(self.at)

    def see(self, agent: str, x: float, y: float, ts: float) -> bool:
        """Agent ``agent`` was at (x, y) at event time ``ts``; False (nothing changes) when the
        position is not finite or an event at least as late placed it already."""
        if not (math.isfinite(x) and math.isfinite(y)):
            return False
        old = self.at.get(agent)
        if old is not None and (old[2] > ts or old == (x, y, ts)):
            return False
        self.at[agent] = (float(x), float(y), float(ts))
        self.grid.set(agent, x, y)
        return True

    def near(self, x: float, y: float, radius: float) -> tuple[list[tuple[str, float, float]], int]:
        """Agents within ``radius`` of (x, y): (agent, distance rounded to 1e-6, last seen),
        nearest first (then by id); and how many agents the grid had it look at."""
        # the scan here is a Python loop too (not a vectorised one, as in the hot index): the
        # walk pays while it visits fewer cells than there are agents
        sets = self.grid.near_sets(x, y, radius, math.inf, max(MAX_CELLS, len(self.at)))
        pool: Any = self.at if sets is None else (a for rows in sets for a in rows)
        out, touched = [], 0
        for agent in pool:
            touched += 1
            ax, ay, ts = self.at[agent]
            d = math.hypot(ax - x, ay - y)
            if d <= radius:
                out.append((agent, round(d, 6), ts))
        out.sort(key=lambda r: (r[1], r[0]))
        return out, touched

    def rows(self) -> list[list[Any]]:
        """The saved form: ``[agent, x, y, ts]`` in insertion order."""
        return [[a, x, y, ts] for a, (x, y, ts) in self.at.items()]

    @classmethod
    def from_rows(cls, cell: float, rows: list[list[Any]]) -> Places:
        p = cls(cell)
        for agent, x, y, ts in rows:
            p.see(str(agent), float(x), float(y), float(ts))
        return p
