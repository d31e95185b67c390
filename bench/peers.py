"""Peers: a naive hand pipeline, the same batched, mem0, and ours, side by side on the same texts.

In one run, on one local broker, the same simulated agents' events (``pipelines.simulation``,
seed 1), the same model (all-MiniLM-L6-v2, int8 ONNX, ``pipelines.embed.load_embedder``) and the
same store kind (Milvus Lite, a fresh file each):

1. ``naive``: a kafka-python consumer reads the published events from a topic on the real broker,
   embeds ONE event at a time and inserts it into Milvus Lite (pymilvus ``MilvusClient``) one by
   one;
2. ``naive_batched``: the same, batched by 256 (poll up to 256 records, embed them in one call,
   insert them in one call);
3. ``ours``: ``bench.throughput.pipeline`` (a fresh worker process; clock from the first publish
   until every event is stored, counts checked), then recall latency over HTTP on that worker;
4. ``mem0``: ``Memory.from_config`` offline (``mem0ai``, ``pip install -e '.[peers]'``): Milvus
   Lite file, the same model wrapped as mem0's local embedder, ``add(..., infer=False)`` (no LLM),
   one add per event; then ``search`` latency on the same queries as our recall;
5. with the hashing embedder (the pipeline's own overhead when the model costs almost nothing):
   naive, naive batched and ours again.

The naive consumers get the benefit of the doubt: the topic is filled before their clock starts,
and they use manual partition assignment (no consumer-group join), no offset commits and no
validation beyond parsing. mem0 gets the events as Python calls (it has no broker hop).
The model's raw encode rate (``bench.throughput.ceiling``) is measured before and after the
MiniLM series, as the ceiling.

    python -m bench.peers [--events 3000] [--queries 200] [--quick]

Writes ``bench/results/peers.json`` and ``bench/results/peers.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import describe
from bench.throughput import ceiling, pipeline
from infra.local_kafka import LocalKafka
from pipelines.embed import DIM, MODEL_NAME, Embedder, load_embedder
from pipelines.embed_stage import text_of
from pipelines.publisher import MemoryPublisher
from pipelines.settings import Settings
from pipelines.simulation import Population
from schemas import MemoryEvent, parse_memory_event

RESULTS = Path(__file__).parent / "results"
NAIVE_BATCH = 256
Query = tuple[str, str]  # (agent_id, query text)


def _latency(ms: Sequence[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=np.float64)
    return {
        "n": len(a),
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
        "mean_ms": float(a.mean()),
    }


# -- naive hand pipeline ----------------------------------------------------------------------


def publish(bootstrap: str, topic: str, events: Sequence[MemoryEvent]) -> float:
    """Fill ``topic`` with the events (acks=all); returns the seconds it took."""
    t0 = time.perf_counter()
    with MemoryPublisher(bootstrap, topic) as pub:
        pub.publish_many(events)
        pub.flush()
    return time.perf_counter() - t0


def _milvus_collection(uri: str, name: str) -> Any:
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(uri=uri)
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pk", DataType.VARCHAR, max_length=260, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("namespace", DataType.VARCHAR, max_length=128)
    schema.add_field("agent_id", DataType.VARCHAR, max_length=128)
    schema.add_field("type", DataType.VARCHAR, max_length=16)
    schema.add_field("content", DataType.VARCHAR, max_length=65535)
    schema.add_field("event_ts", DataType.DOUBLE)
    index = client.prepare_index_params()
    index.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="COSINE")
    client.create_collection(name, schema=schema, index_params=index)
    return client


def _row(ev: MemoryEvent, vec: np.ndarray) -> dict[str, Any]:
    return {
        "pk": f"{ev.namespace}|{ev.memory_id}",
        "vector": vec.tolist(),
        "namespace": ev.namespace,
        "agent_id": ev.agent_id,
        "type": ev.type.value,
        "content": ev.content,
        "event_ts": ev.event_ts,
    }


def _count(client: Any, collection: str, expected: int, timeout: float = 60) -> int:
    """Rows in the collection, waiting a little for Milvus Lite's count to catch up."""
    deadline = time.monotonic() + timeout
    while True:
        res = client.query(collection, filter="", output_fields=["count(*)"])
        n = int(res[0]["count(*)"]) if res else 0
        if n >= expected or time.monotonic() > deadline:
            return n
        time.sleep(0.5)


def fresh_embedder(kind: str, texts: Sequence[str]) -> Embedder:
    """A new model instance, warmed on 64 texts as ``bench.throughput.ceiling`` does, so that no
    variant runs on shapes another variant has already warmed."""
    emb = load_embedder(kind, threads=0, batch_size=Settings().embed_batch)
    emb.embed_many(list(texts[:64]))
    return emb


def naive(
    bootstrap: str, topic: str, texts: Sequence[str], kind: str, workdir: Path, batch: int
) -> dict[str, Any]:
    """Consume the ``len(texts)`` events of ``topic`` (from the beginning), embed and insert them
    into a fresh Milvus Lite file, ``batch`` at a time (1: one by one); the clock starts at the
    first poll, once the consumer, the model and the collection are ready."""
    from kafka import KafkaConsumer, TopicPartition

    n = len(texts)
    embedder = fresh_embedder(kind, texts)

    coll = "naive"
    folder = workdir / f"naive-{uuid.uuid4().hex[:8]}"  # Milvus Lite: one process per folder
    folder.mkdir(parents=True)
    uri = str(folder / "milvus.db")
    client = _milvus_collection(uri, coll)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=batch,
        consumer_timeout_ms=60_000,
    )
    try:
        deadline = time.monotonic() + 30
        while not (parts := consumer.partitions_for_topic(topic)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no partitions for {topic}")
            time.sleep(0.1)
        consumer.assign([TopicPartition(topic, p) for p in sorted(parts)])
        consumer.seek_to_beginning()
        done = 0
        t_embed = t_insert = 0.0
        t0 = time.perf_counter()
        if batch == 1:
            for msg in consumer:  # the textbook loop: one record, one model call, one insert
                ev = parse_memory_event(msg.value)
                t1 = time.perf_counter()
                vec = embedder.embed_many([text_of(ev)])[0]
                t2 = time.perf_counter()
                client.insert(coll, [_row(ev, vec)])
                t_embed += t2 - t1
                t_insert += time.perf_counter() - t2
                done += 1
                if done == n:
                    break
        else:
            idle_until = time.monotonic() + 60
            while done < n:
                polled = consumer.poll(timeout_ms=500, max_records=batch)
                recs = [r for rs in polled.values() for r in rs]
                if not recs:
                    if time.monotonic() > idle_until:
                        break
                    continue
                idle_until = time.monotonic() + 60
                evs = [parse_memory_event(r.value) for r in recs]
                t1 = time.perf_counter()
                vecs = embedder.embed_many([text_of(e) for e in evs])
                t2 = time.perf_counter()
                client.insert(coll, [_row(e, v) for e, v in zip(evs, vecs, strict=True)])
                t_embed += t2 - t1
                t_insert += time.perf_counter() - t2
                done += len(evs)
        elapsed = time.perf_counter() - t0
        stored = _count(client, coll, n)
        if done != n or stored != n:
            raise RuntimeError(f"naive (batch {batch}): consumed {done}, stored {stored} of {n}")
        return {
            "batch": batch,
            "events": n,
            "seconds": elapsed,
            "events_per_s": n / elapsed,
            "embed_share": t_embed / elapsed,
            "insert_share": t_insert / elapsed,
            "stored": stored,
        }
    finally:
        consumer.close()
        client.close()


# -- ours: bench.throughput.pipeline, then recall latency on its worker ---------------------------


def ours(work: Path, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """``bench.throughput.pipeline``; if the worker fails, the error and the tail of its log
    (which goes away with the temporary folder) are recorded instead of ending the run."""
    try:
        return pipeline(*args, **kwargs)
    except Exception as exc:
        logs = sorted(work.glob("bench-*/worker.log"), key=lambda p: p.stat().st_mtime)
        tail = logs[-1].read_text(errors="replace").splitlines()[-40:] if logs else []
        print(f"our pipeline failed: {exc}\n" + "\n".join(tail), flush=True)
        return {"error": f"{type(exc).__name__}: {exc}", "worker_log_tail": tail}


def recall_probe(namespace: str, queries: Sequence[Query]) -> Callable[[Any], dict[str, Any]]:
    """For ``pipeline(after=...)``: one untimed recall per agent (warms its hot index), then
    every query timed over HTTP (``http``) with the worker's own ``took_ms`` beside it."""

    def probe(client: Any) -> dict[str, Any]:
        for agent in sorted({a for a, _ in queries}):
            client.recall(namespace, agent, "warm-up: what do I remember?", k=10)
        http, took = [], []
        for agent, q in queries:
            t0 = time.perf_counter()
            resp = client.recall(namespace, agent, q, k=10)
            http.append((time.perf_counter() - t0) * 1000)
            took.append(resp.took_ms)
        return {"recall_http": _latency(http), "recall_server_took": _latency(took)}

    return probe


# -- mem0 ---------------------------------------------------------------------------------------


def _mem0_embedder_class(embedder: Embedder) -> type:
    """mem0's local embedder (its ``huggingface`` provider loads sentence-transformers and so
    torch): the same all-MiniLM-L6-v2 we run, as a mem0 ``EmbeddingBase``."""
    from mem0.embeddings.base import EmbeddingBase

    class Mem0MiniLM(EmbeddingBase):
        def __init__(self, config: Any = None) -> None:
            super().__init__(config)
            self.config.embedding_dims = embedder.dim

        def embed(self, text: Any, memory_action: Any = None) -> list[float]:
            return embedder.embed_many([text])[0].tolist()

        def embed_batch(self, texts: Any, memory_action: Any = "add") -> list[list[float]]:
            return embedder.embed_many(list(texts)).tolist()

    return Mem0MiniLM


def run_mem0(
    events: Sequence[MemoryEvent], queries: Sequence[Query], workdir: Path
) -> dict[str, Any]:
    """mem0 fully offline: adds/s over all events (``add(infer=False)``, one per event), then
    search latency (one untimed search per agent first, as for our recall)."""
    embedder = fresh_embedder("onnx", [text_of(e) for e in events])
    home = workdir / "mem0-home"
    home.mkdir(parents=True, exist_ok=True)
    os.environ["MEM0_DIR"] = str(home)  # read when mem0 is imported: nothing in ~/.mem0
    os.environ["MEM0_TELEMETRY"] = "False"  # no PostHog events (there is no network anyway)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import mem0
        from mem0 import Memory
        from mem0.utils.factory import EmbedderFactory
    except ImportError as exc:
        return {"runnable": False, "error": f"{type(exc).__name__}: {exc}"}
    logging.getLogger("mem0").setLevel(logging.ERROR)  # "spaCy is not installed" on every search
    cls = _mem0_embedder_class(embedder)
    globals()[cls.__name__] = cls  # mem0's factory imports the class by its dotted path
    providers = EmbedderFactory.provider_to_class
    saved = providers["huggingface"]
    providers["huggingface"] = f"{__name__}.{cls.__name__}"
    config = {
        "vector_store": {
            "provider": "milvus",
            "config": {
                "url": str(workdir / "mem0.db"),  # a path: Milvus Lite
                "collection_name": "mem0_peers",
                "embedding_model_dims": embedder.dim,
                "metric_type": "COSINE",
            },
        },
        "embedder": {
            "provider": "huggingface",
            "config": {"model": MODEL_NAME, "embedding_dims": embedder.dim},
        },
        # built at init but never called with infer=False; the key only satisfies the client
        "llm": {"provider": "openai", "config": {"api_key": "unused-offline"}},
        "history_db_path": str(workdir / "mem0-history.db"),
    }
    try:
        t0 = time.perf_counter()
        memory = Memory.from_config(config)
        init_s = time.perf_counter() - t0
    except Exception as exc:
        traceback.print_exc()
        return {"runnable": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        providers["huggingface"] = saved
    try:
        t0 = time.perf_counter()
        for ev in events:
            memory.add(
                text_of(ev),
                agent_id=ev.agent_id,
                metadata={"memory_id": ev.memory_id, "type": ev.type.value},
                infer=False,
            )
        elapsed = time.perf_counter() - t0
        stored = _count(memory.vector_store.client, "mem0_peers", len(events))
        for agent in sorted({a for a, _ in queries}):
            memory.search("warm-up: what do I remember?", filters={"agent_id": agent}, top_k=10)
        ms = []
        for agent, q in queries:
            t1 = time.perf_counter()
            memory.search(q, filters={"agent_id": agent}, top_k=10)
            ms.append((time.perf_counter() - t1) * 1000)
    finally:
        memory.vector_store.client.close()
    written_home = sorted(p.name for p in home.iterdir())
    return {
        "runnable": True,
        "version": getattr(mem0, "__version__", None),
        "init_seconds": init_s,
        "events": len(events),
        "seconds": elapsed,
        "adds_per_s": len(events) / elapsed,
        "stored": stored,
        "search": _latency(ms),
        "mem0_dir_files": written_home,
        "config": "Milvus Lite file; all-MiniLM-L6-v2 int8 ONNX (ours) as mem0's local embedder "
        "(huggingface provider slot); add(infer=False): no LLM call; MEM0_TELEMETRY=False; "
        "spaCy (mem0ai[nlp]) not installed: no lemmatisation or entity boost in search",
    }


# -- the run --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="300 events, 30 queries (a smoke run)")
    args = ap.parse_args(argv)
    if args.quick:
        args.events, args.queries = min(args.events, 300), min(args.queries, 30)
    settings = Settings()
    events = list(Population(50, seed=1, namespace="bench").events(args.events))
    ns = events[0].namespace
    texts = [text_of(e) for e in events]
    # queries: other simulated memories (seed 2) of the same 50 agents, each (agent, text) once
    queries = list(
        dict.fromkeys(
            (e.agent_id, text_of(e))
            for e in Population(50, seed=2, namespace="bench").events(args.queries * 4)
        )
    )[: args.queries]
    out: dict[str, Any] = {
        "machine": describe(),
        "events": args.events,
        "queries": len(queries),
        "model": f"{MODEL_NAME} int8 ONNX (pipelines.embed, backend onnx)",
        "store": "Milvus Lite (a fresh file per variant)",
        "texts": "simulated agents' memories (pipelines.simulation, 50 agents, seed 1)",
        "naive_batch": NAIVE_BATCH,
        "ours_embed_batch": settings.embed_batch,
    }
    with tempfile.TemporaryDirectory() as tmp, LocalKafka(Path(tmp) / "kafka") as kafka:
        work, boot = Path(tmp), kafka.bootstrap_servers
        warm = pipeline("hashing", boot, events[: min(500, len(events))], work)
        print(f"broker warm-up run: {warm['events_per_s']:.0f} events/s", flush=True)
        topic = f"peers-{uuid.uuid4().hex[:8]}.memory.events"
        out["naive_publish_seconds"] = publish(boot, topic, events)

        minilm: dict[str, Any] = {}
        c1 = ceiling("onnx", texts, settings.embed_batch)
        print(f"ceiling (model alone): {c1:.0f} texts/s", flush=True)
        for name, b in (("naive", 1), ("naive_batched", NAIVE_BATCH)):
            minilm[name] = naive(boot, topic, texts, "onnx", work, b)
            print(f"onnx {name}: {minilm[name]['events_per_s']:.1f} events/s", flush=True)
        minilm["ours"] = ours(work, "onnx", boot, events, work, after=recall_probe(ns, queries))
        print(f"onnx ours: {minilm['ours'].get('events_per_s')} events/s", flush=True)
        minilm["mem0"] = run_mem0(events, queries, work / "mem0")
        if minilm["mem0"]["runnable"]:
            print(f"mem0: {minilm['mem0']['adds_per_s']:.1f} adds/s", flush=True)
        else:
            print(f"mem0 not runnable: {minilm['mem0']['error']}", flush=True)
        c2 = ceiling("onnx", texts, settings.embed_batch)
        minilm["ceiling_texts_per_s"] = [c1, c2]
        minilm["ceiling_mean"] = (c1 + c2) / 2
        out["minilm_onnx"] = minilm

        hashed: dict[str, Any] = {}
        for name, b in (("naive", 1), ("naive_batched", NAIVE_BATCH)):
            hashed[name] = naive(boot, topic, texts, "hashing", work, b)
            print(f"hashing {name}: {hashed[name]['events_per_s']:.1f} events/s", flush=True)
        hashed["ours"] = ours(work, "hashing", boot, events, work)
        print(f"hashing ours: {hashed['ours'].get('events_per_s')} events/s", flush=True)
        out["hashing"] = hashed

    out["ratios"] = ratios(out)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "peers.json").write_text(json.dumps(out, indent=2) + "\n")
    plot(out, RESULTS / "peers.png")
    print(json.dumps(out["ratios"], indent=1))
    return 0


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def ratios(out: dict[str, Any]) -> dict[str, Any]:
    """ours ÷ each peer (None where a side did not run)."""
    m, h = out["minilm_onnx"], out["hashing"]
    rate = m["ours"].get("events_per_s")
    mem0 = m["mem0"]
    recall = m["ours"].get("recall_http", {})
    r: dict[str, Any] = {
        "ours_to_naive": _div(rate, m["naive"]["events_per_s"]),
        "ours_to_naive_batched": _div(rate, m["naive_batched"]["events_per_s"]),
        "ours_to_mem0": _div(rate, mem0.get("adds_per_s")),
        "ours_to_ceiling": _div(rate, m["ceiling_mean"]),
        "naive_batched_to_ceiling": m["naive_batched"]["events_per_s"] / m["ceiling_mean"],
        "mem0_search_p50_to_our_recall_http_p50": _div(
            mem0.get("search", {}).get("p50_ms"), recall.get("p50_ms")
        ),
        "mem0_search_p99_to_our_recall_http_p99": _div(
            mem0.get("search", {}).get("p99_ms"), recall.get("p99_ms")
        ),
    }
    hrate = h["ours"].get("events_per_s")
    r["hashing_ours_to_naive"] = _div(hrate, h["naive"]["events_per_s"])
    r["hashing_ours_to_naive_batched"] = _div(hrate, h["naive_batched"]["events_per_s"])
    r["hashing_goal"] = {
        "ours_to_naive_at_least_10x": (r["hashing_ours_to_naive"] or 0) >= 10,
        "ours_at_least_10k_events_per_s": (hrate or 0) >= 10_000,
    }
    return r


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m, h, r = out["minilm_onnx"], out["hashing"], out["ratios"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4), gridspec_kw={"width_ratios": [4, 3, 3]})

    def bars(
        ax: Any, items: list[tuple[str, float | None, str]], title: str, top: float = 0.0
    ) -> None:
        xs = range(len(items))
        vals = [v or 0.0 for _, v, _ in items]
        colors = ["#999999", "#bbbbbb", "#2a7ab9", "#d98c2b"][: len(items)]
        ax.bar(list(xs), vals, color=colors)
        for x, (_, v, note) in zip(xs, items, strict=True):
            ax.text(x, v or 0.0, f"{v:.0f}/s\n{note}" if v else note, ha="center", va="bottom")
        ax.set_xticks(list(xs), [n for n, _, _ in items], fontsize=8)
        ax.set_ylim(0, max(*vals, top) * 1.3)
        ax.set_title(title, fontsize=9)

    def x(v: float | None) -> str:
        return f"{v:.1f}×" if v is not None else "failed"

    def pair(a: float | None, b: float | None) -> str:
        return f"{x(a)} / {x(b)}" if a is not None else "failed"

    mem0 = m["mem0"]
    bars(
        axes[0],
        [
            ("naive\n1 by 1", m["naive"]["events_per_s"], ""),
            ("naive\nbatch 256", m["naive_batched"]["events_per_s"], ""),
            (
                "ours",
                m["ours"].get("events_per_s"),
                pair(r["ours_to_naive"], r["ours_to_naive_batched"]),
            ),
            (
                "mem0\nadd(infer=False)",
                mem0.get("adds_per_s"),
                f"ours {x(r['ours_to_mem0'])}" if mem0["runnable"] else "not runnable",
            ),
        ],
        "all-MiniLM-L6-v2 int8 ONNX → Milvus Lite (events/s)",
        top=m["ceiling_mean"],
    )
    axes[0].axhline(m["ceiling_mean"], color="k", ls="--", lw=0.8)
    axes[0].text(3.4, m["ceiling_mean"], "model alone", ha="right", va="bottom", fontsize=7)
    bars(
        axes[1],
        [
            ("naive\n1 by 1", h["naive"]["events_per_s"], ""),
            ("naive\nbatch 256", h["naive_batched"]["events_per_s"], ""),
            (
                "ours",
                h["ours"].get("events_per_s"),
                pair(r["hashing_ours_to_naive"], r["hashing_ours_to_naive_batched"]),
            ),
        ],
        "hashing embedder: pipeline overhead (events/s)",
    )
    ax = axes[2]
    series = []
    if "recall_http" in m["ours"]:
        series.append(("our recall\nHTTP", m["ours"]["recall_http"]))
        series.append(("our recall\nserver took_ms", m["ours"]["recall_server_took"]))
    if mem0["runnable"]:
        series.append(("mem0\nsearch", mem0["search"]))
    xs = np.arange(len(series))
    ax.bar(xs - 0.2, [s["p50_ms"] for _, s in series], 0.4, label="p50")
    ax.bar(xs + 0.2, [s["p99_ms"] for _, s in series], 0.4, label="p99")
    for x, (_, s) in zip(xs, series, strict=True):
        ax.text(x - 0.2, s["p50_ms"], f"{s['p50_ms']:.1f}", ha="center", va="bottom", fontsize=7)
        ax.text(x + 0.2, s["p99_ms"], f"{s['p99_ms']:.1f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(xs), [n for n, _ in series], fontsize=8)
    ax.set_ylabel("ms")
    ax.set_title(f"recall / search latency, {out['queries']} queries, top 10", fontsize=9)
    ax.legend(fontsize=8)
    mach = out["machine"]
    fig.suptitle(
        f"{out['events']} events, same texts, model and store kind; {mach['cores']} cores, "
        f"{mach['cpu'][:40]}  (ratios: ours ÷ naive / ours ÷ naive batched)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
