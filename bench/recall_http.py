"""Recall latency over HTTP vs in-process, side by side, at 10k and 100k memories per worker.

For each size N and layout, in one run on one local broker:

1. a fresh worker process (own topics, consumer group and Milvus Lite file) with the hashing
   embedder is fed N memories through Kafka (simulated agents' texts, each made unique with a
   few random words and a counter, so none is folded into another as a near-duplicate), and the
   run waits until the store holds all N and the memory stage has seen them all;
2. one recall per queried agent warms the worker's hot index from Milvus Lite
   (``http_first_recall``: the first recall of an agent after a start);
3. the queries are then timed over HTTP, interleaved (query i on every series, then i+1):

   - ``http_uncached``: ``MemoryClient.recall`` (one persistent httpx client), every query text
     new, so neither L1 cache (results, query embeddings) answers;
   - ``server_took_ms``: the worker's own ``took_ms`` of those requests (L1 lookup, embedding,
     hot-index search, response building: no HTTP, no access event);
   - ``inprocess_search_beside_worker``: ``HotIndex.search`` in this process on the same rows
     (built from the same events with the same hashing embedder) for the same query vector,
     right after that HTTP recall, while the worker applies the access event it caused;
   - ``http_cached``: one fixed query of one agent, repeated; every recall reinforces what it
     found (an access event), which changes the agent's index version and so invalidates its
     cached results once the memory stage has applied it, so each request is classified by the
     worker's L1 hit counter: ``http_cached_hits`` are the answers from the result cache;
4. then, once the worker is idle, the in-process series on their own (the baseline of the
   ratios): ``inprocess_search`` and ``inprocess_embed_search`` (query embedding + search);
5. untimed: relevance-only top-10 over HTTP and in-process must be identical.

The difference between HTTP and in-process is the HTTP stack (httpx, aiohttp in Faust), request
validation, the query embedding, response JSON, and the access event each recall publishes and
waits for (acks=all, producer linger 5 ms). Layouts: ``100_agents`` (``--sizes``: N spread over
100 agents, a recall scans N/100 rows) and ``one_agent`` (``--one-agent-sizes``: all N in one
agent; the pipeline cannot hold 10k memories in one agent, see ``skipped`` in the JSON).

    python bench/recall_http.py [--sizes 10000 100000] [--queries 1000]

Writes ``bench/results/recall_http.json`` and ``bench/results/recall_http.png``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import re
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import numpy as np

from infra.local_kafka import LocalKafka
from pipelines.client import MemoryClient
from pipelines.embed import HashingEmbedder
from pipelines.embed_stage import text_of
from pipelines.hot_index import HotIndex, RecallFilters
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher
from pipelines.scoring import ScoreWeights
from pipelines.settings import Settings
from pipelines.simulation import Population
from pipelines.store import StoredMemory
from schemas import EmbeddedMemory, MemoryEvent

try:
    from bench.machine import describe
except ImportError:  # run as ``python bench/recall_http.py``: bench/ itself is on sys.path
    from machine import describe  # type: ignore[no-redef]

RESULTS = Path(__file__).parent / "results"
NS = "rhttp"
AGENTS = 100
ONE = "agent-all"
START = datetime(2026, 1, 1, tzinfo=UTC)
SPAN_S = 2 * 3600.0  # event times of all N memories: inside 2 hours, so none decays in the run
# The memory stage keeps one JSON value per agent (lives, micro-clusters with base64 float32
# sums) and the population stage one per namespace, each rewritten to a Kafka changelog every
# batch. Hashing vectors of unique texts barely resemble each other, so with the default
# thresholds nearly every memory opens its own micro-cluster (~2 KB each) and those values pass
# Kafka's 1 MiB message limit within a few thousand memories (the worker's producer then fails
# with MessageSizeTooLargeError). One cluster per agent and per namespace keeps them small;
# clusters play no part in an unfiltered recall, and consolidation stays off (no derived rows).
WORKER_ENV = {
    "ARGOS_CLUSTER_JOIN": "-1",
    "ARGOS_CLUSTER_SPLIT_RADIUS": "2",
    "ARGOS_CLUSTER_MIN_SPLIT": str(10**9),
    "ARGOS_STABLE_AGE_S": str(10**12),
    "ARGOS_POPULATION_JOIN": "-1",
    # a bulk load: all N published at once (one agent gets thousands per second), not an
    # agent's pace; the ingest limits would dead-letter the excess (RateLimitedError)
    "ARGOS_RATE_INGEST_AGENT": "off",
    "ARGOS_RATE_INGEST_NAMESPACE": "off",
    # the timed series ask one agent back to back: answered from L1 in ~1-2 ms, more than
    # the default 200 recalls per agent per second (a 429 would end the run)
    "ARGOS_RATE_RECALL_AGENT": "off",
    "ARGOS_RATE_RECALL_NAMESPACE": "off",
}
# One agent's batch also keeps its outbox (one cluster change with a 384-d centroid per memory)
# in that value: smaller batches keep it under the limit when every event is the same agent's.
ONE_AGENT_ENV = {"ARGOS_TAKE_MAX": "128"}
ONE_AGENT_MAX = 5_000
ONE_AGENT_WHY = (
    "The memory stage keeps one JSON value per agent: ~65 bytes per memory (its lifecycle "
    "entry) plus ~10 per cluster member, and the last batch's outbox (~2 KB per memory with its "
    "cluster centroid), rewritten to the table's changelog every batch; by that estimate, past "
    "~8-10k memories in one agent (batches of 128) that value passes Kafka's 1 MiB message "
    "limit and the worker's producer fails "
    "(measured: MessageSizeTooLargeError, 1.12 MB, after ~1,300 memories of one agent with the "
    "default 1,024-event batches; README: 'fine for thousands of memories per agent'). "
    "In-process search of one 100k-row agent: bench/results/recall.json (hot_one_agent)"
)
SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "pe", "shu", "dra", "gol")
K = 10


# -- data ---------------------------------------------------------------------------------------


def words(rng: random.Random, n: int) -> str:
    return " ".join(
        "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))) for _ in range(n)
    )


def make_events(n: int, layout: str, seed: int) -> list[MemoryEvent]:
    """N simulated memories with unique texts, their event times spread over ``SPAN_S``."""
    rng = random.Random(seed)
    out = []
    for i, ev in enumerate(Population(AGENTS, seed=seed, namespace=NS).events(n)):
        update: dict[str, Any] = {
            "memory_id": f"m{i:06d}",  # short: every id is kept in the agent's table value
            "content": f"{ev.content}, {words(rng, 4)} n{i}",
            "event_time": START + timedelta(seconds=i * SPAN_S / n),
        }
        if layout == "one_agent":
            update["agent_id"] = ONE
        out.append(ev.model_copy(update=update))
    return out


def stored_rows(events: list[MemoryEvent], embedder: HashingEmbedder) -> Iterator[StoredMemory]:
    """The rows the worker's store stage makes of these events (same embedder, same fields)."""
    chunk = 10_000
    for lo in range(0, len(events), chunk):
        part = events[lo : lo + chunk]
        vecs = embedder.embed_many([text_of(e) for e in part])
        for e, v in zip(part, vecs, strict=True):
            yield StoredMemory.from_embedded(EmbeddedMemory.build(e, v, embedder.name, 0.0))


def make_queries(
    events: list[MemoryEvent], agents: list[str], n: int, seed: int, tag: str
) -> list[tuple[str, str]]:
    """``n`` (agent, text) pairs of these agents: a memory's text without its unique words, plus
    a new word (so no query repeats and no L1 entry answers)."""
    rng = random.Random(seed)
    wanted = set(agents)
    pool = [e for e in events if e.agent_id in wanted]
    out = []
    for i in range(n):
        ev = pool[rng.randrange(len(pool))]
        base = ev.content.rsplit(",", 1)[0]
        out.append((ev.agent_id, f"what do I remember of this: {base} ({tag}q{i})"))
    return out


def background_events(n: int, seed: int, skip_agents: set[str]) -> list[MemoryEvent]:
    """``n`` more unique memories for the agents not queried (ids ``x...``, event times after
    the loaded ones), published while the recalls are timed (``--under-load``)."""
    rng = random.Random(seed + 99)
    out: list[MemoryEvent] = []
    pop = Population(AGENTS, seed=seed + 99, namespace=NS).events(4 * n + AGENTS)
    for i, ev in enumerate(e for e in pop if e.agent_id not in skip_agents):
        if i == n:
            break
        update = {
            "memory_id": f"x{i:06d}",
            "content": f"{ev.content}, {words(rng, 4)} x{i}",
            "event_time": START + timedelta(seconds=SPAN_S + i * 0.5),
        }
        out.append(ev.model_copy(update=update))
    return out


def paced_publisher(bootstrap: str, topic: str, lines: list[str], rate: float) -> None:
    """Publish these events (JSON) at ``rate`` per second, in 50 ms steps, until done or
    terminated. Its own process: a publisher thread in the timing process would share that
    process's GIL with the HTTP client it times."""
    with MemoryPublisher(bootstrap, topic) as pub:
        t0, sent = time.perf_counter(), 0
        while sent < len(lines):
            due = min(len(lines), int((time.perf_counter() - t0) * rate) + 1)
            if due > sent:
                pub.publish_many([MemoryEvent.model_validate_json(x) for x in lines[sent:due]])
                sent = due
            time.sleep(0.05)
        pub.flush()


# -- measurement --------------------------------------------------------------------------------


def pct(samples: list[float]) -> dict[str, float]:
    """Percentiles in ms of samples given in seconds."""
    if not samples:
        return {"n": 0}
    a = np.array(samples) * 1000.0
    return {
        "p50_ms": float(np.percentile(a, 50)),
        "p95_ms": float(np.percentile(a, 95)),
        "p99_ms": float(np.percentile(a, 99)),
        "mean_ms": float(a.mean()),
        "max_ms": float(a.max()),
        "n": len(samples),
    }


def answering(client: MemoryClient) -> dict[str, Any]:
    """The ``/stats`` of whoever answers the recalls: the recall process when the worker has
    one (``ARGOS_RECALL_PORT``), else the worker (both have ``recall`` and ``latency``)."""
    return client.recall_stats() if client.recall_url else client.stats()


def l1_hits(client: MemoryClient) -> int:
    return int(answering(client)["recall"]["l1_hits"])


def load(
    client: MemoryClient,
    bootstrap: str,
    prefix: str,
    events: list[MemoryEvent],
    poll: float,
    base: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Publish every event; wait until the store holds them all and the memory stage saw them.
    ``base``: the worker's ``stored``, store ``count`` and ``inputs`` (memory-stage inputs)
    before these events, for a worker that already holds some."""
    n = len(events)
    b = base or {"stored": 0, "count": 0, "inputs": 0}
    t0 = time.perf_counter()
    with MemoryPublisher(bootstrap, f"{prefix}.memory.events") as pub:
        pub.publish_many(events)
        pub.flush()
    t_pub = time.perf_counter() - t0
    limit = 120 + n / 100  # far above the ~1,000 events/s the pipeline moves here
    stalls: list[float] = []  # HTTP reads the worker did not answer within the client's timeout

    def read(fn: Callable[[], Any]) -> Any:
        while True:
            t = time.perf_counter()
            try:
                return fn()
            except httpx.TimeoutException:
                stalls.append(time.perf_counter() - t)
                if len(stalls) > 20:
                    raise

    def wait(name: str, expected: int) -> int:
        deadline = time.monotonic() + limit
        value = read(lambda: int(client.stats()[name]))
        while value < expected and time.monotonic() < deadline:
            time.sleep(1.0)
            value = read(lambda: int(client.stats()[name]))
        return value

    stored = wait("stored", b["stored"] + n)
    t_stored = time.perf_counter() - t0
    want = b["count"] + n
    # the whole collection (the fresh store holds NS only): Milvus Lite counts it from its
    # keys, ~10x faster than with a namespace filter, which reads every row (~40 s at 400k)
    count, polls = read(client.count), 1
    deadline = time.monotonic() + 300
    while count < want and time.monotonic() < deadline:
        time.sleep(poll)
        count, polls = read(client.count), polls + 1
    t_count = time.perf_counter() - t0
    inputs = wait("lifecycle_inputs", b["inputs"] + n)
    t_memory = time.perf_counter() - t0
    st = read(client.stats)
    if count != want:
        raise RuntimeError(f"store holds {count} of {want} memories ({stored} handled):\n{st}")
    return {
        "events": n,
        "publish_s": t_pub,
        "stored_counter_s": t_stored,
        "store_count_s": t_count,
        "store_count_polls": polls,
        "memory_stage_s": t_memory,
        "events_per_s": n / t_count,
        "worker_http_timeouts_s": stalls,
        "store_count": count,
        "lifecycle_inputs": inputs,
        "strengthened_near_duplicates": st["strengthened"],
        "skipped_decayed": st["skipped_decayed"],
        "decayed": st["decayed"],
        "derived": st["derived"],
        "dead_lettered": st["dead_lettered"],
    }


def settle(client: MemoryClient, timeout: float = 60.0) -> float:
    """Wait until the worker's memory stage has nothing left (its input counter stands still for
    a second: the access events of the recalls so far are applied); returns the seconds waited."""
    t0 = time.perf_counter()
    last = -1
    while time.perf_counter() - t0 < timeout:
        now = int(client.stats()["lifecycle_inputs"])
        if now == last:
            break
        last = now
        time.sleep(1.0)
    return time.perf_counter() - t0


def measure(
    client: MemoryClient,
    index: HotIndex,
    embedder: HashingEmbedder,
    events: list[MemoryEvent],
    agents: list[str],
    args: argparse.Namespace,
    tag: str,
    timed_end: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # 1. the first recall of each agent: the worker warms it from Milvus Lite (not timed below)
    first = []
    for agent in agents:
        t0 = time.perf_counter()
        client.recall(NS, agent, f"warm-up recall of {agent} ({tag})", k=K)
        first.append(time.perf_counter() - t0)
    warm = 10  # untimed first queries of every series
    queries = make_queries(events, agents, args.queries + warm, args.seed + 7, tag)
    fixed_agent, fixed_text = queries[0][0], f"the one repeated query ({tag})"
    names = [
        "http_uncached",
        "server_took_ms",
        "http_cached",
        "http_cached_hits",
        "http_cached_misses",
        "http_ready",
        "inprocess_search_beside_worker",
        "inprocess_search",
        "inprocess_embed_search",
    ]
    series: dict[str, list[float]] = {k: [] for k in names}
    got: list[list[str]] = []
    # 2. over HTTP: query i uncached, then the repeated query; between them the in-process search
    # of query i once more, while the worker applies the recall's access event (its memory
    # stage, the broker and this process share the cores: what a client beside a worker sees)
    hits_before = l1_hits(client)
    for i, (agent, text) in enumerate(queries):
        t0 = time.perf_counter()
        resp = client.recall(NS, agent, text, k=K)
        t_http = time.perf_counter() - t0
        qvec = embedder.embed_many([text])[0]
        t0 = time.perf_counter()
        index.search(qvec, RecallFilters(NS, agent), k=K)
        t_beside = time.perf_counter() - t0
        t0 = time.perf_counter()
        hit = client.recall(NS, fixed_agent, fixed_text, k=K).cached
        t_cached = time.perf_counter() - t0
        # the floor under the same load: a GET /ready (no recall work; the HTTP stack and the
        # event loop's queue, shared with the stages)
        t0 = time.perf_counter()
        client.ready()
        t_ready = time.perf_counter() - t0
        if i < warm:
            continue
        series["http_ready"].append(t_ready)
        got.append([h.memory_id for h in resp.hits])
        series["http_uncached"].append(t_http)
        series["server_took_ms"].append(resp.took_ms / 1000.0)
        series["inprocess_search_beside_worker"].append(t_beside)
        series["http_cached"].append(t_cached)
        series["http_cached_hits" if hit else "http_cached_misses"].append(t_cached)
    timed_end()  # e.g. stop the background publisher (--under-load)
    hits_during = l1_hits(client) - hits_before
    # the worker's own view of the same recalls (its last 2,000, uncached and cached): the
    # whole HTTP handler (auth, recall, audit, access event, JSON), against server_took_ms
    # (the recall function alone) and the client's time (the handler plus transport)
    answer_latency = answering(client)["latency"]
    out["worker_recall_handler"] = answer_latency["recall"]
    out["answering_latency"] = answer_latency  # the recall process's also has its parts
    proc = client.stats().get("recall_process")
    if proc:  # the worker's side of the recall process's warms: reading, then sending
        out["worker_warm_answer"] = proc.get("warm_answer")
    # 3. in this process, the same queries, once the worker is idle again
    out["settle_s"] = settle(client)
    overlap: list[float] = []
    for i, (agent, text) in enumerate(queries):
        t0 = time.perf_counter()
        qvec = embedder.embed_many([text])[0]
        t_embed = time.perf_counter() - t0
        t0 = time.perf_counter()
        local = index.search(qvec, RecallFilters(NS, agent), k=K)
        t_search = time.perf_counter() - t0
        if i < warm:
            continue
        series["inprocess_search"].append(t_search)
        series["inprocess_embed_search"].append(t_embed + t_search)
        want = {h.memory.memory_id for h in local}
        overlap.append(len(want & set(got[i - warm])) / max(1, len(want)))
    # 4. correctness, untimed: relevance-only rankings (no recency, which the worker's recalls
    # change by reinforcing what they return) must be the same on both sides
    same: list[float] = []
    cos_only = ScoreWeights(1.0, 0.0, 0.0)
    for agent, text in queries[warm : warm + args.check_queries]:
        resp = client.recall(NS, agent, text, k=K, weights=cos_only.__dict__)
        qvec = embedder.embed_many([text])[0]
        local = index.search(qvec, RecallFilters(NS, agent), K, None, cos_only)
        same.append(float([h.memory_id for h in resp.hits] == [h.memory.memory_id for h in local]))
    st = answering(client)["recall"]
    out["latency"] = {"http_first_recall": pct(first)} | {k: pct(v) for k, v in series.items()}
    lat = out["latency"]
    ratios: dict[str, float] = {}
    for num, den in (
        ("http_uncached", "inprocess_search"),
        ("http_uncached", "inprocess_embed_search"),
        ("http_cached_hits", "inprocess_search"),
        ("server_took_ms", "inprocess_search"),
    ):
        if lat[num]["n"] and lat[den]["n"]:
            for p in ("p50", "p95", "p99"):
                ratios[f"{num}_over_{den}_{p}"] = lat[num][f"{p}_ms"] / lat[den][f"{p}_ms"]
    out["ratios"] = ratios
    out["overhead_ms_p50"] = {
        "http_uncached_minus_server_took": lat["http_uncached"]["p50_ms"]
        - lat["server_took_ms"]["p50_ms"],
        "http_ready": lat["http_ready"]["p50_ms"],
        "server_took_minus_inprocess_search": lat["server_took_ms"]["p50_ms"]
        - lat["inprocess_search"]["p50_ms"],
    }
    out["http_cached_hit_rate"] = len(series["http_cached_hits"]) / max(
        1, len(series["http_cached"])
    )
    out["top10_overlap_with_inprocess"] = float(np.mean(overlap)) if overlap else None
    out["top10_overlap_note"] = (
        "below 1: every recall reinforces the memories it returns on the worker (access events "
        "raise their recency and stability), which the in-process copy does not replay"
    )
    out["same_relevance_only_top10"] = float(np.mean(same)) if same else None
    out["worker_l1"] = {
        "hits_during_timed_queries": hits_during,
        "l2_rows": st["l2_rows"],
        "l2_agents_warm": st["l2_agents_warm"],
    }
    out["agents_queried"] = len(agents)
    return out


def run_one(
    n: int,
    layout: str,
    bootstrap: str,
    tmp: Path,
    args: argparse.Namespace,
    variant_env: dict[str, str] | None = None,
    checkout: Path | None = None,
) -> dict[str, Any]:
    t_all = time.perf_counter()
    one = layout == "one_agent"
    out: dict[str, Any] = {"n": n, "layout": layout, "rows_per_agent": n if one else n // AGENTS}
    t0 = time.perf_counter()
    events = make_events(n, layout, args.seed)
    embedder = HashingEmbedder()
    index = HotIndex(embedder.dim, weights=ScoreWeights())
    rows = list(stored_rows(events, embedder))
    out["local_build_s"] = time.perf_counter() - t0
    prefix = f"rhttp-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(
        bootstrap,
        tmp / prefix,
        topic_prefix=prefix,
        app_id=f"{prefix}-app",
        embedder="hashing",
        extra_env=WORKER_ENV | (ONE_AGENT_ENV if one else {}) | (variant_env or {}),
        checkout=checkout,
    )
    client = None
    publisher: multiprocessing.process.BaseProcess | None = None  # --under-load

    def stop_publisher() -> None:
        if publisher is not None and publisher.is_alive():
            publisher.terminate()
            publisher.join(10)

    try:
        client = worker.start()  # inside: a worker that fails to start is a failed run
        out["load"] = load(client, bootstrap, prefix, events, args.count_poll)
        print(f"[{n} {layout}] loaded: {out['load']['events_per_s']:.0f} events/s", flush=True)
        t0 = time.perf_counter()
        for lo in range(0, len(rows), 10_000):
            index.upsert(rows[lo : lo + 10_000])
        out["local_index_s"] = time.perf_counter() - t0
        del rows
        everyone = sorted({e.agent_id for e in events})
        agents = random.Random(args.seed).sample(everyone, min(args.query_agents, len(everyone)))
        if args.under_load > 0:
            extra = background_events(int(args.under_load * 600), args.seed, set(agents) | {ONE})
            publisher = multiprocessing.get_context("spawn").Process(
                target=paced_publisher,
                args=(
                    bootstrap,
                    f"{prefix}.memory.events",
                    [e.model_dump_json() for e in extra],
                    args.under_load,
                ),
                daemon=True,
            )
            publisher.start()
            time.sleep(5.0)  # the worker's stages busy with the stream before the timing

        before = client.stats().get("system", {})
        stored_before = int(client.stats()["stored"])
        out |= measure(
            client, index, embedder, events, agents, args, f"{n}-{layout}", stop_publisher
        )
        if publisher is not None:
            out["under_load"] = {
                "events_per_s": args.under_load,
                "stored_while_measured": int(client.stats()["stored"]) - stored_before,
                "to": f"the {AGENTS - len(agents)} agents not queried, from another process",
            }
        after = client.stats().get("system", {})
        out["worker_system"] = after  # GC pauses (young and full), RSS, CPU, cache rates
        out["worker_during_recalls"] = {  # what the worker's collector did while timed
            k: after[k] - before[k]
            for k in (
                "gc_seconds",
                "gc_collections_gen0",
                "gc_collections_gen1",
                "gc_collections_gen2",
                "cpu_seconds",
            )
            if k in after and k in before
        }
        if worker.proc is not None and worker.proc.poll() is not None:
            raise RuntimeError(f"worker died:\n{worker.log_tail()}")
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        out["worker_log_tail"] = worker.log_tail(15)
        print(f"[{n} {layout}] FAILED: {out['error'][:300]}", flush=True)
    finally:
        stop_publisher()  # also when the run failed: it must not publish into the next one
        if client is not None:
            client.close()
        worker.stop()
        shutil.rmtree(tmp / prefix, ignore_errors=True)
    out["total_s"] = time.perf_counter() - t_all
    lat = out.get("latency", {})
    for name in ("http_uncached", "http_cached_hits", "server_took_ms", "inprocess_search"):
        v = lat.get(name, {})
        if v.get("n"):
            print(
                f"[{n} {layout}] {name:24s} p50 {v['p50_ms']:7.2f}  p95 {v['p95_ms']:7.2f}  "
                f"p99 {v['p99_ms']:7.2f} ms",
                flush=True,
            )
    return out


# -- main ---------------------------------------------------------------------------------------


def _variant(text: str) -> tuple[str, dict[str, str]]:
    """'NAME:ENV=V,ENV=V' -> (NAME, {ENV: V})."""
    name, sep, assignments = text.partition(":")
    # assignments split at a comma that starts the next ARGOS_ name: values may hold commas
    env = dict(a.split("=", 1) for a in re.split(r",(?=ARGOS_)", assignments) if "=" in a)
    if not sep or not name or not env or not all(k.startswith("ARGOS_") for k in env):
        raise argparse.ArgumentTypeError(f"expected NAME:ARGOS_X=V[,ARGOS_Y=W], not {text!r}")
    return name, env


def _checkout(text: str) -> tuple[str, Path]:
    """'NAME=PATH' -> (NAME, PATH), PATH a copy of this repository."""
    name, sep, path = text.partition("=")
    if not sep or not name or not Path(path, "pipelines", "cli.py").exists():
        raise argparse.ArgumentTypeError(f"expected NAME=CHECKOUT of this repository, not {text!r}")
    return name, Path(path).resolve()


def add_checkout_option(ap: argparse.ArgumentParser, help: str) -> None:
    """``--checkout NAME=PATH`` (repeatable): a worker run from another copy of the repo."""
    ap.add_argument(
        "--checkout", type=_checkout, action="append", default=[], metavar="NAME=PATH", help=help
    )


def add_variant_option(ap: argparse.ArgumentParser, help: str) -> None:
    """``--variant NAME:ENV=V[,ENV=V]`` (repeatable): a worker whose environment adds these."""
    ap.add_argument(
        "--variant",
        type=_variant,
        action="append",
        default=[],
        metavar="NAME:ENV=V[,ENV=V]",
        help=help,
    )


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # so the finally blocks stop the worker and the broker


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sizes", type=int, nargs="*", default=[10_000, 100_000], help="N over 100 agents"
    )
    ap.add_argument(
        "--one-agent-sizes",
        type=int,
        nargs="*",
        default=[ONE_AGENT_MAX],
        help=f"N all in one agent (at most {ONE_AGENT_MAX}: see 'skipped' in the JSON)",
    )
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument(
        "--query-agents",
        type=int,
        default=10,
        help="agents queried (each is warmed from Milvus Lite by its first recall first)",
    )
    ap.add_argument(
        "--check-queries", type=int, default=50, help="relevance-only queries compared (untimed)"
    )
    ap.add_argument("--count-poll", type=float, default=5.0, help="s between Milvus counts")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--under-load",
        type=float,
        default=0.0,
        metavar="EVENTS_PER_S",
        help="while the recalls are timed, another process publishes new memories of the "
        "agents not queried at this rate (the stages busy, as in a running simulation)",
    )
    add_variant_option(
        ap,
        "also run each size with a worker whose environment adds these settings, beside "
        "the default worker on the same broker; results under sizes[N]['<layout>@NAME'] "
        "(e.g. 'switch1ms:ARGOS_SWITCH_INTERVAL_MS=1')",
    )
    ap.add_argument(
        "--no-default",
        action="store_true",
        help="run only the --variant workers, not the default one beside them",
    )
    add_checkout_option(
        ap,
        "run the --variant NAME's worker from this copy of the repository (e.g. a "
        "`git worktree add /tmp/before HEAD~1`): a code change side by side in one run",
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    args.checkout = dict(args.checkout)
    if unknown := set(args.checkout) - {name for name, _ in args.variant}:
        ap.error(f"--checkout names no --variant: {sorted(unknown)}")
    signal.signal(signal.SIGTERM, _raise_exit)
    # this process's numpy on one thread, like the worker's (ARGOS_BLAS_THREADS): OpenBLAS
    # threads that spin after a product take a core from the worker beside it
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    settings = Settings()
    runs = [(n, "100_agents") for n in args.sizes]
    runs += [(n, "one_agent") for n in args.one_agent_sizes if n <= ONE_AGENT_MAX]
    skipped = [
        f"one_agent at N={n}: above {ONE_AGENT_MAX}. {ONE_AGENT_WHY}"
        for n in sorted({*args.sizes, *args.one_agent_sizes})
        if n > ONE_AGENT_MAX
    ]
    if args.query_agents < AGENTS and args.sizes:
        skipped.append(
            f"queries go to {args.query_agents} of the {AGENTS} agents, not all: the first "
            "recall of each agent after a worker start loads its rows from Milvus Lite (see "
            "http_first_recall: about 1 s for 100 rows and 4-5 s for 1,000 rows here), so "
            "warming all 100 agents would add ~8 min at 100k, over the run's budget; the scan "
            "per recall is the same for any agent (N/100 rows)"
        )
    out: dict[str, Any] = {
        "machine": describe(),
        "config": {
            "embedder": "hashing",
            "embedder_why": "ARGOS_EMBEDDER=hashing in the worker and here: feature hashing "
            "costs ~nothing, so loading 100k memories through the pipeline takes minutes, not "
            "the ~5+ min of model time ONNX would add on 2 cores, and the figures are the "
            "recall path's own cost. With the model an uncached recall also pays one query "
            "embedding (a few ms for one short text with ONNX int8 here); search times do not "
            "depend on the embedder",
            "k": K,
            "queries": args.queries,
            "query_agents": args.query_agents,
            "agents_in_spread_layout": AGENTS,
            "texts": "simulated agents' memories (pipelines.simulation, seed "
            f"{args.seed}), each made unique with 4 random words and a counter (no "
            f"near-duplicates at cosine >= {settings.duplicate_threshold})",
            "event_times": f"spread over {SPAN_S / 3600:.0f} h of simulation time (nothing "
            "decays during the run); recalls name no event time (the agent's clock is 'now')",
            "queries_text": "a memory's text without its unique words, plus a new word per query",
            "client": "pipelines.client.MemoryClient (one persistent httpx client), sequential",
            "l1_hit_detection": "the response's `cached` flag; until 2026-11-27 two GET /stats "
            "per query, whose work took ~24% of the worker's GIL time while timed (10k, py-spy)",
            "blas_threads": "1 in the worker (ARGOS_BLAS_THREADS default) and in this process",
            "weights": ScoreWeights().__dict__,
            "worker_env": WORKER_ENV,
            "worker_env_one_agent": ONE_AGENT_ENV,
            "worker_env_why": "one micro-cluster per agent and per namespace, consolidation "
            "off: with hashing vectors of unique texts nearly every memory opens its own "
            "micro-cluster (~2 KB of base64 float32 sum each) and the memory and population "
            "tables' per-agent and per-namespace JSON values pass Kafka's 1 MiB message limit "
            "within ~2,000 memories (measured: the worker's producer fails with "
            "MessageSizeTooLargeError, 1.09 MB, at 2,000 memories over 100 agents with the "
            "defaults); clusters play no part in an unfiltered recall",
        },
        "sizes": {},
        "skipped": skipped,
    }
    t_all = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every run: a late failure keeps what was measured
        out["total_s"] = time.perf_counter() - t_all
        (args.out / "recall_http.json").write_text(json.dumps(out, indent=2) + "\n")

    with tempfile.TemporaryDirectory() as tmp, LocalKafka(Path(tmp) / "kafka") as kafka:
        for n, layout in runs:
            out["sizes"].setdefault(str(n), {})
            if not args.no_default:
                out["sizes"][str(n)][layout] = run_one(
                    n, layout, kafka.bootstrap_servers, Path(tmp), args
                )
                save()
            for name, env in args.variant:
                where = args.checkout.get(name)
                res = run_one(n, layout, kafka.bootstrap_servers, Path(tmp), args, env, where)
                out["sizes"][str(n)][f"{layout}@{name}"] = res | {
                    "variant_env": env,
                    "checkout": str(where or Path.cwd()),
                }
                save()
    save()
    plot(out, args.out / "recall_http.png")
    print(f"total {out['total_s']:.0f}s")
    return 0


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {
        "http_uncached": "HTTP, uncached",
        "http_cached_hits": "HTTP, L1 result-cache hit",
        "server_took_ms": "worker's took_ms (uncached)",
        "inprocess_search_beside_worker": "in-process search, worker busy with the recall",
        "inprocess_embed_search": "in-process embed + search (worker idle)",
        "inprocess_search": "in-process HotIndex.search (worker idle)",
    }
    runs = [
        (f"{int(n):,} in {layout.replace('_', ' ')}\n({r['rows_per_agent']:,} rows per agent)", r)
        for n, per in out["sizes"].items()
        for layout, r in per.items()
        if "latency" in r
    ]
    fig, ax = plt.subplots(figsize=(12, 5))
    width = 0.8 / len(names)
    for j, (key, label) in enumerate(names.items()):
        xs, p50, p95, p99 = [], [], [], []
        for x, (_, r) in enumerate(runs):
            v = r["latency"].get(key, {})
            if v.get("n"):
                xs.append(x + (j - (len(names) - 1) / 2) * width)
                p50.append(v["p50_ms"])
                p95.append(v["p95_ms"])
                p99.append(v["p99_ms"])
        bars = ax.bar(xs, p50, width, label=label)
        color = bars.patches[0].get_facecolor() if bars.patches else None
        ax.scatter(xs, p95, marker="_", s=120, color="black", zorder=3)
        ax.scatter(xs, p99, marker="v", s=18, color=color, edgecolors="black", zorder=3)
        if key == "http_uncached":
            for x, y, (_, r) in zip(xs, p99, runs, strict=True):
                ratio = r["ratios"].get("http_uncached_over_inprocess_search_p50")
                if ratio:
                    ax.text(x, y * 1.15, f"p50 {ratio:.0f}x\nin-proc.", ha="center", fontsize=7)
    ax.set_xticks(range(len(runs)), [name for name, _ in runs])
    ax.set_yscale("log")
    ax.set_ylim(top=ax.get_ylim()[1] * 3)  # room for the ratio labels
    ax.set_ylabel("ms (bar: p50, dash: p95, triangle: p99)")
    ax.set_xlabel("memories per worker, layout")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    m = out["machine"]
    fig.suptitle(
        f"recall latency over HTTP vs in-process, one worker (hashing embedder), k={K}, "
        f"{out['config']['queries']} queries -- {m['cores']} cores, {m['cpu'][:40]}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
