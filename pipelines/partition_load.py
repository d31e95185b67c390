"""Hot partitions: how evenly the events spread over the partitions a worker owns.

Events are keyed by agent, so one busy agent (or a crowd of agents hashing alike) makes one
partition carry far more than the others, and the worker that owns it falls behind while the
rest idle. This module is the pure part of the detector: fed the agent keys the ingest stage
reads from each partition, it reports each partition's rate over the last one to two windows,
the skew (hottest ÷ mean), the hot partitions, the busiest agent, and a suggested partition
count for the rate seen:
``ceil(mean partition rate × partitions ÷ target rate per partition)`` (a worker sees only the
partitions it owns, so the others are taken to carry the mean), never fewer than there are
(Kafka cannot shrink a topic). When a single agent alone exceeds the target, more partitions
will not help it (its events share one key), and the report says so (``agent_bound``).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PartitionLoad:
    partitions: int  # the topic's partition count now
    target_rate: float  # events/s one partition should carry (about one worker's share)
    hot_ratio: float = 2.0  # a partition this many times the mean rate is hot
    window_s: float = 60.0
    # agent keys read per partition: the current window's and the one before it
    _now: dict[int, Counter[bytes]] = field(default_factory=dict)
    _before: dict[int, Counter[bytes]] = field(default_factory=dict)
    _since: float | None = None  # start of the current window
    _before_since: float | None = None
    _owned: set[int] = field(default_factory=set)
    _clock: float = 0.0

    def tick(self, now: float, owned: set[int]) -> None:
        """Now and then: the partitions this worker owns (others are forgotten); rolls the
        window."""
        self._clock = now
        self._owned = set(owned)
        for counts in (self._now, self._before):
            for gone in set(counts) - self._owned:
                del counts[gone]
        if self._since is None:
            self._since = now
        elif now - self._since >= self.window_s:
            self._before, self._before_since = self._now, self._since
            self._now, self._since = {}, now

    def note_keys(self, partition: int, keys: list[bytes]) -> None:
        """Agent keys of events read from ``partition`` (the ingest stage's records)."""
        self._now.setdefault(partition, Counter()).update(keys)

    def _counts(self, p: int) -> Counter[bytes]:
        return self._before.get(p, Counter()) + self._now.get(p, Counter())

    def rates(self) -> dict[int, float]:
        """Events/s read per owned partition over the last one to two windows."""
        start = self._before_since if self._before_since is not None else self._since
        span = self._clock - start if start is not None else 0.0
        span = max(span, 1.0)
        return {p: sum(self._counts(p).values()) / span for p in sorted(self._owned)}

    def report(self) -> dict[str, Any]:
        rates = self.rates()
        total = sum(rates.values())
        mean = total / len(rates) if rates else 0.0
        hottest = max(rates.values(), default=0.0)
        hot = sorted(p for p, r in rates.items() if mean > 0 and r >= self.hot_ratio * mean)
        # the busiest agent: its share of its partition's events times that partition's rate
        top_agent, top_rate = None, 0.0
        for p in rates:
            seen = self._counts(p)
            if not seen:
                continue
            key, n = seen.most_common(1)[0]
            rate = rates[p] * n / sum(seen.values())
            if rate > top_rate:
                top_agent, top_rate = key, rate
        # a worker sees only the partitions it owns: scale its mean to the whole topic
        needed = math.ceil(mean * self.partitions / self.target_rate) if self.target_rate else 0
        return {
            "rates": {str(p): round(r, 3) for p, r in rates.items()},
            "total_rate": total,
            "skew": hottest / mean if mean > 0 else 1.0,
            "hot_partitions": hot,
            "top_agent": top_agent.decode(errors="replace") if top_agent else None,
            "top_agent_rate": top_rate,
            "agent_bound": top_rate > self.target_rate,
            "partitions": self.partitions,
            "suggested_partitions": max(self.partitions, needed),
        }
