from __future__ import annotations

import numpy as np

from pipelines.embed import HashingEmbedder
from pipelines.embed_stage import embed_events, text_of
from pipelines.ingest import RawRecord, ingest_batch
from pipelines.simulation import Population, malformed_events
from schemas import MemoryType


def test_ingest_splits_good_and_bad_and_loses_nothing() -> None:
    good = [e.to_json_bytes() for e in Population(4, seed=1).events(40)]
    bad = list(malformed_events(16, seed=1))
    records = [RawRecord(v, b"k", "t", 0, i) for i, v in enumerate(good + bad)]
    ok, dead = ingest_batch(records, now=1.0)
    assert len(ok) == 40 and len(dead) == 16
    assert sorted(dl.original() for _, dl in dead) == sorted(bad)
    assert all(dl.reason and dl.source_topic == "t" and dl.source_offset >= 40 for _, dl in dead)
    kinds = {dl.error for _, dl in dead}
    assert kinds == {"InvalidEventError", "SchemaVersionUnsupported"}


def test_tombstone_is_dead_lettered() -> None:
    ok, dead = ingest_batch([RawRecord(None)], now=0.0)
    assert not ok and "tombstone" in dead[0][1].reason


def test_embed_events_uses_model_and_keeps_client_vectors() -> None:
    emb = HashingEmbedder(dim=16)
    evs = list(Population(2, seed=2).events(5))
    own = evs[0].model_copy(update={"embedding": [1.0] + [0.0] * 15})
    wrong = evs[1].model_copy(update={"embedding": [1.0, 2.0]})
    zero = evs[2].model_copy(update={"embedding": [0.0] * 16})
    out, refused = embed_events([own, wrong, zero, *evs[3:]], emb, now=5.0)
    assert [m.event.memory_id for m in out] == [own.memory_id, evs[3].memory_id, evs[4].memory_id]
    assert out[0].model == "client" and np.allclose(out[0].vector()[0], 1.0)
    assert all(np.isclose(np.linalg.norm(m.vector()), 1.0) for m in out)
    assert {str(e) for _, e in refused} == {
        "embedding has 2 values; this pipeline's model makes 16",
        "embedding is the zero vector",
    }


def test_procedural_text_includes_steps() -> None:
    ev = next(e for e in Population(3, seed=5).events(200) if e.type is MemoryType.procedural)
    assert ev.steps and ev.steps[0] in text_of(ev)


def test_guard_refusals_are_dead_lettered_with_the_reason_and_listed_for_audit() -> None:
    from pipelines.embed import HashingEmbedder
    from pipelines.errors import RateLimitedError
    from pipelines.stage_batches import ingest_and_embed

    evs = list(Population(3, seed=3).events(12))
    records = [
        RawRecord(e.to_json_bytes(), e.agent_id.encode(), "t", 0, i) for i, e in enumerate(evs)
    ]
    refused_agent = evs[0].agent_id

    def guard(rec: RawRecord, ev: object) -> None:
        if getattr(ev, "agent_id", None) == refused_agent:
            raise RateLimitedError(f"over 5 per second for agent {refused_agent}", "writer")

    out = ingest_and_embed(records, HashingEmbedder(dim=16), 1.0, guard)
    n_refused = sum(e.agent_id == refused_agent for e in evs)
    assert len(out.forward) == len(evs) - n_refused and len(out.dead) == n_refused
    assert {d[4:] for d in out.denied} == {(429, f"over 5 per second for agent {refused_agent}")}
    assert {d[1] for d in out.denied} == {"writer"}  # the audit's actor: who was refused
    assert [records[i].offset for i in out.forward_src] == [
        i for i, e in enumerate(evs) if e.agent_id != refused_agent
    ]
    assert b"RateLimitedError" in out.dead[0][1]
