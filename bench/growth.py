"""Events/s and recall latency as one worker's memories grow: 10k → 1M, in one run.

One fresh worker (hashing embedder, the recall bench's settings: ``bench.recall_http``
``WORKER_ENV``) on a local broker is fed the same simulated memories as ``bench/recall_http.py``
(100 agents, unique texts, event times inside two hours so nothing decays) in phases. Each phase
publishes the events up to the next checkpoint at once and waits until Milvus Lite holds them all
and the memory stage has seen them; then, with the pipeline idle, it times uncached recalls over
HTTP (``MemoryClient``, sequential, 20 agents, each warmed by one untimed recall) and reads the
worker's memory (RSS of the worker and of Milvus Lite's server process beside it).

Per checkpoint: the phase's events/s (publish → every event in the store), recall p50/p95/p99
over HTTP and the worker's own ``took_ms``, rows per agent, RSS. The JSON is written after each
checkpoint, so a run stopped early keeps what it measured.

    python -m bench.growth [--checkpoints 10000 100000 250000 500000 1000000] [--queries 500]
        [--checkout before=/tmp/before]   # also the same phases from another copy of the repo
        [--variant norefreeze:ARGOS_GC_REFREEZE=0]   # ... or with other settings

With ``--checkout NAME=PATH`` (a ``git worktree add /tmp/before REF``) or ``--variant
NAME:ARGOS_X=V`` (or both, same NAME) the same phases run again, after the current code's, on the
same broker with a worker from that copy or with those settings: ``variants[NAME]`` holds its
checkpoints and ``ratios`` the default worker's events/s over its, per checkpoint.

Writes ``bench/results/growth.json`` and ``bench/results/growth.png``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench.machine import describe
from bench.recall_http import (
    AGENTS,
    NS,
    WORKER_ENV,
    K,
    _raise_exit,
    add_checkout_option,
    add_variant_option,
    load,
    make_events,
    make_queries,
    pct,
)
from infra.local_kafka import LocalKafka
from pipelines.client import MemoryClient
from pipelines.processes import WorkerProcess

RESULTS = Path(__file__).parent / "results"


def rss_bytes(pid: int) -> dict[str, int]:
    """RSS of a process and of its descendants (Milvus Lite runs its server as a child)."""
    out: dict[str, int] = {}

    def walk(p: int, name: str) -> None:
        try:
            with open(f"/proc/{p}/status") as f:
                rss = next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmRSS:"))
            with open(f"/proc/{p}/comm") as f:
                comm = f.read().strip()
        except (OSError, StopIteration):
            return
        out[name or comm] = out.get(name or comm, 0) + rss
        for task in Path(f"/proc/{p}/task").iterdir():
            try:
                kids = (task / "children").read_text().split()
            except OSError:
                continue
            for kid in kids:
                walk(int(kid), "")

    walk(pid, "worker")
    out["total"] = sum(v for k, v in out.items())
    return out


def time_recalls(
    client: MemoryClient, events: list[Any], agents: list[str], n: int, seed: int, tag: str
) -> dict[str, Any]:
    for agent in agents:  # the first recall of an agent warms it from the L2 table (not timed)
        client.recall(NS, agent, f"warm-up recall of {agent} ({tag})", k=K)
    http: list[float] = []
    took: list[float] = []
    for agent, text in make_queries(events, agents, n, seed, tag):
        t0 = time.perf_counter()
        resp = client.recall(NS, agent, text, k=K)
        http.append(time.perf_counter() - t0)
        took.append(resp.took_ms / 1000.0)
    return {"http_uncached": pct(http), "server_took_ms": pct(took)}


def run(args: argparse.Namespace, out: dict[str, Any], save: Any) -> None:
    total = max(args.checkpoints)
    t0 = time.perf_counter()
    events = make_events(total, "100_agents", args.seed)
    out["config"]["make_events_s"] = time.perf_counter() - t0
    everyone = sorted({e.agent_id for e in events})
    agents = random.Random(args.seed).sample(everyone, min(args.query_agents, len(everyone)))
    with tempfile.TemporaryDirectory() as tmp, LocalKafka(Path(tmp) / "kafka") as kafka:
        boot = kafka.bootstrap_servers
        phases(args, boot, Path(tmp), events, agents, out, save, None, "", {})
        checkouts, envs = dict(args.checkout), dict(args.variant)
        for name in dict.fromkeys([*checkouts, *envs]):  # in the order given
            where, env = checkouts.get(name), envs.get(name, {})
            into: dict[str, Any] = {"checkout": str(where or ""), "env": env, "checkpoints": []}
            out.setdefault("variants", {})[name] = into
            phases(args, boot, Path(tmp), events, agents, into, save, where, name, env)
            now = {p["memories"]: p["load"]["events_per_s"] for p in out["checkpoints"]}
            out.setdefault("ratios", {})[name] = {
                str(p["memories"]): now[p["memories"]] / p["load"]["events_per_s"]
                for p in into["checkpoints"]
                if p["memories"] in now
            }
            save()


def phases(
    args: argparse.Namespace,
    bootstrap: str,
    tmp: Path,
    events: list[Any],
    agents: list[str],
    out: dict[str, Any],
    save: Any,
    checkout: Path | None,
    name: str,
    env: dict[str, str],
) -> None:
    """One fresh worker (from ``checkout``, or this copy) fed the phases up to each checkpoint;
    each checkpoint is appended to ``out["checkpoints"]`` and saved as it is measured."""
    worker = WorkerProcess.fresh(
        bootstrap, tmp, "growth", embedder="hashing", extra_env=WORKER_ENV | env, checkout=checkout
    )
    prefix = worker.prefix
    client = worker.start()
    try:
        done = 0
        base = {"stored": 0, "count": 0, "inputs": 0}
        for cp in sorted(args.checkpoints):
            phase = events[done:cp]
            got = load(client, bootstrap, prefix, phase, args.count_poll, base)
            print(
                f"[{name}{cp}] loaded {len(phase)}: {got['events_per_s']:.0f} events/s", flush=True
            )
            st = client.stats()
            lat = time_recalls(client, events[:cp], agents, args.queries, args.seed, str(cp))
            assert worker.proc is not None
            point = {
                "memories": cp,
                "rows_per_agent": cp // AGENTS,
                "load": got,
                "latency": lat,
                "rss_bytes": rss_bytes(worker.proc.pid),
                "worker_system": st.get("system", {}),
            }
            out["checkpoints"].append(point)
            save()
            h = lat["http_uncached"]
            print(
                f"[{name}{cp}] recall HTTP p50 {h['p50_ms']:.2f} p95 {h['p95_ms']:.2f} "
                f"p99 {h['p99_ms']:.2f} ms; RSS {point['rss_bytes']['total'] / 2**30:.2f} GiB",
                flush=True,
            )
            done = cp
            st = client.stats()
            base = {"stored": cp, "count": cp, "inputs": int(st["lifecycle_inputs"])}
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        out["traceback"] = traceback.format_exc()[-4000:]  # where it stopped
        out["worker_log_tail"] = worker.log_tail(15)
        print(f"FAILED: {out['error'][:300]}", flush=True)
    finally:
        client.close()
        worker.stop()
        shutil.rmtree(worker.data_dir, ignore_errors=True)


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = out["checkpoints"]
    if not pts:
        return
    x = [p["memories"] for p in pts]
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4.5))
    a.plot(x, [p["load"]["events_per_s"] for p in pts], "o-", label="this code")
    for name, v in (out.get("variants") or {}).items():
        vp = v["checkpoints"]
        a.plot(
            [p["memories"] for p in vp], [p["load"]["events_per_s"] for p in vp], "s--", label=name
        )
    if out.get("variants"):
        a.legend(fontsize=8)
    a.set(xscale="log", xlabel="memories in the worker", ylabel="events/s (phase)")
    a.set_title("ingest rate of each phase")
    for key, style in (("p50_ms", "o-"), ("p95_ms", "s--"), ("p99_ms", "^-")):
        b.plot(x, [p["latency"]["http_uncached"][key] for p in pts], style, label=f"HTTP {key}")
    b.plot(x, [p["latency"]["server_took_ms"]["p99_ms"] for p in pts], "x:", label="took p99")
    b.axhline(20, color="grey", lw=0.8)
    b.set(xscale="log", xlabel="memories in the worker", ylabel="ms")
    b.set_title(f"uncached recall, top-{K}")
    b.legend(fontsize=8)
    c.plot(x, [p["rss_bytes"]["total"] / 2**30 for p in pts], "o-", label="worker + children")
    c.plot(x, [p["rss_bytes"].get("worker", 0) / 2**30 for p in pts], "s--", label="worker")
    c.set(xscale="log", xlabel="memories in the worker", ylabel="GiB")
    c.set_title("resident memory")
    c.legend(fontsize=8)
    m = out["machine"]
    fig.suptitle(
        f"One worker as memories grow (100 agents, hashing embedder): {m.get('cpu', '')}, "
        f"{m.get('cores', '')} cores",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--checkpoints", type=int, nargs="+", default=[10_000, 100_000, 250_000, 500_000, 1_000_000]
    )
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--query-agents", type=int, default=20)
    ap.add_argument("--count-poll", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=1)
    add_checkout_option(
        ap,
        "also run the phases with a worker from this copy of the repository, after the "
        "current code's (e.g. `git worktree add /tmp/before HEAD~1`): a change side by side",
    )
    add_variant_option(
        ap,
        "also run the phases with a worker whose environment adds these settings (with "
        "a --checkout of the same NAME: from that copy)",
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_exit)  # so the finally blocks stop worker and broker
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    out: dict[str, Any] = {
        "machine": describe(),
        "config": {
            "embedder": "hashing (the pipeline's own cost; the model would set the ingest rate)",
            "agents": AGENTS,
            "worker_env": WORKER_ENV,
            "queries_per_checkpoint": args.queries,
            "query_agents": args.query_agents,
            "k": K,
            "phases": "each publishes the events up to the next checkpoint at once; its rate is "
            "those events over the time until the store holds them all",
        },
        "checkpoints": [],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()

    def save() -> None:
        out["total_s"] = time.perf_counter() - t_all
        (args.out / "growth.json").write_text(json.dumps(out, indent=2) + "\n")
        plot(out, args.out / "growth.png")

    run(args, out, save)
    save()
    print(f"total {out['total_s']:.0f}s")
    return 0 if "error" not in out else 1


if __name__ == "__main__":
    raise SystemExit(main())
