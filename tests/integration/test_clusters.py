"""The cluster stage on the real broker: every memory placed once, state queryable, replays
deterministic."""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable

import pytest

from pipelines.client import MemoryClient
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher
from pipelines.simulation import Population
from schemas import ClusterEvent
from tests.integration.kafka_utils import read_topic

pytestmark = pytest.mark.integration

N = 240
NS = "cluster-test"


def _run(start_worker: Callable[..., WorkerProcess]) -> tuple[WorkerProcess, list[ClusterEvent]]:
    worker = start_worker()
    client = MemoryClient(worker.url)
    prefix = worker.env["ARGOS_TOPIC_PREFIX"]
    events = list(Population(4, seed=13, namespace=NS).events(N))
    with MemoryPublisher(worker.bootstrap, f"{prefix}.memory.events") as pub:
        pub.publish_many(events)
    deadline = time.monotonic() + 120
    while int(client.stats()["clustered"]) < N and time.monotonic() < deadline:
        time.sleep(0.25)
    assert int(client.stats()["clustered"]) == N, str(client.stats())
    n_changes = int(client.stats()["cluster_changes"])
    records = read_topic(
        worker.bootstrap, f"{prefix}.clusters", until=lambda r: len(r) >= n_changes
    )
    assert len(records) == n_changes
    return worker, [ClusterEvent.model_validate_json(r.value) for r in records]


def _per_agent(evs: list[ClusterEvent]) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = defaultdict(list)
    for e in evs:
        out[e.agent_id].append((e.kind, e.cluster_id, e.memory_id, e.size, tuple(e.related)))
    return dict(out)


def test_every_memory_is_placed_once_and_replay_is_deterministic(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker, evs = _run(start_worker)
    client = MemoryClient(worker.url)
    placed = Counter(e.memory_id for e in evs if e.kind in ("create", "join") and e.memory_id)
    strengthened = int(client.stats()["strengthened"])  # near-duplicates are not placed
    assert len(placed) + strengthened == N and set(placed.values()) == {1}
    assert {e.namespace for e in evs} == {NS}

    kinds = Counter(e.kind for e in evs)
    total = 0
    for agent in {e.agent_id for e in evs}:
        clusters = client.clusters(NS, agent)
        assert clusters and all(c["size"] >= 1 and 0 <= c["stability"] <= 1 for c in clusters)
        total += sum(c["size"] for c in clusters)
    assert total == len(placed), kinds

    # the population aggregator saw every change: namespace-wide clusters cover every live
    # agent cluster exactly once, and some are shared by several agents
    client.wait_counter("population_inputs", len(evs), timeout=60)
    pop = client.population(NS)
    assert sum(c["size"] for c in pop) == total
    assert sum(c["n_agent_clusters"] for c in pop) == sum(
        len(client.clusters(NS, a)) for a in {e.agent_id for e in evs}
    )
    assert any(c["shared"] for c in pop), pop

    # the namespace-wide spatial index: every cluster event caused by a memory carries its
    # position, and the agents near a point are those whose latest such event placed them there
    caused = [e for e in evs if e.memory_id and e.kind in ("create", "join")]
    assert caused and all(e.position is not None for e in caused)
    last: dict[str, tuple[float, float, float]] = {}
    for e in evs:
        if e.position is not None and e.event_ts >= last.get(e.agent_id, (0, 0, -1.0))[2]:
            last[e.agent_id] = (e.position.x, e.position.y, e.event_ts)
    x, y, _ = next(iter(last.values()))
    for radius in (0.0, 15.0, 60.0, 200.0):
        got = client.population_near(NS, x, y, radius)
        want = sorted(a for a, (ax, ay, _) in last.items() if math.hypot(ax - x, ay - y) <= radius)
        assert sorted(a["agent_id"] for a in got["agents"]) == want, (radius, got, last)
        assert got["agents_placed"] == len(last)
        near_size = sum(c["size_near"] for c in got["clusters"])
        assert near_size == sum(c["size"] for a in want for c in client.clusters(NS, a)), got[
            "clusters"
        ]
    for bad in (
        {"x": "1"},
        {"x": "1", "y": "2", "radius": "-1"},
        {"x": "nan", "y": "0", "radius": "1"},
    ):
        assert client._http.get("/population", params={"namespace": NS, **bad}).status_code == 400

    _, again = _run(start_worker)  # the same events into a fresh worker
    assert _per_agent(again) == _per_agent(evs)
