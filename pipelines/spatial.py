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
        self.cells: dict[Cell, set[int]] = {}
        self.of_row: dict[int, Cell] = {}

    def __len__(self) -> int:
        return len(self.of_row)

    def key(self, x: float, y: float) -> Cell | None:
        if not (math.isfinite(x) and math.isfinite(y)):
            return None
        return (math.floor(x / self.cell), math.floor(y / self.cell))

    def set(self, i: int, x: float, y: float) -> None:
        """Row ``i`` is at (x, y) now (NaN: it has no position)."""
        self.discard(i)
        k = self.key(x, y)
        if k is not None:
            self.cells.setdefault(k, set()).add(i)
            self.of_row[i] = k

    def discard(self, i: int) -> None:
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
        c = self.cell
        box = ((x - radius) / c, (x + radius) / c, (y - radius) / c, (y + radius) / c)
        if not all(math.isfinite(v) and abs(v) < 2**52 for v in box):
            return None
        x0, x1 = math.floor((x - radius) / c), math.floor((x + radius) / c)
        y0, y1 = math.floor((y - radius) / c), math.floor((y + radius) / c)
        span = (x1 - x0 + 1) * (y1 - y0 + 1)
        if span <= len(self.cells):  # walk the box
            if span > MAX_CELLS:  # a wide circle: the walk would cost more than the scan
                return None
            keys = ((cx, cy) for cx in range(x0, x1 + 1) for cy in range(y0, y1 + 1))
            sets = (self.cells[k] for k in keys if k in self.cells)
        else:  # fewer occupied cells than cells in the box: walk those
            if len(self.cells) > MAX_CELLS:
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
        out = np.empty(total, dtype=np.int64)
        at = 0
        for rows in found:
            out[at : at + len(rows)] = np.fromiter(rows, dtype=np.int64, count=len(rows))
            at += len(rows)
        return out

    def nbytes(self) -> int:
        """A rough size: two dict entries and a set slot per row, a set per cell."""
        return 120 * len(self.of_row) + 250 * len(self.cells)
