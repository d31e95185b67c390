"""Throughput with encryption at rest and OpenTelemetry tracing on vs off, side by side.

One broker, the same events, fresh workers (own topics, group and Milvus Lite file) in turn:
``off`` (no keys, no exporter), ``encryption`` (AES-GCM keys set: Milvus content and state
changelogs sealed), ``tracing`` (spans, metrics and audit logs exported as JSON lines to a file
by the console exporter) and ``both``; the whole round runs twice (off, encryption, tracing,
both, then again) so drift on a shared machine shows, and each variant's figure is the mean of
its two runs. With the hashing embedder the model costs ~nothing, so the ratios show the
features' cost against the pipeline's own; with onnx, what a real deployment sees.

    python -m bench.security_overhead [--events 4000] [--backends hashing,onnx]

Writes ``bench/results/security_overhead.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from bench.machine import describe
from bench.throughput import RESULTS, alternated, pipeline
from infra.local_kafka import LocalKafka
from pipelines.crypto import Keyring
from pipelines.simulation import Population


def variants(workdir: Path) -> dict[str, dict[str, str]]:
    keys = {"ARGOS_ENCRYPTION_KEYS": "bench:" + Keyring.generate_key()}
    tracing = {
        "ARGOS_OTEL_EXPORTER": "console",
        "ARGOS_OTEL_CONSOLE_FILE": str(workdir / "otel.jsonl"),
    }
    return {"off": {}, "encryption": keys, "tracing": tracing, "both": {**keys, **tracing}}


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
        for backend in args.backends.split(","):
            runs, _ = alternated(backend, kafka.bootstrap_servers, events, work, variants(work))
            mean = {k: sum(v) / len(v) for k, v in runs.items()}
            out["backends"][backend] = {
                "events_per_s": runs,
                "mean": mean,
                "ratio_to_off": {k: v / mean["off"] for k, v in mean.items()},
            }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "security_overhead.json").write_text(json.dumps(out, indent=2) + "\n")
    plot(out, RESULTS / "security_overhead.png")
    print(json.dumps(out["backends"], indent=1))
    return 0


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = list(out["backends"])
    names = ["off", "encryption", "tracing", "both"]
    fig, axes = plt.subplots(1, len(backends), figsize=(5 * len(backends), 4), squeeze=False)
    for ax, b in zip(axes[0], backends, strict=True):
        mean = out["backends"][b]["mean"]
        ratio = out["backends"][b]["ratio_to_off"]
        bars = ax.bar(names, [mean[n] for n in names])
        for bar, n in zip(bars, names, strict=True):
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                bar.get_height(),
                f"{ratio[n]:.2f}×",
                ha="center",
                va="bottom",
            )
        ax.set_title(f"{b} embedder", fontsize=10)
        ax.set_ylabel("events/s publish → stored (mean of 2)")
    m = out["machine"]
    fig.suptitle(f"{out['events']} events, {m['cores']} cores, {m['cpu'][:40]}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
