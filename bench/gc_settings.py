"""The worker's garbage-collector settings side by side: throughput and GC time.

Fresh workers on one local broker, the same simulated events (hashing embedder: the pipeline's
own cost), the variants alternated ``--rounds`` times so drift on a shared machine shows:

- ``python_default``: ``gc.set_threshold(700, 10, 10)`` and no freeze (Python as it comes);
- ``freeze``: Python's thresholds, start-up objects frozen (``gc.freeze``);
- ``threshold_50k``: ``50000,20,10``, no freeze;
- ``default``: the worker's defaults (``ARGOS_GC_THRESHOLD`` and the freeze; see the settings).

Each run reports events/s (first publish → all stored) and the worker's own GC figures from
``/stats`` ``system`` (seconds in the collector, collections per generation, the longest pause
and the median full-collection pause: every thread waits while one runs).

    python -m bench.gc_settings [--events 12000] [--rounds 2]
    python -m bench.gc_settings --builtin python_default,default \
        --variant young5k:ARGOS_GC_THRESHOLD=5000,50,10

Writes ``bench/results/gc_settings.json`` and ``bench/results/gc_settings.png``.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.machine import describe, machine_title
from bench.recall_http import _raise_exit, add_variant_option
from bench.throughput import pipeline
from infra.local_kafka import LocalKafka
from pipelines.simulation import Population

RESULTS = Path(__file__).parent / "results"
VARIANTS = {
    "python_default": {"ARGOS_GC_THRESHOLD": "700,10,10", "ARGOS_GC_FREEZE": "false"},
    "freeze": {"ARGOS_GC_THRESHOLD": "700,10,10", "ARGOS_GC_FREEZE": "true"},
    "threshold_50k": {"ARGOS_GC_THRESHOLD": "50000,20,10", "ARGOS_GC_FREEZE": "false"},
    "default": {},
}


def _gc(client: Any) -> dict[str, Any]:
    system = client.stats()["system"]
    return {"gc": {k: v for k, v in system.items() if k.startswith("gc_")}}


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(out["variants"])
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    a.bar(names, [out["variants"][n]["events_per_s_mean"] for n in names])
    a.set_ylabel("events/s (mean of rounds)")
    a.set_title("throughput, hashing embedder")
    b.bar(names, [out["variants"][n]["gc_seconds_mean"] for n in names], label="GC seconds")
    b.set_ylabel("seconds in the collector per run")
    b.set_title("GC time (full collections stop every thread)")
    for ax in (a, b):
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle(f"{out['events']} events, {machine_title(out)}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=12000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument(
        "--builtin",
        default=",".join(VARIANTS),
        help="which of the built-in variants to run (python_default is the base of the ratios)",
    )
    add_variant_option(ap, "also run a worker whose environment adds these settings")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_exit)
    chosen = args.builtin.split(",")
    unknown = set(chosen) - set(VARIANTS)
    if unknown or "python_default" not in chosen:
        ap.error(f"--builtin: names among {list(VARIANTS)}, python_default included")
    variants = {n: VARIANTS[n] for n in chosen} | dict(args.variant)
    events = list(Population(50, seed=1, namespace="bench").events(args.events))
    out: dict[str, Any] = {
        "machine": describe(),
        "events": args.events,
        "embedder": "hashing",
        "variants_env": variants,
        "runs": [],
        "variants": {},
    }
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, LocalKafka(Path(tmp) / "kafka") as kafka:
        for _ in range(args.rounds):
            for name, env in variants.items():
                r = pipeline("hashing", kafka.bootstrap_servers, events, Path(tmp), env, _gc)
                run = {"variant": name, "events_per_s": r["events_per_s"], **r["gc"]}
                out["runs"].append(run)
                print(
                    f"{name:15s} {r['events_per_s']:6.0f} events/s, GC {r['gc']['gc_seconds']:.2f}"
                    f" s, {r['gc']['gc_collections_gen2']:.0f} full",
                    flush=True,
                )
    for name in variants:
        mine = [r for r in out["runs"] if r["variant"] == name]
        out["variants"][name] = {
            "events_per_s_mean": statistics.mean(r["events_per_s"] for r in mine),
            "gc_seconds_mean": statistics.mean(r["gc_seconds"] for r in mine),
            "full_collections_mean": statistics.mean(r["gc_collections_gen2"] for r in mine),
            "full_pause_p50_ms_mean": statistics.mean(r["gc_full_pause_p50_ms"] for r in mine),
            "young_pause_p50_ms_mean": statistics.mean(
                r.get("gc_young_pause_p50_ms", 0.0) for r in mine
            ),
            "young_pause_max_ms_max": max(r.get("gc_young_pause_max_ms", 0.0) for r in mine),
        }
    base = out["variants"]["python_default"]["events_per_s_mean"]
    out["ratios_to_python_default"] = {
        n: v["events_per_s_mean"] / base for n, v in out["variants"].items()
    }
    out["total_s"] = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gc_settings.json").write_text(json.dumps(out, indent=2) + "\n")
    plot(out, args.out / "gc_settings.png")
    print(json.dumps(out["ratios_to_python_default"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
