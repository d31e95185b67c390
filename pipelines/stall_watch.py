"""Partitions that stopped moving: assigned, with records to read, and no progress for a while.

Faust takes a partition out of its fetcher while a stream's buffer is under pressure and puts it
back when the buffer drains; a rebalance or a table recovery in between can leave it out for
good, and the partition then sits silent with no error (its lag only grows). This module is the
pure part of the watchdog that notices it: fed each partition's high-water mark and read
position now and then, it names the ones with records waiting and no progress for
``stall_s``. The worker (``pipelines.app``) logs the consumer's view of them and puts them back
into the fetcher.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Partition = tuple[str, int]  # (topic, partition)


@dataclass
class StallWatch:
    """Progress per partition; ``observe`` returns the partitions that stalled."""

    stall_s: float
    # partition -> (read position, when it last changed or was first seen lagging)
    _seen: dict[Partition, tuple[int, float]] = field(default_factory=dict)
    stalls: int = 0  # partitions found stalled (each time one is found again it counts again)

    def observe(
        self, now: float, positions: dict[Partition, tuple[float | None, int]]
    ) -> list[Partition]:
        """``positions``: each assigned partition's (high-water mark, read position); a
        high-water mark of None is not known yet. Partitions no longer assigned are forgotten.
        A partition found stalled starts its clock again (so it is reported once per
        ``stall_s`` while it stays stuck)."""
        for gone in set(self._seen) - set(positions):
            del self._seen[gone]
        stalled = []
        for tp, (high, read) in positions.items():
            if high is None or read >= high:
                self._seen.pop(tp, None)  # caught up: nothing to wait for
                continue
            last = self._seen.get(tp)
            if last is None or last[0] != read:
                self._seen[tp] = (read, now)
            elif now - last[1] >= self.stall_s:
                stalled.append(tp)
                self._seen[tp] = (read, now)
        self.stalls += len(stalled)
        return sorted(stalled)
