"""Recall scoring (Generative Agents style): relevance + recency + importance, explained.

``total = w_rel * cosine + w_rec * R + w_imp * importance`` where ``R = exp(-dt / S)`` is the
lifecycle's retention at the query's event time ("now"): ``dt`` is the event time since the memory
was last reinforced and ``S`` its stability. Parts are the raw components (cosine in [-1, 1], R and
importance in [0, 1]); the weights say how much each counts, so every hit can show why it ranked.

A recall may also prefer a period of event time (``TimeBonus``: an explicit ``prefer`` period, or
one its query names, see ``pipelines.time_hints``): then ``total += weight * time`` where the part
``time`` is 1 for a memory formed in ``[since, until + slack_s]`` and 0 otherwise. Without a
preference there is no time part (``None``) and nothing is added.

A recall with a query text also weighs its words: ``total += w_lex * lexical`` where ``lexical`` is
the query's BM25 over the agent's memories scaled to the best candidate's (``pipelines.lexical``:
cosine and BM25 together found more LoCoMo evidence than either alone).

>>> w = ScoreWeights()
>>> cos, r, imp = np.array([0.8, 0.2]), np.array([1.0, 0.5]), np.array([0.5, 1.0])
>>> [round(float(t), 3) for t in score(cos, r, imp, w)]
[1.45, 0.75]
>>> explain(cos, r, imp, w)[0]
ScoreParts(relevance=0.8, recency=1.0, importance=0.5, total=1.45, time=None, lexical=None)
>>> time_part(np.array([0.0, 5.0, 30.0]), TimeBonus(0.0, 10.0, slack_s=10.0)).tolist()
[1.0, 1.0, 0.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pipelines.lifecycle import LifecycleParams, stability
from schemas.recall import DEFAULT_TIME_SLACK_S, DEFAULT_TIME_WEIGHT


@dataclass(frozen=True)
class ScoreWeights:
    """How much relevance (cosine), recency (retention R) and importance count (all >= 0)."""

    relevance: float = 1.0
    recency: float = 0.5
    importance: float = 0.3
    lexical: float = 0.4

    def __post_init__(self) -> None:
        for name in ("relevance", "recency", "importance", "lexical"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0.0):
                raise ValueError(f"weight {name} must be finite and >= 0, got {v!r}")

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.relevance, self.recency, self.importance, self.lexical)


@dataclass(frozen=True)
class ScoreParts:
    """One hit's score, explained: the raw parts and their weighted sum ``total``.

    ``time``: 1.0 when the memory lies in the recall's preferred period, else 0.0 (weighted by the
    preference's weight); None when the recall preferred no period. ``lexical``: the query's BM25
    over the agent's memories scaled to the best candidate's (0..1, ``pipelines.lexical``),
    weighted by ``ScoreWeights.lexical``; None when the search had no lexical part.
    """

    relevance: float
    recency: float
    importance: float
    total: float
    time: float | None = None
    lexical: float | None = None


TIME_WEIGHT = DEFAULT_TIME_WEIGHT
"""Default bonus of a memory in a preferred period (``schemas.recall.DEFAULT_TIME_WEIGHT``)."""
TIME_SLACK_S = DEFAULT_TIME_SLACK_S
"""Default slack after a preferred period (``schemas.recall.DEFAULT_TIME_SLACK_S``)."""


@dataclass(frozen=True)
class TimeBonus:
    """A soft preference for a period of event time: ``weight`` is added to the score of every
    memory whose event time ``t`` satisfies ``since_ts <= t <= until_ts + slack_s`` (POSIX seconds;
    ``since_ts`` may be ``-inf`` and ``until_ts`` ``+inf`` for an open end).

    ``source``/``text``: where the period came from (the request's ``prefer``, or the words of the
    query that named it), echoed in the recall's response.
    """

    since_ts: float
    until_ts: float
    weight: float = TIME_WEIGHT
    slack_s: float = TIME_SLACK_S
    source: Literal["request", "query"] = "request"
    text: str | None = None

    def __post_init__(self) -> None:
        if math.isnan(self.since_ts) or math.isnan(self.until_ts):
            raise ValueError("time preference: since and until must not be NaN")
        if self.since_ts == math.inf or self.until_ts == -math.inf:
            raise ValueError("time preference: since must not be +inf, nor until -inf")
        if self.since_ts > self.until_ts:
            raise ValueError(
                f"time preference: since ({self.since_ts}) must not be after until "
                f"({self.until_ts})"
            )
        if not (math.isfinite(self.weight) and self.weight >= 0.0):
            raise ValueError(
                f"time preference: weight must be finite and >= 0, got {self.weight!r}"
            )
        if not (math.isfinite(self.slack_s) and self.slack_s >= 0.0):
            raise ValueError(
                f"time preference: slack_s must be finite and >= 0, got {self.slack_s!r}"
            )

    @property
    def window(self) -> tuple[float, float]:
        """The closed interval of event times that get the bonus."""
        return self.since_ts, self.until_ts + self.slack_s


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


def time_part(event_ts: np.ndarray, bonus: TimeBonus) -> np.ndarray:
    """Vectorised time part (float64): 1.0 where ``event_ts`` lies in ``bonus.window``, else 0.0."""
    lo, hi = bonus.window
    ts = np.asarray(event_ts, dtype=np.float64)
    inside = ts >= lo
    inside &= ts <= hi
    return inside.astype(np.float64)


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
