"""L1 recall caches, per worker, each an LRU bounded in bytes (``cachetools``).

- results: recent query results keyed by (namespace, agent, agent version, normalised request,
  generation). ``invalidate(namespace, agent_id)`` bumps the agent's version, so a memory of that
  agent changing state (or arriving, or being reinforced) makes its cached results unreachable;
  they age out of the LRU. Pass ``HotIndex.version(namespace, agent_id)`` as ``generation`` and
  every write the index sees invalidates as well.
- records: memory rows by (namespace, memory_id), dropped by ``invalidate(..., memory_ids)``.
- embeddings: query text -> vector (embedding the query is the dominant cost of a recall).

All methods are thread-safe (one lock). Sizes are estimates; an item larger than a cache is not
cached.

>>> from schemas import RecallRequest
>>> c = RecallCache(results_bytes=1 << 20)
>>> req = RecallRequest(namespace="w", agent_id="ann", query="fox")
>>> c.get(req) is None
True
>>> c.put(req, ["hit"])
True
>>> c.get(req)
['hit']
>>> c.invalidate("w", "ann")
>>> c.get(req) is None
True
>>> c.stats()["results"]["hits"], c.stats()["results"]["misses"]
(1, 2)
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from cachetools import LRUCache

from pipelines.store import StoredMemory
from schemas.recall import RecallRequest

_ENTRY_OVERHEAD = 200  # key tuple, LRU bookkeeping


def request_key(req: RecallRequest) -> tuple[Hashable, ...]:
    """Everything in a request that can change its result, in a canonical hashable form.

    A period the query names may be read at the agent's clock (``time_hints`` without an
    ``event_time``): the clock moves only with writes to the agent, which change the
    ``generation`` (``HotIndex.version``) the cache is asked with.

    >>> a = RecallRequest(namespace="w", agent_id="a", query="q", tags=["x", "y"])
    >>> b = RecallRequest(namespace="w", agent_id="a", query="q", tags=["y", "x"])
    >>> request_key(a) == request_key(b)
    True
    """
    near = req.near
    w = req.weights
    p = req.prefer
    return (
        req.query,
        req.k,
        tuple(sorted(t.value for t in req.types)) if req.types else None,
        req.event_time.timestamp() if req.event_time else None,
        # the offset: a period the query names is read in the event time's calendar
        req.event_time.utcoffset() if req.event_time else None,
        req.since.timestamp() if req.since else None,
        req.until.timestamp() if req.until else None,
        tuple(sorted(req.states)),
        req.include_archived,
        req.cluster_id,
        tuple(sorted(set(req.tags))) if req.tags else None,
        (near.x, near.y, near.z, near.radius) if near else None,
        (w.relevance, w.recency, w.importance, w.lexical) if w else None,
        req.time_hints,
        (
            p.since.timestamp() if p.since else None,
            p.until.timestamp() if p.until else None,
            p.weight,
            p.slack_s,
        )
        if p
        else None,
    )


def estimate_nbytes(value: Any) -> int:
    """A rough size of a cached value (hits, records, responses, vectors).

    >>> estimate_nbytes(np.zeros(384, dtype=np.float32)) >= 1536
    True
    """
    if isinstance(value, np.ndarray):
        return value.nbytes + 112
    if isinstance(value, str | bytes):
        return sys.getsizeof(value)
    if isinstance(value, StoredMemory):
        text = 2 * len(value.content) + 64 * len(value.extra)
        return _ENTRY_OVERHEAD + text + value.vector.nbytes
    memory = getattr(value, "memory", None)  # a ScoredHit
    if isinstance(memory, StoredMemory):
        return 200 + estimate_nbytes(memory)
    dump = getattr(value, "model_dump_json", None)  # a pydantic model (e.g. RecallResponse)
    if callable(dump):
        return 2 * len(dump()) + _ENTRY_OVERHEAD
    if isinstance(value, list | tuple):
        return 56 + 8 * len(value) + sum(estimate_nbytes(v) for v in value)
    if isinstance(value, dict):
        return 64 + sum(estimate_nbytes(k) + estimate_nbytes(v) for k, v in value.items())
    return sys.getsizeof(value)


@dataclass(frozen=True)
class _Sized:
    value: Any
    nbytes: int


def _size(item: _Sized) -> int:
    return item.nbytes


class _Counted:
    """One byte-bounded LRU with hit/miss counters."""

    def __init__(self, max_bytes: int) -> None:
        self.lru: LRUCache[Hashable, _Sized] = LRUCache(maxsize=max_bytes, getsizeof=_size)
        self.hits = 0
        self.misses = 0
        self.too_large = 0

    def get(self, key: Hashable) -> Any | None:
        item = self.lru.get(key)
        if item is None:
            self.misses += 1
            return None
        self.hits += 1
        return item.value

    def put(self, key: Hashable, value: Any, nbytes: int) -> bool:
        size = nbytes + _ENTRY_OVERHEAD
        if size > self.lru.maxsize:
            self.too_large += 1
            self.lru.pop(key, None)
            return False
        self.lru[key] = _Sized(value, size)
        return True

    def stats(self) -> dict[str, int]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "items": len(self.lru),
            "bytes": int(self.lru.currsize),
            "max_bytes": int(self.lru.maxsize),
            "too_large": self.too_large,
        }


class RecallCache:
    """The worker's L1: query results, records and query embeddings (see the module docstring)."""

    def __init__(
        self,
        results_bytes: int = 32 << 20,
        records_bytes: int = 32 << 20,
        embeddings_bytes: int = 8 << 20,
    ) -> None:
        self._results = _Counted(results_bytes)
        self._records = _Counted(records_bytes)
        self._embeddings = _Counted(embeddings_bytes)
        self._versions: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    # -- query results -------------------------------------------------------------------------
    def _key(self, req: RecallRequest, generation: Hashable) -> tuple[Hashable, ...]:
        version = self._versions.get((req.namespace, req.agent_id), 0)
        return (req.namespace, req.agent_id, version, generation, request_key(req))

    def get(self, req: RecallRequest, generation: Hashable = 0) -> Any | None:
        """The cached result of an equivalent request, or None."""
        with self._lock:
            return self._results.get(self._key(req, generation))

    def put(
        self, req: RecallRequest, value: Any, generation: Hashable = 0, nbytes: int | None = None
    ) -> bool:
        """Cache a result; False when it is larger than the whole cache."""
        size = estimate_nbytes(value) if nbytes is None else nbytes
        with self._lock:
            return self._results.put(self._key(req, generation), value, size)

    def invalidate(self, namespace: str, agent_id: str, memory_ids: Sequence[str] = ()) -> None:
        """An agent's memory changed: its cached results become unreachable, records dropped."""
        with self._lock:
            key = (namespace, agent_id)
            self._versions[key] = self._versions.get(key, 0) + 1
        self.drop_records(namespace, memory_ids)

    def version(self, namespace: str, agent_id: str) -> int:
        with self._lock:
            return self._versions.get((namespace, agent_id), 0)

    # -- records -------------------------------------------------------------------------------
    def drop_records(self, namespace: str, memory_ids: Sequence[str]) -> None:
        """Memories that left the live states (or the store): their records go."""
        with self._lock:
            for m in memory_ids:
                self._records.lru.pop((namespace, m), None)

    def get_record(self, namespace: str, memory_id: str) -> StoredMemory | None:
        with self._lock:
            return self._records.get((namespace, memory_id))

    def put_record(self, row: StoredMemory) -> bool:
        with self._lock:
            return self._records.put((row.namespace, row.memory_id), row, estimate_nbytes(row))

    # -- query embeddings ----------------------------------------------------------------------
    def embedding(self, text: str, embed: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """The vector of ``text``, from the cache or computed by ``embed([text])[0]``.

        The returned array is read-only (it is shared).
        """
        with self._lock:
            vec = self._embeddings.get(text)
        if vec is not None:
            return vec
        vec = np.array(embed([text])[0], dtype=np.float32)
        vec.setflags(write=False)
        with self._lock:
            self._embeddings.put(text, vec, vec.nbytes + sys.getsizeof(text))
        return vec

    # -- introspection -------------------------------------------------------------------------
    def stats(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {
                "results": self._results.stats(),
                "records": self._records.stats(),
                "embeddings": self._embeddings.stats(),
            }

    def nbytes(self) -> int:
        with self._lock:
            return int(
                self._results.lru.currsize
                + self._records.lru.currsize
                + self._embeddings.lru.currsize
            )
