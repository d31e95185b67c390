"""Recall latency and quality: the hot index vs numpy brute force vs Milvus Lite, side by side.

For each size N (memories held by one worker), in one process and one run:

- ``brute_force``: the floor -- one float32 matrix of all N rows, ``X @ q`` and a boolean agent
  mask, then top-k by cosine (no scoring, no other filters);
- ``hot_one_agent``: ``HotIndex`` with all N memories in one agent's partition (the worst case),
  full scoring (relevance + recency + importance) and the lifecycle state filter;
- ``hot_100_agents``: the same N spread over 100 agents (a recall scans one agent's rows);
- ``hot_filtered``: one agent, with a type and an event-time filter (~1/6 of the rows pass);
- ``hot_one_agent_lexical`` / ``hot_100_agents_lexical``: the two layouts with the query's words
  as well (the lexical part, ``pipelines.lexical``: BM25 over the agent's rows, weight 0.4);
  memory texts are the simulated agents' (a small vocabulary shared by many memories: the
  postings are long, the worst case for it), each query's words those of the memory it is near;
- ``milvus_lite``: ``MilvusStore`` alone in a temp dir (insert, flush, AUTOINDEX built), queried
  with the agent filter, for N up to ``--milvus-max`` (both layouts);
- ``faiss_hnsw``: an ANN candidate (faiss HNSW, M=32, efSearch=64, cosine only, no filters) on
  the one-agent layout, for N up to ``--ann-max`` (its build time grows fast on 2 cores).

Queries are timed interleaved (query i on every method, then query i+1), so a noisy neighbour
hits all methods alike. Milvus Lite is timed in a second pass, interleaved with the brute-force
floor again (its server process keeps working after inserts and would slow the first pass).
recall@10 compares each method's ids with an exact exhaustive ranking computed separately
(float32 cosine, float64 scores): the hot index against the exact *scored* ranking with the same
filters, and against exact cosine with relevance-only weights; Milvus and HNSW against exact
cosine. Vectors are synthetic unit vectors around 1,000 topic centres (384-d).

    python bench/recall.py [--sizes 10000 100000 1000000] [--queries 300]

Writes ``bench/results/recall.json`` and ``bench/results/recall.png``.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.hot_index import HotIndex, RecallFilters
from pipelines.lexical import terms
from pipelines.lifecycle import LifecycleParams
from pipelines.scoring import ScoreWeights
from pipelines.simulation import Population
from pipelines.store import MilvusStore, StoredMemory

try:
    from bench.machine import describe
except ImportError:  # run as ``python bench/recall.py``: bench/ itself is on sys.path
    from machine import describe  # type: ignore[no-redef]

RESULTS = Path(__file__).parent / "results"
DIM = 384
NS = "bench"
T0 = 1_767_225_600.0  # "now" of the simulation: every memory is from the 12 hours before
SPAN = 12 * 3600.0
TYPES = ("episodic", "semantic", "procedural")
AGENTS = 100
CHUNK = 100_000
ONE = "agent-000"
GOALS = {"p99_ms_at_100k": 20.0, "hot_over_brute_p99": 3.0, "recall_at_10": 0.98}
_EXTRA: dict[str, Any] = {}  # shared (read-only) ``extra`` of the synthetic rows


class Data:
    """N synthetic memories: unit vectors around topic centres plus metadata columns."""

    def __init__(self, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        centres = rng.standard_normal((1000, DIM), dtype=np.float32)
        self.x = np.empty((n, DIM), dtype=np.float32)
        for lo in range(0, n, CHUNK):
            hi = min(n, lo + CHUNK)
            v = centres[rng.integers(0, 1000, hi - lo)]
            v += 1.2 * rng.standard_normal((hi - lo, DIM), dtype=np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            self.x[lo:hi] = v
        self.n = n
        self.type = rng.integers(0, 3, n).astype(np.int8)
        self.importance = rng.random(n)
        self.event_ts = T0 - rng.random(n) * SPAN
        p = LifecycleParams()
        factor = np.array(
            [p.type_factor_episodic, p.type_factor_semantic, p.type_factor_procedural]
        )
        self.stability = (
            p.base_stability * factor[self.type] * (1.0 + p.importance_weight * self.importance)
        )
        # texts: the simulated agents' (pipelines.simulation), so the lexical part of a recall
        # meets a realistic vocabulary (a few hundred words, the same ones in many memories)
        self.pool = [e.content for e in Population(20, seed=seed).events(4000)]
        self.text_of = rng.integers(0, len(self.pool), n)
        self.rng = rng

    def rows(self, agent_of: Callable[[int], str], lo: int, hi: int) -> list[StoredMemory]:
        return [
            StoredMemory(
                memory_id=f"m{i}",
                agent_id=agent_of(i),
                namespace=NS,
                type=TYPES[self.type[i]],
                content=self.pool[self.text_of[i]],
                importance=float(self.importance[i]),
                event_ts=float(self.event_ts[i]),
                event_time="",
                vector=self.x[i],
                extra=_EXTRA,
            )
            for i in range(lo, hi)
        ]

    def chunks(self, agent_of: Callable[[int], str]) -> Iterator[list[StoredMemory]]:
        for lo in range(0, self.n, CHUNK):
            yield self.rows(agent_of, lo, min(self.n, lo + CHUNK))


def one_agent(_: int) -> str:
    return ONE


def hundred_agents(i: int) -> str:
    return f"agent-{i % AGENTS:03d}"


def exact(
    d: Data, q: np.ndarray, rows: np.ndarray | slice, w: ScoreWeights, k: int, now: float
) -> list[int]:
    """Exhaustive exact ranking by total score (the reference, independent of ``HotIndex``)."""
    cos = (d.x[rows] @ q).astype(np.float64)
    rec = np.exp(-np.maximum(now - d.event_ts[rows], 0.0) / d.stability[rows])
    total = w.relevance * cos + w.recency * rec + w.importance * d.importance[rows]
    total[rec <= LifecycleParams().decay_threshold] = -np.inf  # all active here
    order = np.argsort(-total, kind="stable")[:k]
    return np.arange(d.n)[rows][order].tolist()


def pct(samples: list[float]) -> dict[str, float]:
    a = np.array(samples) * 1000.0
    return {
        "p50_ms": float(np.percentile(a, 50)),
        "p95_ms": float(np.percentile(a, 95)),
        "p99_ms": float(np.percentile(a, 99)),
        "mean_ms": float(a.mean()),
        "n": len(samples),
    }


def mem_available_gib() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return math.inf


def ids_of(hits: list[Any]) -> list[int]:
    return [int(h.memory.memory_id[1:]) for h in hits]


def recall_at(got: list[int], want: list[int]) -> float:
    return len(set(got) & set(want)) / max(1, len(want))


def build_milvus(tmp: Path, d: Data, layout: str, agent_of: Callable[[int], str]) -> dict[str, Any]:
    store = MilvusStore(str(tmp / f"milvus-{layout}.db"), f"bench_{layout}", DIM)
    t0 = time.perf_counter()
    for chunk in d.chunks(agent_of):
        for lo in range(0, len(chunk), 5000):
            store.upsert(chunk[lo : lo + 5000])
    t_insert = time.perf_counter() - t0
    store._client.flush(store.collection)  # seal segments: the index is built on them
    for _ in range(600):
        info = store._client.describe_index(store.collection, "vector")
        if info.get("pending_index_rows", 0) == 0 and info.get("indexed_rows", 0) >= d.n:
            break
        time.sleep(0.5)
    return {
        "store": store,
        "insert_s": t_insert,
        "insert_rows_per_s": d.n / t_insert,
        "build_s": time.perf_counter() - t0,
        "index": {k: info.get(k) for k in ("index_type", "indexed_rows", "state")},
    }


def run_size(n: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    k, w = args.k, ScoreWeights()
    cos_only = ScoreWeights(1.0, 0.0, 0.0)
    out: dict[str, Any] = {"n": n, "build_s": {}}
    t = time.perf_counter()
    d = Data(n, args.seed)
    out["build_s"]["data"] = time.perf_counter() - t
    print(f"[{n}] data {out['build_s']['data']:.1f}s", flush=True)

    hot: dict[str, HotIndex] = {}
    for layout, agent_of in (("one_agent", one_agent), ("100_agents", hundred_agents)):
        t = time.perf_counter()
        ix = HotIndex(DIM)
        for chunk in d.chunks(agent_of):
            ix.upsert(chunk)
        hot[layout] = ix
        out["build_s"][f"hot_{layout}"] = time.perf_counter() - t
        out.setdefault("hot_nbytes", {})[layout] = ix.nbytes()
        print(f"[{n}] hot {layout}: {out['build_s'][f'hot_{layout}']:.1f}s", flush=True)
    gc.collect()

    hnsw = None
    if n <= args.ann_max:
        import faiss

        t = time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 64
        hnsw.add(d.x)
        hnsw.hnsw.efSearch = 64
        faiss.omp_set_num_threads(1)  # one query at a time: idle OpenMP threads only spin
        out["build_s"]["faiss_hnsw"] = time.perf_counter() - t
        print(f"[{n}] hnsw {out['build_s']['faiss_hnsw']:.1f}s", flush=True)
    else:
        out["faiss_hnsw"] = {"skipped": f"N={n} > --ann-max {args.ann_max} (build time)"}

    # queries: near a random memory of a random agent (100-agent layout: rows a, a+100, ...)
    rng = np.random.default_rng(args.seed + 1)
    agents = rng.integers(0, AGENTS, args.queries)
    picks = agents + AGENTS * rng.integers(0, max(1, n // AGENTS), args.queries)
    noise = rng.standard_normal((args.queries, DIM), dtype=np.float32) * 0.04
    queries = d.x[np.minimum(picks, n - 1)] + noise
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    agent_codes = (np.arange(n) % AGENTS).astype(np.int16)  # 100-agent layout
    one_codes = np.zeros(n, dtype=np.int16)
    since = T0 - SPAN / 2
    filt = RecallFilters(NS, ONE, types=frozenset({"episodic"}), since_ts=since)

    def brute(q: np.ndarray, codes: np.ndarray, a: int) -> list[int]:
        s = d.x @ q
        s = np.where(codes == a, s, -np.inf)
        top = np.argpartition(-s, k - 1)[:k]
        return top[np.argsort(-s[top])].tolist()

    # each query's words: the text of the memory it was drawn near
    qterms = [terms(d.pool[d.text_of[min(int(p), n - 1)]]) for p in picks]

    Method = Callable[[np.ndarray, int, int], list[int]]

    def measure(methods: dict[str, Method]) -> tuple[dict[str, Any], dict[str, list[list[int]]]]:
        """Every method on query i, then on query i+1, ... (after a short warm-up)."""
        timings: dict[str, list[float]] = {name: [] for name in methods}
        results: dict[str, list[list[int]]] = {name: [] for name in methods}
        for i in range(min(5, args.queries)):
            for fn in methods.values():
                fn(queries[i], int(agents[i]), i)
        for i, (q, a) in enumerate(zip(queries, agents, strict=True)):
            for name, fn in methods.items():
                t0 = time.perf_counter()
                got = fn(q, int(a), i)
                timings[name].append(time.perf_counter() - t0)
                results[name].append(got)
        return {name: pct(v) for name, v in timings.items()}, results

    # pass 1: everything in this process (Milvus Lite's server process is not running yet)
    methods: dict[str, Method] = {
        "brute_force": lambda q, a, i: brute(q, one_codes, 0),
        "brute_force_100_agents": lambda q, a, i: brute(q, agent_codes, a),
        "hot_one_agent": lambda q, a, i: ids_of(
            hot["one_agent"].search(q, RecallFilters(NS, ONE), k, T0, w)
        ),
        "hot_100_agents": lambda q, a, i: ids_of(
            hot["100_agents"].search(q, RecallFilters(NS, hundred_agents(a)), k, T0, w)
        ),
        "hot_filtered": lambda q, a, i: ids_of(hot["one_agent"].search(q, filt, k, T0, w)),
        # the same searches with the query's words (the lexical part, BM25 over the agent's rows)
        "hot_one_agent_lexical": lambda q, a, i: ids_of(
            hot["one_agent"].search(q, RecallFilters(NS, ONE), k, T0, w, query_terms=qterms[i])
        ),
        "hot_100_agents_lexical": lambda q, a, i: ids_of(
            hot["100_agents"].search(
                q, RecallFilters(NS, hundred_agents(a)), k, T0, w, query_terms=qterms[i]
            )
        ),
    }
    if hnsw is not None:
        methods["faiss_hnsw"] = lambda q, a, i: hnsw.search(q[None, :], k)[1][0].tolist()
    t = time.perf_counter()
    out["latency"], results = measure(methods)
    out["query_s"] = time.perf_counter() - t
    print(f"[{n}] queries {out['query_s']:.1f}s", flush=True)

    # pass 2: Milvus Lite alone, interleaved with the brute-force floor again (its server
    # process keeps working in the background after inserts, which slows everything near it)
    milvus: dict[str, dict[str, Any]] = {}
    if n <= args.milvus_max:
        for layout, agent_of in (("one_agent", one_agent), ("100_agents", hundred_agents)):
            milvus[layout] = build_milvus(tmp / str(n), d, layout, agent_of)
            m = milvus[layout]
            print(f"[{n}] milvus {layout}: insert {m['insert_s']:.1f}s", flush=True)
            out["build_s"][f"milvus_{layout}"] = m["build_s"]
        time.sleep(args.settle)
        m_methods: dict[str, Method] = {"brute_force": methods["brute_force"]}
        for layout, m in milvus.items():
            store = m["store"]

            def search_milvus(
                q: np.ndarray, a: int, i: int, store: MilvusStore = store, lay: str = layout
            ) -> list[int]:
                agent = ONE if lay == "one_agent" else hundred_agents(a)
                hits = store.search(q, namespace=NS, agent_id=agent, k=k)
                return [int(h.memory.memory_id[1:]) for h in hits]

            m_methods[f"milvus_lite_{layout}"] = search_milvus
        lat2, res2 = measure(m_methods)
        out["latency_milvus_pass"] = lat2
        for name in m_methods:
            if name != "brute_force":
                out["latency"][name] = lat2[name]
                results[name] = res2[name]
                out.setdefault("ratios_milvus_pass", {})[f"{name}_p50_over_brute_force_p50"] = (
                    lat2[name]["p50_ms"] / lat2["brute_force"]["p50_ms"]
                )
        print(f"[{n}] milvus queries done", flush=True)
    else:
        out["milvus_lite"] = {
            "skipped": f"N={n} > --milvus-max {args.milvus_max}: Milvus Lite inserts about "
            f"{args.milvus_rate:.0f} rows/s here (measured at the smaller sizes), so "
            f"~{2 * n / args.milvus_rate / 60:.0f} min for both layouts, over the run's budget"
        }

    # recall@10 against exact exhaustive rankings (a subset of the queries at large N)
    nq = min(args.queries, args.recall_queries)
    every = slice(None)
    rec: dict[str, list[float]] = {}
    filt_rows = np.flatnonzero((d.type == 0) & (d.event_ts >= since))
    for i in range(nq):
        q, a = queries[i], int(agents[i])
        mine = slice(a, n, AGENTS)
        exact_one = exact(d, q, every, w, k, T0)
        exact_mine = exact(d, q, mine, w, k, T0)
        cos_one = exact(d, q, every, cos_only, k, T0)
        cos_mine = exact(d, q, mine, cos_only, k, T0)
        got = {name: results[name][i] for name in results}
        rec.setdefault("hot_one_agent_vs_exact", []).append(
            recall_at(got["hot_one_agent"], exact_one)
        )
        rec.setdefault("hot_100_agents_vs_exact", []).append(
            recall_at(got["hot_100_agents"], exact_mine)
        )
        rec.setdefault("hot_filtered_vs_exact", []).append(
            recall_at(got["hot_filtered"], exact(d, q, filt_rows, w, k, T0))
        )
        cos_hot = ids_of(hot["one_agent"].search(q, RecallFilters(NS, ONE), k, T0, cos_only))
        rec.setdefault("hot_cosine_only_vs_exact_cosine", []).append(recall_at(cos_hot, cos_one))
        rec.setdefault("brute_force_vs_exact_cosine", []).append(
            recall_at(got["brute_force"], cos_one)
        )
        for layout in milvus:
            want = cos_one if layout == "one_agent" else cos_mine
            rec.setdefault(f"milvus_lite_{layout}_vs_exact_cosine", []).append(
                recall_at(got[f"milvus_lite_{layout}"], want)
            )
        if hnsw is not None:
            rec.setdefault("faiss_hnsw_vs_exact_cosine", []).append(
                recall_at(got["faiss_hnsw"], cos_one)
            )
    out["recall_at_10"] = {name: float(np.mean(v)) for name, v in rec.items()}
    out["recall_queries"] = nq

    lat = out["latency"]
    same_pass = [name for name in methods if name != "brute_force"]
    out["ratios"] = {
        f"{name}_p99_over_brute_force_p99": lat[name]["p99_ms"] / lat["brute_force"]["p99_ms"]
        for name in same_pass
    } | {
        f"{name}_p50_over_brute_force_p50": lat[name]["p50_ms"] / lat["brute_force"]["p50_ms"]
        for name in same_pass
    }
    for layout in ("one_agent", "100_agents"):  # what the query's words cost, same pass
        plain, lexical = lat[f"hot_{layout}"], lat[f"hot_{layout}_lexical"]
        for key in ("p50_ms", "p99_ms"):
            out["ratios"][f"hot_{layout}_lexical_{key[:3]}_over_plain"] = lexical[key] / plain[key]
    for layout, m in milvus.items():
        out[f"milvus_lite_{layout}"] = {k2: v for k2, v in m.items() if k2 != "store"}
        args.milvus_rate = m["insert_rows_per_s"]
        m["store"].close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--recall-queries", type=int, default=100, help="queries checked for recall")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--milvus-max", type=int, default=100_000, help="largest N for Milvus Lite")
    ap.add_argument("--ann-max", type=int, default=100_000, help="largest N for faiss HNSW")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--settle", type=float, default=5.0, help="s to wait after Milvus inserts")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    args.milvus_rate = 4500.0  # rows/s until measured
    try:
        from threadpoolctl import threadpool_info

        pools = [
            {k: p.get(k) for k in ("internal_api", "num_threads", "version")}
            for p in threadpool_info()
        ]
    except ImportError:  # pragma: no cover - optional
        pools = []
    out: dict[str, Any] = {
        "machine": describe(),
        "thread_pools": pools,
        "config": {
            "dim": DIM,
            "k": args.k,
            "queries": args.queries,
            "recall_queries": args.recall_queries,
            "weights": ScoreWeights().__dict__,
            "agents_in_spread_layout": AGENTS,
            "vectors": "synthetic unit vectors around 1000 topic centres; queries near a memory",
            "hot_filtered": "type=episodic and event time in the last 6 of 12 hours (~1/6)",
            "texts": "pipelines.simulation texts (4000 drawn from 20 agents), cycled at random",
            "faiss_hnsw": "IndexHNSWFlat M=32 efConstruction=64 efSearch=64, inner product",
        },
        "goals": GOALS,
        "sizes": {},
    }
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            need_gib = n * DIM * 4 * 5 / 2**30 + n * 1500 / 2**30
            if need_gib > 0.8 * mem_available_gib():
                out["sizes"][str(n)] = {"skipped": f"needs ~{need_gib:.1f} GiB of memory"}
                continue
            out["sizes"][str(n)] = run_size(n, args, Path(tmp))
            gc.collect()
    out["total_s"] = time.perf_counter() - t_all
    out["verdict"] = verdict(out)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "recall.json").write_text(json.dumps(out, indent=2) + "\n")
    plot(out, args.out / "recall.png")
    summary(out)
    return 0


def verdict(out: dict[str, Any]) -> dict[str, Any]:
    s = out["sizes"].get("100000")
    if not s or "latency" not in s:
        return {"note": "100k not measured"}
    lat, rec = s["latency"], s["recall_at_10"]
    hot_p99 = max(lat["hot_one_agent"]["p99_ms"], lat["hot_100_agents"]["p99_ms"])
    ratio = s["ratios"]["hot_one_agent_p99_over_brute_force_p99"]
    worst_recall = min(v for k, v in rec.items() if k.startswith("hot_"))
    choice = "numpy exact search per agent partition (HotIndex)"
    if "faiss_hnsw" in lat:
        build = s["build_s"]["faiss_hnsw"]
        choice += (
            f"; faiss HNSW answered in {lat['faiss_hnsw']['p50_ms']:.2f} ms p50 at 100k "
            f"(one agent) but took {build:.0f} s to build ({100_000 / build:.0f} rows/s), ranks "
            "by cosine only (no recency/importance, filters after the fact, so not exact), and "
            "cannot delete rows; the exact scan already meets the ratio goal"
        )
    if "milvus_lite_100_agents" in lat:
        choice += (
            f"; Milvus Lite alone: {lat['milvus_lite_100_agents']['p50_ms']:.0f} ms p50 and "
            f"recall@10 {rec.get('milvus_lite_100_agents_vs_exact_cosine', float('nan')):.2f} "
            "with the agent filter (100 agents)"
        )
    return {
        "choice": choice,
        "hot_p99_ms_at_100k": hot_p99,
        "p99_under_20ms": hot_p99 < GOALS["p99_ms_at_100k"],
        "hot_one_agent_p99_over_brute_p99_at_100k": ratio,
        "within_3x_brute_force": ratio <= GOALS["hot_over_brute_p99"],
        "hot_recall_at_10_min": worst_recall,
        "recall_at_10_ok": worst_recall >= GOALS["recall_at_10"],
    }


def summary(out: dict[str, Any]) -> None:
    for n, s in out["sizes"].items():
        if "latency" not in s:
            print(f"N={n}: {s.get('skipped')}")
            continue
        print(f"N={n}")
        for name, v in s["latency"].items():
            print(
                f"  {name:26s} p50 {v['p50_ms']:8.2f}  p95 {v['p95_ms']:8.2f}  "
                f"p99 {v['p99_ms']:8.2f} ms"
            )
        for name, v in s["recall_at_10"].items():
            print(f"  recall@10 {name:40s} {v:.4f}")
    print(json.dumps(out["verdict"], indent=1), f"total {out['total_s']:.0f}s")


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = {int(n): s for n, s in out["sizes"].items() if "latency" in s}
    names: list[str] = []
    for s in sizes.values():
        names += [x for x in s["latency"] if x not in names]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    for ax, key in zip(axes, ("p50_ms", "p99_ms"), strict=True):
        for name in names:
            xs = [n for n, s in sizes.items() if name in s["latency"]]
            ys = [sizes[n]["latency"][name][key] for n in xs]
            style = "--" if name.startswith(("brute", "milvus", "faiss")) else "-"
            ax.plot(xs, ys, style, marker="o", label=name)
        ax.axhline(GOALS["p99_ms_at_100k"], color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("memories per worker (N)")
        ax.set_title(key.replace("_ms", "") + " latency (ms), one query, in-process")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ms")
    axes[1].legend(fontsize=7, loc="upper left")
    m = out["machine"]
    v = out.get("verdict", {})
    fig.suptitle(
        f"recall latency: hot index vs numpy brute force vs Milvus Lite -- {m['cores']} cores, "
        f"{m['cpu'][:40]}; goal p99 < 20 ms at 100k (dotted); "
        f"hot recall@10 min {v.get('hot_recall_at_10_min', float('nan')):.3f}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
