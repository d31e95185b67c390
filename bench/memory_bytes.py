"""Bytes per memory two of a worker's per-memory structures keep, in process under
``tracemalloc`` (the biggest Python parts in ``bench.heap_census --bytes``, beside the hot
index's rows and the L2 table's values):

- the memory stage's clustering (``pipelines/clustering.py``): one agent, N unit vectors around
  C centres, each new memory tested for a near-duplicate (``nearest``) and then placed
  (``add``), as the memory stage does;
- BM25 (``pipelines/lexical.py``): one agent's index of N simulated memories' texts
  (``pipelines.simulation``), each with ``--unique-words`` words of its own as in
  ``bench.recall_http``'s texts (0: the plain texts' small shared vocabulary); and, where
  ``../shared/data/locomo-dev`` is, of the LoCoMo dev conversations' turns (real words).

    python -m bench.memory_bytes [--memories 4000] [--before CHECKOUT]

``--before`` loads the same two modules from another copy of the repository too (e.g. a git
worktree of an older commit) and measures both copies in this one run. Writes
``bench/results/memory_bytes.{json,png}``.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import random
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from bench.machine import describe, machine_title, write_results

RESULTS = Path(__file__).parent / "results"
HERE = Path(__file__).resolve().parent.parent


def _load(checkout: Path, module: str, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, checkout / "pipelines" / f"{module}.py")
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded  # dataclasses look their module up
    spec.loader.exec_module(loaded)
    return loaded


def _held(build: Callable[[], object], n: int) -> float:
    """Traced bytes per memory still held by what ``build`` returns."""
    gc.collect()
    tracemalloc.start()
    kept = build()
    gc.collect()
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    return held / n


def clustering(module: ModuleType, vecs: np.ndarray) -> float:
    def build() -> object:
        clusters = module.AgentClusters("agent")
        for i, v in enumerate(vecs):
            clusters.nearest(v)
            clusters.add(f"m{i}", v, float(i))
        return clusters

    return _held(build, len(vecs))


def lexical(module: ModuleType, texts: list[str]) -> float:
    def build() -> object:
        index = module.LexicalIndex()
        for i, text in enumerate(texts):
            index.set(i, text)
        return index

    return _held(build, len(texts))


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = list(out["parts"])
    names = list(out["parts"][parts[0]])
    fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        xs = [i + j * width for i in range(len(parts))]
        ax.bar(xs, [out["parts"][p][name] for p in parts], width, label=name)
    ax.set_xticks([i + width * (len(names) - 1) / 2 for i in range(len(parts))], parts)
    ax.set_ylabel("traced bytes kept per memory")
    cfg = out["config"]
    title = f"{cfg['memories']:,} memories of one agent"
    if cfg.get("locomo_turns"):
        title += f" (lexical_locomo: the {cfg['locomo_turns']:,} turns of LoCoMo dev)"
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.suptitle(machine_title(out), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memories", type=int, default=4000)
    ap.add_argument("--centres", type=int, default=40)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--unique-words", type=int, default=4)
    ap.add_argument("--before", type=Path, help="another checkout, measured too")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    from pipelines.simulation import Population

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(args.centres, args.dim))
    picks = rng.integers(0, args.centres, args.memories)
    vecs = (centres[picks] + 0.6 * rng.normal(size=(args.memories, args.dim))).astype(np.float32)
    words = random.Random(1)
    texts = [
        " ".join([e.content, *(f"w{words.randrange(10**9)}" for _ in range(args.unique_words))])
        for e in Population(20, seed=1, namespace="bench").events(args.memories)
    ]
    checkouts = {"now": HERE} | ({"before": args.before} if args.before else {})
    from bench.locomo import LOCOMO, load

    locomo = [t.text for p in sorted(LOCOMO.glob("*.json")) for t in load(p).turns]
    parts: dict[str, dict[str, float]] = {"clustering": {}, "lexical": {}}
    if locomo:
        parts["lexical_locomo"] = {}
    for name, path in checkouts.items():
        parts["clustering"][name] = clustering(_load(path, "clustering", f"cl_{name}"), vecs)
        parts["lexical"][name] = lexical(_load(path, "lexical", f"lex_{name}"), texts)
        if locomo:
            module = _load(path, "lexical", f"lexl_{name}")
            parts["lexical_locomo"][name] = lexical(module, locomo)
    out: dict[str, Any] = {
        "machine": describe(),
        "config": {
            "memories": args.memories,
            "centres": args.centres,
            "dim": args.dim,
            "unique_words_per_text": args.unique_words,
            "locomo_turns": len(locomo),
        },
        "parts": parts,
    }
    if args.before:
        out["before_over_now"] = {p: v["before"] / v["now"] for p, v in parts.items()}
    for part, v in parts.items():
        print(part, ", ".join(f"{k}: {b:,.0f} bytes per memory" for k, b in v.items()))
    write_results(out, args.out, "memory_bytes", plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
