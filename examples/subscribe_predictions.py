"""An example subscriber of ``argos.analytics.predictions``: which models can be trusted now?

Every prediction carries its model's progressive score (each example predicted before it was
learnt from) next to a baseline's on the same examples. This subscriber keeps, per namespace and
model, the latest of both and says whether the model beats its baseline -- what a scheduler,
an autoscaler or a dashboard would check before acting on a prediction.

Run it beside a worker (it joins its own consumer group, so it can be stopped and restarted
without missing or repeating much):

    python examples/subscribe_predictions.py --bootstrap 127.0.0.1:9092 --limit 500

or use it from code: ``follow(bootstrap, topic, limit=..., timeout_s=...)`` returns the table.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from kafka import KafkaConsumer

from schemas.analytics import PredictionEvent


@dataclass
class ModelStanding:
    """The latest progressive score of one model in one namespace, beside its baseline's."""

    model: str
    version: str
    target: str
    metric: str
    score: float | None
    baseline: str
    baseline_score: float | None
    higher_is_better: bool
    n: int
    last_value: float

    @property
    def trusted(self) -> bool:
        """The model beats its baseline on the examples seen so far."""
        if self.score is None or self.baseline_score is None:
            return False
        if self.higher_is_better:
            return self.score > self.baseline_score
        return self.score < self.baseline_score


def standing(p: PredictionEvent) -> ModelStanding:
    return ModelStanding(
        model=p.model,
        version=p.model_version,
        target=p.target,
        metric=p.score.metric,
        score=p.score.value,
        baseline=p.baseline.name,
        baseline_score=p.baseline.value,
        higher_is_better=p.score.higher_is_better,
        n=p.score.n,
        last_value=p.value,
    )


def follow(
    bootstrap: str,
    topic: str = "argos.analytics.predictions",
    *,
    group: str | None = None,
    limit: int = 0,
    timeout_s: float = 0.0,
) -> dict[tuple[str, str], ModelStanding]:
    """Read predictions (from the oldest one the group has not seen) until ``limit`` records or
    ``timeout_s`` seconds without a new record (0 = never stop); returns the latest standing
    per (namespace, model). Malformed records are skipped, never fatal."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap.split(","),
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=group is not None,
        consumer_timeout_ms=int(timeout_s * 1000) if timeout_s else float("inf"),
    )
    table: dict[tuple[str, str], ModelStanding] = {}
    seen = 0
    try:
        for rec in consumer:
            try:
                p = PredictionEvent.model_validate_json(rec.value)
            except ValueError:
                continue
            table[(p.namespace, p.model)] = standing(p)
            seen += 1
            if limit and seen >= limit:
                break
    finally:
        consumer.close()
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--topic", default="argos.analytics.predictions")
    ap.add_argument("--group", default="argos-example-subscriber")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args()
    t0 = time.monotonic()
    table = follow(
        args.bootstrap, args.topic, group=args.group, limit=args.limit, timeout_s=args.timeout
    )
    for (ns, model), s in sorted(table.items()):
        verdict = "trust" if s.trusted else "not yet"
        print(
            f"{ns:<16} {model:<36} {s.metric} {s.score} vs {s.baseline} {s.baseline_score} "
            f"(n={s.n}) -> {verdict}"
        )
    print(f"{len(table)} models, {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    main()
