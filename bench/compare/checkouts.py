"""Throughput of two or more checkouts of this repository, alternated on one broker.

A setting can be compared within one checkout (``--variant`` in the benchmarks), a code change
cannot: this runs the same events (hashing embedder: the pipeline's own cost; ``--embedder
onnx`` with the model) through a fresh
worker started in each checkout in turn (the worker runs ``python -m pipelines.cli`` in its
checkout's folder), ``--rounds`` times, so drift on a shared machine hits every arm alike.

    git worktree add /tmp/before <commit>
    python -m bench.compare.checkouts --arm before=/tmp/before --arm now=. \\
        --arm now_si5=.:ARGOS_SWITCH_INTERVAL_MS=5 [--rounds 2] [--events 6000]

Writes ``bench/results/checkout_ab.{json,png}`` (``--name``): events/s per run, means, ratios
to the first arm.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.machine import describe
from bench.recall_http import _raise_exit
from bench.throughput import pipeline
from infra.local_kafka import LocalKafka
from pipelines.simulation import Population

RESULTS = Path(__file__).parents[1] / "results"


def _arm(text: str) -> tuple[str, Path, dict[str, str]]:
    """'NAME=PATH[:ENV=V,ENV=V]' -> (NAME, PATH, {ENV: V})."""
    name, sep, rest = text.partition("=")
    path, _, assignments = rest.partition(":")
    env = dict(a.split("=", 1) for a in assignments.split(",") if "=" in a)
    if not sep or not name or not path or not Path(path, "pipelines", "cli.py").exists():
        raise argparse.ArgumentTypeError(f"expected NAME=CHECKOUT[:ARGOS_X=V,...], not {text!r}")
    return name, Path(path).resolve(), env


def plot(out: dict[str, Any], path: Path) -> None:
    """Each arm's runs (dots) and mean (bar), events/s, with the ratio to the first arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.machine import machine_title

    names = list(out["runs"])
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(names) + 2), 4.2))
    ax.bar(names, [out["means"][n] for n in names], color="#9ecae1")
    for i, n in enumerate(names):
        ax.plot([i] * len(out["runs"][n]), out["runs"][n], "o", color="#08519c")
        ax.annotate(
            f"{out['ratios_to_first'][n]:.2f}×",
            (i, out["means"][n]),
            ha="center",
            va="bottom",
        )
    ax.set_ylabel("events/s (runs; bar: mean)")
    ax.set_title(f"{out['events']} events, {out.get('embedder', 'hashing')} embedder, alternated")
    fig.suptitle(machine_title(out), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arm", type=_arm, action="append", required=True)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--events", type=int, default=6000)
    ap.add_argument("--name", default="checkout_ab")
    ap.add_argument(
        "--embedder",
        default="hashing",
        choices=["hashing", "onnx", "torch"],
        help="hashing: the pipeline's own cost; onnx/torch: with the model",
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_exit)
    events = list(Population(50, seed=1, namespace="bench").events(args.events))
    runs: dict[str, list[float]] = {name: [] for name, _, _ in args.arm}
    here = Path.cwd()
    with tempfile.TemporaryDirectory() as tmp, LocalKafka(Path(tmp) / "kafka") as kafka:
        try:
            for _ in range(args.rounds):
                for name, path, env in args.arm:
                    os.chdir(path)  # the worker process starts in (and imports from) this checkout
                    r = pipeline(args.embedder, kafka.bootstrap_servers, events, Path(tmp), env)
                    runs[name].append(r["events_per_s"])
                    print(f"{name}: {r['events_per_s']:.0f} events/s", flush=True)
        finally:
            os.chdir(here)
    means = {k: statistics.mean(v) for k, v in runs.items()}
    first = means[args.arm[0][0]]
    out: dict[str, Any] = {
        "machine": describe(),
        "events": args.events,
        "embedder": args.embedder,
        "arms": {name: {"checkout": str(p), "env": env} for name, p, env in args.arm},
        "runs": runs,
        "means": means,
        "ratios_to_first": {k: v / first for k, v in means.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(out, indent=2) + "\n")
    plot(out, args.out / f"{args.name}.png")
    print(json.dumps(out["ratios_to_first"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
