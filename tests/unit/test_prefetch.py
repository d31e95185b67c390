"""Prefetch and eviction by recall probability: the analytics' recall model says which agents
will be recalled soon; the hot index keeps those when it must evict and warms them first."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from pipelines.analytics import Analytics, AnalyticsParams
from pipelines.embed import load_embedder
from schemas import AccessEvent, MemoryEvent
from tests.unit.test_recall_service import agent_rows, service_over

NS = "w"
T0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


def _memory(i: int, agent: str, ts: float, importance: float) -> MemoryEvent:
    return MemoryEvent(
        schema_version=1,
        memory_id=f"{agent}:{i}",
        agent_id=agent,
        namespace=NS,
        type="episodic",
        content=f"memory number {i}",
        importance=importance,
        event_time=datetime.fromtimestamp(ts, UTC),
    )


def test_expected_recalls_rank_the_agent_whose_memories_get_recalled() -> None:
    """A planted signal: important memories are recalled within the window, others seldom;
    one agent's memories are important, another's are not. The model learns it, and the
    expected recalls it gives each agent (the sum of its open memories' probabilities) rank
    them accordingly."""
    rng = random.Random(3)
    window = 3600.0
    a = Analytics(AnalyticsParams(recall_window_s=window, label_lateness_s=0.0))
    events: list[tuple[float, int, MemoryEvent | AccessEvent]] = []
    for i in range(1200):
        ts = T0 + 30.0 * i
        agent = ("hot", "cold")[i % 2]
        imp = rng.uniform(0.7, 1.0) if agent == "hot" else rng.uniform(0.0, 0.3)
        m = _memory(i, agent, ts, round(imp, 3))
        events.append((ts, 0, m))
        if rng.random() < imp**2:  # the likelier recalled, the more important
            rts = ts + rng.uniform(0, window)
            events.append(
                (
                    rts,
                    1,
                    AccessEvent(
                        namespace=NS, agent_id=agent, memory_ids=[m.memory_id], event_ts=rts
                    ),
                )
            )
    events.sort(key=lambda t: (t[0], t[1]))
    end = T0 + 30.0 * 1199  # stop with the last memory: the last hour's samples are open
    for _, _, e in (t for t in events if t[0] <= end):
        if isinstance(e, MemoryEvent):
            a.observe_memory(e)
        else:
            a.observe_access(e)
    expected = a.expected_recalls()
    assert set(expected) == {(NS, "hot"), (NS, "cold")}
    ns = a.namespaces[NS]
    for agent in ("hot", "cold"):  # the sum of the open samples' probabilities
        want = sum(p.p for p in ns.pending.values() if p.agent_id == agent)
        assert expected[(NS, agent)] == pytest.approx(want)
    assert expected[(NS, "hot")] > 3 * expected[(NS, "cold")]


def test_eviction_keeps_the_agents_expected_to_be_recalled() -> None:
    """Least recently used would evict ann first; the forecast says ann will be recalled, so
    the agent expected least (bob) goes instead."""
    emb = load_embedder("hashing")
    l2 = {a: agent_rows(emb, a, 30) for a in ("ann", "bob", "cy")}
    svc = service_over(l2)
    for agent in ("ann", "bob"):
        svc.stored(l2[agent])
    svc.index.set_priorities({(NS, "ann"): 4.0, (NS, "bob"): 0.2})
    svc.index.max_bytes = int(svc.index.nbytes() * 1.2)
    svc.stored(l2["cy"])  # past the bound: one agent must leave
    assert svc.index.evicted_agents == 1
    assert svc.index.version(NS, "ann") and not svc.index.version(NS, "bob")
    # without a forecast, the least recently used goes (ann, now the oldest)
    svc2 = service_over(l2)
    for agent in ("ann", "bob"):
        svc2.stored(l2[agent])
    svc2.index.max_bytes = int(svc2.index.nbytes() * 1.2)
    svc2.stored(l2["cy"])
    assert not svc2.index.version(NS, "ann") and svc2.index.version(NS, "bob")


def test_prefetch_warms_the_most_expected_owned_agents_first() -> None:
    emb = load_embedder("hashing")
    l2 = {a: agent_rows(emb, a, 20) for a in ("ann", "bob", "cy", "dan")}
    svc = service_over(l2)
    expected = {(NS, "ann"): 3.0, (NS, "bob"): 1.0, (NS, "cy"): 0.2, (NS, "dan"): 2.0}
    assert svc.prefetch(expected, limit=2) == 2  # ann and dan: the two most expected
    assert [svc.index.is_warm(NS, a) for a in ("ann", "bob", "cy", "dan")] == [
        True,
        False,
        False,
        True,
    ]
    assert len(svc.index) == 40  # all their rows, from L2
    assert svc.prefetch(expected, limit=2) == 1  # bob; cy is below min_expected
    assert not svc.index.is_warm(NS, "cy")
    stats = svc.stats()
    assert stats["prefetched_agents"] == 3 and stats["prefetch_runs"] == 2
    # a warmed agent answers at once, with every row
    from schemas import RecallRequest

    hits = svc.recall(RecallRequest(namespace=NS, agent_id="dan", query="market square", k=50))
    assert len(hits.hits) == 20
    # an agent another worker owns is never warmed here
    other = service_over(l2)
    other.owns = lambda namespace, agent_id: agent_id != "ann"
    assert other.prefetch(expected, limit=1) == 1
    assert other.index.is_warm(NS, "dan") and not other.index.is_warm(NS, "ann")
