"""The analytics stage: its events/s cost (pipeline with and without it, same run) and its
models' progressive scores beside their baselines on the simulated stream.

One broker, the same events, fresh workers in turn: ``without`` (``ARGOS_ANALYTICS=false``) and
``with``, twice each, alternating, so drift on a shared machine shows; each figure is the mean
of its two runs. The hashing embedder shows the stage's cost against the pipeline's own; onnx,
against a real deployment's. The progressive scores come from the last ``with`` run's
predictions topic (read by the example subscriber, ``examples/subscribe_predictions.py``).

    python -m bench.analytics_cost [--events 4000] [--backends hashing,onnx]

Writes ``bench/results/analytics_cost.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from bench.machine import describe
from bench.throughput import RESULTS, alternated, pipeline
from examples.subscribe_predictions import follow
from infra.local_kafka import LocalKafka
from pipelines.simulation import Population

VARIANTS = {"without": {"ARGOS_ANALYTICS": "false"}, "with": {"ARGOS_ANALYTICS": "true"}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=4000)
    ap.add_argument("--backends", default="hashing,onnx")
    args = ap.parse_args(argv)
    events = list(Population(50, seed=1, namespace="bench").events(args.events))
    out: dict[str, Any] = {"machine": describe(), "events": args.events, "backends": {}}
    with tempfile.TemporaryDirectory() as tmp, LocalKafka(Path(tmp) / "kafka") as kafka:
        work = Path(tmp)
        pipeline("hashing", kafka.bootstrap_servers, events[:1000], work)  # broker warm-up
        last_with = ""
        for backend in args.backends.split(","):
            runs, last = alternated(backend, kafka.bootstrap_servers, events, work, VARIANTS)
            last_with = str(last["with"]["prefix"])
            mean = {k: sum(v) / len(v) for k, v in runs.items()}
            out["backends"][backend] = {
                "events_per_s": runs,
                "mean": mean,
                "with_to_without": mean["with"] / mean["without"],
            }
        table = follow(kafka.bootstrap_servers, f"{last_with}.analytics.predictions", timeout_s=5)
        out["progressive_scores"] = {
            model: {
                "target": s.target,
                "metric": s.metric,
                "model": s.score,
                "baseline": s.baseline,
                "baseline_score": s.baseline_score,
                "n": s.n,
                "beats_baseline": s.trusted,
            }
            for (_, model), s in sorted(table.items())
        }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "analytics_cost.json").write_text(json.dumps(out, indent=2) + "\n")
    plot(out, RESULTS / "analytics_cost.png")
    print(json.dumps({k: v for k, v in out.items() if k != "machine"}, indent=1))
    return 0


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = list(out["backends"])
    fig, axes = plt.subplots(1, len(backends) + 1, figsize=(5 * (len(backends) + 1), 4))
    for ax, b in zip(axes, backends, strict=False):
        mean = out["backends"][b]["mean"]
        bars = ax.bar(list(mean), list(mean.values()))
        r = out["backends"][b]["with_to_without"]
        ax.text(bars[-1].get_x() + 0.4, bars[-1].get_height(), f"{r:.2f}×", ha="center")
        ax.set_title(f"{b} embedder: events/s publish → stored", fontsize=9)
    ax = axes[-1]
    scores = out["progressive_scores"]
    names = list(scores)
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [scores[n]["model"] or 0 for n in names], 0.4, label="model")
    ax.bar(
        [x + 0.2 for x in xs],
        [scores[n]["baseline_score"] or 0 for n in names],
        0.4,
        label="baseline",
    )
    ax.set_xticks(list(xs), [f"{n}\n({scores[n]['metric']})" for n in names], fontsize=6)
    ax.set_title("progressive scores on the simulated stream", fontsize=9)
    ax.legend()
    m = out["machine"]
    fig.suptitle(f"{out['events']} events, {m['cores']} cores, {m['cpu'][:40]}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
