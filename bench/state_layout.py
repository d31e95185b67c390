"""The memory table's layout: each agent's whole state rewritten per batch vs snapshot + deltas.

One broker, the same simulated events (50 agents), fresh workers in turn with the hashing
embedder (so the model does not hide the state's cost): ``whole`` (``ARGOS_STATE_DELTAS=false``:
every batch writes each touched agent's whole state, the layout before deltas) and ``deltas``
(the default: one delta of what changed, a snapshot once the deltas outgrow it), alternating,
twice each, at each stream length (more events = more memories per agent = bigger states).
Measured: end-to-end events/s and the bytes the memory stage wrote to its changelog topic.

    python -m bench.state_layout [--events 6000,24000]

Writes ``bench/results/state_layout.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from bench.machine import describe
from bench.throughput import RESULTS, pipeline
from infra.local_kafka import LocalKafka
from pipelines.simulation import Population

VARIANTS = {"whole": {"ARGOS_STATE_DELTAS": "false"}, "deltas": {"ARGOS_STATE_DELTAS": "true"}}


def changelog_bytes(kafka: LocalKafka, prefix: str) -> int:
    """Bytes in the memory table's changelog partitions of the run with ``prefix``."""
    topic = f"{prefix}-app-{prefix}-memory-changelog-"
    return sum(
        f.stat().st_size
        for d in kafka.log_dir.iterdir()
        if d.name.startswith(topic)
        for f in d.glob("*.log")
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", default="6000,24000")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    sizes = [int(n) for n in args.events.split(",")]
    out: dict[str, Any] = {
        "machine": describe(),
        "agents": 50,
        "embedder": "hashing",
        "variants": VARIANTS,
        "sizes": {},
    }
    with tempfile.TemporaryDirectory() as tmp, LocalKafka(Path(tmp) / "kafka") as kafka:
        work = Path(tmp)
        events_all = list(Population(50, seed=1, namespace="bench").events(max(sizes)))
        pipeline("hashing", kafka.bootstrap_servers, events_all[:1000], work)  # warm-up
        for n in sizes:
            events = events_all[:n]
            runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
            for _ in range(args.rounds):
                for name, env in VARIANTS.items():
                    r = pipeline("hashing", kafka.bootstrap_servers, events, work, env)
                    r["changelog_bytes"] = changelog_bytes(kafka, str(r["prefix"]))
                    runs[name].append(r)
                    print(
                        f"{n} {name}: {r['events_per_s']:.0f} events/s, "
                        f"{r['changelog_bytes'] / 2**20:.1f} MiB memory changelog",
                        flush=True,
                    )
            mean = {
                name: {
                    k: sum(float(r[k]) for r in rs) / len(rs)
                    for k in ("events_per_s", "changelog_bytes")
                }
                for name, rs in runs.items()
            }
            out["sizes"][str(n)] = {
                "runs": {k: [{**r} for r in v] for k, v in runs.items()},
                "mean": mean,
                "deltas_to_whole_events_per_s": mean["deltas"]["events_per_s"]
                / mean["whole"]["events_per_s"],
                "whole_to_deltas_changelog_bytes": mean["whole"]["changelog_bytes"]
                / max(mean["deltas"]["changelog_bytes"], 1.0),
            }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "state_layout.json").write_text(json.dumps(out, indent=2) + "\n")
    _plot(out, RESULTS / "state_layout.png")
    for n, r in out["sizes"].items():
        print(
            f"{n} events: deltas/whole events/s {r['deltas_to_whole_events_per_s']:.2f}, "
            f"whole/deltas changelog bytes {r['whole_to_deltas_changelog_bytes']:.1f}"
        )
    return 0


def _plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(out["sizes"])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, key, label, scale in (
        (axes[0], "events_per_s", "events/s (publish -> stored)", 1.0),
        (axes[1], "changelog_bytes", "memory changelog, MiB", 2**20),
    ):
        for j, name in enumerate(VARIANTS):
            vals = [out["sizes"][n]["mean"][name][key] / scale for n in sizes]
            ax.bar([i + 0.35 * (j - 0.5) for i in range(len(sizes))], vals, 0.35, label=name)
        ax.set_xticks(range(len(sizes)), [f"{n} events" for n in sizes])
        ax.set_title(label, fontsize=10)
    axes[0].legend(fontsize=8)
    fig.suptitle("memory table: whole state per batch vs snapshot + deltas", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
