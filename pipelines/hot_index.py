"""Hot recall index: one worker's memories in RAM, searched exactly with numpy.

Rows are partitioned by ``(namespace, agent_id)``; a recall always names both, so it scans one
agent's contiguous float32 matrix (a matrix-vector product) plus numpy metadata columns. Every
filter is a boolean mask applied *before* top-k, and the ranking is exhaustive, so results equal an
exact search (recall@10 = 1.0). Measured against Milvus Lite alone and plain numpy brute force in
``bench/recall.py``.

Rows carry the lifecycle's view of each memory (state, stability S, last reinforcement, recalls),
fed by ``update_life``; until the lifecycle reports, a memory is active with the stability of a
fresh memory (``pipelines.scoring.initial_stability``) reinforced at its event time. Decayed or
deleted memories are dropped and remembered as tombstones, so a redelivered upsert does not
resurrect them; an active memory whose retention at the query's time is at or below the decay
threshold is not returned either (the lifecycle would decay it at that time).

A recall may prefer a period of event time (``TimeBonus``: the request's ``prefer``, or the period
its query names, ``time_bonus_for``): rows formed in it get the bonus in their total and a
``time`` part of 1 (0 for the others); without one, nothing of this runs.

One writer thread and reader threads may share an index (one lock; numpy releases the GIL in the
matrix product, writers wait for a running search).

>>> import numpy as np
>>> from pipelines.store import StoredMemory
>>> ix = HotIndex(dim=2)
>>> v = lambda x, y: np.array([x, y], dtype=np.float32)
>>> ix.upsert([StoredMemory("m1", "ann", "w", "episodic", "fox", 0.5, 0.0, "", v(1, 0)),
...            StoredMemory("m2", "ann", "w", "episodic", "owl", 0.5, 0.0, "", v(0, 1))])
2
>>> [h.memory.memory_id for h in ix.search(v(1, 0.1), RecallFilters("w", "ann"), k=1)]
['m1']
>>> ix.search(v(1, 0), RecallFilters("w", "bob"), k=1)
[]
"""

from __future__ import annotations

import math
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final, Literal

import numpy as np

from pipelines.lexical import LexicalIndex, normalised, terms
from pipelines.lifecycle import LifecycleParams, MemoryState
from pipelines.scoring import (
    ScoreParts,
    ScoreWeights,
    TimeBonus,
    initial_stability,
    retention,
    score,
    time_part,
)
from pipelines.spatial import Grid
from pipelines.store import RowFields, StoredMemory, dedupe_last, rows_from_fields
from pipelines.time_hints import named_period
from schemas.recall import RecallHit, RecallRequest


def sample_order(ids: list[str], limit: int) -> np.ndarray:
    """Indexes (ascending) of the ``limit`` ids a sample keeps: the smallest CRC-32, ties by
    id. Every call picks the same memories, a larger limit a superset, and samples of parts
    merged then sampled again keep what one sample of the whole would (the dashboard merges
    per-agent and per-worker samples with it)."""
    if len(ids) <= limit:
        return np.arange(len(ids))
    pri = np.fromiter((zlib.crc32(m.encode()) for m in ids), np.int64, len(ids))
    return np.sort(np.lexsort((np.array(ids), pri))[:limit])


STATE_CODES: dict[str, int] = {s.value: i for i, s in enumerate(MemoryState)}
STATE_NAMES: tuple[str, ...] = tuple(s.value for s in MemoryState)
TYPE_CODES: dict[str, int] = {"episodic": 0, "semantic": 1, "procedural": 2}
TERMINAL = frozenset({MemoryState.decayed.value, MemoryState.deleted.value})
DEFAULT_STATES = frozenset({MemoryState.active.value, MemoryState.consolidated.value})
_EMPTY = np.zeros(0, dtype=np.float32)
SPATIAL_CELL = 10.0  # default grid cell side for radius recalls, in world units
_GATHER_BELOW = 0.25  # fraction of an agent's rows under which a filtered search gathers rows
_GATHER_CHUNK = 4096  # rows gathered at a time into a reused scratch buffer (no big temporaries)


@dataclass(frozen=True)
class NearFilter:
    """Within ``radius`` of (x, y) in the plane, or of (x, y, z) in 3-D (then z must be known)."""

    x: float
    y: float
    z: float | None
    radius: float

    def __post_init__(self) -> None:
        coords = [self.x, self.y] + ([] if self.z is None else [self.z])
        if not all(math.isfinite(c) for c in coords):
            raise ValueError("near: coordinates must be finite")
        if not (math.isfinite(self.radius) and self.radius > 0):
            raise ValueError(f"near: radius must be finite and > 0, got {self.radius!r}")


@dataclass(frozen=True)
class RecallFilters:
    """What a recall may return. Namespace and agent are always enforced.

    ``states``: lifecycle states wanted (decayed/deleted never come back); archived memories come
    back only with ``include_archived`` (which adds them). ``tags``: all must be present.
    Time bounds are inclusive POSIX seconds on the memory's event time.
    """

    namespace: str
    agent_id: str
    types: frozenset[str] | None = None
    since_ts: float | None = None
    until_ts: float | None = None
    states: frozenset[str] = DEFAULT_STATES
    include_archived: bool = False
    cluster_id: str | None = None
    tags: frozenset[str] = frozenset()
    near: NearFilter | None = None

    def __post_init__(self) -> None:
        unknown = set(self.states) - set(STATE_CODES)
        if unknown:
            raise ValueError(f"unknown lifecycle states: {sorted(unknown)}")
        if self.types is not None and set(self.types) - set(TYPE_CODES):
            raise ValueError(f"unknown memory types: {sorted(set(self.types) - set(TYPE_CODES))}")
        if self.since_ts is not None and self.until_ts is not None:
            if self.since_ts > self.until_ts:
                raise ValueError("since must not be after until")

    def effective_states(self) -> frozenset[str]:
        """States a row may be in to be returned (created counts as active)."""
        wanted = set(self.states) - TERMINAL - {MemoryState.archived.value}
        if MemoryState.active.value in wanted:
            wanted.add(MemoryState.created.value)
        if self.include_archived:
            wanted.add(MemoryState.archived.value)
        return frozenset(wanted)

    @classmethod
    def from_request(cls, req: RecallRequest) -> RecallFilters:
        near = req.near
        return cls(
            namespace=req.namespace,
            agent_id=req.agent_id,
            types=frozenset(t.value for t in req.types) if req.types else None,
            since_ts=req.since.timestamp() if req.since else None,
            until_ts=req.until.timestamp() if req.until else None,
            states=frozenset(req.states),
            include_archived=req.include_archived,
            cluster_id=req.cluster_id,
            tags=frozenset(req.tags or ()),
            near=NearFilter(near.x, near.y, near.z, near.radius) if near else None,
        )


def weights_for(req: RecallRequest, default: ScoreWeights) -> ScoreWeights:
    """The request's weight override, else ``default`` (the worker's settings)."""
    w = req.weights
    return default if w is None else ScoreWeights(w.relevance, w.recency, w.importance, w.lexical)


def time_bonus_for(req: RecallRequest, clock_ts: float | None = None) -> TimeBonus | None:
    """The request's time preference, resolved: ``prefer``'s period if it names one; else, with
    ``time_hints``, the period the query names (``pipelines.time_hints.named_period``), read at
    the request's ``event_time`` or else at ``clock_ts`` (the agent's clock: it resolves a month
    named without a year); ``prefer``'s weight and slack apply when given. None: no preference.

    >>> req = RecallRequest(namespace="w", agent_id="a", query="the fair in May 2023")
    >>> b = time_bonus_for(req)
    >>> datetime.fromtimestamp(b.since_ts, UTC).isoformat(), b.weight, b.source, b.text
    ('2023-05-01T00:00:00+00:00', 0.1, 'query', 'May 2023')
    >>> time_bonus_for(req.model_copy(update={"time_hints": False})) is None
    True
    """
    pref = req.prefer
    if pref is not None and pref.has_period:
        return TimeBonus(
            pref.since.timestamp() if pref.since is not None else -math.inf,
            pref.until.timestamp() if pref.until is not None else math.inf,
            pref.weight,
            pref.slack_s,
            source="request",
        )
    if not req.time_hints:
        return None
    ref: datetime | float | None = req.event_time if req.event_time is not None else clock_ts
    period = named_period(req.query, ref)
    if period is None:
        return None
    tuned = {} if pref is None else {"weight": pref.weight, "slack_s": pref.slack_s}
    return TimeBonus(period.since_ts, period.until_ts, source="query", text=period.text, **tuned)


def preferred_period(bonus: TimeBonus | None, req: RecallRequest) -> dict[str, Any] | None:
    """``bonus`` as the response's ``preferred`` (times in the request's UTC offset, if any)."""
    if bonus is None:
        return None
    tz = req.event_time.tzinfo if req.event_time is not None else UTC

    def iso(ts: float) -> str | None:
        if not math.isfinite(ts):
            return None
        try:
            return datetime.fromtimestamp(ts, tz).isoformat()
        except (OverflowError, OSError, ValueError):
            return datetime.fromtimestamp(ts, UTC).isoformat()

    return {
        "source": bonus.source,
        "since": iso(bonus.since_ts),
        "until": iso(bonus.until_ts),
        "weight": bonus.weight,
        "slack_s": bonus.slack_s,
        "text": bonus.text,
    }


class _FromRequest(Enum):
    token = 0


FROM_REQUEST: Final = _FromRequest.token
"""``HotIndex.recall``'s default ``prefer``: resolve the time preference from the request."""


@dataclass(frozen=True)
class ScoredHit:
    """One recalled memory with its score explained (``memory.vector`` is left empty)."""

    memory: StoredMemory
    parts: ScoreParts
    state: str
    cluster_id: str | None = None

    @property
    def score(self) -> float:
        return self.parts.total

    @property
    def position(self) -> dict[str, float] | None:
        return self.memory.extra.get("position")

    @property
    def tags(self) -> list[str]:
        return list(self.memory.extra.get("tags") or [])

    def to_recall_hit(self) -> RecallHit:
        m, p = self.memory, self.parts
        return RecallHit.model_validate(
            {
                "memory_id": m.memory_id,
                "agent_id": m.agent_id,
                "namespace": m.namespace,
                "type": m.type,
                "content": m.content,
                "importance": m.importance,
                "event_time": m.event_time,
                "score": p.total,
                "parts": {
                    "relevance": p.relevance,
                    "recency": p.recency,
                    "importance": p.importance,
                    "time": p.time,
                    "lexical": p.lexical,
                },
                "state": self.state
                if self.state in ("active", "consolidated", "archived")
                else "active",
                "cluster_id": self.cluster_id,
                "position": self.position,
                "tags": self.tags,
            }
        )


@dataclass(frozen=True)
class _Life:
    state: str
    stability_s: float
    reinforced_ts: float
    recalls: int


_COLUMNS: dict[str, tuple[Any, tuple[int, ...]]] = {
    "type": (np.int8, ()),
    "event_ts": (np.float64, ()),
    "importance": (np.float64, ()),
    "arousal": (np.float64, ()),
    "state": (np.int8, ()),
    "cluster": (np.int32, ()),
    "pos": (np.float64, (3,)),
    "stability": (np.float64, ()),
    "reinforced": (np.float64, ()),
    "recalls": (np.int32, ()),
    "life_known": (np.bool_, ()),
}
_ROW_OVERHEAD = 400  # rough bytes of one stored row object besides its text


@dataclass
class _Partition:
    """One agent's rows: row i of every column and of ``vec`` is ``rows[i]``."""

    dim: int
    n: int = 0
    cap: int = 0
    vec: np.ndarray = field(init=False)
    cols: dict[str, np.ndarray] = field(init=False)
    tagbits: np.ndarray = field(init=False)
    rows: list[StoredMemory] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    tag_vocab: dict[str, int] = field(default_factory=dict)
    cluster_vocab: dict[str, int] = field(default_factory=dict)
    cluster_names: list[str] = field(default_factory=list)
    pending_life: dict[str, _Life] = field(default_factory=dict)
    pending_cluster: dict[str, str | None] = field(default_factory=dict)
    clock: float = -math.inf
    version: int = 0
    text_bytes: int = 0
    warm: bool = False  # holds all the agent's rows (loaded by RecallService.warm)
    lex: LexicalIndex = field(default_factory=LexicalIndex)  # the rows' words (BM25)
    grid: Grid | None = None  # the rows' (x, y) cells (pipelines.spatial), when enabled

    def __post_init__(self) -> None:
        self.vec = np.empty((0, self.dim), dtype=np.float32)
        self.cols = {k: np.empty((0, *shape), dtype=dt) for k, (dt, shape) in _COLUMNS.items()}
        self.tagbits = np.zeros((0, 1), dtype=np.uint64)

    # -- storage -------------------------------------------------------------------------------
    def reserve(self, need: int) -> None:
        if need <= self.cap:
            return
        cap = max(need, int(self.cap * 1.5) + 16)
        n = self.n

        def grown(a: np.ndarray) -> np.ndarray:
            b = np.zeros((cap, *a.shape[1:]), dtype=a.dtype)
            b[:n] = a[:n]
            return b

        self.vec = grown(self.vec)
        self.cols = {k: grown(a) for k, a in self.cols.items()}
        self.tagbits = grown(self.tagbits)
        self.cap = cap

    def tag_bit(self, tag: str, add: bool) -> tuple[int, np.uint64] | None:
        code = self.tag_vocab.get(tag)
        if code is None:
            if not add:
                return None
            code = self.tag_vocab[tag] = len(self.tag_vocab)
            words = code // 64 + 1
            if words > self.tagbits.shape[1]:
                extra = np.zeros((self.tagbits.shape[0], words - self.tagbits.shape[1]), np.uint64)
                self.tagbits = np.concatenate([self.tagbits, extra], axis=1)
        return code // 64, np.uint64(1) << np.uint64(code % 64)

    def cluster_code(self, cluster_id: str | None, add: bool) -> int | None:
        if cluster_id is None:
            return -1
        code = self.cluster_vocab.get(cluster_id)
        if code is None and add:
            code = self.cluster_vocab[cluster_id] = len(self.cluster_names)
            self.cluster_names.append(cluster_id)
        return code

    def remove_at(self, i: int) -> StoredMemory:
        last = self.n - 1
        gone = self.rows[i]
        self.lex.remove_at(i, last)
        if self.grid is not None:
            self.grid.remove_at(i, last)
        if i != last:
            self.vec[i] = self.vec[last]
            for a in self.cols.values():
                a[i] = a[last]
            self.tagbits[i] = self.tagbits[last]
            moved = self.rows[last]
            self.rows[i] = moved
            self.index[moved.memory_id] = i
        self.rows.pop()
        del self.index[gone.memory_id]
        self.tagbits[last] = 0
        self.n = last
        self.text_bytes -= len(gone.content) + _ROW_OVERHEAD
        self.version += 1
        return gone

    def nbytes(self) -> int:
        arrays = self.vec.nbytes + self.tagbits.nbytes + sum(a.nbytes for a in self.cols.values())
        dicts = 100 * (len(self.index) + len(self.pending_life) + len(self.pending_cluster))
        grid = 0 if self.grid is None else self.grid.nbytes()
        return arrays + self.text_bytes + dicts + self.lex.nbytes() + grid

    # -- search --------------------------------------------------------------------------------
    def mask(self, f: RecallFilters) -> np.ndarray | None:
        """Rows passing every filter (None: no row can)."""
        n, c = self.n, self.cols
        codes = sorted(STATE_CODES[s] for s in f.effective_states())
        st = c["state"][:n]
        if codes and codes == list(range(codes[0], codes[-1] + 1)):  # a range: 1-2 compares
            m = st <= codes[-1] if codes[0] == 0 else (st >= codes[0]) & (st <= codes[-1])
        else:
            lut = np.zeros(len(STATE_NAMES), dtype=bool)
            lut[codes] = True
            m = lut[st]
        if f.types is not None:
            tlut = np.zeros(len(TYPE_CODES), dtype=bool)
            tlut[[TYPE_CODES[t] for t in f.types]] = True
            m &= tlut[c["type"][:n]]
        if f.since_ts is not None:
            m &= c["event_ts"][:n] >= f.since_ts
        if f.until_ts is not None:
            m &= c["event_ts"][:n] <= f.until_ts
        if f.cluster_id is not None:
            code = self.cluster_code(f.cluster_id, add=False)
            if code is None:
                return None
            m &= c["cluster"][:n] == code
        for tag in f.tags:
            bit = self.tag_bit(tag, add=False)
            if bit is None:
                return None
            m &= (self.tagbits[:n, bit[0]] & bit[1]) != 0
        if f.near is not None:
            near = f.near
            # the grid's cells near the point, when they hold few rows (1/16); else every row
            cand = (
                None
                if self.grid is None
                else self.grid.candidates(near.x, near.y, near.radius, limit=n // 16)
            )
            pos = c["pos"][:n] if cand is None else c["pos"][cand]
            dx = pos[:, 0] - near.x
            dy = pos[:, 1] - near.y
            d2 = dx * dx + dy * dy
            if near.z is not None:
                dz = pos[:, 2] - near.z
                d2 += dz * dz
            with np.errstate(invalid="ignore"):
                inside = d2 <= near.radius * near.radius  # NaN (no position) never matches
            if cand is None:
                m &= inside
            else:
                hit = np.zeros(n, dtype=bool)
                hit[cand[inside]] = True
                m &= hit
        return m


def _position(extra: Mapping[str, Any]) -> tuple[float, float, float]:
    p = extra.get("position")
    if not p:
        return (math.nan, math.nan, math.nan)
    z = p.get("z")
    return (float(p["x"]), float(p["y"]), math.nan if z is None else float(z))


def _arousal(extra: Mapping[str, Any]) -> float:
    return float((extra.get("emotion") or {}).get("arousal", 0.0))


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def _without_vector(r: StoredMemory) -> StoredMemory:
    """The row as the index keeps it (its vector lives in the partition's matrix); built
    directly, ``dataclasses.replace`` costs 5x more, which a warm of 1,000 rows notices."""
    *head, extra = r.fields()
    return StoredMemory(*head, _EMPTY, extra)  # one shared empty vector for every row


class HotIndex:
    """Per-worker in-memory recall index over ``StoredMemory`` rows (see the module docstring)."""

    def __init__(
        self,
        dim: int = 384,
        params: LifecycleParams | None = None,
        weights: ScoreWeights | None = None,
        max_bytes: int | None = None,
        spatial_cell: float | None = SPATIAL_CELL,
    ) -> None:
        """``max_bytes``: the memory bound; past it, whole agents leave the index, least
        recently used first (their rows stay in the L2 table and Milvus, and the next recall
        for one of them warms it again). ``spatial_cell``: the side of the grid cells that
        radius recalls look up (world units, ``pipelines.spatial``; None: scan every row)."""
        self.dim = dim
        self.spatial_cell = spatial_cell
        self.params = params or LifecycleParams()
        self.weights = weights or ScoreWeights()
        self.max_bytes = max_bytes
        self.evicted_agents = 0
        # insertion order is recency order: a touched agent moves to the end
        self._parts: dict[tuple[str, str], _Partition] = {}
        self._owner: dict[str, dict[str, str]] = {}  # namespace -> memory_id -> agent_id
        self._tombstones: dict[str, set[str]] = {}  # namespace -> decayed/deleted memory ids
        # (namespace, agent) -> expected recalls soon (see ``set_priorities``); 0 when unknown
        self._priority: dict[tuple[str, str], float] = {}
        self._lock = threading.RLock()
        self._scratch: np.ndarray | None = None

    # -- writes --------------------------------------------------------------------------------
    def _partition(self, namespace: str, agent_id: str) -> _Partition:
        key = (namespace, agent_id)
        p = self._parts.get(key)
        if p is None:
            grid = Grid(self.spatial_cell) if self.spatial_cell else None
            p = self._parts[key] = _Partition(self.dim, grid=grid)
        return p

    def upsert(self, rows: Sequence[StoredMemory]) -> int:
        """Insert or replace rows (keyed by namespace and memory id); returns rows indexed.

        A replaced row keeps the lifecycle state it has; rows the lifecycle already decayed
        (tombstones) are skipped.
        """
        rows = dedupe_last(rows)
        by_part: dict[tuple[str, str], list[StoredMemory]] = {}
        for r in rows:
            if r.vector.shape != (self.dim,):
                raise ValueError(f"vector shape {r.vector.shape}, index dim {self.dim}")
            by_part.setdefault((r.namespace, r.agent_id), []).append(r)
        done = 0
        with self._lock:
            for (ns, agent), batch in by_part.items():
                done += self._upsert_partition(ns, agent, batch)
                self._touch((ns, agent))
            self._enforce_bound(keep=set(by_part))
        return done

    def _touch(self, key: tuple[str, str]) -> None:
        p = self._parts.pop(key, None)
        if p is not None:
            self._parts[key] = p

    def set_priorities(self, expected: Mapping[tuple[str, str], float]) -> None:
        """How many recalls each ``(namespace, agent)`` is expected to get soon (the analytics'
        recall-probability model): past the memory bound, the agents expected to be recalled
        least leave first (the least recently used first among equals; an agent not named
        counts 0). Replaces the previous map."""
        with self._lock:
            self._priority = dict(expected)

    def _enforce_bound(self, keep: set[tuple[str, str]]) -> None:
        """Past ``max_bytes``: evict agents (never those in ``keep``, the ones just written)
        until the index is back under 90% of the bound: those expected to be recalled least
        first (``set_priorities``), the least recently used first among equals."""
        if self.max_bytes is None:
            return
        total = self.nbytes()
        if total <= self.max_bytes:
            return
        goal = 0.9 * self.max_bytes
        lru = list(self._parts)  # least recently used first
        rank = {key: i for i, key in enumerate(lru)}
        prio = self._priority
        for key in sorted(lru, key=lambda k: (prio.get(k, 0.0), rank[k])):
            if total <= goal:
                break
            if key in keep:
                continue
            total -= self._drop(key)
            self.evicted_agents += 1

    def _drop(self, key: tuple[str, str]) -> int:
        """One agent leaves the index (its tombstones stay); returns the bytes it held."""
        p = self._parts.pop(key)
        owner = self._owner.get(key[0], {})
        for mid in p.index:
            owner.pop(mid, None)
        return p.nbytes() + 100 * p.n

    def drop_agents(self, keep: Callable[[str, str], bool]) -> int:
        """The agents for which ``keep(namespace, agent)`` is false leave the index (their
        partitions went to another worker); returns how many left."""
        with self._lock:
            gone = [key for key in self._parts if not keep(*key)]
            for key in gone:
                self._drop(key)
            return len(gone)

    def locked(self) -> threading.RLock:
        """The index's lock, for a caller that needs several writes to be one step."""
        return self._lock

    def agent_rows(self, namespace: str, agent_id: str) -> list[StoredMemory]:
        """The rows of one agent held here (warm or not), each with its vector as the index
        holds it (unit length)."""
        return rows_from_fields(*self.agent_fields(namespace, agent_id))

    def agent_fields(self, namespace: str, agent_id: str) -> tuple[list[RowFields], np.ndarray]:
        """``agent_rows`` as their fields and one matrix of their vectors (a copy)."""
        with self._lock:
            p = self._parts.get((namespace, agent_id))
            if p is None:
                return [], np.empty((0, self.dim), dtype=np.float32)
            return [r.fields() for r in p.rows[: p.n]], p.vec[: p.n].copy()

    def is_warm(self, namespace: str, agent_id: str) -> bool:
        with self._lock:
            p = self._parts.get((namespace, agent_id))
            return p is not None and p.warm

    def warm_rows(self, namespace: str, agent_id: str) -> int | None:
        """The rows an agent holds here if it is warm (all loaded), else None."""
        with self._lock:
            p = self._parts.get((namespace, agent_id))
            return p.n if p is not None and p.warm else None

    def mark_warm(self, namespace: str, agent_id: str) -> None:
        """The agent's rows are all loaded (call with ``locked()`` held since the upsert, so
        no eviction came in between)."""
        with self._lock:
            self._partition(namespace, agent_id).warm = True

    def agents(self) -> int:
        with self._lock:
            return len(self._parts)

    def warm_agents(self) -> int:
        with self._lock:
            return sum(p.warm for p in self._parts.values())

    def _upsert_partition(self, ns: str, agent: str, batch: list[StoredMemory]) -> int:
        owner = self._owner.setdefault(ns, {})
        p = self._partition(ns, agent)
        keep: list[StoredMemory] = []
        dead = self._tombstones.get(ns, ())
        for r in batch:
            if r.memory_id in dead:
                continue  # forgotten: a redelivery must not bring it back
            prev = owner.get(r.memory_id)
            if prev is not None and prev != agent:  # the memory moved to another agent
                self._remove_one(ns, r.memory_id)
            keep.append(r)
        if not keep:
            return 0
        p.reserve(p.n + len(keep))
        slots = np.empty(len(keep), dtype=np.int64)
        fresh = np.zeros(len(keep), dtype=bool)
        appended: list[str] = []  # new rows' texts, indexed at once after the loop
        for j, r in enumerate(keep):
            i = p.index.get(r.memory_id)
            bare = _without_vector(r)  # the matrix holds the vector
            if i is None:
                i = p.n
                p.n += 1
                p.index[r.memory_id] = i
                p.rows.append(bare)
                fresh[j] = True
                owner[r.memory_id] = agent
                appended.append(r.content)
            else:
                p.text_bytes -= len(p.rows[i].content) + _ROW_OVERHEAD
                p.lex.set(i, r.content)
                p.rows[i] = bare
            p.text_bytes += len(r.content) + _ROW_OVERHEAD
            slots[j] = i
        p.lex.extend(appended)  # rows n_before.. in order: the fresh ones, as numbered above
        c = p.cols
        mat = np.stack([np.asarray(r.vector, dtype=np.float32) for r in keep])
        norms = np.linalg.norm(mat, axis=1, keepdims=True)
        p.vec[slots] = mat / np.where(norms > 0, norms, 1.0)
        types = np.array([TYPE_CODES[r.type] for r in keep], dtype=np.int8)
        ts = np.array([r.event_ts for r in keep], dtype=np.float64)
        imp = np.array([r.importance for r in keep], dtype=np.float64)
        aro = np.array([_arousal(r.extra) for r in keep], dtype=np.float64)
        c["type"][slots] = types
        c["event_ts"][slots] = ts
        c["importance"][slots] = imp
        c["arousal"][slots] = aro
        c["pos"][slots] = np.array([_position(r.extra) for r in keep], dtype=np.float64)
        if p.grid is not None:
            for i in slots.tolist():
                p.grid.set(i, float(c["pos"][i, 0]), float(c["pos"][i, 1]))
        # lifecycle defaults for rows the lifecycle has not reported on
        unknown = fresh | ~c["life_known"][slots]
        for j in np.flatnonzero(unknown):
            i = int(slots[j])
            c["state"][i] = STATE_CODES["active"] if fresh[j] else c["state"][i]
            c["stability"][i] = initial_stability(
                keep[j].type, float(imp[j]), float(aro[j]), self.params
            )
            c["reinforced"][i] = ts[j]
            if fresh[j]:  # a reused slot may hold a removed row's values
                c["recalls"][i] = 0
                c["cluster"][i] = -1
                c["life_known"][i] = False
        # tags (all bits of a replaced row are rewritten) and facts that arrived before the row
        p.tagbits[slots] = 0
        for j, r in enumerate(keep):
            i = int(slots[j])
            for tag in r.extra.get("tags") or ():
                word, bit = p.tag_bit(tag, add=True)  # type: ignore[misc]
                p.tagbits[i, word] |= bit
            life = p.pending_life.pop(r.memory_id, None)
            if life is not None:
                self._write_life(p, i, life)
            if r.memory_id in p.pending_cluster:
                code = p.cluster_code(p.pending_cluster.pop(r.memory_id), add=True)
                c["cluster"][i] = code
        p.clock = max(p.clock, float(ts.max()))
        p.version += 1
        return len(keep)

    @staticmethod
    def _write_life(p: _Partition, i: int, life: _Life) -> None:
        c = p.cols
        c["state"][i] = STATE_CODES[life.state]
        c["stability"][i] = life.stability_s
        c["reinforced"][i] = life.reinforced_ts
        c["recalls"][i] = life.recalls
        c["life_known"][i] = True

    def _remove_one(self, ns: str, memory_id: str) -> bool:
        agent = self._owner.get(ns, {}).pop(memory_id, None)
        if agent is None:
            return False
        p = self._parts[(ns, agent)]
        p.remove_at(p.index[memory_id])
        return True

    def remove(self, namespace: str, memory_ids: Iterable[str]) -> int:
        """Drop rows (no tombstone: a later upsert adds them again); returns rows removed."""
        with self._lock:
            return sum(self._remove_one(namespace, m) for m in memory_ids)

    def update_life(
        self,
        namespace: str,
        agent_id: str,
        memory_id: str,
        state: str,
        stability_s: float,
        reinforced_ts: float,
        recalls: int,
    ) -> None:
        """Apply the lifecycle's view of a memory (from ``argos.memory.lifecycle``).

        Decayed/deleted: the row is dropped and a tombstone kept. For a memory not indexed yet the
        facts wait for its upsert.
        """
        self.update_lives(
            namespace, agent_id, [(memory_id, state, stability_s, reinforced_ts, recalls)]
        )

    def update_lives(
        self,
        namespace: str,
        agent_id: str,
        lives: Iterable[tuple[str, str, float, float, int]],
    ) -> None:
        """``update_life`` for many memories of one agent (memory id, state, stability,
        reinforced at, recalls), under one lock (a warm applies an agent's every life); an
        invalid one raises, those before it applied."""
        with self._lock:
            p = self._partition(namespace, agent_id)
            for memory_id, state, stability_s, reinforced_ts, recalls in lives:
                state = MemoryState(state).value
                if not (math.isfinite(stability_s) and stability_s > 0):
                    raise ValueError(f"stability_s must be finite and > 0, got {stability_s!r}")
                life = _Life(state, float(stability_s), float(reinforced_ts), int(recalls))
                p.clock = max(p.clock, life.reinforced_ts)
                p.version += 1
                if state in TERMINAL:
                    self._tombstones.setdefault(namespace, set()).add(memory_id)
                    p.pending_life.pop(memory_id, None)
                    p.pending_cluster.pop(memory_id, None)
                    self._remove_one(namespace, memory_id)  # wherever it is indexed
                    continue
                i = p.index.get(memory_id)
                if i is None:
                    p.pending_life[memory_id] = life
                else:
                    self._write_life(p, i, life)

    def set_cluster(
        self, namespace: str, agent_id: str, memory_id: str, cluster_id: str | None
    ) -> None:
        """Record the memory's cluster (None: in none); waits for the row if not indexed yet."""
        self.set_clusters(namespace, agent_id, [(memory_id, cluster_id)])

    def set_clusters(
        self, namespace: str, agent_id: str, members: Iterable[tuple[str, str | None]]
    ) -> None:
        """``set_cluster`` for many memories of one agent (memory id, cluster id), under one
        lock."""
        with self._lock:
            p = self._partition(namespace, agent_id)
            cluster = p.cols["cluster"]
            for memory_id, cluster_id in members:
                i = p.index.get(memory_id)
                if i is None:
                    p.pending_cluster[memory_id] = cluster_id
                else:
                    cluster[i] = p.cluster_code(cluster_id, add=True)
                p.version += 1

    # -- reads ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        with self._lock:
            return sum(p.n for p in self._parts.values())

    def nbytes(self) -> int:
        """Estimated bytes held (matrices and columns at capacity, row texts, bookkeeping)."""
        with self._lock:
            owners = 100 * sum(len(d) for d in self._owner.values())
            owners += 100 * sum(len(d) for d in self._tombstones.values())
            return owners + sum(p.nbytes() for p in self._parts.values())

    def version(self, namespace: str, agent_id: str) -> int:
        """Changes with every write to this agent's rows (use it in cache keys)."""
        with self._lock:
            p = self._parts.get((namespace, agent_id))
            return 0 if p is None else p.version

    def clock(self, namespace: str, agent_id: str) -> float | None:
        """The agent's latest event time the index knows (memories and reinforcements)."""
        with self._lock:
            p = self._parts.get((namespace, agent_id))
            return None if p is None or p.clock == -math.inf else p.clock

    def state_of(self, namespace: str, memory_id: str) -> str | None:
        """The indexed state of a memory (None when not indexed)."""
        with self._lock:
            agent = self._owner.get(namespace, {}).get(memory_id)
            if agent is None:
                return None
            p = self._parts[(namespace, agent)]
            return STATE_NAMES[int(p.cols["state"][p.index[memory_id]])]

    def search(
        self,
        query_vec: np.ndarray,
        filters: RecallFilters,
        k: int = 10,
        now_ts: float | None = None,
        weights: ScoreWeights | None = None,
        prefer: TimeBonus | None = None,
        query_terms: Sequence[str] | None = None,
    ) -> list[ScoredHit]:
        """Top-k of one agent by total score, exact, filters applied before ranking.

        ``now_ts``: the recall's event time (default: the agent's clock) for recency.
        ``query_terms``: the query's words (``pipelines.lexical.terms``); with a lexical weight,
        each candidate's BM25 over the agent's memories, scaled to the best candidate's, is its
        ``lexical`` part. None: no lexical part (a vector-only search).
        ``prefer``: a period whose rows get ``prefer.weight`` added (their ``parts.time`` is 1,
        the others' 0); None: no time part, the ranking of a search without it.
        """
        if k < 1:
            raise ValueError("k must be >= 1")
        w = weights or self.weights
        q = _unit(query_vec)
        if q.shape != (self.dim,):
            raise ValueError(f"query shape {q.shape}, index dim {self.dim}")
        with self._lock:
            p = self._parts.get((filters.namespace, filters.agent_id))
            if p is None or p.n == 0:
                return []
            self._touch((filters.namespace, filters.agent_id))
            n, c = p.n, p.cols
            now = p.clock if now_ts is None else float(now_ts)
            m = p.mask(filters)
            if m is None:
                return []
            idx = np.arange(n) if m.all() else np.flatnonzero(m)
            if idx.size == 0:
                return []
            if idx.size == n:
                cos = p.vec[:n] @ q
                rein, stab = c["reinforced"][:n], c["stability"][:n]
                imp, state = c["importance"][:n], c["state"][:n]
            else:
                cos = self._gathered_cos(p, idx, q) if idx.size < _GATHER_BELOW * n else None
                cos = (p.vec[:n] @ q)[idx] if cos is None else cos
                rein, stab = c["reinforced"][idx], c["stability"][idx]
                imp, state = c["importance"][idx], c["state"][idx]
            rec = retention(now, rein, stab)
            total = score(cos, rec, imp, w)
            lpart = None
            if w.lexical and query_terms is not None:
                raw = p.lex.scores(list(query_terms), n)
                lpart = normalised(raw if idx.size == n else raw[idx])
                total += w.lexical * lpart
            tpart = None
            if prefer is not None:
                ts = c["event_ts"][:n] if idx.size == n else c["event_ts"][idx]
                tpart = time_part(ts, prefer)
                if prefer.weight:
                    total += prefer.weight * tpart
            # an active memory that has faded to the decay threshold is forgotten at ``now``
            faded = (rec <= self.params.decay_threshold) & (state <= STATE_CODES["active"])
            if faded.any():
                total[faded] = -np.inf
            valid = total.size - int(np.count_nonzero(faded))
            kk = min(k, valid)
            if kk == 0:
                return []
            top = np.argpartition(-total, kk - 1)[:kk] if total.size > kk else np.arange(total.size)
            top = top[np.isfinite(total[top])]
            rows = idx if idx.size != n else None
            order = sorted(
                top.tolist(),
                key=lambda j: (-total[j], p.rows[j if rows is None else int(rows[j])].memory_id),
            )
            hits = []
            for j in order:
                i = j if rows is None else int(rows[j])
                code = int(c["cluster"][i])
                hits.append(
                    ScoredHit(
                        memory=p.rows[i],
                        parts=ScoreParts(
                            float(cos[j]),
                            float(rec[j]),
                            float(imp[j]),
                            float(total[j]),
                            None if tpart is None else float(tpart[j]),
                            None if lpart is None else float(lpart[j]),
                        ),
                        state=STATE_NAMES[int(c["state"][i])],
                        cluster_id=None if code < 0 else p.cluster_names[code],
                    )
                )
            return hits

    def _gathered_cos(self, p: _Partition, idx: np.ndarray, q: np.ndarray) -> np.ndarray:
        """``p.vec[idx] @ q`` in chunks through one scratch buffer (caller holds the lock)."""
        if self._scratch is None:
            self._scratch = np.empty((_GATHER_CHUNK, self.dim), dtype=np.float32)
        buf, out = self._scratch, np.empty(idx.size, dtype=np.float32)
        for lo in range(0, idx.size, _GATHER_CHUNK):
            part = idx[lo : lo + _GATHER_CHUNK]
            rows = buf[: part.size]
            np.take(p.vec, part, axis=0, out=rows, mode="clip")  # "clip": unbuffered
            np.matmul(rows, q, out=out[lo : lo + part.size])
        return out

    def recall(
        self,
        req: RecallRequest,
        query_vec: np.ndarray,
        default_weights: ScoreWeights,
        prefer: TimeBonus | None | Literal[_FromRequest.token] = FROM_REQUEST,
    ) -> list[ScoredHit]:
        """``search`` driven by a validated ``RecallRequest``.

        ``prefer``: the time preference; by default resolved from the request
        (``time_bonus_for`` at the request's event time, else at this agent's clock). A caller
        that resolved it already (to report it) passes it; None searches without one.
        """
        if prefer is FROM_REQUEST:
            prefer = time_bonus_for(req, self.clock(req.namespace, req.agent_id))
        return self.search(
            query_vec,
            RecallFilters.from_request(req),
            k=req.k,
            now_ts=req.event_time.timestamp() if req.event_time else None,
            weights=weights_for(req, default_weights),
            prefer=prefer,
            query_terms=terms(req.query),
        )

    def snapshot(
        self,
        namespace: str,
        agent_id: str | None = None,
        limit: int | None = None,
        project: Any = None,
    ) -> dict[str, Any]:
        """A read-only copy of the rows of ``namespace`` (one agent's, or every agent's held
        here) for the dashboard. Nothing in the index changes.

        With ``limit`` and more rows than that, a sample of ``limit`` rows: those whose memory
        id has the smallest CRC-32 (ties by id), so every call picks the same memories and a
        larger limit picks a superset. ``project``: a function applied to each agent's block of
        sampled unit vectors under the lock (e.g. a 2-D projection), whose results replace the
        copied vectors, so a large snapshot need not copy its float32 matrix.

        Returns ``total`` (rows before sampling) and, row by row: ``memory_id``, ``agent_id``,
        ``type``, ``state``, ``cluster_id`` (None: in no cluster), ``content`` (lists),
        ``event_ts`` (float64), ``position`` (float64 (n, 3); NaN where unknown) and ``vector``
        (float32 (n, dim) unit rows, or what ``project`` returned, stacked).
        """
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0")
        with self._lock:
            keys = sorted(
                k
                for k, p in self._parts.items()
                if k[0] == namespace and (agent_id is None or k[1] == agent_id) and p.n > 0
            )
            parts = [self._parts[k] for k in keys]
            total = sum(p.n for p in parts)
            chosen: list[np.ndarray] = [np.arange(p.n) for p in parts]
            if limit is not None and total > limit:
                ids = [r.memory_id for p in parts for r in p.rows[: p.n]]
                picked = np.zeros(total, dtype=bool)
                picked[sample_order(ids, limit)] = True
                starts = np.cumsum([0] + [p.n for p in parts])
                chosen = [
                    np.flatnonzero(picked[starts[j] : starts[j + 1]]) for j in range(len(parts))
                ]
            out: dict[str, Any] = {
                "total": total,
                "memory_id": [],
                "agent_id": [],
                "type": [],
                "state": [],
                "cluster_id": [],
                "content": [],
            }
            ts, pos, vecs = [], [], []
            type_names = np.array(list(TYPE_CODES), dtype=object)
            state_names = np.array(STATE_NAMES, dtype=object)
            for (_, agent), p, idx in zip(keys, parts, chosen, strict=True):
                if idx.size == 0:
                    continue
                c = p.cols
                rows = [p.rows[i] for i in idx.tolist()]
                clusters = np.array([*p.cluster_names, None], dtype=object)  # code -1: None
                out["memory_id"] += [r.memory_id for r in rows]
                out["agent_id"] += [agent] * len(rows)
                out["type"] += type_names[c["type"][idx]].tolist()
                out["state"] += state_names[c["state"][idx]].tolist()
                out["cluster_id"] += clusters[c["cluster"][idx]].tolist()
                out["content"] += [r.content for r in rows]
                ts.append(c["event_ts"][idx])
                pos.append(c["pos"][idx])
                if project is None:
                    vecs.append(p.vec[idx])
                else:  # in chunks: no copy of a big agent's whole matrix
                    step = _GATHER_CHUNK
                    blocks = [
                        project(p.vec[idx[lo : lo + step]]) for lo in range(0, idx.size, step)
                    ]
                    vecs.append(np.concatenate([np.asarray(b) for b in blocks]))
            out["event_ts"] = np.concatenate(ts) if ts else np.zeros(0, dtype=np.float64)
            out["position"] = np.concatenate(pos) if pos else np.zeros((0, 3), dtype=np.float64)
            if vecs:
                out["vector"] = np.concatenate(vecs)
            elif project is None:
                out["vector"] = np.zeros((0, self.dim), dtype=np.float32)
            else:
                out["vector"] = np.asarray(project(np.zeros((0, self.dim), dtype=np.float32)))
            return out
