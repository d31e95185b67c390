"""Bytes per memory the memory stage's clustering keeps (``pipelines/clustering.py``), in
process under ``tracemalloc``: one agent, N unit vectors around C centres, each new memory
tested for a near-duplicate (``nearest``) and then placed (``add``), as the memory stage does.

    python -m bench.cluster_memory [--memories 4000] [--centres 40] [--before CHECKOUT]

``--before`` loads ``pipelines/clustering.py`` of another copy of the repository too (e.g. a
git worktree of an older commit) and measures both in this one run. Writes
``bench/results/cluster_memory.{json,png}``.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import sys
import tracemalloc
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from bench.machine import describe, machine_title, write_results

RESULTS = Path(__file__).parent / "results"
HERE = Path(__file__).resolve().parent.parent


def _load(checkout: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, checkout / "pipelines" / "clustering.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def measure(module: ModuleType, vecs: np.ndarray) -> dict[str, Any]:
    gc.collect()
    tracemalloc.start()
    clusters = module.AgentClusters("agent")
    for i, v in enumerate(vecs):
        clusters.nearest(v)
        clusters.add(f"m{i}", v, float(i))
    gc.collect()
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "bytes_per_memory": held / len(vecs),
        "peak_bytes_per_memory": peak / len(vecs),
        "clusters": len(clusters.clusters),
    }


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(out["runs"])
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(names, [out["runs"][n]["bytes_per_memory"] for n in names])
    ax.set_ylabel("traced bytes kept per memory")
    ax.set_title(
        f"clustering, {out['config']['memories']:,} memories of {out['config']['dim']} "
        f"dimensions around {out['config']['centres']} centres",
        fontsize=9,
    )
    fig.suptitle(machine_title(out), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memories", type=int, default=4000)
    ap.add_argument("--centres", type=int, default=40)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--before", type=Path, help="another checkout, measured too")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(args.centres, args.dim))
    picks = rng.integers(0, args.centres, args.memories)
    vecs = (centres[picks] + 0.6 * rng.normal(size=(args.memories, args.dim))).astype(np.float32)
    checkouts = {"now": HERE} | ({"before": args.before} if args.before else {})
    runs = {
        name: measure(_load(path, f"clustering_{name}"), vecs) for name, path in checkouts.items()
    }
    out: dict[str, Any] = {
        "machine": describe(),
        "config": {"memories": args.memories, "centres": args.centres, "dim": args.dim},
        "runs": runs,
    }
    if "before" in runs:
        out["before_to_now"] = runs["before"]["bytes_per_memory"] / runs["now"]["bytes_per_memory"]
    for name, r in runs.items():
        print(f"{name}: {r['bytes_per_memory']:,.0f} bytes per memory, {r['clusters']} clusters")
    write_results(out, args.out, "cluster_memory", plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
