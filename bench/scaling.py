"""Scale-out: end-to-end events/s with 1, 2 and 4 workers in one consumer group, same events.

For each embedder (the hashing one, so the pipeline's own costs show; ONNX int8, the default
model) and each worker count N, in one run on one broker:
1. N workers start on fresh topics (one group, each with its own Milvus Lite file, as pods would
   each have their own store client) and the run waits until the group's assignment is stable;
2. all events are published at once; the clock runs until the workers together have stored
   every one (``stored`` summed over their ``/stats``), then the counts are checked: every
   event is in one of the stores, archived, forgotten or folded into an earlier memory;
3. the embedding model's share: the workers' summed ``embed_busy_s`` over N × the run's time.
Scaling efficiency per doubling = rate(2N) / (2 × rate(N)); on a machine with C cores, more
than C workers only share the same cores, so the efficiency there measures the overhead of
more processes, not capacity.

    python -m bench.scaling [--events 4000] [--workers 1,2,4] [--backends hashing,onnx]

Writes ``bench/results/scaling.json`` and ``bench/results/scaling.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.machine import describe
from infra.local_kafka import LocalKafka
from pipelines.client import wait_until_settled
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher
from pipelines.simulation import Population

RESULTS = Path(__file__).parent / "results"


def run_group(
    backend: str, n: int, bootstrap: str, events: list[Any], workdir: Path, partitions: int
) -> dict[str, Any]:
    prefix = f"scale-{uuid.uuid4().hex[:8]}"
    ns = events[0].namespace
    env = {
        "ARGOS_OTEL_EXPORTER": "none",
        "ARGOS_TOPIC_PARTITIONS": str(partitions),
        # one embedding thread per worker: N workers share the machine's cores fairly
        "ARGOS_EMBED_THREADS": str(max(1, (os.cpu_count() or 1) // n)),
    }
    workers = [
        WorkerProcess(
            bootstrap,
            workdir / f"{prefix}-{i}",
            topic_prefix=prefix,
            app_id=f"{prefix}-app",
            embedder=backend,
            extra_env=env,
        )
        for i in range(n)
    ]
    try:
        clients = [w.start(timeout=300) for w in workers]
        wait_until_settled(clients, timeout=300)
        with MemoryPublisher(bootstrap, f"{prefix}.memory.events") as pub:
            t0 = time.perf_counter()
            pub.publish_many(events)
            pub.flush()
            deadline = time.monotonic() + 1800
            while time.monotonic() < deadline:
                stats = [c.stats() for c in clients]
                stored = sum(int(s["stored"]) for s in stats)
                derived = sum(int(s["derived"]) + int(s["rederived"]) for s in stats)
                if stored >= len(events) + derived:
                    break
                time.sleep(0.1)
            else:
                raise TimeoutError("the workers did not store every event")
            elapsed = time.perf_counter() - t0
        # the truth, once the clock has stopped: counted from each worker's own store
        deadline = time.monotonic() + 180
        while True:
            stats = [c.stats() for c in clients]
            held = sum(c.count(ns) + c.count(ns, archive=True) for c in clients)
            gone = sum(int(s["decayed"]) + int(s["strengthened"]) for s in stats)
            derived = sum(int(s["derived"]) for s in stats)
            if held + gone == len(events) + derived or time.monotonic() > deadline:
                break
            time.sleep(2.0)
        if held + gone != len(events) + derived:
            raise RuntimeError(f"{held} held + {gone} gone != {len(events)} + {derived} derived")
        embed_busy = sum(float(s["embed_busy_s"]) for s in stats)
        return {
            "workers": n,
            "events": len(events),
            "seconds": elapsed,
            "events_per_s": len(events) / elapsed,
            "per_worker_stored": [int(s["stored"]) for s in stats],
            "model_share": embed_busy / (n * elapsed),
        }
    finally:
        for w in workers:
            w.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=4000)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--backends", default="hashing,onnx")
    ap.add_argument("--partitions", type=int, default=8)
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.workers.split(",")]
    events = list(Population(64, seed=3, namespace="scale").events(args.events))
    out: dict[str, Any] = {
        "machine": describe(),
        "events": args.events,
        "partitions": args.partitions,
        "backends": {},
    }
    with tempfile.TemporaryDirectory() as tmp, LocalKafka(Path(tmp) / "kafka") as kafka:
        work = Path(tmp)
        for backend in args.backends.split(","):
            runs = []
            for n in counts:
                r = run_group(backend, n, kafka.bootstrap_servers, events, work, args.partitions)
                runs.append(r)
                print(
                    f"{backend} x{n}: {r['events_per_s']:.0f} events/s "
                    f"(model share {r['model_share']:.2f}, per worker {r['per_worker_stored']})",
                    flush=True,
                )
            rate = {r["workers"]: r["events_per_s"] for r in runs}
            out["backends"][backend] = {
                "runs": runs,
                "speedup": {str(n): rate[n] / rate[counts[0]] for n in counts},
                "efficiency_per_doubling": {
                    f"{n}->{2 * n}": rate[2 * n] / (2 * rate[n]) for n in counts if 2 * n in rate
                },
            }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scaling.json").write_text(json.dumps(out, indent=2) + "\n")
    plot(out, RESULTS / "scaling.png")
    print(json.dumps({b: v["speedup"] for b, v in out["backends"].items()}, indent=1))
    return 0


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for backend, v in out["backends"].items():
        xs = [r["workers"] for r in v["runs"]]
        ys = [r["events_per_s"] for r in v["runs"]]
        ax.plot(xs, ys, marker="o", label=backend)
        for x, y in zip(xs, ys, strict=True):
            ax.annotate(f"{y:.0f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center")
    ax.set_xlabel("workers (one consumer group)")
    ax.set_ylabel("events/s, publish -> stored")
    ax.set_xticks(sorted({r["workers"] for v in out["backends"].values() for r in v["runs"]}))
    m = out["machine"]
    ax.set_title(f"Scale-out on {m.get('cores', '?')} cores, {out['events']} events", fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
