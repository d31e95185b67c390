"""Throughput: the model's raw encode rate (the ceiling) vs end-to-end events/s, same texts.

For each embedding backend installed (ONNX int8; torch fp32 when ``.[torch]`` is installed):
1. ceiling: ``embed_many`` over all the texts in this process (sorted by length, all cores);
2. pipeline: a fresh worker (own topics, group and Milvus Lite file) on the real broker; all
   events are published at once and the clock runs from the first publish until the worker has
   stored every one of them (then the Milvus count is checked);
3. the ceiling again, so drift on a shared machine shows (the mean of the two is used).
Then the same pipeline with the hashing embedder: the pipeline's own rate when the model costs
almost nothing (Kafka hops, validation, Milvus Lite).

    python -m bench.throughput [--events 6000] [--backends onnx,torch] [--checkout NAME=PATH]

``--checkout before=/tmp/before`` (a ``git worktree`` of an older commit) also runs each
pipeline with that copy's worker, alternating with this one's (``--rounds`` each), and reports
events/s ÷ that copy's per pipeline (key ``checkouts``): code changes compared side by side.

Writes ``bench/results/throughput.json`` (key ``pipeline_to_ceiling_ratio`` for the default
backend, onnx) and ``bench/results/throughput.png``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.machine import describe
from bench.recall_http import add_checkout_option
from infra.local_kafka import LocalKafka
from pipelines.embed import load_embedder, torch_available
from pipelines.embed_stage import text_of
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher
from pipelines.settings import Settings
from pipelines.simulation import Population

RESULTS = Path(__file__).parent / "results"


def ceiling(backend: str, texts: list[str], batch: int) -> float:
    """The model alone, on all texts at once (sorted by length: the least padding there is)."""
    emb = load_embedder(backend, threads=0, batch_size=batch)
    emb.embed_many(texts[:64])  # warm-up
    t0 = time.perf_counter()
    emb.embed_many(texts)
    return len(texts) / (time.perf_counter() - t0)


def _wait_all_stored(client: Any, published: int, timeout: float = 1800) -> None:
    """Until the store stage handled every published event and every derived memory."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = client.stats()
        if int(s["stored"]) >= published + int(s["derived"]) + int(s["rederived"]):
            return
        time.sleep(0.1)
    raise TimeoutError("the store stage did not catch up")


def pipeline(
    backend: str,
    bootstrap: str,
    events: list[Any],
    workdir: Path,
    extra_env: dict[str, str] | None = None,
    after: Callable[[Any], dict[str, Any]] | None = None,
    checkout: Path | None = None,
) -> dict[str, Any]:
    """All ``events`` through a fresh worker, timed from the first publish until all are stored;
    ``after(client)``, if given, runs against the still-running worker once the counts are checked
    (its result is merged into the returned dict)."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    ns = events[0].namespace
    worker = WorkerProcess(
        bootstrap,
        workdir / prefix,
        topic_prefix=prefix,
        app_id=f"{prefix}-app",
        embedder=backend,
        extra_env={"ARGOS_OTEL_EXPORTER": "none", **(extra_env or {})},
        checkout=checkout,
    )
    client = worker.start()
    try:
        with MemoryPublisher(bootstrap, f"{prefix}.memory.events") as pub:
            t0 = time.perf_counter()
            pub.publish_many(events)
            pub.flush()
            t_pub = time.perf_counter() - t0
            _wait_all_stored(client, len(events))
            elapsed = time.perf_counter() - t0
        # the truth, checked once the clock has stopped: every event is in the hot store, was
        # archived or forgotten since (the events span days of simulation time), or folded into
        # an earlier memory as a near-duplicate; derived semantic memories are stored as well
        client.wait_counter("clustered", len(events), timeout=600)
        deadline = time.monotonic() + 120  # Milvus Lite counts lag its writes a little
        while True:
            s = client.stats()
            n, archived = client.count(ns), client.count(ns, archive=True)
            decayed, dups, derived = (int(s[k]) for k in ("decayed", "strengthened", "derived"))
            if n + archived + decayed + dups == len(events) + derived:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(2.0)
        if n + archived + decayed + dups != len(events) + derived:
            raise RuntimeError(
                f"{n} in the store + {archived} archived + {decayed} decayed + {dups} "
                f"near-duplicates != {len(events)} published + {derived} derived"
            )
        out = {
            "prefix": prefix,
            "events": len(events),
            "seconds": elapsed,
            "events_per_s": len(events) / elapsed,
            "publish_seconds": t_pub,
            "in_store": n,
            "archived": archived,
            "decayed": decayed,
            "near_duplicates": dups,
            "derived": derived,
        }
        return out | (after(client) if after is not None else {})
    finally:
        worker.stop()


def alternated(
    backend: str,
    bootstrap: str,
    events: list[Any],
    workdir: Path,
    variants: dict[str, dict[str, str]],
    rounds: int = 2,
    checkouts: dict[str, Path] | None = None,
) -> tuple[dict[str, list[float]], dict[str, dict[str, float]]]:
    """Each variant (worker environment; its worker run from ``checkouts[name]`` when named
    there) through ``pipeline``, ``rounds`` times, alternating, so drift on a shared machine
    shows; returns events/s per variant and each one's last run."""
    runs: dict[str, list[float]] = {}
    last: dict[str, dict[str, float]] = {}
    for _ in range(rounds):
        for name, env in variants.items():
            path = (checkouts or {}).get(name)
            r = last[name] = pipeline(backend, bootstrap, events, workdir, env, checkout=path)
            runs.setdefault(name, []).append(r["events_per_s"])
            print(f"{backend} {name}: {r['events_per_s']:.0f} events/s", flush=True)
    return runs, last


def side_by_side(
    backend: str,
    bootstrap: str,
    events: list[Any],
    workdir: Path,
    checkouts: list[tuple[str, Path]],
    rounds: int,
) -> dict[str, Any]:
    """This code's pipeline and each checkout's, alternating ``rounds`` times (so drift on a
    shared machine falls on all alike); events/s per run and the ratio of the medians."""
    variants: dict[str, dict[str, str]] = {"now": {}, **{name: {} for name, _ in checkouts}}
    runs, _ = alternated(backend, bootstrap, events, workdir, variants, rounds, dict(checkouts))
    med = {name: statistics.median(v) for name, v in runs.items()}
    return {
        "events_per_s": runs,
        "median": med,
        "now_to": {name: med["now"] / m for name, m in med.items() if name != "now"},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=6000)
    ap.add_argument("--backends", default="")
    add_checkout_option(ap, "also run each pipeline from this copy of the repository")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each copy (with --checkout)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON and PNG")
    args = ap.parse_args(argv)
    backends = (
        [b for b in args.backends.split(",") if b != "none"]  # none: the hashing runs only
        if args.backends
        else (["onnx", "torch"] if torch_available() else ["onnx"])
    )
    settings = Settings()
    events = list(Population(50, seed=1, namespace="bench").events(args.events))
    texts = [text_of(e) for e in events]
    out: dict[str, Any] = {
        "machine": describe(),
        "events": args.events,
        "batch": settings.embed_batch,
        "take_max": settings.take_max,
        "texts": "simulated agents' memories (pipelines.simulation, seed 1)",
        "backends": {},
    }
    with tempfile.TemporaryDirectory() as tmp, LocalKafka(Path(tmp) / "kafka") as kafka:
        warm = pipeline("hashing", kafka.bootstrap_servers, events[:2000], Path(tmp))
        print(f"broker warm-up run: {warm['events_per_s']:.0f} events/s", flush=True)
        for b in backends:
            c1 = ceiling(b, texts, settings.embed_batch)
            p = pipeline(b, kafka.bootstrap_servers, events, Path(tmp))
            c2 = ceiling(b, texts, settings.embed_batch)
            c = (c1 + c2) / 2
            out["backends"][b] = {
                "ceiling_texts_per_s": [c1, c2],
                "ceiling_mean": c,
                "pipeline": p,
                "ratio": p["events_per_s"] / c,
            }
            print(
                f"{b}: ceiling {c1:.0f}/{c2:.0f} texts/s, pipeline {p['events_per_s']:.0f} "
                f"events/s, ratio {p['events_per_s'] / c:.3f}",
                flush=True,
            )
        over = pipeline("hashing", kafka.bootstrap_servers, events, Path(tmp))
        out["pipeline_without_model"] = over
        print(f"hashing embedder (pipeline overhead): {over['events_per_s']:.0f} events/s")
        if args.checkout:
            out["checkouts"] = {
                b: side_by_side(
                    b, kafka.bootstrap_servers, events, Path(tmp), args.checkout, args.rounds
                )
                for b in [*backends, "hashing"]
            }
    default = settings.embedder
    out["default_backend"] = default
    if default in out["backends"]:
        out["pipeline_to_ceiling_ratio"] = out["backends"][default]["ratio"]
    if "torch" in out["backends"] and "onnx" in out["backends"]:
        onnx, torch = out["backends"]["onnx"], out["backends"]["torch"]
        out["onnx_to_torch_ceiling"] = onnx["ceiling_mean"] / torch["ceiling_mean"]
        out["onnx_to_torch_pipeline"] = (
            onnx["pipeline"]["events_per_s"] / torch["pipeline"]["events_per_s"]
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "throughput.json").write_text(json.dumps(out, indent=2) + "\n")
    plot(out, args.out / "throughput.png")
    print(json.dumps({k: v for k, v in out.items() if k != "machine"}, indent=1)[:2000])
    return 0


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(out["backends"])
    ceil = [out["backends"][n]["ceiling_mean"] for n in names]
    pipe = [out["backends"][n]["pipeline"]["events_per_s"] for n in names]
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], ceil, 0.4, label="model encode (ceiling)")
    ax.bar([x + 0.2 for x in xs], pipe, 0.4, label="pipeline publish → stored")
    for x, n in zip(xs, names, strict=True):
        r = out["backends"][n]["ratio"]
        ax.text(x + 0.2, pipe[x], f"{r:.2f}×", ha="center", va="bottom")
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("events (texts) per second")
    m = out["machine"]
    over = out["pipeline_without_model"]["events_per_s"]
    side = "".join(
        f"\n{b}: events/s now ÷ "
        + ", ".join(f"{name}'s {r:.2f}×" for name, r in c["now_to"].items())
        for b, c in out.get("checkouts", {}).items()
    )
    ax.set_title(
        f"{out['events']} events, {m['cores']} cores, {m['cpu'][:40]}\n"
        f"pipeline with a ~free (hashing) embedder: {over:.0f} events/s{side}",
        fontsize=9,
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
