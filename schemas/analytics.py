"""Analytics contracts: ``argos.analytics.predictions`` and ``argos.analytics.metrics``.

Both topics are keyed by ``namespace``. A prediction always travels with the model's current
progressive-validation score (each example predicted before it was learnt) and the score of a
baseline on the same examples, so a subscriber can judge how far to trust it.

>>> s = Score(metric="roc_auc", value=0.81, n=1200, higher_is_better=True)
>>> b = Baseline(name="prior", metric="roc_auc", value=0.5)
>>> p = PredictionEvent(namespace="w", agent_id="a", memory_id="m", model="recall.logreg",
...     model_version="1", target="recall_probability", value=0.3, event_ts=0.0,
...     score=s, baseline=b)
>>> p.score.value > p.baseline.value
True
>>> MetricEvent(namespace="w", name="importance", kind="summary", values={"mean": 0.5},
...     n=3, event_ts=0.0).values["mean"]
0.5
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Target = Literal["recall_probability", "importance", "anomaly", "volume_forecast", "drift"]
MetricKind = Literal["counter", "gauge", "rate", "summary", "quantiles", "correlation"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Score(_Frozen):
    """A model's progressive-validation score: every example was predicted before it was learnt."""

    metric: str = Field(description="Metric name, e.g. roc_auc, mae, alarms_per_1k.")
    value: float | None = Field(None, description="Current value; none before the first example.")
    n: int = Field(ge=0, description="Examples scored so far.")
    higher_is_better: bool = Field(description="True for roc_auc; false for errors and alarms.")


class Baseline(_Frozen):
    """The same metric for a simple reference model scored on the same examples."""

    name: str = Field(description="The baseline, e.g. PriorClassifier, mean, no-change.")
    metric: str = Field(description="Same metric as the model's score.")
    value: float | None = Field(None, description="Current value; none before the first example.")


class PredictionEvent(_Frozen):
    """``argos.analytics.predictions``: one prediction of one online model."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, title="PredictionEvent"
    )

    schema_version: Literal[1] = 1
    namespace: str = Field(description="The world the prediction is about (the Kafka key).")
    agent_id: str | None = Field(None, description="The agent it is about, if any.")
    memory_id: str | None = Field(None, description="The memory it is about, if any.")
    model: str = Field(description="Model name, e.g. recall.logistic_regression.")
    model_version: str = Field(description="Version of the model's definition (features, params).")
    target: Target = Field(
        description="recall_probability: P(recalled within the recall window); importance: "
        "estimated importance 0..1; anomaly: the agent's anomaly score 0..1 (sent when flagged); "
        "volume_forecast: events expected in the next event-time bucket; drift: the shift of the "
        "signal's mean when a drift was detected."
    )
    value: float = Field(description="The prediction.")
    event_ts: float = Field(description="Event time (POSIX s) the prediction refers to.")
    score: Score = Field(description="The model's current progressive score.")
    baseline: Baseline = Field(description="The baseline's score on the same examples.")
    details: dict[str, float | str] = Field(
        default_factory=dict, description="Model-specific extras (threshold, signal, bucket, ...)."
    )


class MetricEvent(_Frozen):
    """``argos.analytics.metrics``: one statistic of one namespace, as of ``event_ts``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, title="MetricEvent")

    schema_version: Literal[1] = 1
    namespace: str = Field(description="The world the statistic is about (the Kafka key).")
    name: str = Field(description="e.g. events, importance, latency.ingest_to_analytics_s.")
    kind: MetricKind = Field(
        description="counter (totals), gauge (current values), rate (per event-time hour or per "
        "created memory), summary (mean/var/quantiles), quantiles, correlation (Pearson)."
    )
    value: float | None = Field(None, description="A single value (or use values).")
    values: dict[str, float] = Field(default_factory=dict, description="Named values.")
    n: int = Field(0, ge=0, description="Observations behind the statistic.")
    event_ts: float = Field(description="The namespace's event-time clock at the snapshot.")
    window_s: float | None = Field(
        None, description="Span the statistic covers (seconds); none = since the start."
    )

    @model_validator(mode="after")
    def _one_of_value_values(self) -> MetricEvent:
        if (self.value is None) == (not self.values):
            raise ValueError("exactly one of value and values must be given")
        return self
