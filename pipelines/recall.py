"""Recall core: "what do I remember that is like X?" for one agent of one namespace."""

from __future__ import annotations

import time

from pipelines.embed import Embedder
from pipelines.store import VectorStore
from schemas import RecallHit, RecallRequest, RecallResponse


def recall(req: RecallRequest, embedder: Embedder, store: VectorStore) -> RecallResponse:
    """Top-k memories of ``req.agent_id`` in ``req.namespace`` by cosine similarity.

    Namespace and agent are always part of the store filter, so a recall never sees another
    namespace's memories.
    """
    t0 = time.perf_counter()
    qvec = embedder.embed_many([req.query])[0]
    hits = store.search(
        qvec, namespace=req.namespace, agent_id=req.agent_id, k=req.k, types=req.types
    )
    return RecallResponse(
        namespace=req.namespace,
        agent_id=req.agent_id,
        query=req.query,
        hits=[
            RecallHit(
                memory_id=h.memory.memory_id,
                agent_id=h.memory.agent_id,
                namespace=h.memory.namespace,
                type=h.memory.type,  # type: ignore[arg-type]
                content=h.memory.content,
                importance=h.memory.importance,
                event_time=h.memory.event_time,
                score=h.score,
            )
            for h in hits
            if h.memory.namespace == req.namespace and h.memory.agent_id == req.agent_id
        ],
        took_ms=(time.perf_counter() - t0) * 1000.0,
    )
