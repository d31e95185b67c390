"""Publish → recallable latency at half the pipeline's maximum rate (goal: p99 ≤ 1 s).

For each embedder (ONNX int8, the model; hashing, the pipeline's own cost), in one run on one
local broker, with a fresh worker each:

1. **maximum rate**: ``--burst`` simulated events published at once, timed until the store stage
   has stored them all (as ``bench/throughput.py``) and until every stage is done with them (the
   memory stage, the slowest, has seen them all): the pipeline sustains only the second; above
   it the memory stage's backlog grows without bound and takes the CPU from the others;
2. **half that rate, steady** (of every stage's maximum; ``--of store`` for the store's): for
   ``--seconds``, simulated agents publish at 50% of it (paced by a clock, not by acks), and
   every ``--probe-every`` seconds a probe agent publishes one more memory with a unique tag. A
   poller asks ``POST /recall`` for each open probe (its text, its tag as the filter, k=1; the
   oldest open probe only) every ``--poll`` seconds until it is returned: the probe's latency is
   that moment minus the moment before ``publish`` was called (the publisher's own batching,
   linger 20 ms, included). The worker's ``publish_to_stored`` window (from ``/stats``) is kept
   beside it. A probe not recallable within ``--give-up`` seconds counts as a miss.

Default settings otherwise (rate limits, batches); tracing export off, as in the throughput bench.

    python -m bench.freshness [--burst 3000] [--seconds 90] [--backends onnx,hashing]
        [--variant take100ms:ARGOS_TAKE_WITHIN=0.1 ...] [--checkout before=PATH] [--rounds 2]

With ``--variant``, each backend also runs with a worker whose environment adds those settings
(side by side on the same broker, in turn with the default worker, ``--rounds`` times);
``--checkout NAME=PATH`` likewise with a worker run from another copy of the repository.
``--rate R`` runs every steady phase at R events/s instead of half the run's own maximum (the
JSON keeps the key ``half_rate``; its ``target_rate`` is R): settings compared at the same load.

Writes ``bench/results/freshness.json`` and ``bench/results/freshness.png``.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.machine import describe, machine_title
from bench.recall_http import _raise_exit, add_checkout_option, add_variant_option, pct, words
from infra.local_kafka import LocalKafka
from pipelines.client import MemoryClient, RecallError
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher
from pipelines.simulation import Population
from schemas import MemoryEvent

RESULTS = Path(__file__).parent / "results"
NS = "fresh"
PROBE = "probe-agent"
ENV = {"ARGOS_OTEL_EXPORTER": "none"}


def _wait_stored(client: MemoryClient, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = client.stats()
        if int(s["stored"]) >= n + int(s["derived"]) + int(s["rederived"]):  # as throughput.py
            return
        time.sleep(0.05)
    raise TimeoutError(f"the store stage did not reach {n} events in {timeout:.0f} s")


def max_rate(
    client: MemoryClient, pub: MemoryPublisher, events: list[MemoryEvent]
) -> tuple[float, float]:
    """The burst's rate to the store (every event stored) and through every stage (the memory
    stage, the slowest, has seen every event as well): what the pipeline sustains is the
    second; above it the memory stage's backlog grows without bound."""
    t0 = time.perf_counter()
    pub.publish_many(events)
    pub.flush()
    _wait_stored(client, len(events), timeout=600)
    rate = len(events) / (time.perf_counter() - t0)
    # the steady phase starts once every stage is done with the burst (the memory stage may
    # still be on it after the store stage: its backlog would load the steady phase)
    client.wait_counter("clustered", len(events), timeout=600, poll=0.05)
    return rate, len(events) / (time.perf_counter() - t0)


class Prober:
    """Publishes probes and polls recall for each until it is returned."""

    def __init__(self, client: MemoryClient, pub: MemoryPublisher, poll: float, give_up: float):
        self.client, self.pub, self.poll, self.give_up = client, pub, poll, give_up
        self.open: dict[str, tuple[float, str]] = {}  # tag -> (publish time, text)
        self.latencies: list[float] = []
        self.series: list[tuple[float, float]] = []  # (publish time, latency) of each probe
        self.missed: list[str] = []
        self.recalls = 0
        self.lock = threading.Lock()
        self.rng = random.Random(11)

    def publish(self, i: int, template: MemoryEvent) -> None:
        tag = f"p{i}-{uuid.uuid4().hex[:6]}"
        # unique words: a probe must never be folded into an earlier one as a near-duplicate
        text = f"{words(self.rng, 6)} by the {words(self.rng, 2)} gate ({tag})"
        ev = template.model_copy(
            update={
                "memory_id": f"probe-{tag}",
                "agent_id": PROBE,
                "content": text,
                "tags": ["probe", tag],
            }
        )
        t0 = time.perf_counter()
        self.pub.publish(ev)
        with self.lock:
            self.open[tag] = (t0, text)

    def run(self, stop: threading.Event) -> None:
        """One recall per ``poll`` seconds, for the oldest open probe: the probe agent's events
        are handled in order (one partition), so a later probe is never recallable first, and
        the poller's own recalls (each a request, a search and, once it hits, an access event)
        stay a light, bounded load on the worker."""
        while not stop.is_set() or self.open:
            with self.lock:
                oldest = next(iter(self.open.items()), None)
            if oldest is None:
                time.sleep(self.poll)
                continue
            tag, (t0, text) = oldest
            try:
                resp = self.client.recall(NS, PROBE, text, k=1, tags=[tag])
            except RecallError as exc:
                if exc.status != 429:  # over the recall rate limit: wait, then ask again
                    raise
                time.sleep(self.poll)
                continue
            self.recalls += 1
            now = time.perf_counter()
            if resp.hits or now - t0 > self.give_up:
                if resp.hits:
                    self.latencies.append(now - t0)
                    self.series.append((t0, now - t0))
                else:
                    self.missed.append(tag)
                with self.lock:
                    del self.open[tag]
                continue  # the next probe may be recallable already
            time.sleep(self.poll)


def steady(
    client: MemoryClient,
    pub: MemoryPublisher,
    pop: Population,
    rate: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    prober = Prober(client, pub, args.poll, args.give_up)
    stop = threading.Event()
    poller = threading.Thread(target=prober.run, args=(stop,), daemon=True)
    poller.start()
    sent, probes, late = 0, 0, 0.0
    t_start = time.perf_counter()
    next_probe = t_start + 1.0
    last: MemoryEvent | None = None
    while (now := time.perf_counter()) - t_start < args.seconds:
        due = int((now - t_start) * rate)
        if sent < due:
            for ev in pop.events(due - sent):
                pub.publish(ev)
                last = ev
            sent = due
        if now >= next_probe and last is not None:
            probe_time = last.event_time + timedelta(seconds=1)
            prober.publish(probes, last.model_copy(update={"event_time": probe_time}))
            probes += 1
            next_probe += args.probe_every
        late = max(late, now - t_start - sent / rate)
        time.sleep(0.002)
    elapsed = time.perf_counter() - t_start
    mid = elapsed / 2  # a growing backlog shows as a second half slower than the first
    pub.flush()
    stop.set()
    poller.join(timeout=args.give_up + 10)
    st = client.stats()
    return {
        "target_rate": rate,
        "published": sent,
        "published_rate": sent / elapsed,
        "probes": probes,
        "recallable": pct(prober.latencies),
        "recallable_first_half": pct([lat for t, lat in prober.series if t - t_start < mid]),
        "recallable_second_half": pct([lat for t, lat in prober.series if t - t_start >= mid]),
        "probe_series_s": [(round(t - t_start, 3), round(lat, 4)) for t, lat in prober.series],
        "missed": len(prober.missed),
        "poll_recalls": prober.recalls,
        "worker_publish_to_stored": st.get("latency", {}).get("publish_to_stored"),
        "dead_lettered": int(st["dead_lettered"]),
    }


def run_backend(
    backend: str,
    bootstrap: str,
    tmp: Path,
    args: argparse.Namespace,
    variant: tuple[str, dict[str, str]] = ("default", {}),
    checkout: Path | None = None,
) -> dict:
    prefix = f"fresh-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(
        bootstrap,
        tmp / prefix,
        topic_prefix=prefix,
        app_id=f"{prefix}-app",
        embedder=backend,
        extra_env=ENV | variant[1],
        checkout=checkout,
    )
    out: dict[str, Any] = {"backend": backend, "variant": variant[0], "variant_env": variant[1]}
    if checkout is not None:
        out["checkout"] = str(checkout)
    backend = f"{backend}@{variant[0]}"
    client = worker.start()
    try:
        pop = Population(args.agents, seed=args.seed, namespace=NS)
        with MemoryPublisher(bootstrap, f"{prefix}.memory.events") as pub:
            to_store, all_stages = max_rate(client, pub, list(pop.events(args.burst)))
            out["max_events_per_s"], out["max_all_stages_events_per_s"] = to_store, all_stages
            print(
                f"[{backend}] maximum {to_store:.0f} events/s to the store, "
                f"{all_stages:.0f} through every stage",
                flush=True,
            )
            rate = args.rate or (all_stages if args.of == "all_stages" else to_store) / 2
            out["half_rate"] = steady(client, pub, pop, rate, args)
        r = out["half_rate"]["recallable"]
        if r.get("n"):
            print(
                f"[{backend}] publish -> recallable at {rate:.0f}/s: "
                f"p50 {r['p50_ms']:.0f} p95 {r['p95_ms']:.0f} p99 {r['p99_ms']:.0f} ms "
                f"({r['n']} probes, {out['half_rate']['missed']} missed)",
                flush=True,
            )
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        out["worker_log_tail"] = worker.log_tail(15)
        print(f"[{backend}] FAILED: {out['error'][:300]}", flush=True)
    finally:
        client.close()
        worker.stop()
    return out


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in out["runs"] if r.get("half_rate", {}).get("recallable", {}).get("n")]
    if not runs:
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    keys = ("p50_ms", "p95_ms", "p99_ms", "max_ms")
    width = 0.8 / len(runs)
    for i, r in enumerate(runs):
        vals = [r["half_rate"]["recallable"][k] for k in keys]
        label = f"{r['backend']}@{r.get('variant', 'default')} at "
        label += f"{r['half_rate']['target_rate']:.0f} events/s"
        ax.bar([j + i * width for j in range(len(keys))], vals, width, label=label)
    ax.axhline(1000, color="grey", lw=0.8, ls="--", label="goal p99 ≤ 1 s")
    ax.set_xticks([j + width * (len(runs) - 1) / 2 for j in range(len(keys))], keys)
    ax.set_ylabel("publish → recallable, ms")
    fixed = out.get("config", {}).get("rate")
    when = f"At a fixed {fixed:.0f} events/s" if fixed else "At half the maximum rate"
    ax.set_title(f"{when} ({machine_title(out)})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="onnx,hashing")
    ap.add_argument("--agents", type=int, default=20)
    ap.add_argument("--burst", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=90.0)
    ap.add_argument("--probe-every", type=float, default=0.5)
    ap.add_argument("--poll", type=float, default=0.05)
    ap.add_argument("--give-up", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=5)
    add_variant_option(
        ap,
        "also run each backend with a worker whose environment adds these settings, on the "
        "same broker, alternating with the default (e.g. 'take100ms:ARGOS_TAKE_WITHIN=0.1')",
    )
    add_checkout_option(
        ap, "also run each backend with a worker from this copy of the repository (as a variant)"
    )
    ap.add_argument(
        "--of",
        choices=("all_stages", "store"),
        default="all_stages",
        help="the maximum whose half is the steady rate: through every stage (what the "
        "pipeline sustains; default) or to the store only (the runs before 2026-11-27)",
    )
    ap.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="steady events/s for every run (default 0: half of each run's own maximum); "
        "a fixed rate compares settings at the same load",
    )
    ap.add_argument("--rounds", type=int, default=1, help="each backend x variant this often")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_exit)  # so the finally blocks stop worker and broker
    out: dict[str, Any] = {
        "machine": describe(),
        "config": {k: v for k, v in vars(args).items() if k != "out"} | {"worker_env": ENV},
        "runs": [],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, LocalKafka(Path(tmp) / "kafka") as kafka:
        variants: list[tuple[str, dict[str, str], Path | None]] = [
            ("default", {}, None),
            *((name, env, None) for name, env in args.variant),
            *((name, {}, path) for name, path in args.checkout),
        ]
        for rnd in range(args.rounds):
            for backend in args.backends.split(","):
                for name, env, path in variants:
                    run = run_backend(
                        backend, kafka.bootstrap_servers, Path(tmp), args, (name, env), path
                    )
                    out["runs"].append(run | {"round": rnd})
                    out["total_s"] = time.perf_counter() - t0
                    (args.out / "freshness.json").write_text(
                        json.dumps(out, indent=2, default=str) + "\n"
                    )
    plot(out, args.out / "freshness.png")
    return 0 if all("error" not in r for r in out["runs"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
