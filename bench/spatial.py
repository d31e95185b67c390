"""Radius recalls with and without the spatial grid (``pipelines.spatial``), side by side.

One agent holds N memories at uniform positions over a W x W world (the worst case for a scan:
every radius recall of this agent would test all N rows). For each radius, the same queries (a
random point, a random query vector) go to two hot indexes holding the same rows, one with the
grid (``ARGOS_SPATIAL_CELL`` default) and one without, interleaved query by query so a noisy
neighbour hits both alike. The answers are compared (they must be equal) and the latency ratio
is the result; the build cost of the grid is timed too.

    python -m bench.spatial [--n 100000] [--world 1000] [--queries 300]

Writes ``bench/results/spatial.json`` and ``bench/results/spatial.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import describe
from bench.recall import pct
from pipelines.hot_index import SPATIAL_CELL, HotIndex, NearFilter, RecallFilters
from pipelines.store import StoredMemory

RESULTS = Path(__file__).parent / "results"
DIM = 384
RADII = (5.0, 20.0, 100.0, 400.0)


def rows(n: int, world: float, seed: int) -> list[StoredMemory]:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, DIM), dtype=np.float32)
    pts = rng.uniform(0.0, world, (n, 2))
    return [
        StoredMemory(
            f"m{i}",
            "agent",
            "bench",
            "episodic",
            f"memory {i}",
            0.5,
            0.0,
            "",
            vecs[i],
            {"position": {"x": float(pts[i, 0]), "y": float(pts[i, 1])}},
        )
        for i in range(n)
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--world", type=float, default=1000.0)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    data = rows(args.n, args.world, args.seed)
    build: dict[str, float] = {}
    ix: dict[str, HotIndex] = {}
    for name, cell in (("grid", SPATIAL_CELL), ("scan", None)):
        t = time.perf_counter()
        ix[name] = HotIndex(DIM, spatial_cell=cell)
        for lo in range(0, args.n, 10_000):
            ix[name].upsert(data[lo : lo + 10_000])
        build[name] = time.perf_counter() - t
    del data
    rng = np.random.default_rng(args.seed + 1)
    out: dict[str, Any] = {
        "machine": describe(),
        "config": {
            "memories_one_agent": args.n,
            "world": args.world,
            "cell": SPATIAL_CELL,
            "queries_per_radius": args.queries,
            "k": 10,
            "weights": "defaults (relevance, recency, importance; no query words)",
        },
        "build_s": build,
        "radii": {},
    }
    for r in RADII:
        times: dict[str, list[float]] = {"grid": [], "scan": []}
        same = 0
        inside = []
        for _ in range(args.queries):
            x, y = rng.uniform(0, args.world, 2)
            q = rng.standard_normal(DIM).astype(np.float32)
            f = RecallFilters("bench", "agent", near=NearFilter(float(x), float(y), None, r))
            got = {}
            for name in ("grid", "scan"):
                t = time.perf_counter()
                got[name] = [h.memory.memory_id for h in ix[name].search(q, f, k=10)]
                times[name].append(time.perf_counter() - t)
            same += got["grid"] == got["scan"]
            inside.append(len(got["scan"]))
        lat = {name: pct(v) for name, v in times.items()}
        out["radii"][str(r)] = {
            "latency": lat,
            "same_answers": same / args.queries,
            "expected_rows_inside": args.n * np.pi * r * r / args.world**2,
            "scan_p50_over_grid_p50": lat["scan"]["p50_ms"] / lat["grid"]["p50_ms"],
            "scan_p99_over_grid_p99": lat["scan"]["p99_ms"] / lat["grid"]["p99_ms"],
        }
        print(
            f"r={r}: grid p50 {lat['grid']['p50_ms']:.2f} ms, scan p50 "
            f"{lat['scan']['p50_ms']:.2f} ms, same answers {same}/{args.queries}",
            flush=True,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "spatial.json").write_text(json.dumps(out, indent=2) + "\n")
    plot(out, args.out / "spatial.png")
    return 0


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    radii = [float(r) for r in out["radii"]]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, colour in (("grid", "tab:green"), ("scan", "tab:grey")):
        for key, style in (("p50_ms", "-"), ("p99_ms", "--")):
            ys = [out["radii"][str(r)]["latency"][name][key] for r in radii]
            ax.plot(radii, ys, style, marker="o", color=colour, label=f"{name} {key[:3]}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("radius (world units)")
    ax.set_ylabel("radius recall latency (ms)")
    ax.grid(alpha=0.3)
    ax.legend()
    m, c = out["machine"], out["config"]
    ax.set_title(
        f"{c['memories_one_agent']:,} memories of one agent over a {c['world']:.0f}^2 world, "
        f"cell {c['cell']}\n{m['cores']} cores, {m['cpu'][:40]}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
