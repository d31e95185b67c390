"""SIGKILL a worker mid-stream and restart it: nothing is lost, nothing is stored twice, and the
clusters end as in an uninterrupted run (published vs stored counted, never trusted)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.client import MemoryClient
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher
from pipelines.simulation import Population
from schemas import LifecycleEvent
from tests.integration.kafka_utils import read_topic

pytestmark = pytest.mark.integration

N = 1500
NS = "restart-test"
# the events span 25 hours of simulation time: with S = 1 h per unit of strength, many of the
# earlier memories decay during the run, so the kill also tests the lifecycle's recovery
FAST_FORGETTING = {"ARGOS_BASE_STABILITY_S": "3600"}


def _events() -> list:
    return list(Population(6, seed=17, namespace=NS).events(N))


def _clusters(client: MemoryClient, agents: set[str]) -> dict[str, list[tuple]]:
    return {
        a: [(c["cluster_id"], c["size"], c["radius"]) for c in client.clusters(NS, a)]
        for a in sorted(agents)
    }


def _wait(worker: WorkerProcess, timeout: float = 180) -> int:
    """Until the clusters hold N members and every memory is accounted for: in the store or
    decayed (a tombstone on the lifecycle topic). Returns the store count."""
    client = MemoryClient(worker.url)
    agents = {e.agent_id for e in _events()}
    deadline = time.monotonic() + timeout
    count = -1
    while time.monotonic() < deadline:
        placed = sum(s for c in _clusters(client, agents).values() for _, s, _ in c)
        count = client.count(NS)
        if placed >= N and count + len(_decayed(worker)) == N:
            return count
        time.sleep(1.0)
    return count


def _decayed(worker: WorkerProcess) -> set[str]:
    topic = worker.env["ARGOS_TOPIC_PREFIX"] + ".memory.lifecycle"
    recs = read_topic(worker.bootstrap, topic, timeout=10)
    return {
        ev.memory_id
        for ev in (LifecycleEvent.model_validate_json(r.value) for r in recs)
        if ev.to_state == "decayed"
    }


def test_sigkill_mid_stream_loses_nothing_and_clusters_match(
    start_worker: Callable[..., WorkerProcess], tmp_path_factory: pytest.TempPathFactory
) -> None:
    events = _events()
    agents = {e.agent_id for e in events}

    # the reference: one uninterrupted worker
    ref = start_worker(extra_env=FAST_FORGETTING)
    with MemoryPublisher(ref.bootstrap, ref.env["ARGOS_TOPIC_PREFIX"] + ".memory.events") as pub:
        pub.publish_many(events)
    ref_client = MemoryClient(ref.url)
    ref_count = _wait(ref)
    expected = _clusters(ref_client, agents)
    expected_decayed = _decayed(ref)

    # the victim: killed with SIGKILL while the stream is flowing, then restarted
    data_dir: Path = tmp_path_factory.mktemp("victim")
    victim = start_worker(data_dir=data_dir, extra_env=FAST_FORGETTING)
    prefix = victim.env["ARGOS_TOPIC_PREFIX"]
    client = MemoryClient(victim.url)
    with MemoryPublisher(victim.bootstrap, prefix + ".memory.events") as pub:
        pub.publish_many(events)
    deadline = time.monotonic() + 120
    while int(client.stats()["stored"]) < N // 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    before_kill = client.stats()
    victim.kill()
    assert before_kill["stored"] < N, "the kill came too late to test anything"

    again = start_worker(topic_prefix=prefix, data_dir=data_dir, extra_env=FAST_FORGETTING)
    client = MemoryClient(again.url)
    stored = _wait(again)
    decayed = _decayed(again)
    print(
        f"killed after {before_kill['stored']} stored; after restart: {stored} in the store "
        f"+ {len(decayed)} decayed (uninterrupted: {ref_count} + {len(expected_decayed)})"
    )
    assert stored + len(decayed) == N  # nothing lost, no duplicate rows (upserts by key)
    assert stored == ref_count and decayed == expected_decayed  # same lifecycle, too
    assert len(decayed) > 0
    got = _clusters(client, agents)
    for a in sorted(agents):
        if got[a] != expected[a]:
            print(a, "total", sum(x[1] for x in got[a]), "vs", sum(x[1] for x in expected[a]))
            print(" got", got[a])
            print(" exp", expected[a])
    assert got == expected
