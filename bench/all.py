"""Every benchmark, one after another, then one summary of their headline figures.

``make bench`` runs this: each benchmark is its own ``python -m bench.<name>`` process (its own
broker and workers), writing its JSON and PNG to ``bench/results``; then
``bench/results/summary.md`` is rebuilt from the JSON files there (the latest of each, whether
run now or before), with the machine and date of each.

    python -m bench.all                    # all of them (hours on 2 cores: see --list)
    python -m bench.all --only throughput,freshness
    python -m bench.all --skip growth,peers
    python -m bench.all --summary          # only rebuild summary.md from the JSON files

A benchmark whose prerequisite is missing (LoCoMo data, Chromium, the ``.[peers]`` extra) is
skipped with the reason; a failed one is reported and the others still run (exit status 1).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
LOCOMO = Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo-dev"


def _has_chromium() -> str | None:
    return None if shutil.which("chromium") else "needs Chromium (make chromium)"


def _has_peers() -> str | None:
    return (
        None if importlib.util.find_spec("mem0") else "needs the .[peers] extra (make bench-peers)"
    )


def _has_pyspy() -> str | None:
    from bench.profile_worker import find_py_spy

    return None if find_py_spy() else "needs py-spy (the bench extra)"


def _has_locomo() -> str | None:
    return None if LOCOMO.exists() else f"needs the LoCoMo data in {LOCOMO}"


#: name -> (arguments after ``python -m bench.<name>``, prerequisite check, rough minutes here)
BENCHES: dict[str, tuple[list[str], Callable[[], str | None] | None, int]] = {
    "throughput": ([], None, 6),
    "profile_worker": ([], _has_pyspy, 2),
    "freshness": ([], None, 8),
    "gc_settings": ([], None, 10),
    "switch_interval": ([], None, 14),
    "heap_census": ([], None, 4),
    "memory_bytes": ([], None, 1),
    "recall": (["--sizes", "10000", "100000"], None, 6),
    "recall_http": ([], None, 25),
    "recall_hop": ([], None, 8),
    "spatial": ([], None, 3),
    "population_near": ([], None, 3),
    "scaling": ([], None, 10),
    "growth": ([], None, 90),
    "security_overhead": ([], None, 12),
    "analytics_cost": ([], None, 8),
    "analytics_checkpoint": ([], None, 2),
    "state_layout": ([], None, 10),
    "memory_stage_cost": ([], None, 2),
    "hot_path": ([], None, 1),
    "gil_convoy": ([], None, 4),
    "clustering_quality": ([], None, 3),
    "locomo": ([], _has_locomo, 15),
    "dashboard_render": ([], _has_chromium, 3),
    "peers": ([], _has_peers, 15),
}


def _fmt(x: float, digits: int = 2) -> str:
    return f"{x:,.{digits}f}"


def _p(lat: dict[str, Any]) -> str:
    return f"{_fmt(lat['p50_ms'])} / {_fmt(lat['p95_ms'])} / {_fmt(lat['p99_ms'])}"


def headline(name: str, d: dict[str, Any]) -> str:
    """One line of the figures each benchmark exists for (its goal beside it)."""
    if name == "throughput":
        own = d["pipeline_without_model"]["events_per_s"]
        side = "".join(
            f"; {b} events/s now ÷ "
            + ", ".join(f"{name}'s {_fmt(r)}×" for name, r in c["now_to"].items())
            for b, c in d.get("checkouts", {}).items()
        )
        ratio = d.get("pipeline_to_ceiling_ratio")  # absent in a hashing-only run
        head = "" if ratio is None else f"pipeline ÷ model ceiling **{_fmt(ratio)}** (goal ≥ 0.9); "
        return f"{head}hashing embedder {_fmt(own, 0)} events/s (goal ≥ 10,000){side}"
    if name == "profile_worker":
        parts = ", ".join(
            f"{k} {_fmt(v)}" for k, v in list(d["gil_ms_per_event_by_part"].items())[:5]
        )
        return (
            f"{_fmt(d['gil_ms_per_event'])} ms of GIL per event ({d['embedder']} embedder, "
            f"GIL held {_fmt(100 * d['gil_held_share'], 0)}% of the time): {parts}"
        )
    if name == "freshness":
        parts = []
        for r in d["runs"]:
            lat = r.get("half_rate", {}).get("recallable", {})
            if lat.get("n"):
                variant = r.get("variant", "default")
                name_ = r["backend"] if variant == "default" else f"{r['backend']}@{variant}"
                parts.append(
                    f"{name_} at {_fmt(r['half_rate']['target_rate'], 0)} events/s: "
                    f"p50 / p95 / p99 {_p(lat)} ms, {r['half_rate']['missed']} missed"
                )
        return "publish → recallable, " + "; ".join(parts) + " (goal p99 ≤ 1,000 ms)"
    if name == "gc_settings":
        r, py, ours = (
            d["ratios_to_python_default"],
            *(d["variants"][k] for k in ("python_default", "default")),
        )
        return (
            f"worker defaults ÷ Python's GC defaults: {_fmt(r['default'])}× events/s; GC "
            f"{_fmt(py['gc_seconds_mean'])} → {_fmt(ours['gc_seconds_mean'])} s per "
            f"{d['events']:,} events, full collections {_fmt(py['full_collections_mean'], 1)} → "
            f"{_fmt(ours['full_collections_mean'], 1)}"
        )
    if name == "switch_interval":
        # the key's name is historical: the ratios are to the first interval run
        base = next(iter(next(iter(d["backends"].values()))["ratio_to_5ms"]))
        return (
            "; ".join(
                f"{backend}: "
                + ", ".join(f"{ms} ms {_fmt(r)}×" for ms, r in b["ratio_to_5ms"].items())
                for backend, b in d["backends"].items()
            )
            + f" events/s against {base} ms"
        )
    if name == "hot_path":
        return (
            f"span JSON line {_fmt(d['span_line_speedup'], 2)}x faster than the SDK's, audit "
            f"log line {_fmt(d.get('log_line_speedup', float('nan')), 2)}x; hashing "
            f"embedder {_fmt(d['hashing_speedup'], 2)}x its reference loop"
        )
    if name == "gil_convoy":
        r = d["ratios"]
        base, alone = d["results"]["1 ms"], d["results"]["1 ms"]["alone"]
        return (
            f"{d['rows_per_agent']:,}-row search p50 {_fmt(alone['p50_ms'])} ms alone, "
            f"{_fmt(base['pure_python']['p50_ms'])} ms beside a busy Python thread (1 ms "
            f"interval); 0.1 ms while searching cuts its p50 / p99 "
            f"{_fmt(r['recall_interval_gain_p50_beside_pure_python'])}× / "
            f"{_fmt(r['recall_interval_gain_p99_beside_pure_python'])}×"
        )
    if name == "heap_census":
        last = d["steps"][-1]
        return (
            f"{_fmt(d['per_memory'], 1)} tracked objects per memory (commit {d['commit']}); "
            f"a full collection at {last['memories']:,} memories "
            f"{_fmt(last['full_collection_s'] * 1000, 0)} ms"
        )
    if name == "recall":
        v = d["verdict"]
        if "hot_p99_ms_at_100k" in v:
            return (
                f"in process at 100k: hot index p99 {_fmt(v['hot_p99_ms_at_100k'])} ms (goal "
                f"< 20), {_fmt(v['hot_one_agent_p99_over_brute_p99_at_100k'])}× brute force "
                f"(goal ≤ 3), recall@10 {_fmt(v['hot_recall_at_10_min'])} (goal ≥ 0.98)"
            )
        n, size = max(d["sizes"].items(), key=lambda kv: int(kv[0]))  # a run without 100k
        lat = size["latency"]
        over = size["ratios"]["hot_one_agent_p99_over_brute_force_p99"]
        return (
            f"in process at {int(n):,}: hot index over 100 agents p50 / p95 / p99 "
            f"{_p(lat['hot_100_agents'])} ms; all in one agent p99 "
            f"{_fmt(lat['hot_one_agent']['p99_ms'])} ms ({_fmt(over)}× brute force); "
            f"recall@10 {_fmt(min(size['recall_at_10'].values()))}"
        )
    if name == "recall_http":
        out = []
        for n, layouts in d["sizes"].items():
            for layout, r in layouts.items():
                lat = r.get("latency", {}).get("http_uncached")
                first = r.get("latency", {}).get("http_first_recall", {})
                if lat and lat.get("n"):
                    warm = f" (first recall p50 {_fmt(first['p50_ms'])})" if first.get("n") else ""
                    out.append(f"{int(n):,} {layout}: {_p(lat)}{warm}")
        return "HTTP uncached p50 / p95 / p99 ms: " + "; ".join(out) + " (goal p99 < 20 at 100k)"
    if name == "recall_hop":
        r = d["ratios_to_owner"]
        return (
            f"{d['events']:,} memories, HTTP p50 / p95 / p99 ms: owner's recall process "
            f"{_p(d['latency']['owner'])}; through the other's recall process "
            f"{_p(d['latency']['hop'])} (p50 {_fmt(r['hop']['p50_ms'])}×); through the other "
            f"worker's /recall {_p(d['latency']['via_worker'])} "
            f"(p50 {_fmt(r['via_worker']['p50_ms'])}×)"
        )
    if name == "growth":
        out = [
            f"{c['memories']:,}: {_fmt(c['load']['events_per_s'], 0)} events/s, recall p99 "
            f"{_fmt(c['latency']['http_uncached']['p99_ms'])} ms, "
            f"{_fmt(c['rss_bytes']['total'] / 2**30)} GiB"
            for c in d["checkpoints"]
        ]
        for variant, ratios in (d.get("ratios") or {}).items():
            out.append(
                f"events/s ÷ {variant}'s: "
                + ", ".join(f"{int(n):,} {_fmt(r)}×" for n, r in ratios.items())
            )
        return "; ".join(out) or "no checkpoint reached"
    if name == "population_near":
        return "; ".join(
            f"{run['agents']:,} agents, radius {float(r):g}: grid "
            f"{_fmt(v['grid']['p50_ms'], 3)} ms vs scan {_fmt(v['scan']['p50_ms'], 3)} ms "
            f"({_fmt(v['scan_over_grid_p50'], 1)}×)"
            for run in d["sizes"]
            for r, v in run["radii"].items()
            if float(r) <= 20
        )
    if name == "memory_bytes":
        return "; ".join(
            f"{part}: " + ", ".join(f"{k} {_fmt(b, 0)}" for k, b in v.items()) + " bytes per memory"
            for part, v in d["parts"].items()
        )
    if name == "analytics_checkpoint":
        return "; ".join(
            f"{r['memories']:,} memories: to_bytes {_fmt(r['objects']['dump_ms_median'], 0)} → "
            f"{_fmt(r['columns']['dump_ms_median'], 0)} ms "
            f"({_fmt(r['ratios_objects_over_columns']['dump'], 1)}×), from_bytes "
            f"{_fmt(r['objects']['load_ms_median'], 0)} → "
            f"{_fmt(r['columns']['load_ms_median'], 0)} ms"
            + (
                f", longest stall of another thread {_fmt(r['columns']['stall_ms_median'], 0)} ms"
                if "stall_ms_median" in r["columns"]
                else ""
            )
            for r in d["sizes"]
        )
    if name == "scaling":
        out = []
        for backend, b in d["backends"].items():
            rates = ", ".join(f"{r['workers']}w {_fmt(r['events_per_s'], 0)}" for r in b["runs"])
            out.append(f"{backend}: {rates} events/s")
        return "; ".join(out)
    if name == "locomo":
        o = d["overall"]
        return (
            f"evidence R@10 project **{_fmt(o['project']['r@10'], 3)}** vs dense "
            f"{_fmt(o['dense']['r@10'], 3)} (goal ≥ 0.55, never below dense)"
        )
    if name == "peers":
        r = d["ratios"]
        return (
            f"ours ÷ naive {_fmt(r['ours_to_naive'])}×, ÷ naive batched "
            f"{_fmt(r['ours_to_naive_batched'])}×, ÷ mem0 {_fmt(r['ours_to_mem0'])}×; "
            f"mem0 search p99 ÷ our recall p99 {_fmt(r['mem0_search_p99_to_our_recall_http_p99'])}×"
        )
    return "see the JSON"


# results of a benchmark's variant runs worth a line of their own: file name -> benchmark
VARIANT_RESULTS = {
    # the recall process (ARGOS_RECALL_PORT) beside the worker's own /recall, at 100k
    "recall_http_recall_process100k": "recall_http",
    "recall_http_recall_process100k_underload": "recall_http",
    # ... and with the stage threads at nice 10 (ARGOS_STAGE_THREAD_NICE), two runs
    "recall_http_rp_nice100k_underload": "recall_http",
    "recall_http_rp_nice100k_underload_b": "recall_http",
    # the recall process alone, idle stages, with the warm's parts timed
    "recall_http_rp_warm100k": "recall_http",
    # an agent's first recall there: the warm's format before and after, and the prefetch
    "recall_http_warm_ab": "recall_http",
    # the recall process on by default beside ARGOS_RECALL_PROCESS=false (the worker's own)
    "recall_http_default100k": "recall_http",
    # the hop to another worker's recall process: a second run at 10k, and 100k per worker
    "recall_hop_10k_b": "recall_hop",
    "recall_hop_200k": "recall_hop",
    # one worker to 500k after the near-duplicate and count fixes (before the members fix)
    "growth_to500k": "growth",
    # ARGOS_GC_REFREEZE on (the default) beside off, one worker to 300k
    "growth_refreeze": "growth",
    # the record batches (2026-11-29) beside 06f2f3b, hashing only, 10,000 events, 4 rounds
    "throughput_hashing10k_ab": "throughput",
    # the hot index in process at 1M memories (no Milvus, no HNSW at that size)
    "recall_1m": "recall",
    # ARGOS_SWITCH_INTERVAL_MS 1 (the default) vs 5 after the record batches
    "switch_interval_after_batches": "switch_interval",
    # ... and recall over HTTP at 10k under load with each (two runs)
    "recall_http_si5_underload10k": "recall_http",
    "recall_http_si5_underload10k_b": "recall_http",
}


def summary(results: Path) -> str:
    lines = [
        "# Benchmark summary",
        "",
        "Rebuilt by `python -m bench.all` from the JSON files in this folder (the latest run of "
        "each; the date and machine are each file's own). Details and context: the README's "
        "Benchmarks section.",
        "",
        "| benchmark | when, machine | headline |",
        "|---|---|---|",
    ]
    for name, kind in [(b, b) for b in BENCHES] + list(VARIANT_RESULTS.items()):
        path = results / f"{name}.json"
        if not path.exists():
            if name in BENCHES:  # a variant run's file is optional
                lines.append(f"| {name} | — | not run yet |")
            continue
        d = json.loads(path.read_text())
        m = d.get("machine", {})
        when = f"{m.get('date', '?')[:16]}, {m.get('cpu', '?')}, {m.get('cores', '?')} cores"
        try:
            text = headline(kind, d)
        except (KeyError, TypeError, IndexError) as exc:
            text = f"see the JSON ({type(exc).__name__}: {exc})"
        lines.append(f"| [{name}]({name}.json) | {when} | {text} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated names (see --list)")
    ap.add_argument("--skip", default="", help="comma-separated names")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and stop")
    ap.add_argument("--summary", action="store_true", help="only rebuild summary.md")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.list:
        for name, (extra, _, minutes) in BENCHES.items():
            print(f"{name:20s} ~{minutes:3d} min  python -m bench.{name} {' '.join(extra)}")
        return 0
    only = {n for n in args.only.split(",") if n}
    skip = {n for n in args.skip.split(",") if n}
    unknown = (only | skip) - set(BENCHES)
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(sorted(unknown))} (see --list)")
    runs: dict[str, Any] = {}
    if not args.summary:
        for name, (extra, check, _) in BENCHES.items():
            if (only and name not in only) or name in skip:
                continue
            why = check() if check is not None else None
            if why:
                print(f"[bench.all] {name}: skipped, {why}", flush=True)
                runs[name] = {"skipped": why}
                continue
            print(f"[bench.all] {name} ...", flush=True)
            t0 = time.perf_counter()
            rc = subprocess.call([sys.executable, "-m", f"bench.{name}", *extra])  # noqa: S603
            runs[name] = {"rc": rc, "seconds": time.perf_counter() - t0}
            print(f"[bench.all] {name}: rc {rc} in {runs[name]['seconds']:.0f} s", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.md").write_text(summary(args.out))
    print(f"[bench.all] wrote {args.out / 'summary.md'}")
    failed = [n for n, r in runs.items() if r.get("rc")]
    if failed:
        print(f"[bench.all] failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
