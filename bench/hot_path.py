"""Per-item cost of two hot-path helpers, the reference implementation beside ours, in one run.

A py-spy profile of a loading worker (hashing embedder, tracing to a JSON-lines file, the
default) put the OpenTelemetry SDK's ``ReadableSpan.to_json`` at a tenth of the worker's GIL
time, and the hashing embedder at ~6%. This times, in-process and alternated ``--rounds``
times (medians):

- **span line**: the console exporter's formatter for spans shaped like the pipeline's (a batch
  of 256 consumer spans sharing start and end times, Kafka attributes, a remote parent; every
  tenth with an error status and an exception event): the SDK's
  ``span.to_json(indent=None)`` against ``pipelines.telemetry._span_line`` (the same text,
  checked here);
- **log line**: the same for audit log records (a JSON body, inside a recall's span): the
  SDK's ``ReadableLogRecord.to_json(indent=None)`` against ``pipelines.telemetry._log_line``;
- **hashing embedder**: ``HashingEmbedder.embed_many`` on simulated memories made unique (as in
  the growth benchmark), in chunks of 256, against the reference loop it replaced (one numpy
  write per word and bigram, every hash computed; the same vectors, checked here). The first
  round meets every word for the first time; later rounds find words remembered (the cache).

    python -m bench.hot_path [--rounds 5] [--texts 4096]

Writes ``bench/results/hot_path.json`` and ``bench/results/hot_path.png``.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import describe, machine_title, write_results

RESULTS = Path(__file__).parent / "results"


def reference_hashing(texts: Sequence[str], dim: int = 384) -> np.ndarray:
    """The hashing embedder as it was before 2026-11-27 (one scalar write per feature)."""
    from pipelines.embed import HashingEmbedder, _normalise

    features = HashingEmbedder(dim)._features  # the words and bigrams: unchanged
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        for feat in features(text) or [text]:
            h = int.from_bytes(hashlib.blake2b(feat.encode(), digest_size=8).digest(), "little")
            out[row, h % dim] += 1.0 if (h >> 63) & 1 else -1.0
    return _normalise(out)


def _spans(n: int) -> list[Any]:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind, Status, StatusCode

    from pipelines.settings import Settings
    from pipelines.telemetry import setup_telemetry

    exporter = InMemorySpanExporter()
    tel = setup_telemetry(Settings(otel_exporter="none"), "argos-worker", span_exporter=exporter)
    parent = [("traceparent", b"00-" + b"ab" * 16 + b"-" + b"cd" * 8 + b"-01")]

    class Rec:
        def __init__(self, i: int) -> None:
            self.topic, self.partition, self.offset, self.headers = "m.events", i % 4, i, parent

    with tel.batch_spans("argos.store", [Rec(i) for i in range(n)], kind=SpanKind.CONSUMER) as s:
        for i in range(0, n, 10):
            s[i].record_exception(ValueError("not a valid memory event"))
            s[i].set_status(Status(StatusCode.ERROR, "invalid"))
    spans = list(exporter.get_finished_spans())
    tel.shutdown()
    return spans


def _logs(n: int) -> list[Any]:
    """Audit log records as the worker emits them (a JSON body, inside a recall's span)."""
    import json

    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

    from pipelines.settings import Settings
    from pipelines.telemetry import setup_telemetry

    exporter = InMemoryLogRecordExporter()
    tel = setup_telemetry(Settings(otel_exporter="none"), "argos-worker", log_exporter=exporter)
    for i in range(n):
        with tel.span("argos.recall"):
            body = {"action": "recall", "actor": "anonymous", "namespace": "w", "agent": f"a{i}"}
            tel.logger.emit(body=json.dumps(body | {"ids": [f"m{i}-{j}" for j in range(10)]}))
    logs = list(exporter.get_finished_logs())
    tel.shutdown()
    return logs


def _time_per_item(fn: Callable[[], Any], items: int) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) / items * 1e6  # µs per item


def main(argv: list[str] | None = None) -> int:
    from pipelines.embed import HashingEmbedder
    from pipelines.simulation import Population
    from pipelines.telemetry import _log_line, _span_line

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--texts", type=int, default=4096)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    spans = _spans(256)
    assert all(_span_line(s) == s.to_json(indent=None) + "\n" for s in spans)  # noqa: S101
    logs = _logs(256)
    assert all(_log_line(r) == r.to_json(indent=None) + "\n" for r in logs)  # noqa: S101
    rnd = random.Random(1)
    words = "amber brook cedar dune ember fjord grove heath inlet jade knoll lumen".split()
    texts = [
        f"{e.content} {' '.join(rnd.choices(words, k=4))} {i}"
        for i, e in enumerate(Population(100, seed=1, namespace="b").events(args.texts))
    ]
    emb = HashingEmbedder()
    assert np.array_equal(emb.embed_many(texts[:64]), reference_hashing(texts[:64]))  # noqa: S101
    chunks = [texts[i : i + 256] for i in range(0, len(texts), 256)]
    names = ("sdk", "ours", "log_sdk", "log_ours", "reference", "batched")
    series: dict[str, list[float]] = {k: [] for k in names}
    for _ in range(args.rounds):
        series["log_sdk"].append(
            _time_per_item(lambda: [r.to_json(indent=None) for r in logs], 256)
        )
        series["log_ours"].append(_time_per_item(lambda: [_log_line(r) for r in logs], 256))
        series["sdk"].append(_time_per_item(lambda: [s.to_json(indent=None) for s in spans], 256))
        series["ours"].append(_time_per_item(lambda: [_span_line(s) for s in spans], 256))
        series["reference"].append(
            _time_per_item(lambda: [reference_hashing(c) for c in chunks], len(texts))
        )
        series["batched"].append(
            _time_per_item(lambda: [emb.embed_many(c) for c in chunks], len(texts))
        )
    med = {k: statistics.median(v) for k, v in series.items()}
    out = {
        "machine": describe(),
        "rounds": args.rounds,
        "texts": len(texts),
        "us_per_item": series,
        "median_us": med,
        "span_line_speedup": med["sdk"] / med["ours"],
        "log_line_speedup": med["log_sdk"] / med["log_ours"],
        "hashing_speedup": med["reference"] / med["batched"],
        "hashing_speedup_first_round": series["reference"][0] / series["batched"][0],
    }
    print(
        f"span line: SDK {med['sdk']:.1f} µs, ours {med['ours']:.1f} µs "
        f"({out['span_line_speedup']:.2f}x); log line: SDK {med['log_sdk']:.1f} µs, ours "
        f"{med['log_ours']:.1f} µs ({out['log_line_speedup']:.2f}x); hashing: reference "
        f"{med['reference']:.1f} µs, "
        f"batched {med['batched']:.1f} µs per text ({out['hashing_speedup']:.2f}x; first "
        f"round {out['hashing_speedup_first_round']:.2f}x)"
    )
    write_results(out, args.out, "hot_path", plot)
    return 0


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    med = out["median_us"]
    pairs = [("span → JSON line", "sdk", "ours")]
    if "log_sdk" in med:
        pairs.append(("audit log record → JSON line", "log_sdk", "log_ours"))
    pairs.append(("hashing embedder, per text", "reference", "batched"))
    fig, axes = plt.subplots(1, len(pairs), figsize=(4 * len(pairs), 3.4))
    for ax, (title, a, b) in zip(
        axes,
        [*pairs],
        strict=True,
    ):
        ax.bar([a, b], [med[a], med[b]], color=["#999999", "#2a7ab0"])
        ax.set_title(f"{title}: {med[a] / med[b]:.2f}×")
        ax.set_ylabel("µs per item (median)")
    fig.suptitle(f"Hot-path helpers, reference vs ours ({machine_title(out)})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
