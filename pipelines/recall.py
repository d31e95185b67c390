"""Recall on a worker: "what do I remember like X, near here, lately?" for one agent.

Three levels (the ArgOS seed's multi-level cache):

- **L1** (``pipelines.recall_cache``): query results and query embeddings in byte-bounded LRUs.
  A result is keyed by the agent's index version, so any change to one of the agent's memories
  (stored, reinforced, decayed, clustered) makes its cached results unreachable.
- **L2** (``pipelines.hot_index``): the agent's memories in RAM on the worker that owns the agent,
  searched exactly with numpy (filters, then Generative-Agents-style scoring). Written through by
  the store stage (a memory is recallable as soon as it is stored) and the memory stage (states,
  stabilities, clusters). Persistent: every row is also in the worker's L2 table (a Faust
  table, one key per memory in its agent's partition, recovered from its changelog), from which
  an agent is warmed the first time it is asked for after a start or a rebalance.
- **L3**: Milvus, the hot collection and the archive collection (archived memories stay in L2
  with their state and come back only when asked for).

Time preference: a request's ``prefer`` period, or (``time_hints``) the period its query names,
read at the request's event time or else at the agent's clock (``HotIndex.clock``), is resolved
here (``pipelines.hot_index.time_bonus_for``), applied by the hot index as a score bonus, and
echoed in the response's ``preferred``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self

from pipelines.embed import Embedder
from pipelines.errors import ConfigurationError
from pipelines.hot_index import SPATIAL_CELL, HotIndex, preferred_period, time_bonus_for
from pipelines.memory_state import LIVE, MemoryParams, index_fields, load_life
from pipelines.recall_cache import RecallCache
from pipelines.scoring import ScoreWeights
from pipelines.stage_batches import MemoryOut
from pipelines.store import StoredMemory, VectorStore
from schemas import RecallRequest, RecallResponse

if TYPE_CHECKING:
    from pipelines.settings import Settings

LIVE_NAMES = frozenset(s.value for s in LIVE)

# agent key -> its memory-stage state (logical: namespace -> AgentMemory.to_state), or None
StateOf = Callable[[bytes], dict[str, Any] | None]
RowsOf = Callable[[str, str], list[StoredMemory]]  # (namespace, agent) -> its L2 table rows


class RecallService:
    """L1 + L2 over L3 for the agents this worker owns."""

    def __init__(
        self,
        embedder: Embedder,
        store: VectorStore | None,
        archive: VectorStore | None,
        params: MemoryParams,
        weights: ScoreWeights,
        cache: RecallCache,
        state_of: StateOf,
        rows_of: RowsOf | None = None,
        max_bytes: int | None = None,
        spatial_cell: float | None = SPATIAL_CELL,
    ) -> None:
        """``rows_of`` reads an agent's rows from the persistent L2 table; without one, an
        agent is warmed from L3 (both Milvus collections; None for a service whose agents are
        loaded by its owner: the recall process). ``max_bytes`` bounds the hot index
        (least recently used agents leave it, and are warmed again when asked for)."""
        self.embedder, self.store, self.archive = embedder, store, archive
        self.params, self.weights, self.cache = params, weights, cache
        self.state_of = state_of
        self.rows_of = rows_of
        self.index = HotIndex(
            embedder.dim, params.lifecycle, weights, max_bytes=max_bytes, spatial_cell=spatial_cell
        )
        self._warming = threading.Lock()
        self.hits = self.misses = 0
        self.prefetched = self.prefetch_runs = 0
        # whether this worker owns an agent's partition now (set by the worker; prefetch warms
        # only its own agents)
        self.owns: Callable[[str, str], bool] = lambda namespace, agent_id: True
        # each write-through, as a message, once applied here (``pipelines.recall_mirror``
        # copies them to the recall process); None: nobody listens
        self.on_write: Callable[[tuple[Any, ...]], None] | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        embedder: Embedder,
        store: VectorStore | None,
        archive: VectorStore | None,
        state_of: StateOf,
        rows_of: RowsOf | None = None,
        **kwargs: Any,
    ) -> Self:
        """The service with the settings' lifecycle, score weights, L1 sizes, hot-index bound
        and spatial cell (the worker's and the recall process's alike); ``kwargs`` go to a
        subclass."""
        return cls(
            embedder,
            store,
            archive,
            settings.memory_params(),
            ScoreWeights(
                settings.recall_w_relevance,
                settings.recall_w_recency,
                settings.recall_w_importance,
                settings.recall_w_lexical,
            ),
            RecallCache(
                results_bytes=int(settings.l1_results_mb * 2**20),
                records_bytes=int(settings.l1_records_mb * 2**20),
                embeddings_bytes=int(settings.l1_embeddings_mb * 2**20),
            ),
            state_of=state_of,
            rows_of=rows_of,
            max_bytes=int(settings.hot_index_mb * 2**20),
            spatial_cell=settings.spatial_cell or None,
            **kwargs,
        )

    # -- writes (from the stages) ---------------------------------------------------------------

    def stored(self, rows: Sequence[StoredMemory]) -> None:
        """Write-through from the store stage: recallable as soon as stored."""
        self.index.upsert(rows)
        if self.on_write is not None:
            self.on_write(("stored", list(rows)))

    def learned(self, out: MemoryOut) -> None:
        """Write-through from the memory stage: states, stabilities and clusters."""
        self.apply_lives(out.lives, out.members, out.forget)

    def apply_lives(
        self,
        lives: Sequence[tuple[str, str, str, str, float, float, int]],
        members: Sequence[tuple[str, str, str, str | None]],
        forget: Sequence[tuple[str, str]],
    ) -> None:
        """``learned``'s parts: lives (namespace, agent, memory id, state, stability,
        reinforced, recalls), cluster memberships and forgotten near-duplicates."""
        for ns, agent, mid, state, stability_s, reinforced, recalls in lives:
            self.index.update_life(ns, agent, mid, state, stability_s, reinforced, recalls)
            if state not in LIVE_NAMES:  # decayed or archived: its L1 record goes too
                self.cache.drop_records(ns, [mid])
        for ns, agent, mid, cid in members:
            self.index.set_cluster(ns, agent, mid, cid)
        for ns, mid in forget:  # near-duplicates the store stage may have written already
            self.index.remove(ns, [mid])
            self.cache.drop_records(ns, [mid])
        if self.on_write is not None and (lives or members or forget):
            self.on_write(("learned", list(lives), list(members), list(forget)))

    # -- reads ----------------------------------------------------------------------------------

    def warm(self, namespace: str, agent_id: str) -> None:
        """Load an agent into the hot index once per process: its rows (from the L2 table, or
        from both Milvus collections), then the lives and clusters the memory stage keeps."""
        if self.index.is_warm(namespace, agent_id):
            return
        with self._warming:
            if self.index.is_warm(namespace, agent_id):
                return
            if self.rows_of is not None:
                rows = self.rows_of(namespace, agent_id)
            elif self.store is None or self.archive is None:
                raise ConfigurationError("no L2 table and no vector store to warm agents from")
            else:
                rows = self.store.agent_rows(namespace, agent_id)
                rows += self.archive.agent_rows(namespace, agent_id)
            self.load(namespace, agent_id, rows, self.agent_state(namespace, agent_id))

    def agent_state(self, namespace: str, agent_id: str) -> dict[str, Any] | None:
        """The memory stage's state of one agent in one namespace, or None."""
        saved = self.state_of(agent_id.encode())
        return saved.get(namespace) if saved else None

    def load(
        self,
        namespace: str,
        agent_id: str,
        rows: Sequence[StoredMemory],
        state: Mapping[str, Any] | None,
    ) -> None:
        """Make an agent warm from its rows and its memory-stage state (``warm``'s second
        half; the recall process gets both from the worker)."""
        # one step under the index's lock: no eviction between the rows and the flag
        with self.index.locked():
            self.index.upsert(rows)  # then the lives: decayed ones leave, tombstoned
            if state is not None:
                self.index.remove(namespace, list(state["dups"]))  # near-copies never recall
                lc = self.params.lifecycle
                self.index.update_lives(
                    namespace,
                    agent_id,
                    [
                        (mid, *index_fields(load_life(mid, raw), lc))
                        for mid, raw in state["m"].items()
                    ],
                )
                self.index.set_clusters(
                    namespace,
                    agent_id,
                    [(mid, c["id"]) for c in state["clusters"]["clusters"] for mid in c["members"]],
                )
            self.index.mark_warm(namespace, agent_id)

    def prefetch(
        self,
        expected: Mapping[tuple[str, str], float],
        limit: int = 8,
        min_expected: float = 0.5,
    ) -> int:
        """Act on the recall-probability model's forecast (``Analytics.expected_recalls``):
        the index keeps the agents expected to be recalled most when it must evict, and up to
        ``limit`` of them expected to get at least ``min_expected`` recalls in the next window
        are warmed now (rows from L2, lives and clusters), most expected first, so their first
        recall does not pay for it. Only agents this worker owns are warmed (``owns``).
        Returns the agents warmed."""
        self.index.set_priorities(expected)
        warmed = 0
        for ns, agent in self.most_expected(expected, min_expected):
            if warmed >= limit:
                break
            if not self.index.is_warm(ns, agent):
                self.warm(ns, agent)
                warmed += 1
        self.prefetched += warmed
        self.prefetch_runs += 1
        return warmed

    def most_expected(
        self, expected: Mapping[tuple[str, str], float], min_expected: float = 0.5
    ) -> list[tuple[str, str]]:
        """The agents this worker owns expected to get at least ``min_expected`` recalls in
        the next window, most expected first (what ``prefetch`` warms)."""
        ranked = sorted(
            ((v, key) for key, v in expected.items() if v >= min_expected and self.owns(*key)),
            reverse=True,
        )
        return [key for _, key in ranked]

    def recall(self, req: RecallRequest) -> RecallResponse:
        t0 = time.perf_counter()
        self.warm(req.namespace, req.agent_id)
        generation = self.index.version(req.namespace, req.agent_id)
        cached = self.cache.get(req, generation)
        if cached is not None:
            self.hits += 1
            return cached.model_copy(
                update={"took_ms": (time.perf_counter() - t0) * 1000.0, "cached": True}
            )
        self.misses += 1
        qvec = self.cache.embedding(req.query, self.embedder.embed_many)
        # a month named without a year is read at the agent's clock (unless event_time says)
        prefer = time_bonus_for(req, self.index.clock(req.namespace, req.agent_id))
        hits = self.index.recall(req, qvec, self.weights, prefer=prefer)
        resp = RecallResponse.model_validate(
            {
                "namespace": req.namespace,
                "agent_id": req.agent_id,
                "query": req.query,
                "hits": [h.to_recall_hit() for h in hits],
                "took_ms": (time.perf_counter() - t0) * 1000.0,
                "preferred": preferred_period(prefer, req),
            }
        )
        self.cache.put(req, resp, generation)
        return resp

    def stats(self) -> dict[str, Any]:
        return {
            "l1_hits": self.hits,
            "l1_misses": self.misses,
            "l1": self.cache.stats(),
            "l2_rows": len(self.index),
            "l2_bytes": self.index.nbytes(),
            "l2_agents_warm": self.index.warm_agents(),
            "l2_agents": self.index.agents(),
            "l2_max_bytes": self.index.max_bytes,
            "l2_evicted_agents": self.index.evicted_agents,
            "prefetched_agents": self.prefetched,
            "prefetch_runs": self.prefetch_runs,
            "l2_source": "table" if self.rows_of is not None else "milvus",
        }
