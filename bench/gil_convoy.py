"""A recall's search beside a busy Python thread: the GIL convoy, and the recall-time interval.

A worker answers recalls on its event loop while its stage threads run Python. A search makes
a handful of numpy calls, and each releases the GIL; a busy thread takes it at once and keeps
it until the searching thread has waited a whole switch interval (``sys.setswitchinterval``).
So each release costs the search up to one interval: the convoy effect. This measures, in one
process and one run, the hot index's search (the recall bench's memories: N over 100 agents,
hashing vectors, 10 agents queried) alone and beside one thread that

- runs a pure-Python loop,
- parses memory events with pydantic (what the stages do most), or
- pickles a big list (one long C call that never releases the GIL: the analytics checkpoint's
  kind of work, which no interval can interrupt),

with the process's interval at 5 ms (Python's default), 1 ms (the worker's default) and
0.2 ms, and with the worker's interval kept at 1 ms but set to ``--recall-intervals`` during
each search only (``pipelines.runtime.RecallSwitching``, what a worker does while it answers
a recall: ``ARGOS_RECALL_SWITCH_INTERVAL_MS``). Between searches the loop sleeps 2 ms.

    python -m bench.gil_convoy [--memories 100000] [--queries 600]

Writes ``bench/results/gil_convoy.json`` and ``bench/results/gil_convoy.png``.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.machine import describe, machine_title, write_results

RESULTS = Path(__file__).parent / "results"
Busy = Callable[[threading.Event], None]


def busy_python(stop: threading.Event) -> None:
    while not stop.is_set():
        s = 0
        for i in range(10_000):
            s += i * i


def busy_pydantic(payload: list[str]) -> Busy:
    from schemas.memory_event import MemoryEvent

    def run(stop: threading.Event) -> None:
        while not stop.is_set():
            for p in payload:
                MemoryEvent.model_validate_json(p)

    return run


def busy_pickle(stop: threading.Event) -> None:
    big = [list(range(50)) for _ in range(20_000)]
    while not stop.is_set():
        pickle.dumps(big)


def ratios(results: dict[str, dict[str, dict[str, float]]], scoped: str | None) -> dict[str, float]:
    """Beside a busy thread over alone (at 1 ms), and 1 ms throughout over 1 ms with the
    ``scoped`` interval while searching (p50 and p99, beside Python and pydantic)."""
    base = results["1 ms"]
    out = {
        "beside_python_over_alone_p50_at_1ms": base["pure_python"]["p50_ms"]
        / base["alone"]["p50_ms"]
    }
    if scoped is not None:
        for busy in ("pure_python", "pydantic"):
            for q in ("p50", "p99"):
                out[f"recall_interval_gain_{q}_beside_{busy}"] = (
                    base[busy][f"{q}_ms"] / results[scoped][busy][f"{q}_ms"]
                )
    return out


def main(argv: list[str] | None = None) -> int:
    from bench.recall_http import NS, make_events, make_queries, pct, stored_rows
    from pipelines.embed import HashingEmbedder
    from pipelines.hot_index import HotIndex, RecallFilters
    from pipelines.runtime import RecallSwitching
    from pipelines.scoring import ScoreWeights

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memories", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=600)
    ap.add_argument("--intervals-ms", type=float, nargs="*", default=[5.0, 1.0, 0.2])
    ap.add_argument("--recall-intervals-ms", type=float, nargs="*", default=[0.1, 0.05])
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    emb = HashingEmbedder()
    events = make_events(args.memories, "100_agents", 1)
    index = HotIndex(emb.dim, weights=ScoreWeights())
    rows = list(stored_rows(events, emb))
    for lo in range(0, len(rows), 10_000):
        index.upsert(rows[lo : lo + 10_000])
    del rows
    agents = sorted({e.agent_id for e in events})[:10]
    queries = make_queries(events, agents, args.queries, 8, "convoy")
    vecs = [emb.embed_many([t])[0] for _, t in queries]
    busies: dict[str, Busy | None] = {
        "alone": None,
        "pure_python": busy_python,
        "pydantic": busy_pydantic([e.model_dump_json() for e in events[:200]]),
        "pickle": busy_pickle,
    }
    before = sys.getswitchinterval()

    def run(busy: Busy | None, interval_s: float, recall_s: float) -> dict[str, float]:
        sys.setswitchinterval(interval_s)
        switching = RecallSwitching(interval_s, recall_s)
        stop = threading.Event()
        th = threading.Thread(target=busy, args=(stop,)) if busy else None
        if th:
            th.start()
            time.sleep(0.2)
        lat = []
        try:
            for (agent, _), v in zip(queries, vecs, strict=True):
                t0 = time.perf_counter()
                with switching:
                    index.search(v, RecallFilters(NS, agent), k=10)
                lat.append(time.perf_counter() - t0)
                time.sleep(0.002)
        finally:
            stop.set()
            if th:
                th.join()
            sys.setswitchinterval(before)
        return pct(lat[20:])

    settings = [(f"{ms:g} ms", ms / 1000.0, 0.0) for ms in args.intervals_ms]
    settings += [
        (f"1 ms, {ms:g} ms while searching", 0.001, ms / 1000.0) for ms in args.recall_intervals_ms
    ]
    results: dict[str, dict[str, dict[str, float]]] = {}
    for label, interval_s, recall_s in settings:
        results[label] = {}
        for name, busy in busies.items():
            r = results[label][name] = run(busy, interval_s, recall_s)
            print(
                f"{label:32s} {name:12s} p50 {r['p50_ms']:7.2f}  p95 {r['p95_ms']:7.2f}  "
                f"p99 {r['p99_ms']:7.2f}  max {r['max_ms']:7.2f} ms",
                flush=True,
            )
    out: dict[str, Any] = {
        "machine": describe(),
        "memories": args.memories,
        "rows_per_agent": args.memories // 100,
        "queries": args.queries,
        "results": results,
        "ratios": ratios(
            results, settings[len(args.intervals_ms)][0] if args.recall_intervals_ms else None
        ),
    }
    print({k: round(v, 2) for k, v in out["ratios"].items()})
    write_results(out, args.out, "gil_convoy", plot)
    return 0


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = out["results"]
    labels = list(res)
    busies = list(next(iter(res.values())))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(busies)
    for ax, q in zip(axes, ("p50_ms", "p99_ms"), strict=True):
        for j, b in enumerate(busies):
            ax.bar(
                [i + j * width for i in range(len(labels))],
                [res[lab][b][q] for lab in labels],
                width,
                label=b,
            )
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))])
        ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel(f"search {q.replace('_ms', '')} (ms, log)")
        ax.set_title(f"search {q.replace('_ms', '')} by switch interval", fontsize=9)
    axes[0].legend(title="beside", fontsize=7)
    fig.suptitle(
        f"{out['rows_per_agent']:,}-row search beside a busy thread; " + machine_title(out),
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
