"""The walking skeleton end to end: real broker, real worker process, real model, Milvus Lite."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from pipelines.client import MemoryClient, RecallError
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher
from pipelines.simulation import Population, malformed_events
from schemas import DeadLetter, MemoryEvent, MemoryType
from tests.integration.kafka_utils import expected_in_store, read_topic

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def worker(start_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    return start_worker()


@pytest.fixture(scope="module")
def client(worker: WorkerProcess) -> MemoryClient:
    return MemoryClient(worker.url)


def _publisher(worker: WorkerProcess) -> MemoryPublisher:
    return MemoryPublisher(worker.bootstrap, worker.env["ARGOS_TOPIC_PREFIX"] + ".memory.events")


def _settle(client: MemoryClient, namespace: str, expected: int, timeout: float = 120) -> int:
    """Wait for ``expected`` memories, then a little longer, so extra copies would show."""
    client.wait_stored(namespace, expected, timeout=timeout)
    time.sleep(2.0)
    return client.count(namespace)


def test_good_events_stored_bad_events_dead_lettered(
    worker: WorkerProcess, client: MemoryClient
) -> None:
    n_good, n_bad = 300, 24
    ns = "count-test"
    good = list(Population(12, seed=11, namespace=ns).events(n_good))
    bad = list(malformed_events(n_bad, seed=11, namespace=ns))
    bad_key = b"bad-count-test"
    before = int(client.stats()["clustered"])
    with _publisher(worker) as pub:
        for i, ev in enumerate(good):
            pub.publish(ev)
            if i % 12 == 0 and bad:
                pub.publish_raw(bad_key, bad.pop())
        for raw in bad:
            pub.publish_raw(bad_key, raw)
    expected = expected_in_store(worker, client, ns, n_good, before)
    assert n_good / 2 < expected <= n_good  # the simulation repeats itself: some near-copies
    assert _settle(client, ns, expected) == expected

    dlq_topic = worker.env["ARGOS_TOPIC_PREFIX"] + ".deadletter"
    mine = lambda recs: [r for r in recs if r.key == bad_key]  # noqa: E731
    records = mine(read_topic(worker.bootstrap, dlq_topic, until=lambda r: len(mine(r)) >= n_bad))
    assert len(records) == n_bad
    letters = [DeadLetter.model_validate_json(r.value) for r in records]
    assert all(dl.reason and dl.stage == "ingest" for dl in letters)
    assert sorted(dl.original() for dl in letters) == sorted(malformed_events(n_bad, 11, ns))
    reasons = " | ".join(dl.reason for dl in letters)
    for expected in (
        "not UTF-8",
        "not JSON",
        "JSON object",
        "schema_version",
        "content",
        "importance",
        "surprise",
        "event_time",
    ):
        assert expected in reasons


def test_replay_does_not_duplicate(worker: WorkerProcess, client: MemoryClient) -> None:
    ns = "replay-test"
    events = list(Population(5, seed=3, namespace=ns).events(120))
    before = int(client.stats()["clustered"])
    with _publisher(worker) as pub:
        pub.publish_many(events)
    expected = expected_in_store(worker, client, ns, len(events), before)
    assert _settle(client, ns, expected) == expected
    before = int(client.stats()["stored"])
    with _publisher(worker) as pub:
        pub.publish_many(events)
    deadline = time.monotonic() + 120
    while int(client.stats()["stored"]) < before + len(events) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert int(client.stats()["stored"]) >= before + len(events), "replay was not processed"
    assert client.count(ns) == expected


def _event(ns: str, agent: str, i: int, content: str, kind: str = "episodic") -> MemoryEvent:
    return MemoryEvent(
        schema_version=1,
        memory_id=f"{ns}:{agent}:{i}",
        agent_id=agent,
        namespace=ns,
        type=MemoryType(kind),
        content=content,
        event_time=datetime(2026, 3, 1, 12, i, tzinfo=UTC),
    )


MEMORIES = [
    "I saw a grey wolf stalking the sheep at the edge of the forest and ran home",
    "We baked bread together in the village oven this morning",
    "The merchant sold me a copper kettle for two silver coins",
    "I repaired the leaking roof of the barn with fresh straw",
    "My sister got married by the lake and everyone danced",
    "The river flooded the lower fields after three days of rain",
]


def test_paraphrase_recalls_the_right_memory_and_never_crosses_namespaces(
    worker: WorkerProcess, client: MemoryClient
) -> None:
    with _publisher(worker) as pub:
        for i, text in enumerate(MEMORIES):
            pub.publish(_event("village", "alice", i, text))
            # the same agent id in another namespace, with the very same texts
            pub.publish(_event("rival-world", "alice", i, text))
            pub.publish(_event("village", "bob", i, text))
    assert _settle(client, "village", 2 * len(MEMORIES)) == 2 * len(MEMORIES)
    assert _settle(client, "rival-world", len(MEMORIES)) == len(MEMORIES)

    cases = {
        "a predator frightened me near the woods": 0,
        "buying a pot from a trader": 2,
        "fixing the shed's roof": 3,
        "a wedding celebration": 4,
    }
    for query, idx in cases.items():
        resp = client.recall("village", "alice", query, k=3)
        assert resp.hits, query
        assert resp.hits[0].content == MEMORIES[idx], (query, resp.hits[0].content)
        assert all(h.namespace == "village" and h.agent_id == "alice" for h in resp.hits)
    # everything alice has, asked many ways: still no other namespace, no other agent
    for query in [*MEMORIES, "anything at all"]:
        resp = client.recall("village", "alice", query, k=50)
        assert {h.memory_id for h in resp.hits} == {f"village:alice:{i}" for i in range(6)}


def test_recall_rejects_bad_requests_with_reasons(client: MemoryClient) -> None:
    with pytest.raises(RecallError) as err:
        client._json(client._http.post("/recall", content=b"{not json"))
    assert err.value.status == 400
    with pytest.raises(RecallError) as err:
        client._json(
            client._http.post(
                "/recall",
                content=json.dumps({"namespace": "x", "agent_id": "a", "query": "", "k": 0}),
            )
        )
    assert err.value.status == 400
    locs = {d["loc"] for d in err.value.body["details"]}
    assert {"query", "k"} <= locs
