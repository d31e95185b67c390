"""The recall service's L2 warm-up under a memory bound: an agent evicted from the hot index
is warmed again, with all its rows, from the persistent L2 rows on its next recall."""

from __future__ import annotations

import numpy as np

from pipelines.embed import load_embedder
from pipelines.memory_state import MemoryParams
from pipelines.recall import RecallService
from pipelines.recall_cache import RecallCache
from pipelines.scoring import ScoreWeights
from pipelines.stage_batches import MemoryOut
from pipelines.store import InMemoryStore, StoredMemory
from schemas import RecallRequest

NS = "w"


def agent_rows(emb, agent: str, n: int) -> list[StoredMemory]:
    """``n`` memories of ``agent`` (namespace ``NS``), embedded by ``emb``."""
    texts = [f"{agent} remembers the river crossing number {i}" for i in range(n)]
    vecs = emb.embed_many(texts)
    return [
        StoredMemory(
            memory_id=f"{agent}-{i}",
            agent_id=agent,
            namespace=NS,
            type="episodic",
            content=t,
            importance=0.5,
            event_ts=1_767_225_600.0 + i,
            event_time="2026-01-01T00:00:00Z",
            vector=np.asarray(v, dtype=np.float32),
            extra={},
        )
        for i, (t, v) in enumerate(zip(texts, vecs, strict=True))
    ]


def service_over(l2: dict[str, list[StoredMemory]]) -> RecallService:
    """A recall service (hashing embedder) whose persistent L2 rows are ``l2`` (agent -> rows)."""
    return RecallService(
        load_embedder("hashing"),
        InMemoryStore(),
        InMemoryStore(),
        MemoryParams(),
        ScoreWeights(),
        RecallCache(results_bytes=1 << 20, records_bytes=1 << 20, embeddings_bytes=1 << 20),
        state_of=lambda key: None,
        rows_of=lambda ns, agent: list(l2.get(agent, [])),
    )


def test_an_evicted_agent_is_warmed_again_with_all_its_rows() -> None:
    emb = load_embedder("hashing")
    l2: dict[str, list[StoredMemory]] = {}  # the persistent L2 rows per agent
    svc = service_over(l2)
    for agent in ("ann", "bob"):
        l2[agent] = agent_rows(emb, agent, 40)
        svc.stored(l2[agent])  # write-through from the store stage
    ask = RecallRequest(namespace=NS, agent_id="ann", query="the river crossing", k=50)
    assert len(svc.recall(ask).hits) == 40
    # bound the index below two agents: writing a third evicts the least recently used
    svc.index.max_bytes = int(svc.index.nbytes() * 0.75)
    l2["cy"] = agent_rows(emb, "cy", 40)
    svc.stored(l2["cy"])
    assert svc.index.evicted_agents >= 1 and not svc.index.is_warm(NS, "ann")
    # the next recall for an evicted agent warms it from L2: all 40 rows again, not a few
    again = svc.recall(ask.model_copy(update={"query": "another question"}))
    assert len(again.hits) == 40
    assert svc.stats()["l2_evicted_agents"] >= 1


def test_l1_records_leave_when_their_memory_leaves_the_live_states() -> None:
    rows = agent_rows(load_embedder("hashing"), "a", 3)
    svc = service_over({"a": rows})
    for r in rows:
        assert svc.cache.put_record(r)
    out = MemoryOut()
    out.lives = [
        (NS, "a", rows[0].memory_id, "decayed", 1.0, 0.0, 0),
        (NS, "a", rows[1].memory_id, "consolidated", 9.0, 1.0, 2),
    ]
    out.forget = [(NS, rows[2].memory_id)]
    svc.learned(out)
    assert svc.cache.get_record(NS, rows[0].memory_id) is None  # decayed
    assert svc.cache.get_record(NS, rows[1].memory_id) == rows[1]  # still live: kept
    assert svc.cache.get_record(NS, rows[2].memory_id) is None  # a near-copy, forgotten
