"""What a recall of another worker's agent costs: the hop to the owner's recall process.

Two workers in one consumer group on one broker, each with its recall process
(``ARGOS_RECALL_PORT``), hashing embedder, the recall bench's worker settings. N memories of
100 agents are published and stored; then each recall of a queried agent is asked three ways,
interleaved so drift hits all alike, each with a text of its own (no L1 answer):

- ``owner``: of the owner's recall process (no hop);
- ``hop``: of the other worker's recall process, which sends it on to the owner's
  (``pipelines.recall_routes``: one more local HTTP request);
- ``via_worker``: of the other worker's own ``/recall``, which sends it on the same way.

    python -m bench.recall_hop [--events 10000] [--queries 300]

Writes ``bench/results/recall_hop.{json,png}``: HTTP p50/p95/p99 per way and the ratios to
``owner``, with the recall processes' route counters (every ``hop`` must reach the owner's
process).
"""

from __future__ import annotations

import argparse
import random
import signal
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.machine import describe, machine_title, write_results
from bench.recall_http import NS, WORKER_ENV, K, _raise_exit, make_events, make_queries, pct
from infra.local_kafka import LocalKafka
from pipelines.app import partition_of
from pipelines.client import MemoryClient, wait_until_settled
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher

RESULTS = Path(__file__).parent / "results"
PARTITIONS = 4
WAYS = ("owner", "hop", "via_worker")


def wait_stored(clients: list[MemoryClient], n: int, timeout: float = 1800.0) -> float:
    """Seconds until the workers together count ``n`` stored."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if sum(int(c.stats()["stored"]) for c in clients) >= n:
            return time.monotonic() - t0
        time.sleep(1.0)
    raise TimeoutError(f"the workers did not store {n} events in {timeout:.0f} s")


def owned_partitions(clients: list[MemoryClient], timeout: float = 120.0) -> list[set[int]]:
    """Each worker's partitions, as its recall process knows them (both known, disjoint)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owned = [set(c.recall_stats()["owned_partitions"]) for c in clients]
        if all(owned) and not owned[0] & owned[1] and len(owned[0] | owned[1]) == PARTITIONS:
            return owned
        time.sleep(0.5)
    raise TimeoutError(f"the recall processes do not know their partitions: {owned}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000, help="memories over 100 agents")
    ap.add_argument("--queries", type=int, default=300, help="timed recalls per way")
    ap.add_argument("--query-agents", type=int, default=10)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_exit)
    out: dict[str, Any] = {"machine": describe(), "events": args.events, "partitions": PARTITIONS}
    events = make_events(args.events, "100_agents", args.seed)
    prefix = f"rhop-{uuid.uuid4().hex[:8]}"
    env = WORKER_ENV | {"ARGOS_RECALL_PORT": "free", "ARGOS_TOPIC_PARTITIONS": str(PARTITIONS)}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, LocalKafka(Path(tmp) / "kafka") as kafka:
        workers = [
            WorkerProcess(
                kafka.bootstrap_servers,
                Path(tmp) / f"{prefix}-{i}",
                topic_prefix=prefix,
                app_id=f"{prefix}-app",
                embedder="hashing",
                extra_env=env,
            )
            for i in range(2)
        ]
        try:
            clients = [w.start(timeout=300) for w in workers]
            wait_until_settled(clients, timeout=300)
            with MemoryPublisher(kafka.bootstrap_servers, f"{prefix}.memory.events") as pub:
                pub.publish_many(events)
                pub.flush()
            out["load_s"] = wait_stored(clients, len(events))
            print(f"stored {len(events)} in {out['load_s']:.0f} s", flush=True)
            owned = owned_partitions(clients)
            everyone = sorted({e.agent_id for e in events})
            agents = random.Random(args.seed).sample(everyone, args.query_agents)
            owner = {
                a: 0 if partition_of(a.encode(), PARTITIONS) in owned[0] else 1 for a in agents
            }
            out["agents_per_owner"] = [sum(1 for a in agents if owner[a] == i) for i in (0, 1)]
            recall_only = [MemoryClient(w.url, recall_url=w.recall_url) for w in workers]
            # each worker's own /recall
            own = [MemoryClient(w.url, recall_url=None) for w in workers]

            def ask(way: str, agent: str, text: str) -> float:
                o = owner[agent]
                target = {
                    "owner": recall_only[o],
                    "hop": recall_only[1 - o],
                    "via_worker": own[1 - o],
                }[way]
                t0 = time.perf_counter()
                hits = target.recall(NS, agent, text, k=K).hits
                took = time.perf_counter() - t0
                if not hits or not all(h.agent_id == agent for h in hits):
                    raise RuntimeError(f"{way}: no hits of {agent} for {text!r}")
                return took

            for agent in agents:  # warm every agent in its owner's recall process, untimed
                for way in WAYS:
                    ask(way, agent, f"warm-up recall of {agent} ({way})")
            before = [c.recall_stats()["routes"] for c in clients]
            queries = make_queries(events, agents, args.queries, args.seed + 7, "hop")
            samples: dict[str, list[float]] = {w: [] for w in WAYS}
            for i, (agent, text) in enumerate(queries):
                ways = WAYS[i % 3 :] + WAYS[: i % 3]  # each way first a third of the time
                for way in ways:
                    samples[way].append(ask(way, agent, f"{text} [{way}]"))
            after = [c.recall_stats()["routes"] for c in clients]
            out["latency"] = {w: pct(s) for w, s in samples.items()}
            base = out["latency"]["owner"]
            out["ratios_to_owner"] = {
                w: {q: out["latency"][w][q] / base[q] for q in ("p50_ms", "p95_ms", "p99_ms")}
                for w in WAYS
            }
            out["routes_to_recall_process"] = sum(
                a["to_recall_process"] - b["to_recall_process"]
                for a, b in zip(after, before, strict=True)
            )
            out["worker_routes"] = [c.stats()["recall_routes"] for c in clients]
        finally:
            for w in workers:
                w.stop()
    out["total_s"] = time.perf_counter() - t_all
    write_results(out, args.out, "recall_hop", plot)
    for w in WAYS:
        q = out["latency"][w]
        print(f"{w:11s} p50 {q['p50_ms']:6.2f}  p95 {q['p95_ms']:6.2f}  p99 {q['p99_ms']:6.2f} ms")
    return 0


def plot(out: dict[str, Any], path: Path) -> None:
    """p50 / p95 / p99 per way, with the ratio to asking the owner's recall process."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    qs = ("p50_ms", "p95_ms", "p99_ms")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    x = np.arange(len(qs))
    for j, way in enumerate(WAYS):
        vals = [out["latency"][way][q] for q in qs]
        bars = ax.bar(x + (j - 1) * 0.27, vals, 0.27, label=way)
        for b, q in zip(bars, qs, strict=True):
            r = out["ratios_to_owner"][way][q]
            ax.annotate(
                f"{r:.2f}×",
                (b.get_x() + b.get_width() / 2, b.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
    ax.set_xticks(x, [q.removesuffix("_ms") for q in qs])
    ax.set_ylabel("HTTP recall latency (ms)")
    ax.set_title(
        f"A recall of another worker's agent, {out['events']:,} memories\n{machine_title(out)}",
        fontsize=10,
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
