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

pytestmark = pytest.mark.integration

N = 1500
NS = "restart-test"


def _events() -> list:
    return list(Population(6, seed=17, namespace=NS).events(N))


def _clusters(client: MemoryClient, agents: set[str]) -> dict[str, list[tuple]]:
    return {
        a: [(c["cluster_id"], c["size"], c["radius"]) for c in client.clusters(NS, a)]
        for a in sorted(agents)
    }


def _wait(client: MemoryClient, timeout: float = 180) -> None:
    """Until the store holds N memories and the clusters hold N members."""
    agents = {e.agent_id for e in _events()}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        placed = sum(s for c in _clusters(client, agents).values() for _, s, _ in c)
        if placed >= N and client.count(NS) >= N:
            return
        time.sleep(1.0)


def test_sigkill_mid_stream_loses_nothing_and_clusters_match(
    start_worker: Callable[..., WorkerProcess], tmp_path_factory: pytest.TempPathFactory
) -> None:
    events = _events()
    agents = {e.agent_id for e in events}

    # the reference: one uninterrupted worker
    ref = start_worker()
    with MemoryPublisher(ref.bootstrap, ref.env["ARGOS_TOPIC_PREFIX"] + ".memory.events") as pub:
        pub.publish_many(events)
    ref_client = MemoryClient(ref.url)
    _wait(ref_client)
    expected = _clusters(ref_client, agents)

    # the victim: killed with SIGKILL while the stream is flowing, then restarted
    data_dir: Path = tmp_path_factory.mktemp("victim")
    victim = start_worker(data_dir=data_dir)
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

    again = start_worker(topic_prefix=prefix, data_dir=data_dir)
    client = MemoryClient(again.url)
    _wait(client)
    stored = client.count(NS)
    print(f"killed after {before_kill['stored']} stored; after restart: {stored} stored")
    assert stored == N  # nothing lost, no duplicate rows (upserts by memory_id)
    got = _clusters(client, agents)
    for a in sorted(agents):
        if got[a] != expected[a]:
            print(a, "total", sum(x[1] for x in got[a]), "vs", sum(x[1] for x in expected[a]))
            print(" got", got[a])
            print(" exp", expected[a])
    assert got == expected
