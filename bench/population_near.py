"""The namespace-wide spatial index: "who is around (x, y)?" through the grid vs a full scan.

One namespace's population state (``pipelines.population``) with A agents at uniform positions
over a W x W world, each with 3 agent clusters drawn from a few shared themes. For each radius,
the same random points go to two copies of that state, one with the default grid
(``ARGOS_POPULATION_CELL``) and one whose single cell holds every agent (a full scan), query
by query; the answers must be equal, and the latency ratio is the result.

    python -m bench.population_near [--agents 10000 100000] [--world 1000] [--queries 200]

Writes ``bench/results/population_near.json`` and ``bench/results/population_near.png``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import describe, machine_title, write_results
from bench.recall import pct
from pipelines.population import (
    NamespaceClusters,
    PopulationParams,
    encode_centroid,
    from_state,
    near,
    to_state,
)
from pipelines.settings import Settings
from schemas import ClusterEvent, Position

RESULTS = Path(__file__).parent / "results"
RADII = (5.0, 20.0, 100.0, 400.0)
THEMES, DIM = 24, 32


def build(agents: int, world: float, seed: int) -> NamespaceClusters:
    rng = np.random.default_rng(seed)
    themes = rng.standard_normal((THEMES, DIM))
    params = PopulationParams(cell=Settings().population_cell)
    nc = NamespaceClusters("bench", params)
    for a in range(agents):
        x, y = rng.uniform(0.0, world, 2)
        for c in range(3):
            vec = themes[rng.integers(THEMES)] + 0.2 * rng.standard_normal(DIM)
            nc.apply(
                ClusterEvent(
                    kind="create",
                    namespace="bench",
                    agent_id=f"agent-{a}",
                    cluster_id=f"agent-{a}/c{c}",
                    size=int(rng.integers(1, 20)),
                    radius=0.1,
                    stability=1.0,
                    event_ts=float(a),
                    centroid_f16=encode_centroid(vec),
                    position=Position(x=float(x), y=float(y)),
                )
            )
    return nc


def measure(agents: int, world: float, queries: int, seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    grid = build(agents, world, seed)
    built = time.perf_counter() - t0
    scan = from_state(to_state(grid), replace(grid.params, cell=1e15))  # one cell: a scan
    rng = np.random.default_rng(seed + 1)
    out: dict[str, Any] = {
        "agents": agents,
        "population_clusters": len(grid.pops),
        "build_s": built,
        "radii": {},
    }
    for r in RADII:
        t_grid, t_scan, touched, found = [], [], [], []
        for x, y in rng.uniform(0.0, world, (queries, 2)):
            t0 = time.perf_counter()
            a = near(grid, float(x), float(y), r)
            t_grid.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            b = near(scan, float(x), float(y), r)
            t_scan.append(time.perf_counter() - t0)
            strip = ("touched_agents",)
            assert {k: v for k, v in a.items() if k not in strip} == {  # noqa: S101
                k: v for k, v in b.items() if k not in strip
            }
            touched.append(a["touched_agents"])
            found.append(len(a["agents"]))
        g, s = pct(t_grid), pct(t_scan)
        out["radii"][str(r)] = {
            "grid": g,
            "scan": s,
            "scan_over_grid_p50": s["p50_ms"] / g["p50_ms"],
            "touched_agents_mean": float(np.mean(touched)),
            "agents_found_mean": float(np.mean(found)),
        }
    return out


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run in out["sizes"]:
        radii = [float(r) for r in run["radii"]]
        for kind, style in (("grid", "o-"), ("scan", "s--")):
            ax.plot(
                radii,
                [run["radii"][str(r)][kind]["p50_ms"] for r in radii],
                style,
                label=f"{run['agents']:,} agents, {kind}",
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("radius (world units)")
    ax.set_ylabel("who is around (x, y): p50 ms")
    ax.set_title(f"Namespace spatial index ({machine_title(out)})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--world", type=float, default=1000.0)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    out: dict[str, Any] = {
        "machine": describe(),
        "config": {k: v for k, v in vars(args).items() if k != "out"}
        | {"cell": Settings().population_cell},
        "sizes": [],
    }
    for n in args.agents:
        run = measure(n, args.world, args.queries, args.seed)
        out["sizes"].append(run)
        for r, v in run["radii"].items():
            print(
                f"[{n} agents, r={r}] grid p50 {v['grid']['p50_ms']:.3f} ms, scan "
                f"{v['scan']['p50_ms']:.3f} ms ({v['scan_over_grid_p50']:.1f}x); "
                f"touched {v['touched_agents_mean']:.0f}, found {v['agents_found_mean']:.0f}",
                flush=True,
            )
    write_results(out, args.out, "population_near", plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
