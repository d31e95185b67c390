"""The analytics checkpoint's cost as a namespace's remembered memories grow: objects vs columns.

The analytics stage checkpoints its whole state every ``ARGOS_ANALYTICS_CHECKPOINT_S`` (30 s)
on its own thread; while it pickles, that thread competes with the recall handlers and the
other stages for the GIL. Its size is dominated by what the recall model remembers per memory
(``_Memory``, up to ``memory_cap``) and its open samples (``_Pending``, up to ``pending_cap``).
This bench fills one namespace with N memories and min(N/2, 50k) open samples (random values,
realistic ids) and times ``to_bytes`` and ``from_bytes`` for both layouts in the same process,
alternating, ``--repeat`` times each:

- ``objects``: checkpoint version 1, every row pickled as an object (through the slotted
  dataclass's Python ``__getstate__``);
- ``columns_v2``: version 2, the rows as one list per field, pickled with the rest;
- ``columns``: version 3 (the default since 2026-11-28), each of those lists pickled on its
  own, so the GIL can pass between them.

Besides the times, the longest stall of another thread while ``to_bytes`` runs (a thread that
sleeps 0.5 ms in a loop, at the worker's 1 ms switch interval; its longest gap): what a recall
on the worker's event loop may wait out.
    python -m bench.analytics_checkpoint [--sizes 10000 100000] [--repeat 3]

Writes ``bench/results/analytics_checkpoint.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import pickle
import random
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.machine import describe, machine_title, write_results
from pipelines import analytics as mod
from pipelines.analytics import RECALL_FEATURES, Analytics, _Memory, _Pending

RESULTS = Path(__file__).parent / "results"
LAYOUTS = ("objects", "columns_v2", "columns")


def filled(n: int, seed: int = 0) -> Analytics:
    a = Analytics()
    ns = a._ns("bench")
    rng = random.Random(seed)
    for i in range(n):
        ns.memories[f"agent-{i % 100}:{rng.getrandbits(64):016x}"] = _Memory(
            1.7e9 + i,
            rng.choice(("episodic", "semantic", "procedural")),
            rng.random(),
            rng.random(),
            rng.uniform(-1, 1),
            rng.random() < 0.05,
            rng.randrange(5),
            f"agent-{i % 100}/c{rng.randrange(1000)}",
            rng.randrange(1, 50),
            rng.random(),
        )
    for i, mid in zip(range(min(n // 2, a.params.pending_cap)), ns.memories, strict=False):
        ns.pending[mid] = _Pending(
            tuple(rng.random() for _ in RECALL_FEATURES),
            1.7e9 + i,
            1.7e9 + i + 3600,
            rng.random(),
            rng.random(),
            rng.random() < 0.5,
            f"agent-{i % 100}",
        )
    return a


def as_objects(a: Analytics) -> bytes:
    """A version 1 checkpoint: the namespace pickled as its objects."""
    saved = mod._Namespace.__getstate__
    try:
        mod._Namespace.__getstate__ = lambda self: self.__dict__.copy()  # type: ignore[method-assign]
        return pickle.dumps(
            {"format": mod.CHECKPOINT_FORMAT, "version": 1, "analytics": a},
            protocol=pickle.HIGHEST_PROTOCOL,
        )
    finally:
        mod._Namespace.__getstate__ = saved  # type: ignore[method-assign]


def as_columns_v2(a: Analytics) -> bytes:
    """A version 2 checkpoint: the columns as lists, pickled with the rest."""
    saved = mod._dumped
    try:
        mod._dumped = lambda column: column  # type: ignore[assignment,return-value]
        return pickle.dumps(
            {"format": mod.CHECKPOINT_FORMAT, "version": 2, "analytics": a},
            protocol=pickle.HIGHEST_PROTOCOL,
        )
    finally:
        mod._dumped = saved


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def stalled(fn: Any, *args: Any) -> tuple[float, float, Any]:
    """``fn(*args)``'s time, the longest gap between the ticks of a thread that sleeps 0.5 ms
    in a loop meanwhile (seconds), and its result."""
    gaps: list[float] = []
    stop = threading.Event()

    def tick() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            time.sleep(0.0005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    before = sys.getswitchinterval()
    sys.setswitchinterval(0.001)  # the worker's (ARGOS_SWITCH_INTERVAL_MS)
    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        time.sleep(0.02)
        gaps.clear()
        dt, out = timed(fn, *args)
    finally:
        stop.set()
        ticker.join()
        sys.setswitchinterval(before)
    return dt, max(gaps, default=0.0), out


def measure(n: int, repeat: int) -> dict[str, Any]:
    a = filled(n)
    runs: dict[str, dict[str, list[float]]] = {
        k: {"dump_s": [], "load_s": [], "stall_s": []} for k in LAYOUTS
    }
    size: dict[str, int] = {}
    dumps = {"objects": as_objects, "columns_v2": as_columns_v2, "columns": Analytics.to_bytes}
    for _ in range(repeat):
        for layout in LAYOUTS:
            dt, stall, blob = stalled(dumps[layout], a)
            runs[layout]["stall_s"].append(stall)
            lt, back = timed(Analytics.from_bytes, blob)
            ns, nb = a.namespaces["bench"], back.namespaces["bench"]
            assert nb.memories == ns.memories and nb.pending == ns.pending  # noqa: S101
            runs[layout]["dump_s"].append(dt)
            runs[layout]["load_s"].append(lt)
            size[layout] = len(blob)
    out: dict[str, Any] = {"memories": n, "open_samples": len(a.namespaces["bench"].pending)}
    for layout, r in runs.items():
        out[layout] = {
            "dump_ms_median": 1000 * statistics.median(r["dump_s"]),
            "load_ms_median": 1000 * statistics.median(r["load_s"]),
            "stall_ms_median": 1000 * statistics.median(r["stall_s"]),
            "bytes": size[layout],
            "dump_ms": [round(1000 * x, 2) for x in r["dump_s"]],
            "load_ms": [round(1000 * x, 2) for x in r["load_s"]],
        }
    o, c, v2 = out["objects"], out["columns"], out["columns_v2"]
    out["ratios_v2_over_v3"] = {
        "dump": v2["dump_ms_median"] / c["dump_ms_median"],
        "stall": v2["stall_ms_median"] / c["stall_ms_median"],
    }
    out["ratios_objects_over_columns"] = {
        "dump": o["dump_ms_median"] / c["dump_ms_median"],
        "load": o["load_ms_median"] / c["load_ms_median"],
        "bytes": o["bytes"] / c["bytes"],
    }
    return out


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    sizes = [r["memories"] for r in out["sizes"]]
    for ax, key, title in zip(
        axes,
        ("dump_ms_median", "load_ms_median", "stall_ms_median"),
        ("to_bytes", "from_bytes", "longest stall of another thread (to_bytes)"),
        strict=True,
    ):
        for layout in LAYOUTS:
            ax.plot(sizes, [r[layout][key] for r in out["sizes"]], "o-", label=layout)
        ax.set_xscale("log")
        ax.set_xlabel("memories remembered in the namespace")
        ax.set_ylabel("ms (median)")
        ax.set_title(title)
        ax.legend()
    fig.suptitle(f"Analytics checkpoint ({machine_title(out)})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    out: dict[str, Any] = {"machine": describe(), "config": {"repeat": args.repeat}, "sizes": []}
    for n in args.sizes:
        r = measure(n, args.repeat)
        out["sizes"].append(r)
        print(
            f"[{n}] to_bytes objects {r['objects']['dump_ms_median']:.0f} ms, columns "
            f"{r['columns']['dump_ms_median']:.0f} ms "
            f"({r['ratios_objects_over_columns']['dump']:.1f}x); "
            f"from_bytes {r['objects']['load_ms_median']:.0f} vs "
            f"{r['columns']['load_ms_median']:.0f} ms; "
            f"{r['objects']['bytes'] / 2**20:.1f} vs {r['columns']['bytes'] / 2**20:.1f} MiB; "
            f"longest stall v2 {r['columns_v2']['stall_ms_median']:.0f} ms, v3 "
            f"{r['columns']['stall_ms_median']:.0f} ms",
            flush=True,
        )
    write_results(out, args.out, "analytics_checkpoint", plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
