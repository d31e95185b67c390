"""Streaming analytics: online River models and running statistics over the memory streams.

One :class:`Analytics` object holds everything one worker knows, for every namespace it sees
(each namespace has models and statistics of its own: worlds never learn from each other). It is
fed one event at a time (``observe_memory``, ``observe_access``, ``observe_lifecycle``,
``observe_cluster``) and is pure and deterministic: it never reads the wall clock (latencies come
in as arguments) nor depends on string hashing, so the same events in the same order give the
same predictions and metrics, byte for byte, also after a checkpoint round trip (``to_bytes`` /
``from_bytes``) into another process. Time is **event time**: each namespace's clock is the
latest event time it has seen. State is bounded per namespace (``*_cap`` parameters, oldest
first out); a checkpoint is about 180 bytes per remembered memory (3.6 MB for 20,000).

Every model is scored by **progressive validation**: each example is predicted first, the
prediction is scored (model metric *and* baseline metric, on the same example), and only then is
the example learnt. Each :class:`~schemas.analytics.PredictionEvent` carries both scores.

Models (per namespace):

- **Recall probability** (``recall.logistic_regression``): P(a memory is recalled within
  ``recall_window_s`` of event time). A sample opens at each *touch* of a memory -- its creation
  and each recall -- with the features known then: age on event time, importance, arousal,
  valence, type, cluster size and stability, past recalls. Its label is resolved lazily: positive
  when a recall arrives inside the window, negative once the namespace's clock has passed the
  window's end (plus ``label_lateness_s``). Open samples are bounded (``pending_cap``, oldest
  dropped). A memory's cluster usually arrives just after the memory itself, so an open sample is
  predicted again when it does (still before its label is known). Model: StandardScaler |
  LogisticRegression. Baseline: the prior (the recall rate so far, Laplace-smoothed, i.e.
  ``dummy.PriorClassifier`` without its 0/1 start). Metric: rolling ROC AUC (``score_window``
  examples; the log loss of both is on the metrics topic). Published: one prediction per new
  memory (for L1 prefetch and eviction).
- **Importance** (``importance.linear_regression``): importance 0..1 from content features
  (length, words, tags, steps, type, valence, arousal, hashed words and tags) and context (the
  agent's recent mean importance). Learnt from events that carry an importance; published for
  events that arrive without one (``has_importance=False``: on the embedded topic,
  ``EmbeddedMemory.importance_given`` says whether the agent set it). Baseline:
  ``dummy.StatisticRegressor(Mean)``. Metric: MAE.
- **Anomalous agents** (``anomaly.half_space_trees``): per agent event, a feature vector in
  [0, 1] -- event rate over the last ``anomaly_window_s``, arousal, valence, movement since the
  agent's previous position, importance -- scored by one ``anomaly.HalfSpaceTrees`` per namespace
  (agents are scored against the population's normal) and smoothed per agent (exponential,
  ``anomaly_smoothing``). HalfSpaceTrees' scale depends on how dense the data is, so the flag is
  relative: an agent is flagged when its smoothed score is more than ``anomaly_threshold``
  standard deviations above the running mean of the namespace's smoothed scores (after
  ``anomaly_warmup`` of them; flagged scores are left out of that mean). Published when flagged,
  at most once per ``anomaly_repeat_s`` per agent. There are no labels, so the score is the flag
  rate, next to the flag rate of a baseline z-score detector (any feature more than ``anomaly_z``
  standard deviations from its running mean).
- **Volume forecast** (``volume.snarimax``): events per event-time bucket of ``volume_bucket_s``
  per namespace; a bucket closes when the clock passes its end plus ``volume_lateness_s`` (later
  events are counted as late). SNARIMAX (seasonal period ``volume_season`` buckets) forecasts the
  next bucket; published at each close (the autoscaling signal). Baseline: no change (the last
  bucket's count). Metric: MAE, after ``2 * volume_season`` warm-up buckets.
- **Drift** (``drift.adwin``): ADWIN per agent over the valence of its memories, and per
  namespace over cluster stability. Published when a drift is detected (value: the shift of the
  signal's mean, from the older part of ADWIN's window that it dropped to the part it kept).
  Score: alarms per 1,000 observations, next to ``drift.PageHinkley``'s on the same signal.

Statistics (per namespace, on the metrics topic at each ``drain``): counts and event-time rates
by type, lifecycle state and cluster change; running mean, variance and P² quantiles of
importance, arousal, valence, content length and cluster stability; rolling quantiles of the
ingest → analytics latency (wall clock, when given) and of recall latency
(``observe_recall_latency``); decay, consolidation and archive rates; Pearson correlations of
arousal and valence with importance, and of importance and arousal with being recalled; every
model's scores.

>>> from schemas import MemoryEvent
>>> a = Analytics(AnalyticsParams(recall_window_s=60))
>>> a.observe_memory(MemoryEvent(schema_version=1, memory_id="m1", agent_id="a", namespace="w",
...     type="episodic", content="saw a fox", event_time="2026-01-01T00:00:00Z"))
>>> preds, mets = a.drain()
>>> [p.target for p in preds], sorted({m.name for m in mets})[:2]
(['importance', 'recall_probability'], ['arousal', 'content_length'])
>>> Analytics.from_bytes(a.to_bytes()).drain()
([], [])
"""

from __future__ import annotations

import math
import pickle
import re
import zlib
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from river import (
    anomaly,
    drift,
    dummy,
    linear_model,
    metrics,
    optim,
    preprocessing,
    stats,
    time_series,
)

from schemas.analytics import Baseline, MetricEvent, PredictionEvent, Score, Target
from schemas.clusters import ClusterEvent
from schemas.lifecycle import AccessEvent, LifecycleEvent
from schemas.memory_event import MemoryEvent

if TYPE_CHECKING:
    from pipelines.ingest import RawRecord

KV = tuple[bytes | None, bytes]

CHECKPOINT_FORMAT = "argos-analytics"
# 3: each of those columns pickled on its own (2: columns pickled with the rest; 1: as
# objects; both still read)
CHECKPOINT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
MODEL_VERSION = "1"

MODELS: dict[str, str] = {
    "recall_probability": "recall.logistic_regression",
    "importance": "importance.linear_regression",
    "anomaly": "anomaly.half_space_trees",
    "volume_forecast": "volume.snarimax",
    "drift": "drift.adwin",
}
TYPES = ("episodic", "semantic", "procedural")
RECALL_FEATURES = (
    "age_h",
    "importance",
    "arousal",
    "valence",
    "recalls",
    "cluster_size",
    "cluster_stability",
    "derived",
    *(f"type_{t}" for t in TYPES),
)
SUMMARIES = ("importance", "arousal", "valence", "content_length", "cluster_stability")
_WORD = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True)
class AnalyticsParams:
    """Windows, thresholds and sizes of the analytics (event-time seconds unless noted)."""

    recall_window_s: float = 6 * 3600.0  # label: recalled within this long after a touch
    label_lateness_s: float = 600.0  # wait this much longer before a label is negative
    pending_cap: int = 50_000  # open recall samples per namespace (oldest dropped)
    memory_cap: int = 100_000  # memories remembered per namespace for recall features
    cluster_cap: int = 100_000  # clusters remembered per namespace (size, stability)
    agent_cap: int = 10_000  # agents with anomaly/drift state per namespace (LRU)
    recall_lr: float = 0.05
    importance_lr: float = 0.005
    hash_buckets: int = 64  # hashed word/tag features of the importance model
    anomaly_window_s: float = 600.0  # an agent's event rate is counted over this window
    anomaly_rate_cap: float = 60.0  # events per window that map to rate 1.0
    anomaly_move_scale: float = 100.0  # a move this long (world units) maps to 1.0
    anomaly_trees: int = 10
    anomaly_height: int = 8
    anomaly_window_size: int = 250  # HalfSpaceTrees reference window (events)
    anomaly_smoothing: float = 0.3  # weight of the newest score in an agent's running score
    anomaly_threshold: float = 5.0  # flag: smoothed score this many sd above its running mean
    anomaly_warmup: int = 250  # smoothed scores seen before anything is flagged
    anomaly_repeat_s: float = 60.0  # at most one flag per agent this often
    anomaly_z: float = 3.0  # baseline: any |z| above this flags
    volume_bucket_s: float = 600.0
    volume_lateness_s: float = 300.0
    volume_season: int = 144  # buckets per season (144 x 10 min = a day); <= 1: none
    volume_order: tuple[int, int, int] = (2, 0, 1)  # SNARIMAX p, d, q
    volume_seasonal_order: tuple[int, int, int] = (1, 1, 0)  # SNARIMAX sp, sd, sq
    volume_max_gap: int = 288  # at most this many empty buckets are learnt after a silence
    drift_delta: float = 0.002  # ADWIN confidence
    quantiles: tuple[float, ...] = (0.5, 0.9, 0.99)
    latency_window: int = 1000  # rolling latency quantiles over this many observations
    score_window: int = 1000  # rolling ROC AUC over this many examples
    seed: int = 0


# ---------------------------------------------------------------------------------------------
# per-namespace state


@dataclass(slots=True)
class _Memory:
    """What the recall model needs to know about one memory."""

    created_ts: float
    type: str
    importance: float
    arousal: float
    valence: float
    derived: bool
    recalls: int = 0
    cluster_id: str | None = None
    cluster_size: int = 0
    cluster_stability: float = 0.0


@dataclass(slots=True)
class _Pending:
    """An open recall sample: predicted at ``touch_ts``, label due at ``due_ts``."""

    x: tuple[float, ...]  # the features, in RECALL_FEATURES order (a tuple: a third of a dict)
    touch_ts: float
    due_ts: float
    p: float
    p_base: float
    creation: bool
    agent_id: str


_MEMORY_FIELDS = tuple(f.name for f in fields(_Memory))
_PENDING_FIELDS = tuple(f.name for f in fields(_Pending))


@dataclass
class _Agent:
    last_ts: float | None = None
    last_pos: tuple[float, float, float] | None = None
    recent: deque[float] = field(default_factory=deque)
    importance_ewm: float | None = None
    anomaly_ewm: float | None = None
    last_flag_ts: float | None = None
    adwin: drift.ADWIN | None = None
    ph: drift.PageHinkley | None = None


class _Summary:
    """Running count, mean, variance (ddof 1) and P² quantiles of one signal."""

    def __init__(self, quantiles: tuple[float, ...]) -> None:
        self.mean = stats.Mean()
        self.var = stats.Var()
        self.qs = [(q, stats.Quantile(q)) for q in quantiles]

    def update(self, x: float) -> None:
        self.mean.update(x)
        self.var.update(x)
        for _, q in self.qs:
            q.update(x)

    @property
    def n(self) -> int:
        return int(self.mean.n)

    def values(self) -> dict[str, float]:
        out = {"mean": self.mean.get(), "var": self.var.get()}
        for q, est in self.qs:
            v = est.get()
            if v is not None:
                out[_qname(q)] = v
        return _finite(out)


class _Rolling:
    """Rolling quantiles of one signal over its last ``window`` observations."""

    def __init__(self, quantiles: tuple[float, ...], window: int) -> None:
        self.qs = [(q, stats.RollingQuantile(q, window)) for q in quantiles]
        self.n = 0
        self.window = window

    def update(self, x: float) -> None:
        self.n += 1
        for _, q in self.qs:
            q.update(x)

    def values(self) -> dict[str, float]:
        return _finite({_qname(q): est.get() for q, est in self.qs if est.get() is not None})


class _RecallModel:
    def __init__(self, p: AnalyticsParams) -> None:
        self.model = preprocessing.StandardScaler() | linear_model.LogisticRegression(
            optimizer=optim.SGD(p.recall_lr)
        )
        self.auc = metrics.RollingROCAUC(window_size=p.score_window)
        self.base_auc = metrics.RollingROCAUC(window_size=p.score_window)
        self.logloss = metrics.LogLoss()
        self.base_logloss = metrics.LogLoss()
        self.n = 0
        self.positives = 0
        self.dropped = 0  # open samples dropped by the cap (never labelled)


class _ImportanceModel:
    NUMERIC = (
        "len",
        "words",
        "tags",
        "steps",
        "valence",
        "abs_valence",
        "arousal",
        "has_position",
        "agent_importance",
        *(f"type_{t}" for t in TYPES),
    )

    def __init__(self, p: AnalyticsParams) -> None:
        # numeric features are standardised, hashed ones used as they are. (Not with
        # compose.Select: it iterates a set of names, so the order in which the dot product adds
        # up -- and so the last bits -- would change with PYTHONHASHSEED and after a restore.)
        self.scaler = preprocessing.StandardScaler()
        self.reg = linear_model.LinearRegression(
            optimizer=optim.SGD(p.importance_lr), intercept_init=0.5, intercept_lr=0.05
        )
        self.base = dummy.StatisticRegressor(stats.Mean())
        self.mae = metrics.MAE()
        self.base_mae = metrics.MAE()
        self.n = 0
        self.imputed = 0

    def _x(self, f: dict[str, float]) -> dict[str, float]:
        num = {k: f[k] for k in self.NUMERIC}
        return {**self.scaler.transform_one(num), **{k: v for k, v in f.items() if k not in num}}

    def predict_one(self, f: dict[str, float]) -> float:
        return float(self.reg.predict_one(self._x(f)))

    def learn_one(self, f: dict[str, float], y: float) -> None:
        self.scaler.learn_one({k: f[k] for k in self.NUMERIC})
        self.reg.learn_one(self._x(f), y)


class _AnomalyModel:
    FEATURES = ("rate", "arousal", "valence", "move", "importance")

    def __init__(self, p: AnalyticsParams) -> None:
        self.hst = anomaly.HalfSpaceTrees(
            n_trees=p.anomaly_trees,
            height=p.anomaly_height,
            window_size=p.anomaly_window_size,
            limits={k: (0.0, 1.0) for k in self.FEATURES},
            seed=p.seed,
        )
        self.seen = 0
        self.scored = 0
        self.flagged = 0
        self.base_flagged = 0
        self.z = {k: (stats.Mean(), stats.Var()) for k in self.FEATURES}
        # running mean and variance of the agents' smoothed scores: what is normal here
        self.norm_mean = stats.Mean()
        self.norm_var = stats.Var()


class _VolumeModel:
    def __init__(self, p: AnalyticsParams) -> None:
        m = p.volume_season if p.volume_season > 1 else 1
        sp, sd, sq = p.volume_seasonal_order if m > 1 else (0, 0, 0)
        pp, d, q = p.volume_order
        regressor = preprocessing.StandardScaler() | linear_model.LinearRegression(
            intercept_init=0.0, optimizer=optim.SGD(0.01), intercept_lr=0.3
        )
        self.model = time_series.SNARIMAX(
            p=pp, d=d, q=q, m=m, sp=sp, sd=sd, sq=sq, regressor=regressor
        )
        self.warmup = 2 * m if m > 1 else 3
        self.counts: dict[int, int] = {}
        self.next_bucket: int | None = None  # the oldest bucket not yet closed
        self.closed = 0
        self.scored = 0
        self.late = 0
        self.forecast: float | None = None  # for next_bucket
        self.last: int | None = None  # the last closed bucket's count
        self.mae = metrics.MAE()
        self.base_mae = metrics.MAE()


class _DriftSignal:
    """Alarm counts of ADWIN and its PageHinkley baseline on one signal (all its detectors)."""

    def __init__(self) -> None:
        self.n = 0
        self.alarms = 0
        self.base_alarms = 0


def _columns(rows: OrderedDict[str, Any], names: tuple[str, ...]) -> tuple[bytes, list[bytes]]:
    """An ordered dict of slotted dataclasses as its keys and one list per field, each list
    pickled on its own: a few flat lists (fast, in C) instead of an object per row, each
    through Python's ``__getstate__`` (at 100k memories and 50k open samples 3-6x faster, 25%
    smaller). Pickled one by one, in a Python loop, so the GIL can pass between them: at 100k
    memories another thread waited ~20 ms at most instead of ~40 for the whole namespace
    (``bench/analytics_checkpoint.py``, longest stall), a pause every recall on the worker's
    event loop would wait out."""
    values = list(rows.values())
    return _dumped(list(rows)), [_dumped(list(map(attrgetter(n), values))) for n in names]


def _dumped(column: list[Any]) -> bytes:
    return pickle.dumps(column, protocol=pickle.HIGHEST_PROTOCOL)


def _rows(cls: type, saved: Any) -> OrderedDict[str, Any]:
    if isinstance(saved, OrderedDict):  # a version 1 checkpoint: the objects themselves
        return saved
    ids, columns = saved
    if isinstance(ids, bytes):  # version 3: each column pickled on its own (our own bytes)
        ids, columns = pickle.loads(ids), [pickle.loads(c) for c in columns]  # noqa: S301
    return OrderedDict(zip(ids, map(cls, *columns), strict=True)) if ids else OrderedDict()


class _Namespace:
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["memories"] = _columns(self.memories, _MEMORY_FIELDS)
        state["pending"] = _columns(self.pending, _PENDING_FIELDS)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state["memories"] = _rows(_Memory, state["memories"])
        state["pending"] = _rows(_Pending, state["pending"])
        self.__dict__.update(state)

    def __init__(self, name: str, p: AnalyticsParams) -> None:
        self.name = name
        self.clock: float | None = None
        self.first_ts: float | None = None
        self.agents: OrderedDict[str, _Agent] = OrderedDict()
        self.memories: OrderedDict[str, _Memory] = OrderedDict()
        self.clusters: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self.pending: OrderedDict[str, _Pending] = OrderedDict()
        self.recall = _RecallModel(p)
        self.importance = _ImportanceModel(p)
        self.anomaly = _AnomalyModel(p)
        self.volume = _VolumeModel(p)
        self.drift = {"valence": _DriftSignal(), "cluster_stability": _DriftSignal()}
        self.stability_adwin = drift.ADWIN(delta=p.drift_delta)
        self.stability_ph = drift.PageHinkley()
        self.counts: dict[str, dict[str, int]] = {
            "events": {"total": 0, **{t: 0 for t in TYPES}, "derived": 0, "replayed": 0},
            "recalls": {"access_events": 0, "memories": 0, "unknown": 0},
            "lifecycle_transitions": {},
            "lifecycle_causes": {},
            "cluster_events": {},
        }
        self.states: dict[str, int] = {}
        self.summaries = {s: _Summary(p.quantiles) for s in SUMMARIES}
        self.latency: dict[str, _Rolling] = {}
        self.corr = {
            "arousal~importance": stats.PearsonCorr(),
            "valence~importance": stats.PearsonCorr(),
            "importance~recalled": stats.PearsonCorr(),
            "arousal~recalled": stats.PearsonCorr(),
        }

    def advance(self, ts: float) -> None:
        if self.clock is None or ts > self.clock:
            self.clock = ts
        if self.first_ts is None or ts < self.first_ts:
            self.first_ts = ts

    def agent(self, agent_id: str, p: AnalyticsParams) -> _Agent:
        ag = self.agents.get(agent_id)
        if ag is None:
            ag = self.agents[agent_id] = _Agent()
            while len(self.agents) > p.agent_cap:
                self.agents.popitem(last=False)
        else:
            self.agents.move_to_end(agent_id)
        return ag


# queued prediction: (namespace, target, agent, memory, value, event_ts, details)
_Queued = tuple[str, Target, str | None, str | None, float, float, dict[str, float | str]]


class Analytics:
    """All online models and statistics of one worker, fed one event at a time (see module)."""

    def __init__(self, params: AnalyticsParams | None = None) -> None:
        self.params = params or AnalyticsParams()
        self.namespaces: dict[str, _Namespace] = {}
        self._queue: list[_Queued] = []
        self._dirty: dict[str, None] = {}  # namespaces with news since the last drain (ordered)

    # -- what the recall caches ask -----------------------------------------------------------

    def expected_recalls(self) -> dict[tuple[str, str], float]:
        """Each agent's expected number of recalls in the next window, by the recall-probability
        model: the sum of its open memories' predicted probabilities (each memory is predicted
        when it forms or is recalled, and labelled when its window ends). The hot index keeps
        the agents with the most in memory and warms them before they are asked for.

        >>> a = Analytics()
        >>> a.expected_recalls()
        {}
        """
        out: dict[tuple[str, str], float] = {}
        for name, ns in self.namespaces.items():
            for pend in ns.pending.values():
                key = (name, pend.agent_id)
                out[key] = out.get(key, 0.0) + pend.p
        return out

    # -- inputs ---------------------------------------------------------------------------------

    def observe_memory(
        self,
        ev: MemoryEvent,
        ingest_ts: float | None = None,
        *,
        seen_ts: float | None = None,
        has_importance: bool | None = None,
    ) -> None:
        """A new memory (``argos.memory.embedded`` or ``argos.memory.events``).

        ``ingest_ts`` and ``seen_ts`` (wall clock: when ingest took it and when analytics saw it)
        give the ingest → analytics latency. ``has_importance`` says whether the agent gave an
        importance (default: whether the field was present in what was parsed). A memory id seen
        before (a redelivery) is ignored.
        """
        p = self.params
        ns = self._ns(ev.namespace)
        if ev.memory_id in ns.memories:
            ns.counts["events"]["replayed"] += 1
            return
        ts = ev.event_ts
        ns.advance(ts)
        if has_importance is None:
            has_importance = "importance" in ev.model_fields_set
        derived = ev.derived_from is not None
        ag = ns.agent(ev.agent_id, p)

        counts = ns.counts["events"]
        counts["total"] += 1
        counts[ev.type.value] += 1
        counts["derived"] += derived
        v, ar = ev.emotion.valence, ev.emotion.arousal
        ns.summaries["arousal"].update(ar)
        ns.summaries["valence"].update(v)
        ns.summaries["content_length"].update(float(len(ev.content)))
        if has_importance:
            ns.summaries["importance"].update(ev.importance)
            ns.corr["arousal~importance"].update(ar, ev.importance)
            ns.corr["valence~importance"].update(v, ev.importance)
        if ingest_ts is not None and seen_ts is not None:
            self._latency(ns, "ingest_to_analytics_s", seen_ts - ingest_ts)

        y_hat = self._importance(ns, ag, ev, ts, has_importance, derived)
        importance = ev.importance if has_importance else y_hat

        info = _Memory(ts, ev.type.value, importance, ar, v, derived)
        ns.memories[ev.memory_id] = info
        while len(ns.memories) > p.memory_cap:
            ns.memories.popitem(last=False)
        self._touch(ns, ev.memory_id, ev.agent_id, info, ts, creation=True)

        if not derived:
            self._anomaly(ns, ag, ev, ts, importance)
            self._drift_valence(ns, ag, ev, ts)
            self._count_volume(ns, ts)
        if ag.last_ts is None or ts > ag.last_ts:
            ag.last_ts = ts
        self._settle(ns)

    def observe_access(self, a: AccessEvent) -> None:
        """A recall: resolves open samples of the recalled memories and opens new ones."""
        ns = self._ns(a.namespace)
        ag = ns.agent(a.agent_id, self.params)
        ts = (
            a.event_ts
            if a.event_ts is not None
            else (ns.clock if ag.last_ts is None else ag.last_ts)
        )
        ns.counts["recalls"]["access_events"] += 1
        if ts is None:  # nothing known about this world's time yet
            ns.counts["recalls"]["unknown"] += len(a.memory_ids)
            return
        ns.advance(ts)
        if ag.last_ts is None or ts > ag.last_ts:
            ag.last_ts = ts
        for mid in a.memory_ids:
            ns.counts["recalls"]["memories"] += 1
            info = ns.memories.get(mid)
            if info is None:
                ns.counts["recalls"]["unknown"] += 1
                continue
            pend = ns.pending.get(mid)
            if pend is not None:
                if ts < pend.touch_ts:  # a recall from before the touch (out of order)
                    continue
                del ns.pending[mid]
                self._resolve(ns, pend, ts <= pend.due_ts)
            info.recalls += 1
            self._touch(ns, mid, a.agent_id, info, ts, creation=False)
        self._settle(ns)

    def observe_lifecycle(self, e: LifecycleEvent) -> None:
        """A lifecycle transition: counts, state gauges, decay and consolidation rates."""
        ns = self._ns(e.namespace)
        ns.advance(e.event_ts)
        if e.from_state != e.to_state:
            tr = ns.counts["lifecycle_transitions"]
            tr[e.to_state] = tr.get(e.to_state, 0) + 1
            if ns.states.get(e.from_state, 0) > 0:
                ns.states[e.from_state] -= 1
            ns.states[e.to_state] = ns.states.get(e.to_state, 0) + 1
        cause = e.cause or "none"
        causes = ns.counts["lifecycle_causes"]
        causes[cause] = causes.get(cause, 0) + 1
        self._settle(ns)

    def observe_cluster(self, e: ClusterEvent) -> None:
        """A cluster change: cluster features of the recall model, stability statistics and
        drift of the namespace's cluster stability."""
        p = self.params
        ns = self._ns(e.namespace)
        ns.advance(e.event_ts)
        kinds = ns.counts["cluster_events"]
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
        for absorbed in e.related if e.kind == "merge" else ():
            ns.clusters.pop(absorbed, None)
        if e.size == 0:
            ns.clusters.pop(e.cluster_id, None)
        else:
            ns.clusters[e.cluster_id] = (e.size, e.stability)
            ns.clusters.move_to_end(e.cluster_id)
            while len(ns.clusters) > p.cluster_cap:
                ns.clusters.popitem(last=False)
            ns.summaries["cluster_stability"].update(e.stability)
            self._drift(
                ns,
                "cluster_stability",
                ns.stability_adwin,
                ns.stability_ph,
                e.stability,
                e.event_ts,
                None,
            )
        if e.memory_id is not None and e.kind in ("create", "join"):
            info = ns.memories.get(e.memory_id)
            if info is not None:
                info.cluster_id = e.cluster_id
                info.cluster_size, info.cluster_stability = e.size, e.stability
                pend = ns.pending.get(e.memory_id)
                if pend is not None:  # predict again with the cluster, before the label is known
                    pend.x = self._recall_features(ns, info, pend.touch_ts)
                    pend.p, pend.p_base = self._recall_predict(ns, pend.x)
        self._settle(ns)

    def observe_recall_latency(self, namespace: str, seconds: float) -> None:
        """Wall-clock latency of one recall request (from the recall API)."""
        self._latency(self._ns(namespace), "recall_s", seconds)

    # -- outputs --------------------------------------------------------------------------------

    def drain(
        self, now_event_ts: float | None = None
    ) -> tuple[list[PredictionEvent], list[MetricEvent]]:
        """Predictions made since the last drain, and a metrics snapshot of every namespace that
        changed since then. ``now_event_ts`` (a watermark) first moves every namespace's clock
        up to it, resolving due labels and closing due volume buckets."""
        if now_event_ts is not None:
            for ns in self.namespaces.values():
                if ns.clock is not None and now_event_ts > ns.clock:
                    ns.advance(now_event_ts)
                    self._dirty[ns.name] = None
                    self._settle(ns)
        scores: dict[tuple[str, str], tuple[Score, Baseline]] = {}
        preds: list[PredictionEvent] = []
        for name, target, agent, memory, value, ts, details in self._queue:
            key = (name, target)
            if key not in scores:
                scores[key] = self._score(self.namespaces[name], target)
            score, base = scores[key]
            preds.append(
                PredictionEvent(
                    namespace=name,
                    agent_id=agent,
                    memory_id=memory,
                    model=MODELS[target],
                    model_version=MODEL_VERSION,
                    target=target,
                    value=value,
                    event_ts=ts,
                    score=score,
                    baseline=base,
                    details=details,
                )
            )
        mets: list[MetricEvent] = []
        for name in self._dirty:
            mets += self._snapshot(self.namespaces[name])
        self._queue = []
        self._dirty = {}
        return preds, mets

    def scores(self, namespace: str) -> dict[str, tuple[Score, Baseline]]:
        """Current progressive score and baseline of every model of ``namespace``."""
        ns = self.namespaces[namespace]
        out = {t: self._score(ns, t) for t in MODELS if t != "drift"}
        for signal in ns.drift:
            out[f"drift.{signal}"] = self._drift_score(ns, signal)
        return out

    # -- checkpoint -----------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The whole state (models, statistics, undrained outputs) as a checkpoint."""
        return pickle.dumps(
            {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "analytics": self},
            protocol=pickle.HIGHEST_PROTOCOL,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Analytics:
        """Restore a checkpoint made by ``to_bytes`` (of this checkpoint version)."""
        # Only ever our own checkpoints (the worker's table or file), never bytes from a topic.
        obj = pickle.loads(data)  # noqa: S301
        if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("not an analytics checkpoint")
        if obj.get("version") not in READABLE_VERSIONS:
            raise ValueError(
                f"analytics checkpoint version {obj.get('version')!r}; "
                f"this build reads {READABLE_VERSIONS}"
            )
        restored = obj["analytics"]
        if not isinstance(restored, cls):
            raise ValueError("not an analytics checkpoint")
        return restored

    # -- internals ------------------------------------------------------------------------------

    def _ns(self, name: str) -> _Namespace:
        ns = self.namespaces.get(name)
        if ns is None:
            ns = self.namespaces[name] = _Namespace(name, self.params)
        self._dirty[name] = None
        return ns

    def _emit(
        self,
        ns: _Namespace,
        target: Target,
        agent: str | None,
        memory: str | None,
        value: float,
        ts: float,
        details: dict[str, float | str] | None = None,
    ) -> None:
        if not math.isfinite(value):  # a diverged model says nothing rather than NaN
            return
        clean = {k: v for k, v in (details or {}).items() if isinstance(v, str) or math.isfinite(v)}
        self._queue.append((ns.name, target, agent, memory, float(value), ts, clean))

    def _latency(self, ns: _Namespace, name: str, seconds: float) -> None:
        if math.isfinite(seconds):
            roll = ns.latency.get(name)
            if roll is None:
                roll = ns.latency[name] = _Rolling(
                    self.params.quantiles, self.params.latency_window
                )
            roll.update(seconds)

    # recall probability

    def _recall_features(self, ns: _Namespace, info: _Memory, ts: float) -> tuple[float, ...]:
        """The recall model's features at event time ``ts`` (in RECALL_FEATURES order)."""
        size, stability = info.cluster_size, info.cluster_stability
        if info.cluster_id is not None and info.cluster_id in ns.clusters:
            size, stability = ns.clusters[info.cluster_id]
        return (
            math.log1p(max(0.0, ts - info.created_ts) / 3600.0),
            info.importance,
            info.arousal,
            info.valence,
            math.log1p(info.recalls),
            math.log1p(size),
            stability,
            float(info.derived),
            *(float(info.type == t) for t in TYPES),
        )

    def _recall_predict(self, ns: _Namespace, x: tuple[float, ...]) -> tuple[float, float]:
        r = ns.recall
        p = r.model.predict_proba_one(dict(zip(RECALL_FEATURES, x, strict=True))).get(True, 0.5)
        p_base = (r.positives + 1) / (r.n + 2)  # the recall rate so far (Laplace-smoothed)
        return float(p), float(p_base)

    def _touch(
        self, ns: _Namespace, mid: str, agent: str, info: _Memory, ts: float, creation: bool
    ) -> None:
        p = self.params
        x = self._recall_features(ns, info, ts)
        prob, prob_base = self._recall_predict(ns, x)
        ns.pending.pop(mid, None)
        ns.pending[mid] = _Pending(x, ts, ts + p.recall_window_s, prob, prob_base, creation, agent)
        while len(ns.pending) > p.pending_cap:
            ns.pending.popitem(last=False)
            ns.recall.dropped += 1
        if creation:
            self._emit(
                ns,
                "recall_probability",
                agent,
                mid,
                prob,
                ts,
                {"window_s": p.recall_window_s, "baseline_value": prob_base},
            )

    def _resolve(self, ns: _Namespace, pend: _Pending, label: bool) -> None:
        r = ns.recall
        r.auc.update(label, pend.p)
        r.base_auc.update(label, pend.p_base)
        r.logloss.update(label, pend.p)
        r.base_logloss.update(label, pend.p_base)
        r.model.learn_one(dict(zip(RECALL_FEATURES, pend.x, strict=True)), label)
        r.n += 1
        r.positives += label
        if pend.creation:
            ns.corr["importance~recalled"].update(pend.x[1], float(label))
            ns.corr["arousal~recalled"].update(pend.x[2], float(label))

    def _settle(self, ns: _Namespace) -> None:
        """Resolve the recall labels whose window has passed; close due volume buckets."""
        if ns.clock is None:
            return
        horizon = ns.clock - self.params.label_lateness_s
        while ns.pending:
            mid, pend = next(iter(ns.pending.items()))
            if pend.due_ts >= horizon:
                break
            del ns.pending[mid]
            self._resolve(ns, pend, False)
        self._close_buckets(ns)

    # importance

    def _importance(
        self,
        ns: _Namespace,
        ag: _Agent,
        ev: MemoryEvent,
        ts: float,
        has_importance: bool,
        derived: bool,
    ) -> float:
        """Predict; with an importance, score the prediction and learn (derived memories are
        not learnt from); without one, queue the prediction. Returns the prediction."""
        m = ns.importance
        f = _importance_features(ev, ag, self.params.hash_buckets)
        y_hat = min(1.0, max(0.0, m.predict_one(f)))
        base = m.base.predict_one(f)
        if has_importance and not derived:
            y = ev.importance
            m.mae.update(y, y_hat)
            m.base_mae.update(y, 0.5 if base is None else float(base))
            m.learn_one(f, y)
            m.base.learn_one(f, y)
            m.n += 1
            w = 0.2
            ag.importance_ewm = (
                y if ag.importance_ewm is None else w * y + (1 - w) * ag.importance_ewm
            )
        elif not has_importance:
            m.imputed += 1
            self._emit(ns, "importance", ev.agent_id, ev.memory_id, y_hat, ts)
        return y_hat

    # anomalies

    def _anomaly(
        self, ns: _Namespace, ag: _Agent, ev: MemoryEvent, ts: float, importance: float
    ) -> None:
        p = self.params
        m = ns.anomaly
        ag.recent.append(ts)
        while ag.recent and ag.recent[0] < ts - p.anomaly_window_s:
            ag.recent.popleft()
        while len(ag.recent) > p.anomaly_rate_cap:
            ag.recent.popleft()
        move = 0.0
        pos = None
        if ev.position is not None:
            pos = (ev.position.x, ev.position.y, ev.position.z or 0.0)
            if ag.last_pos is not None:
                move = math.dist(pos, ag.last_pos)
            ag.last_pos = pos
        x = {
            "rate": min(1.0, math.log1p(len(ag.recent)) / math.log1p(p.anomaly_rate_cap)),
            "arousal": ev.emotion.arousal,
            "valence": (ev.emotion.valence + 1.0) / 2.0,
            "move": min(1.0, math.log1p(move) / math.log1p(p.anomaly_move_scale)),
            "importance": importance,
        }
        raw = float(m.hst.score_one(x))
        m.hst.learn_one(x)
        m.seen += 1
        zmax = 0.0
        for k, (mean, var) in m.z.items():
            sd = math.sqrt(var.get()) if var.get() > 0 else 0.0
            if sd > 0:
                zmax = max(zmax, abs(x[k] - mean.get()) / sd)
            mean.update(x[k])
            var.update(x[k])
        if m.seen <= p.anomaly_window_size:  # the trees' first window: no scores yet
            return
        a = p.anomaly_smoothing
        ag.anomaly_ewm = raw if ag.anomaly_ewm is None else a * raw + (1 - a) * ag.anomaly_ewm
        sd = math.sqrt(m.norm_var.get()) if m.norm_var.get() > 0 else 0.0
        z = (ag.anomaly_ewm - m.norm_mean.get()) / sd if sd > 0 else 0.0
        flag = m.norm_mean.n >= p.anomaly_warmup and z > p.anomaly_threshold
        if not flag:  # what is normal is learnt from what is not flagged
            m.norm_mean.update(ag.anomaly_ewm)
            m.norm_var.update(ag.anomaly_ewm)
        if m.norm_mean.n < p.anomaly_warmup:
            return
        m.scored += 1
        m.base_flagged += zmax > p.anomaly_z
        if flag:
            m.flagged += 1
            if ag.last_flag_ts is None or ts - ag.last_flag_ts >= p.anomaly_repeat_s:
                ag.last_flag_ts = ts
                details: dict[str, float | str] = {
                    "z": z,
                    "threshold": p.anomaly_threshold,
                    "raw_score": raw,
                    "baseline_max_z": zmax,
                }
                details.update({f"x_{k}": v for k, v in x.items()})
                self._emit(ns, "anomaly", ev.agent_id, None, ag.anomaly_ewm, ts, details)

    # drift

    def _drift_valence(self, ns: _Namespace, ag: _Agent, ev: MemoryEvent, ts: float) -> None:
        if ag.adwin is None or ag.ph is None:
            ag.adwin = drift.ADWIN(delta=self.params.drift_delta)
            ag.ph = drift.PageHinkley()
        self._drift(ns, "valence", ag.adwin, ag.ph, ev.emotion.valence, ts, ev.agent_id)

    def _drift(
        self,
        ns: _Namespace,
        signal: str,
        adwin: drift.ADWIN,
        ph: drift.PageHinkley,
        x: float,
        ts: float,
        agent: str | None,
    ) -> None:
        sig = ns.drift[signal]
        width, mean = adwin.width, adwin.estimation
        adwin.update(x)
        ph.update(x)
        sig.n += 1
        sig.base_alarms += ph.drift_detected
        if adwin.drift_detected:
            sig.alarms += 1
            # ADWIN dropped the older part of its window: compare it with the part it kept
            after, kept = adwin.estimation, adwin.width
            dropped = width + 1 - kept
            before = (mean * width + x - after * kept) / dropped if dropped > 0 else mean
            self._emit(
                ns,
                "drift",
                agent,
                None,
                after - before,
                ts,
                {
                    "signal": signal,
                    "mean_before": before,
                    "mean_after": after,
                    "dropped": float(dropped),
                    "kept": float(kept),
                },
            )

    # volume

    def _count_volume(self, ns: _Namespace, ts: float) -> None:
        v = ns.volume
        b = math.floor(ts / self.params.volume_bucket_s)
        if v.next_bucket is None:
            v.next_bucket = b
        if b < v.next_bucket:
            v.late += 1
            return
        v.counts[b] = v.counts.get(b, 0) + 1

    def _close_buckets(self, ns: _Namespace) -> None:
        p = self.params
        v = ns.volume
        if v.next_bucket is None or ns.clock is None:
            return
        # the newest bucket whose end (plus lateness) the clock has passed
        last = math.floor((ns.clock - p.volume_lateness_s) / p.volume_bucket_s) - 1
        if last - v.next_bucket >= p.volume_max_gap:  # a long silence: skip the oldest empties
            first_kept = last - p.volume_max_gap + 1
            for b in [b for b in v.counts if b < first_kept]:
                del v.counts[b]
            v.next_bucket = first_kept
        while v.next_bucket <= last:
            b = v.next_bucket
            y = v.counts.pop(b, 0)
            if v.forecast is not None and v.last is not None and v.closed >= v.warmup:
                v.mae.update(y, v.forecast)
                v.base_mae.update(y, v.last)
                v.scored += 1
            v.model.learn_one(float(y))
            f = float(v.model.forecast(horizon=1)[0])
            f = max(0.0, f) if math.isfinite(f) else float(y)
            v.forecast, v.last = f, y
            v.closed += 1
            v.next_bucket = b + 1
            self._emit(
                ns,
                "volume_forecast",
                None,
                None,
                f,
                (b + 1) * p.volume_bucket_s,
                {"bucket_s": p.volume_bucket_s, "last_count": float(y), "baseline_value": float(y)},
            )

    # scores and snapshots

    def _score(self, ns: _Namespace, target: str) -> tuple[Score, Baseline]:
        if target == "recall_probability":
            r = ns.recall
            both = r.n if 0 < r.positives < r.n else 0  # AUC needs both labels
            return (
                Score(metric="roc_auc", value=_get(r.auc, both), n=r.n, higher_is_better=True),
                Baseline(name="prior", metric="roc_auc", value=_get(r.base_auc, both)),
            )
        if target == "importance":
            m = ns.importance
            return (
                Score(metric="mae", value=_get(m.mae, m.n), n=m.n, higher_is_better=False),
                Baseline(name="mean", metric="mae", value=_get(m.base_mae, m.n)),
            )
        if target == "anomaly":
            a = ns.anomaly
            rate = a.flagged / a.scored if a.scored else None
            base = a.base_flagged / a.scored if a.scored else None
            return (
                Score(metric="flag_rate", value=rate, n=a.scored, higher_is_better=False),
                Baseline(name=f"zscore>{self.params.anomaly_z:g}", metric="flag_rate", value=base),
            )
        if target == "volume_forecast":
            v = ns.volume
            n = v.scored
            return (
                Score(metric="mae", value=_get(v.mae, n), n=n, higher_is_better=False),
                Baseline(name="no-change", metric="mae", value=_get(v.base_mae, n)),
            )
        # drift: the signal is in the details; score both signals together
        sig = _DriftSignal()
        for s in ns.drift.values():
            sig.n += s.n
            sig.alarms += s.alarms
            sig.base_alarms += s.base_alarms
        return _alarm_scores(sig)

    def _drift_score(self, ns: _Namespace, signal: str) -> tuple[Score, Baseline]:
        return _alarm_scores(ns.drift[signal])

    def _snapshot(self, ns: _Namespace) -> list[MetricEvent]:
        if ns.clock is None:
            return []
        ts = ns.clock
        span_h = (ns.clock - ns.first_ts) / 3600.0 if ns.first_ts is not None else 0.0
        out: list[MetricEvent] = []

        def put(name: str, kind: Any, values: dict[str, float], n: int, **kw: Any) -> None:
            values = _finite(values)
            if values:
                out.append(
                    MetricEvent(
                        namespace=ns.name,
                        name=name,
                        kind=kind,
                        values=values,
                        n=n,
                        event_ts=ts,
                        **kw,
                    )
                )

        ev = ns.counts["events"]
        for name, counts in ns.counts.items():
            put(name, "counter", {k: float(c) for k, c in counts.items()}, sum(counts.values()))
        put("lifecycle_states", "gauge", {k: float(c) for k, c in ns.states.items()}, ev["total"])
        if span_h > 0:
            rates = {f"{t}_per_h": ev[t] / span_h for t in ("total", *TYPES)}
            rates["recalls_per_h"] = ns.counts["recalls"]["memories"] / span_h
            for state, c in ns.counts["lifecycle_transitions"].items():
                rates[f"{state}_per_h"] = c / span_h
            put("event_rates", "rate", rates, ev["total"], window_s=span_h * 3600.0)
        tr = ns.counts["lifecycle_transitions"]
        created = ev["total"] - ev["derived"]
        if created:
            put(
                "lifecycle_rates",
                "rate",
                {
                    f"{s}_rate": tr.get(s, 0) / created
                    for s in ("decayed", "consolidated", "archived")
                },
                created,
            )
        for name, s in ns.summaries.items():
            if s.n:
                put(name, "summary", s.values(), s.n)
        for name, roll in ns.latency.items():
            put(f"latency.{name}", "quantiles", roll.values(), roll.n)
        corr = {k: c.get() for k, c in ns.corr.items() if c.var_x.n >= 2}
        put("correlation", "correlation", corr, min(c.var_x.n for c in ns.corr.values()))
        v = ns.volume
        put(
            "volume",
            "gauge",
            {
                "late_events": float(v.late),
                "closed_buckets": float(v.closed),
                "open_buckets": float(len(v.counts)),
            },
            v.closed,
        )
        put(
            "recall_samples",
            "gauge",
            {
                "open": float(len(ns.pending)),
                "labelled": float(ns.recall.n),
                "positive_rate": ns.recall.positives / ns.recall.n if ns.recall.n else math.nan,
                "dropped": float(ns.recall.dropped),
                "imputed_importance": float(ns.importance.imputed),
            },
            ns.recall.n,
        )
        scores: dict[str, float] = {}
        for target, (score, base) in self.scores(ns.name).items():
            if score.value is not None:
                scores[f"{target}.{score.metric}"] = score.value
            if base.value is not None:
                scores[f"{target}.baseline.{base.metric}"] = base.value
        if ns.recall.n:
            scores["recall_probability.log_loss"] = ns.recall.logloss.get()
            scores["recall_probability.baseline.log_loss"] = ns.recall.base_logloss.get()
        put("model_scores", "gauge", scores, ns.recall.n)
        return out


# ---------------------------------------------------------------------------------------------
# helpers


def _importance_features(ev: MemoryEvent, ag: _Agent, buckets: int) -> dict[str, float]:
    """Content and context features of the importance model (hashed words and tags)."""
    words = _WORD.findall(ev.content.lower())
    v = ev.emotion.valence
    f: dict[str, float] = {
        "len": math.log1p(len(ev.content)),
        "words": math.log1p(len(words)),
        "tags": float(len(ev.tags)),
        "steps": float(len(ev.steps or ())),
        "valence": v,
        "abs_valence": abs(v),
        "arousal": ev.emotion.arousal,
        "has_position": float(ev.position is not None),
        "agent_importance": 0.5 if ag.importance_ewm is None else ag.importance_ewm,
    }
    for t in TYPES:
        f[f"type_{t}"] = float(ev.type.value == t)
    if words:
        w = 1.0 / math.sqrt(len(words))
        for word in words:
            k = f"w{zlib.crc32(word.encode()) % buckets}"
            f[k] = f.get(k, 0.0) + w
    for tag in ev.tags:
        f[f"t{zlib.crc32(tag.encode()) % buckets}"] = 1.0
    return f


def _alarm_scores(sig: _DriftSignal) -> tuple[Score, Baseline]:
    rate = 1000.0 * sig.alarms / sig.n if sig.n else None
    base = 1000.0 * sig.base_alarms / sig.n if sig.n else None
    return (
        Score(metric="alarms_per_1k", value=rate, n=sig.n, higher_is_better=False),
        Baseline(name="PageHinkley", metric="alarms_per_1k", value=base),
    )


def _get(metric: Any, n: int) -> float | None:
    if not n:
        return None
    v = float(metric.get())
    return v if math.isfinite(v) else None


def _qname(q: float) -> str:
    return f"q{round(q * 100):02d}" if round(q * 100) == q * 100 else f"q{q:g}"


def _finite(values: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}


# ---------------------------------------------------------------------------------------------
# batch function (stream agent)


def analytics_batch(
    records: Sequence[RawRecord], analytics: Analytics, topics: dict[str, str], now: float
) -> tuple[list[KV], list[KV], list[KV]]:
    """Raw records of the ``topics`` (kind -> topic name; kinds ``embedded``, ``events``,
    ``access``, ``lifecycle``, ``clusters``) through ``analytics``; returns (prediction
    records, metric records, dead letters), predictions and metrics keyed by namespace.

    ``now`` (wall clock) is when the batch was read: the ingest → analytics latency of embedded
    memories, and the time stamped on dead letters.
    """
    from pydantic import ValidationError

    from pipelines.errors import InvalidEventError
    from pipelines.stage_batches import _dead
    from schemas.embedded import EmbeddedMemory
    from schemas.memory_event import parse_memory_event

    kinds = {name: kind for kind, name in topics.items()}
    dead: list[KV] = []
    for rec in records:
        kind = kinds.get(rec.topic)
        try:
            raw = rec.value or b""
            if kind == "embedded":
                m = EmbeddedMemory.model_validate_json(raw)
                analytics.observe_memory(
                    m.event, m.ingest_ts, seen_ts=now, has_importance=m.importance_given
                )
            elif kind == "events":
                analytics.observe_memory(parse_memory_event(raw))
            elif kind == "access":
                analytics.observe_access(AccessEvent.model_validate_json(raw))
            elif kind == "lifecycle":
                analytics.observe_lifecycle(LifecycleEvent.model_validate_json(raw))
            elif kind == "clusters":
                analytics.observe_cluster(ClusterEvent.model_validate_json(raw))
            else:
                raise ValueError(f"no analytics input for topic {rec.topic!r}")
        except (ValidationError, ValueError) as exc:
            err = InvalidEventError(f"not a valid analytics input: {str(exc)[:500]}")
            dead.append(_dead(rec, err, "analytics", now))
    preds, mets = analytics.drain()
    return (
        [(p.namespace.encode(), p.model_dump_json().encode()) for p in preds],
        [(m.namespace.encode(), m.model_dump_json().encode()) for m in mets],
        dead,
    )
