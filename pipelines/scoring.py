"""Recall scoring (Generative Agents style): relevance + recency + importance, explained.

``total = w_rel * cosine + w_rec * R + w_imp * importance`` where ``R = exp(-dt / S)`` is the
lifecycle's retention at the query's event time ("now"): ``dt`` is the event time since the memory
was last reinforced and ``S`` its stability. Parts are the raw components (cosine in [-1, 1], R and
importance in [0, 1]); the weights say how much each counts, so every hit can show why it ranked.

>>> w = ScoreWeights()
>>> cos, r, imp = np.array([0.8, 0.2]), np.array([1.0, 0.5]), np.array([0.5, 1.0])
>>> [round(float(t), 3) for t in score(cos, r, imp, w)]
[1.45, 0.75]
>>> explain(cos, r, imp, w)[0]
ScoreParts(relevance=0.8, recency=1.0, importance=0.5, total=1.45)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipelines.lifecycle import LifecycleParams, stability


@dataclass(frozen=True)
class ScoreWeights:
    """How much relevance (cosine), recency (retention R) and importance count (all >= 0)."""

    relevance: float = 1.0
    recency: float = 0.5
    importance: float = 0.3

    def __post_init__(self) -> None:
        for name in ("relevance", "recency", "importance"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0.0):
                raise ValueError(f"weight {name} must be finite and >= 0, got {v!r}")

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.relevance, self.recency, self.importance)


@dataclass(frozen=True)
class ScoreParts:
    """One hit's score, explained: the raw parts and their weighted sum ``total``."""

    relevance: float
    recency: float
    importance: float
    total: float


def initial_stability(
    kind: str, importance: float, arousal: float, params: LifecycleParams | None = None
) -> float:
    """S of a memory the lifecycle has not reported on yet (no recalls).

    >>> initial_stability("episodic", 0.0, 0.0) == LifecycleParams().base_stability
    True
    """
    return stability(params or LifecycleParams(), kind, importance, arousal, 0)


def retention(now_ts: float, reinforced_ts: np.ndarray, stability_s: np.ndarray) -> np.ndarray:
    """Vectorised ``R = exp(-max(now - reinforced, 0) / S)`` (float64).

    >>> [round(float(x), 4) for x in retention(10.0, np.array([0.0, 10.0, 20.0]), np.full(3, 10.0))]
    [0.3679, 1.0, 1.0]
    """
    x = np.subtract(reinforced_ts, now_ts, dtype=np.float64)  # -dt, in place from here on
    np.minimum(x, 0.0, out=x)
    np.divide(x, stability_s, out=x)
    return np.exp(x, out=x)


def score(
    cos: np.ndarray, retention: np.ndarray, importance: np.ndarray, w: ScoreWeights
) -> np.ndarray:
    """Vectorised total score (float64)."""
    total = np.multiply(cos, w.relevance, dtype=np.float64)
    if w.recency:
        total += w.recency * np.asarray(retention, dtype=np.float64)
    if w.importance:
        total += w.importance * np.asarray(importance, dtype=np.float64)
    return total


def explain(
    cos: np.ndarray, retention: np.ndarray, importance: np.ndarray, w: ScoreWeights
) -> list[ScoreParts]:
    """Per-hit parts (meant for the k hits only); ``total`` equals ``score`` for the same row."""
    totals = score(cos, retention, importance, w)
    return [
        ScoreParts(float(c), float(r), float(i), float(t))
        for c, r, i, t in zip(
            np.asarray(cos, dtype=np.float64).tolist(),
            np.asarray(retention, dtype=np.float64).tolist(),
            np.asarray(importance, dtype=np.float64).tolist(),
            totals.tolist(),
            strict=True,
        )
    ]
