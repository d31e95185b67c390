"""A slow consumer (issue #8's faults): events arrive far faster than the worker embeds them
(a burst published at once; the model takes ~5 ms an event on this machine), so its lag grows,
then drains back to zero, and the lag is reported as it happens, at ``/stats`` and as the
``argos.consumer.lag`` OpenTelemetry gauge. Nothing is lost on the way (counted from the
topics and the store)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.client import MemoryClient
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher
from pipelines.simulation import Population
from tests.integration.kafka_utils import console_records, ledger

pytestmark = pytest.mark.integration

NS = "slow-consumer"
N = 2000


def _events_lag(stats: dict) -> int:
    return sum(n for tp, n in stats["lag"].items() if ".memory.events/" in tp)


def _otel_lag(path: Path) -> list[tuple[int, int]]:
    """(time, total lag of the events topic) per metric export in the console exporter's file."""
    out = []
    for doc in console_records(path):
        for rm in doc.get("resource_metrics", []):
            for sm in rm["scope_metrics"]:
                for m in sm["metrics"]:
                    if m["name"] != "argos.consumer.lag":
                        continue
                    points = [
                        p
                        for p in m["data"]["data_points"]
                        if p["attributes"]["messaging.destination.name"].endswith(".memory.events")
                    ]
                    if points:
                        when = max(p["time_unix_nano"] for p in points)
                        out.append((when, sum(int(p["value"]) for p in points)))
    return sorted(out)


def test_lag_grows_under_a_burst_drains_to_zero_and_is_reported(
    start_worker: Callable[..., WorkerProcess], tmp_path_factory: pytest.TempPathFactory
) -> None:
    data_dir = tmp_path_factory.mktemp("slow")
    otel = data_dir / "otel.jsonl"
    w = start_worker(
        data_dir=data_dir,
        extra_env={
            "ARGOS_OTEL_EXPORTER": "console",
            "ARGOS_OTEL_CONSOLE_FILE": str(otel),
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        },
    )
    client = MemoryClient(w.url)
    events = list(Population(12, seed=31, namespace=NS).events(N))
    with MemoryPublisher(w.bootstrap, w.env["ARGOS_TOPIC_PREFIX"] + ".memory.events") as pub:
        pub.publish_many(events)

    seen: list[int] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        s = client.stats()
        if s["lag"]:
            seen.append(_events_lag(s))
        if int(s["clustered"]) >= N and seen and seen[-1] == 0:
            break
        time.sleep(0.5)
    peak = max(seen)
    print(f"/stats lag of the events topic: peak {peak}, last {seen[-1]}, {len(seen)} samples")
    assert peak >= N // 4, seen  # it fell behind ...
    assert seen[-1] == 0  # ... and caught up

    # the OTel gauge tells the same story: a peak, then zero
    deadline = time.monotonic() + 30
    series: list[tuple[int, int]] = []
    while time.monotonic() < deadline:
        series = _otel_lag(otel)
        if series and series[-1][1] == 0 and max(v for _, v in series) >= N // 4:
            break
        time.sleep(1.0)
    values = [v for _, v in series]
    print(f"argos.consumer.lag exports: peak {max(values)}, last {values[-1]}, {len(values)}")
    assert max(values) >= N // 4 and values[-1] == 0, values
    # latency by operation, in /stats and exported as argos.operation.latency {operation}
    ops = client.stats()["operations"]
    assert {"milvus.upsert", "l2.write", "state.write"} <= set(ops), ops
    assert all(0 < o["p50_ms"] <= o["p99_ms"] for o in ops.values() if o["n"]), ops
    exported = {
        p["attributes"]["operation"]
        for doc in console_records(otel)
        for rm in doc.get("resource_metrics", [])
        for sm in rm["scope_metrics"]
        for m in sm["metrics"]
        if m["name"] == "argos.operation.latency"
        for p in m["data"]["data_points"]
    }
    assert {"milvus.upsert", "l2.write", "state.write"} <= exported, exported

    # nothing lost while it lagged: every event was created or folded into an earlier one,
    # and the store holds exactly the live ones
    book = ledger(w, NS)
    published = {e.memory_id for e in events}
    assert (book["created"] & published) | book["duplicates"] == published
    live = book["created"] - book["decayed"] - book["archived"]
    deadline = time.monotonic() + 60
    while client.count(NS) != len(live) and time.monotonic() < deadline:
        time.sleep(1.0)
    assert client.count(NS) == len(live)


def test_a_hot_partition_and_its_busy_agent_are_reported(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """One agent publishes ten times more than each of the others: its partition is reported
    hot at ``/stats`` ``partition_load`` (and as ``argos.system`` gauges), with the agent
    named. The hashing embedder keeps this one quick; the detector reads Kafka offsets."""
    w = start_worker(embedder="hashing")
    client = MemoryClient(w.url)
    pop = Population(9, seed=41, namespace="hot-partition")
    events = list(pop.events(900))
    busy = events[0].agent_id
    mine = [e for e in events if e.agent_id == busy]
    others = [e for e in events if e.agent_id != busy][: len(mine) // 2]
    with MemoryPublisher(w.bootstrap, w.env["ARGOS_TOPIC_PREFIX"] + ".memory.events") as pub:
        for i in range(10):  # ten memories like each of the busy agent's, each its own
            pub.publish_many(
                [e.model_copy(update={"memory_id": f"{e.memory_id}-{i}"}) for e in mine]
            )
        pub.publish_many(others)
    deadline = time.monotonic() + 120
    load: dict = {}
    while time.monotonic() < deadline:
        load = client.stats()["partition_load"] or {}
        if load.get("top_agent") == busy and load.get("hot_partitions"):
            break
        time.sleep(1.0)
    print("partition load:", load)
    assert load["top_agent"] == busy
    assert len(load["hot_partitions"]) == 1 and load["skew"] >= 2.0
    assert load["suggested_partitions"] >= load["partitions"] == 4
    system = client.stats()["system"]
    assert system["hot_partitions"] == 1.0 and system["partition_skew"] >= 2.0
