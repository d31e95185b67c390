"""Recall on the real broker: filters and score parts, recall right after storing, and routing
to the worker that owns the agent (two workers in one group, each with its own Milvus Lite).

Recalls here go to the worker's own ``/recall`` (``recall_url=None``), whose counters the tests
read; the recall process each worker also runs (the client's default route) answers alike:
``test_recall_process.py``."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from pipelines.client import MemoryClient, wait_until_settled
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher
from schemas import MemoryEvent, MemoryType

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

THINGS = [  # (id, type, text, (x, y), tags, hours after T0)
    ("well", "episodic", "I drew cold water from the village well", (10.0, 10.0), ["water"], 0),
    ("river", "episodic", "I drank water from the river bank", (13.0, 14.0), ["water"], 1),
    ("lake", "episodic", "I swam in the clear water of the lake", (40.0, 40.0), ["water"], 2),
    ("rule", "semantic", "Water from the river is safe to drink", (13.0, 14.0), ["water"], 3),
    ("bread", "episodic", "I baked bread in the stone oven", (10.0, 10.0), ["food"], 4),
]


def _events(agent: str, ns: str, id_prefix: str = "") -> list[MemoryEvent]:
    """Memory ids are unique within a namespace: give each agent its own with ``id_prefix``."""
    return [
        MemoryEvent(
            schema_version=1,
            memory_id=id_prefix + mid,
            agent_id=agent,
            namespace=ns,
            type=MemoryType(kind),
            content=text,
            importance=0.5,
            position={"x": x, "y": y},  # type: ignore[arg-type]
            tags=tags,
            event_time=T0 + timedelta(hours=h),
        )
        for mid, kind, text, (x, y), tags, h in THINGS
    ]


def test_filters_and_score_parts_and_recall_right_after_storing(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker()
    client = MemoryClient(worker.url, recall_url=None)
    ns = "recall-filters"
    with MemoryPublisher(
        worker.bootstrap, worker.env["ARGOS_TOPIC_PREFIX"] + ".memory.events"
    ) as p:
        p.publish_many(_events("ann", ns))
    assert client.wait_stored(ns, len(THINGS), timeout=60) == len(THINGS)
    # stored -> recallable at once (the store stage writes through into the hot index)
    hits = client.recall(ns, "ann", "drinking water", k=10).hits
    assert {h.memory_id for h in hits} == {t[0] for t in THINGS}
    top = hits[0]
    assert top.parts is not None and top.state == "active"
    w = {"relevance": 1.0, "recency": 0.5, "importance": 0.3, "lexical": 0.4}  # the defaults
    total = sum(w[k] * getattr(top.parts, k) for k in w)
    assert top.parts.lexical is not None and 0.0 <= top.parts.lexical <= 1.0
    assert top.score == pytest.approx(total, abs=1e-5)

    def ids(**filters: object) -> set[str]:
        return {h.memory_id for h in client.recall(ns, "ann", "water", k=10, **filters).hits}

    assert ids(types=["semantic"]) == {"rule"}
    assert ids(tags=["food"]) == {"bread"}
    assert ids(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=2)) == {"river", "lake"}
    # radius 5 around (10, 10): the river at distance 5 is on the boundary, so it is in
    assert ids(near={"x": 10.0, "y": 10.0, "radius": 5.0}) == {"well", "bread", "river", "rule"}
    assert ids(near={"x": 10.0, "y": 10.0, "radius": 4.99}) == {"well", "bread"}
    assert ids(near={"x": 10.0, "y": 10.0, "radius": 5.0}, tags=["water"], types=["episodic"]) == {
        "well",
        "river",
    }
    assert ids(states=["consolidated"]) == set()
    # another namespace with the same agent and memory ids: never leaks
    assert client.recall("elsewhere", "ann", "water", k=10).hits == []
    # the same request twice: the second comes from the L1 cache. (A recall with hits
    # reinforces them, which invalidates the agent's cached answers once the memory stage has
    # applied it, so the request asks for a period with no memories: nothing is reinforced.)
    # The recalls above reinforce their hits asynchronously (through argos.memory.access and
    # the memory stage): one applied between the two calls rightly invalidates the first
    # answer, so on a loaded machine the pair is asked again, with its own question, until
    # it falls in a quiet moment (the reinforcements are few and end).
    future = {"since": "2100-01-01T00:00:00+00:00"}
    for attempt in range(20):
        before = client.stats()["recall"]["l1_hits"]
        question = f"a question asked twice ({attempt})"
        first = client.recall(ns, "ann", question, k=3, **future)
        assert first.hits == [] and not first.cached
        again = client.recall(ns, "ann", question, k=3, **future)
        if again.cached:  # the response says so, and the worker counted it
            break
        time.sleep(1.0)
    assert again.cached and again.hits == []
    assert client.stats()["recall"]["l1_hits"] >= before + 1


def spread_agents(
    clients: list[MemoryClient], bootstrap: str, prefix: str, ns: str, agents: list[str]
) -> list[int]:
    """Publish ``THINGS`` for each agent (ids ``<agent>:<id>``) and wait until the workers'
    stores hold them all; each worker must own some of the agents. Memories per worker."""
    with MemoryPublisher(bootstrap, prefix + ".memory.events") as pub:
        for agent in agents:
            pub.publish_many(_events(agent, ns, id_prefix=f"{agent}:"))
    total = len(agents) * len(THINGS)
    deadline = time.monotonic() + 180
    while sum(c.count(ns) for c in clients) < total and time.monotonic() < deadline:
        time.sleep(1.0)
    counts = [c.count(ns) for c in clients]
    print("memories per worker:", counts)
    assert sum(counts) == total and all(counts), counts  # each worker owns some agents
    return counts


@pytest.mark.parametrize(
    ("n_workers", "embedder", "partitions"),
    [
        (2, "onnx", 4),
        # three workers on the default 4 partitions: each gets some (ARGOS_STANDBY_REPLICAS 0;
        # with Faust's default of 1 standby the third got none). Three copies of the model
        # would not fit beside the broker on this machine: hashing.
        (3, "hashing", 4),
    ],
)
def test_any_worker_answers_for_any_agent(
    start_worker: Callable[..., WorkerProcess], n_workers: int, embedder: str, partitions: int
) -> None:
    """Workers share the partitions (one group); each owns some agents, and each answers for
    every agent: its own from its hot index, the others' routed to their owner."""
    env = {"ARGOS_TOPIC_PARTITIONS": str(partitions)}
    first = start_worker(embedder=embedder, extra_env=env)
    prefix = first.env["ARGOS_TOPIC_PREFIX"]
    # same group: the partitions are shared (a join is a rebalance and a recovery for all, so
    # a later worker may take a while to report ready on a loaded 2-core machine)
    workers = [first] + [
        start_worker(topic_prefix=prefix, ready_timeout=300, embedder=embedder, extra_env=env)
        for _ in range(n_workers - 1)
    ]
    clients = [MemoryClient(w.url, recall_url=None) for w in workers]
    wait_until_settled(clients)
    ns = "recall-routing"
    agents = [f"agent-{i}" for i in range(12)]
    spread_agents(clients, first.bootstrap, prefix, ns, agents)
    # each recall reinforces what it finds (through argos.memory.access and the memory stage):
    # once that lands, recency reorders close hits, and the next ask may be answered by
    # another cache (the owner's recall process, for a routed one) than the first. So the
    # answers are compared on what does not move: relevance and words.
    steady = {"relevance": 1.0, "recency": 0.0, "importance": 0.0}
    for agent in agents:
        answers = [
            [h.memory_id for h in c.recall(ns, agent, "drinking water", k=5, weights=steady).hits]
            for c in clients
        ]
        assert all(a == answers[0] for a in answers), answers
        assert len(answers[0]) == 5 and all(m.startswith(f"{agent}:") for m in answers[0])
    assert all(c.stats()["routed"] > 0 for c in clients)
    # the namespace's population clusters and spatial index live with the owner of its
    # partition of argos.clusters: every worker gives the same answer (routed there)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        seen = [c.stats() for c in clients]
        if sum(int(s["population_inputs"]) for s in seen) >= sum(
            int(s["cluster_changes"]) for s in seen
        ):
            break
        time.sleep(1.0)
    pops = [c.population(ns) for c in clients]
    assert pops[0] and all(p == pops[0] for p in pops), pops
    assert sum(int(p["n_agents"]) for p in pops[0]) >= len(agents)
    near = [c.population_near(ns, 0.0, 0.0, 1e6) for c in clients]
    assert all(n == near[0] for n in near), near
    assert sorted(a["agent_id"] for a in near[0]["agents"]) == sorted(agents)
