"""The GIL switch interval (``ARGOS_SWITCH_INTERVAL_MS``) side by side: events/s per backend.

A worker runs one event-loop thread (Kafka I/O, HTTP, recall) beside one thread per stage. Every
socket call and every model call (ONNX Runtime) releases the GIL; taking it back while a stage
thread computes in Python waits until that thread is asked to drop it, which Python does after
the switch interval (5 ms by default). A shorter interval shortens those waits (recall tails,
``bench.recall_http --variant``) and costs more switches; this measures what it does to
throughput: fresh workers on one local broker, the same simulated events, the intervals
alternated ``--rounds`` times per backend (hashing: the pipeline's own cost; onnx: the model).

    python -m bench.switch_interval [--events 6000] [--rounds 2] [--backends hashing,onnx]

Writes ``bench/results/switch_interval.json`` and ``bench/results/switch_interval.png``.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.machine import describe, machine_title, write_results
from bench.recall_http import _raise_exit
from bench.throughput import alternated
from infra.local_kafka import LocalKafka
from pipelines.simulation import Population

RESULTS = Path(__file__).parent / "results"
INTERVALS_MS = ("5", "1", "0.5")  # Python's default first: the base of the ratios


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = list(out["backends"])
    fig, axes = plt.subplots(1, len(backends), figsize=(5 * len(backends), 4), squeeze=False)
    for ax, backend in zip(axes[0], backends, strict=True):
        per = out["backends"][backend]
        names = list(per["events_per_s"])
        for x, name in enumerate(names):
            runs = per["events_per_s"][name]
            ax.bar(x, statistics.mean(runs), color="tab:blue", alpha=0.7)
            ax.scatter([x] * len(runs), runs, color="black", s=12, zorder=3)
            ax.text(
                x,
                statistics.mean(runs) * 1.02,
                f"{per['ratio_to_5ms'][name]:.2f}x",
                ha="center",
                fontsize=8,
            )
        ax.set_xticks(range(len(names)), [f"{n} ms" for n in names])
        ax.set_xlabel("ARGOS_SWITCH_INTERVAL_MS")
        ax.set_ylabel("events/s (bar: mean, dots: runs)")
        ax.set_title(f"{backend} embedder")
    fig.suptitle(f"throughput by GIL switch interval, {out['events']} events, {machine_title(out)}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=6000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--backends", default="hashing,onnx")
    ap.add_argument("--intervals", default=",".join(INTERVALS_MS), help="ms, the first is the base")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_exit)
    events = list(Population(50, seed=1, namespace="bench").events(args.events))
    intervals = args.intervals.split(",")
    variants = {ms: {"ARGOS_SWITCH_INTERVAL_MS": ms} for ms in intervals}
    out: dict[str, Any] = {"machine": describe(), "events": args.events, "backends": {}}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, LocalKafka(Path(tmp) / "kafka") as kafka:
        for backend in args.backends.split(","):
            runs, _ = alternated(
                backend, kafka.bootstrap_servers, events, Path(tmp), variants, args.rounds
            )
            base = statistics.mean(runs[intervals[0]])
            out["backends"][backend] = {
                "events_per_s": runs,
                "ratio_to_5ms": {ms: statistics.mean(r) / base for ms, r in runs.items()},
            }
            out["total_s"] = time.perf_counter() - t0
            write_results(out, args.out, "switch_interval", plot)
    print({b: v["ratio_to_5ms"] for b, v in out["backends"].items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
