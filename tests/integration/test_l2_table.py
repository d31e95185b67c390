"""L2 of recall is a Faust table: an agent's hot rows live in a changelog-recovered table on the
worker that owns the agent, so a restarted worker, or the worker that takes an agent over in a
rebalance, answers from it without its own Milvus holding the rows.

Recalls here go to the worker's own ``/recall`` (``recall_url=None``), whose counters the tests
read; the recall process each worker also runs (the client's default route) answers alike:
``test_recall_process.py``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pipelines.client import MemoryClient, wait_until_settled
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher
from schemas.analytics import MetricEvent
from tests.integration.kafka_utils import read_topic
from tests.integration.test_recall import THINGS, _events

pytestmark = pytest.mark.integration

NS = "l2-table"
AGENTS = [f"agent-{i}" for i in range(6)]
QUERIES = ["drinking water", "a place to sleep"]


def _answers(client: MemoryClient) -> dict[tuple[str, str], list[tuple[str, float]]]:
    """Ranked ids and cosines (relevance only: a recall reinforces what it finds, so recency
    parts move between two rounds of questions)."""
    only_relevance = {"relevance": 1.0, "recency": 0.0, "importance": 0.0}
    return {
        (a, q): [
            (h.memory_id, round(h.parts.relevance, 5))
            for h in client.recall(NS, a, q, k=5, weights=only_relevance).hits
        ]
        for a in AGENTS
        for q in QUERIES
    }


def test_a_worker_that_takes_agents_over_answers_from_the_recovered_table(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    first = start_worker()
    prefix = first.env["ARGOS_TOPIC_PREFIX"]
    with MemoryPublisher(first.bootstrap, prefix + ".memory.events") as pub:
        for agent in AGENTS:
            pub.publish_many(_events(agent, NS, id_prefix=f"{agent}:"))
    c1 = MemoryClient(first.url, recall_url=None)
    total = len(AGENTS) * len(THINGS)
    assert c1.wait_stored(NS, total, timeout=120) == total
    before = _answers(c1)
    assert all(len(ids) == 5 for ids in before.values())
    # publish -> stored and recall latencies are measured (rolling quantiles in /stats)
    sysm = c1.stats()["system"]  # per-worker system metrics (also OTel gauges)
    assert sysm["rss_bytes"] > 0 and sysm["cpu_seconds"] > 0 and sysm["l2_rows"] >= total
    # the collector's time is accounted (at least the start-up collection before the freeze),
    # and the start-up objects were frozen out of its scans
    assert sysm["gc_collections_gen2"] >= 1 and sysm["gc_seconds"] > 0
    assert sysm["gc_frozen_objects"] > 100_000
    lat = c1.stats()["latency"]
    assert lat["publish_to_stored"]["n"] == total and lat["recall"]["n"] == len(before)
    assert 0 < lat["publish_to_stored"]["p50_ms"] <= lat["publish_to_stored"]["p99_ms"]
    # ... and each namespace's publish -> stored quantiles reach argos.analytics.metrics
    metrics = [
        MetricEvent.model_validate_json(r.value)  # type: ignore[attr-defined]
        for r in read_topic(
            first.bootstrap,
            prefix + ".analytics.metrics",
            until=lambda rs: any(b"publish_to_stored" in r.value for r in rs),  # type: ignore[attr-defined]
            timeout=30,
        )
    ]
    pub = [m for m in metrics if m.namespace == NS and m.name == "latency.publish_to_stored_ms"]
    assert pub and pub[-1].kind == "quantiles" and pub[-1].values["p50_ms"] > 0
    assert c1.stats()["recall"]["l2_source"] == "table"

    # a second worker joins with its own, empty Milvus Lite; then the first one leaves
    second = start_worker(topic_prefix=prefix)
    c2 = MemoryClient(second.url, recall_url=None)
    wait_until_settled([c1, c2])
    assert first.stop() == 0
    c2.wait_ready(timeout=120)
    ready = c2._http.get("/ready").json()  # ready means recovered, not just "port open"
    assert ready["ready"] and ready["recovering"] is False and ready["assigned_partitions"] > 0
    assert c2.count(NS) == 0  # none of these rows is in the second worker's Milvus
    after = _answers(c2)
    assert after == before
    stats = c2.stats()["recall"]
    assert stats["l2_rows"] >= total and stats["l2_agents_warm"] == len(AGENTS)
