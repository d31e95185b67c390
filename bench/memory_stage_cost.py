"""The memory stage's cost of one recall (an access event) as an agent's memory grows.

In-process, the memory stage's batch core (``pipelines.stage_batches.memory_batch``) on one agent
holding N memories (one cluster, as in the recall benchmarks), then 50 batches of one access event
each, timed, with the bytes each writes to the memory table. Both table layouts in the same run,
on the same states: ``whole`` (the agent's whole state per batch, ``ARGOS_STATE_DELTAS=false``)
and ``deltas`` (the default). Before this benchmark's session a recall cost O(N) in both (the
next due time was recomputed over every life).

    python -m bench.memory_stage_cost [--sizes 1000 5000 20000]

Writes ``bench/results/memory_stage_cost.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import describe
from pipelines.agent_log import saved_from
from pipelines.clustering import ClusterParams
from pipelines.ingest import RawRecord
from pipelines.memory_state import MemoryParams
from pipelines.stage_batches import memory_batch
from schemas import AccessEvent, EmbeddedMemory, MemoryEvent

RESULTS = Path(__file__).parent / "results"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
PARAMS = MemoryParams(
    clusters=ClusterParams(join_threshold=-1.0, split_radius=2.0, min_split_size=10**9),
    stable_age_s=1e12,
)


def _memory(i: int, vec: np.ndarray) -> RawRecord:
    ev = MemoryEvent(
        schema_version=1,
        memory_id=f"m{i:06d}",
        agent_id="ann",
        namespace="w",
        event_time=T0 + timedelta(seconds=i),
        type="episodic",
        content=f"memory {i}",
        importance=0.1,
    )
    rec = EmbeddedMemory.build(ev, vec, "bench", 0.0)
    return RawRecord(rec.model_dump_json().encode(), b"ann", "emb")


def _access(i: int, n: int) -> RawRecord:
    a = AccessEvent(
        namespace="w",
        agent_id="ann",
        memory_ids=[f"m{i % n:06d}"],
        event_ts=(T0 + timedelta(seconds=n + i)).timestamp(),
    )
    return RawRecord(a.model_dump_json().encode(), b"ann", "acc")


def _apply(table: dict[bytes, bytes], writes: dict[bytes, bytes | None]) -> None:
    for k, v in writes.items():
        if v is None:
            table.pop(k, None)
        else:
            table[k] = v


def run(n: int, deltas: bool, accesses: int = 50) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    table: dict[bytes, bytes] = {}
    cache: dict[bytes, Any] = {}
    for lo in range(0, n, 1000):
        recs = [
            _memory(i, rng.normal(size=32).astype(np.float32)) for i in range(lo, min(n, lo + 1000))
        ]
        out = memory_batch(
            recs, saved_from(table), PARAMS, "emb", 0.0, None, "b", None, cache, deltas=deltas
        )
        _apply(table, out.states)
    times, written = [], []
    for j in range(accesses):
        states = saved_from(table)
        t0 = time.perf_counter()
        out = memory_batch(
            [_access(j, n)], states, PARAMS, "emb", 0.0, None, "b", None, cache, deltas=deltas
        )
        times.append((time.perf_counter() - t0) * 1000.0)
        written.append(sum(len(v) for v in out.states.values() if v is not None))
        _apply(table, out.states)
    times.sort()
    return {
        "p50_ms": times[len(times) // 2],
        "p90_ms": times[int(len(times) * 0.9)],
        "bytes_written_median": sorted(written)[len(written) // 2],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 5000, 20000])
    args = ap.parse_args(argv)
    out: dict[str, Any] = {"machine": describe(), "accesses": 50, "sizes": {}}
    for n in args.sizes:
        row = {"whole": run(n, False), "deltas": run(n, True)}
        row["whole_to_deltas_time"] = row["whole"]["p50_ms"] / row["deltas"]["p50_ms"]
        out["sizes"][str(n)] = row
        print(
            f"{n} memories: access batch p50 whole {row['whole']['p50_ms']:.2f} ms "
            f"({row['whole']['bytes_written_median']} B) vs deltas "
            f"{row['deltas']['p50_ms']:.2f} ms ({row['deltas']['bytes_written_median']} B)",
            flush=True,
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "memory_stage_cost.json").write_text(json.dumps(out, indent=2) + "\n")
    _plot(out, RESULTS / "memory_stage_cost.png")
    return 0


def _plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [int(n) for n in out["sizes"]]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for name in ("whole", "deltas"):
        axes[0].plot(sizes, [out["sizes"][str(n)][name]["p50_ms"] for n in sizes], "o-", label=name)
        axes[1].plot(
            sizes,
            [out["sizes"][str(n)][name]["bytes_written_median"] / 1024 for n in sizes],
            "o-",
            label=name,
        )
    for ax, title in zip(
        axes, ("ms per access batch (p50)", "KiB written per access batch"), strict=True
    ):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("memories of the agent")
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=8)
    fig.suptitle("memory stage: one recall's access event", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
