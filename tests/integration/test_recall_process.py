"""The recall process (``ARGOS_RECALL_PORT``) on the real broker: it answers as the worker's own
``/recall`` does, a memory is recallable there as soon as the worker has stored it, its recalls
reinforce (access events reach the memory stage), and a killed process is started again."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable

import pytest

from pipelines.client import MemoryClient, wait_until_settled
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher
from schemas import MemoryEvent, MemoryType
from tests.integration.kafka_utils import read_topic
from tests.integration.test_recall import T0, THINGS, _events, spread_agents

pytestmark = pytest.mark.integration


def _ranked(resp: object) -> list[tuple[str, float]]:
    return [(h.memory_id, round(h.score, 5)) for h in resp.hits]  # type: ignore[attr-defined]


def test_recall_process_answers_like_the_worker_and_survives_a_kill(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker(embedder="hashing")  # the defaults: a process, on a port the OS picks
    assert worker.recall_url is not None
    direct = MemoryClient(worker.url, recall_url=None)  # the worker's own /recall
    client = MemoryClient(worker.url, recall_url=worker.recall_url)
    ns = "recall-process"
    topic = worker.prefix + ".memory.events"
    with MemoryPublisher(worker.bootstrap, topic) as p:
        p.publish_many(_events("ann", ns))
    assert client.wait_stored(ns, len(THINGS), timeout=60) == len(THINGS)

    # the worker tells the process which partitions it owns (then it answers them itself)
    deadline = time.monotonic() + 30
    while not client.recall_stats()["owned_partitions"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.recall_stats()["owned_partitions"]

    # the same answers as the worker's own index, filters included
    for filters in (
        {},
        {"types": ["semantic"]},
        {"tags": ["food"]},
        {"near": {"x": 10.0, "y": 10.0, "radius": 5.0}},
        {"near": {"x": 10.0, "y": 10.0, "radius": 4.99}},
    ):
        via_process = client.recall(ns, "ann", "drinking water", k=10, **filters)
        via_worker = direct.recall(ns, "ann", "drinking water", k=10, **filters)
        assert {h.memory_id for h in via_process.hits} == {h.memory_id for h in via_worker.hits}
    everything = client.recall(ns, "ann", "drinking water", k=10)
    assert {h.memory_id for h in everything.hits} == {t[0] for t in THINGS}
    assert client.recall("elsewhere", "ann", "water", k=10).hits == []  # no leak
    st = client.recall_stats()
    assert st["answered"] >= 7 and st["forwarded"] == 0
    assert st["recall"]["l2_agents_warm"] >= 1

    # recallable there as soon as the worker reports it stored (read-your-writes)
    stored = int(client.stats()["stored"])
    fresh = MemoryEvent(
        schema_version=1,
        memory_id="fresh-well",
        agent_id="ann",
        namespace=ns,
        type=MemoryType("episodic"),
        content="a stranger drew water from the well at noon",
        importance=0.9,
        event_time=T0,
    )
    with MemoryPublisher(worker.bootstrap, topic) as p:
        p.publish_many([fresh])
    assert client.wait_counter("stored", stored + 1, timeout=60) >= stored + 1
    hits = client.recall(ns, "ann", "a stranger drew water", k=10).hits
    assert "fresh-well" in {h.memory_id for h in hits}

    # its recalls reinforce: the access events reach the worker's memory stage
    before = int(client.stats()["lifecycle_inputs"])
    for i in range(5):
        assert client.recall(ns, "ann", f"water from the river, question {i}", k=3).hits
    assert client.wait_counter("lifecycle_inputs", before + 5, timeout=60) >= before + 5
    # and each is audited on argos.audit (written after its response)
    answered = int(client.recall_stats()["answered"])

    def recalls(records: list[object]) -> list[dict[str, object]]:
        out = [json.loads(r.value) for r in records]  # type: ignore[attr-defined]
        return [a for a in out if a["action"] == "recall"]

    topic = worker.prefix + ".audit"
    audited = recalls(read_topic(worker.bootstrap, topic, lambda r: len(recalls(r)) >= answered))
    assert len(audited) >= answered and {a["agent_id"] for a in audited} == {"ann"}
    assert all(a["trace_id"] for a in audited)

    # killed: the worker starts it again, and it answers (warmed again from the worker)
    proc = client.stats()["recall_process"]
    assert proc["up"] and proc["starts"] == 1
    # the warm of ann was timed on both sides: the worker's answer and the process's
    assert proc["warm_answer"]["read"]["n"] >= 1 and proc["warm_answer"]["send"]["n"] >= 1
    assert client.recall_stats()["latency"]["warm_load"]["n"] >= 1
    os.kill(proc["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        proc = client.stats()["recall_process"]
        if proc["starts"] == 2 and proc["up"]:
            break
        time.sleep(0.2)
    assert proc["starts"] == 2 and proc["up"], proc
    assert client.recall_url_named() == worker.recall_url  # started again on the same port
    deadline = time.monotonic() + 30
    while not client.recall_stats()["owned_partitions"] and time.monotonic() < deadline:
        time.sleep(0.2)
    again = client.recall(ns, "ann", "drinking water", k=10)
    assert {h.memory_id for h in again.hits} == {t[0] for t in THINGS} | {"fresh-well"}
    assert client.recall_stats()["forwarded"] == 0


def test_recalls_of_another_workers_agents_go_to_its_recall_process(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """Two workers with recall processes: a recall of the other worker's agent, asked of
    either this worker's recall process or its own /recall, is answered by the owner's recall
    process (not the owner's event loop), with the same hits as the owner gives."""
    env = {"ARGOS_RECALL_PORT": "free", "ARGOS_TOPIC_PARTITIONS": "4"}
    first = start_worker(embedder="hashing", extra_env=env)
    prefix = first.env["ARGOS_TOPIC_PREFIX"]
    second = start_worker(topic_prefix=prefix, ready_timeout=300, embedder="hashing", extra_env=env)
    workers = [first, second]
    clients = [MemoryClient(w.url, recall_url=w.recall_url) for w in workers]
    wait_until_settled(clients)
    ns = "recall-process-routing"
    agents = [f"agent-{i}" for i in range(8)]
    spread_agents(clients, first.bootstrap, prefix, ns, agents)
    # each recall process knows which worker owns every partition
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen = [c.recall_stats() for c in clients]
        if all(len(s["owned_partitions"]) for s in seen):
            break
        time.sleep(0.5)
    owned = [set(s["owned_partitions"]) for s in seen]
    assert owned[0] and owned[1] and not owned[0] & owned[1], owned
    before = [c.recall_stats() for c in clients]
    direct = [MemoryClient(w.url, recall_url=None) for w in workers]  # each worker's own /recall
    for agent in agents:
        answers = [
            [h.memory_id for h in c.recall(ns, agent, "drinking water", k=5).hits]
            for c in clients + direct
        ]
        assert all(a == answers[0] for a in answers), answers
        assert len(answers[0]) == 5 and all(m.startswith(f"{agent}:") for m in answers[0])
    after = [c.recall_stats() for c in clients]
    # every recall process answered the recalls of its worker's agents, whoever was asked:
    # 4 asks per agent (two recall processes, two workers' own /recall), the owner's own
    # /recall answers its own, so at least 3 per agent reach the owner's recall process
    answered = [a["answered"] - b["answered"] for a, b in zip(after, before, strict=True)]
    assert sum(answered) >= 3 * len(agents), answered
    routed_in = sum(a["routes"]["to_recall_process"] for a in after)
    worker_routes = [c.stats()["recall_routes"] for c in clients]
    print(
        "answered per recall process:",
        answered,
        "routes:",
        [a["routes"] for a in after],
        worker_routes,
    )
    assert routed_in >= 1 and all(a["routes"]["to_worker"] == 0 for a in after)
    assert all(r["to_recall_process"] >= 1 and r["to_worker"] == 0 for r in worker_routes)
    assert all(set(r["known"].values()) <= {w.recall_url for w in workers} for r in worker_routes)


def test_agents_the_analytics_expect_to_be_recalled_are_warm_before_their_first_recall(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """The worker's prefetch sends its recall process the agents the recall-probability model
    expects to be recalled soon (``RecallMirror.prefetch``): their first recall there waits
    for no warm, and answers as the worker's own /recall."""
    env = {"ARGOS_RECALL_PORT": "free", "ARGOS_PREFETCH_S": "1"}
    worker = start_worker(embedder="hashing", extra_env=env)
    client = MemoryClient(worker.url, recall_url=worker.recall_url)
    direct = MemoryClient(worker.url, recall_url=None)
    ns = "recall-process-prefetch"
    agents = ["ann", "bob", "cy"]
    with MemoryPublisher(worker.bootstrap, worker.prefix + ".memory.events") as p:
        for agent in agents:
            p.publish_many(_events(agent, ns, id_prefix=f"{agent}:"))
    total = len(agents) * len(THINGS)
    assert client.wait_stored(ns, total, timeout=60) == total
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        st = client.recall_stats()
        if st["warms_unasked"] >= len(agents):
            break
        time.sleep(0.5)
    print("recall process:", {k: st[k] for k in ("warms_unasked", "messages")}, st["recall"])
    assert st["warms_unasked"] >= len(agents), st
    assert st["recall"]["l2_agents_warm"] >= len(agents)
    assert client.stats()["recall_process"]["prefetched"] >= len(agents)
    for agent in agents:
        via_process = client.recall(ns, agent, "drinking water", k=10)
        assert {h.memory_id for h in via_process.hits} == {f"{agent}:{t[0]}" for t in THINGS}
        via_worker = direct.recall(ns, agent, "drinking water", k=10)
        assert {h.memory_id for h in via_worker.hits} == {h.memory_id for h in via_process.hits}
    assert client.recall_stats()["latency"]["warm"]["n"] == 0  # no recall waited for a warm
