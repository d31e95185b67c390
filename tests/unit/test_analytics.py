"""Streaming analytics (``pipelines.analytics``): on simulated streams with planted signals every
model beats its baseline by progressive validation, the anomaly and the drift are found near the
planted time and not before, the statistics match an offline computation over the same events,
and a checkpoint restores the state exactly."""

from __future__ import annotations

import base64
import json
import math
import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

import numpy as np
import pytest

from pipelines.analytics import (
    CHECKPOINT_VERSION,
    RECALL_FEATURES,
    Analytics,
    AnalyticsParams,
    analytics_batch,
)
from pipelines.ingest import RawRecord
from pipelines.simulation import Population
from schemas import (
    AccessEvent,
    ClusterEvent,
    EmbeddedMemory,
    Emotion,
    LifecycleEvent,
    MemoryEvent,
    Position,
)
from schemas.analytics import MetricEvent, PredictionEvent

T0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
Event = MemoryEvent | AccessEvent | LifecycleEvent | ClusterEvent


def _mem(
    i: int,
    agent: str,
    ts: float,
    *,
    ns: str = "w",
    importance: float | None = 0.5,
    valence: float = 0.0,
    arousal: float = 0.3,
    pos: tuple[float, float] | None = None,
    content: str | None = None,
) -> MemoryEvent:
    fields: dict[str, object] = {
        "schema_version": 1,
        "memory_id": f"{ns}:{agent}:{i}",
        "agent_id": agent,
        "namespace": ns,
        "type": "episodic",
        "content": content or f"memory number {i}",
        "emotion": Emotion(valence=valence, arousal=arousal),
        "event_time": datetime.fromtimestamp(ts, UTC),
    }
    if importance is not None:
        fields["importance"] = importance
    if pos is not None:
        fields["position"] = Position(x=pos[0], y=pos[1])
    return MemoryEvent(**fields)  # type: ignore[arg-type]


def _feed(a: Analytics, events: Iterable[Event]) -> None:
    for e in events:
        if isinstance(e, MemoryEvent):
            a.observe_memory(e)
        elif isinstance(e, AccessEvent):
            a.observe_access(e)
        elif isinstance(e, LifecycleEvent):
            a.observe_lifecycle(e)
        else:
            a.observe_cluster(e)


def _ts(e: Event) -> float:
    if isinstance(e, MemoryEvent):
        return e.event_ts
    assert e.event_ts is not None
    return e.event_ts


def _recall_stream(n: int, window: float, seed: int = 1) -> list[Event]:
    """Memories every minute; the more important, the likelier recalled within ``window``."""
    rng = random.Random(seed)
    out: list[tuple[float, int, Event]] = []
    for i in range(n):
        ts = T0 + 60.0 * i
        imp = round(rng.random(), 3)
        agent = f"a{i % 10}"
        m = _mem(i, agent, ts, importance=imp, arousal=round(rng.random(), 3))
        out.append((ts, 0, m))
        if rng.random() < 1 / (1 + math.exp(-8 * (imp - 0.5))):  # the planted signal
            rts = ts + rng.uniform(0, window)
            a = AccessEvent(namespace="w", agent_id=agent, memory_ids=[m.memory_id], event_ts=rts)
            out.append((rts, 1, a))
    out.sort(key=lambda t: (t[0], t[1]))
    return [e for _, _, e in out]


# --- (a) recall probability ------------------------------------------------------------------


def test_recall_probability_beats_prior_when_important_memories_are_recalled_more() -> None:
    window = 3600.0
    stream = _recall_stream(1500, window)
    a = Analytics(AnalyticsParams(recall_window_s=window, label_lateness_s=0.0))
    _feed(a, stream)
    score, base = a.scores("w")["recall_probability"]
    assert score.metric == base.metric == "roc_auc" and score.higher_is_better
    assert score.n > 1500  # creations and recalls are samples
    assert score.value is not None and base.value is not None
    assert score.value > 0.85 and score.value > base.value + 0.3, (score, base)
    ns = a.namespaces["w"]
    assert ns.recall.logloss.get() < ns.recall.base_logloss.get()

    preds, mets = a.drain()
    recall = [p for p in preds if p.target == "recall_probability"]
    assert len(recall) == 1500  # one per new memory
    assert all(0.0 <= p.value <= 1.0 and p.memory_id for p in recall)
    assert recall[-1].score.value == score.value and recall[-1].baseline.name == "prior"
    # the model learnt the signal: important memories get higher probabilities
    late = [(p.value, float(p.memory_id.split(":")[-1])) for p in recall[-300:]]  # type: ignore[union-attr]
    by_id = {m.memory_id: m.importance for m in stream if isinstance(m, MemoryEvent)}
    imp = [by_id[p.memory_id] for p in recall[-300:]]  # type: ignore[index]
    assert np.corrcoef([v for v, _ in late], imp)[0, 1] > 0.8
    model_scores = next(m for m in mets if m.name == "model_scores").values
    assert model_scores["recall_probability.roc_auc"] == score.value


def test_recall_labels_resolve_lazily_on_event_time() -> None:
    p = AnalyticsParams(recall_window_s=100.0, label_lateness_s=10.0)
    a = Analytics(p)
    a.observe_memory(_mem(1, "a", T0))
    a.observe_memory(_mem(2, "a", T0 + 1))
    ns = a.namespaces["w"]
    assert len(ns.pending) == 2 and ns.recall.n == 0
    # a recall inside the window: a positive label, and a new sample from the recall
    a.observe_access(
        AccessEvent(namespace="w", agent_id="a", memory_ids=["w:a:1"], event_ts=T0 + 50)
    )
    assert (ns.recall.n, ns.recall.positives) == (1, 1)
    # the clock passes memory 2's window (+ lateness): negative; the recall's sample stays open
    a.observe_memory(_mem(3, "b", T0 + 112))
    assert (ns.recall.n, ns.recall.positives) == (2, 1)
    assert list(ns.pending) == ["w:a:1", "w:b:3"]
    # a recall after the window closes the sample as negative (even before the clock settles it)
    a.observe_access(
        AccessEvent(namespace="w", agent_id="b", memory_ids=["w:b:3", "nope"], event_ts=T0 + 213)
    )
    assert (ns.recall.n, ns.recall.positives) == (4, 1)  # w:a:1 by the clock, w:b:3 late
    assert ns.counts["recalls"] == {"access_events": 2, "memories": 3, "unknown": 1}
    # a watermark settles the rest
    a.drain(now_event_ts=T0 + 10_000)
    assert not ns.pending and ns.recall.n == 5


def test_open_recall_samples_are_bounded_and_clusters_update_their_features() -> None:
    a = Analytics(AnalyticsParams(pending_cap=10, memory_cap=20))
    for i in range(50):
        a.observe_memory(_mem(i, "a", T0 + i))
    ns = a.namespaces["w"]
    assert len(ns.pending) == 10 and ns.recall.dropped == 40 and len(ns.memories) == 20
    before = ns.pending["w:a:49"].x[RECALL_FEATURES.index("cluster_size")]
    a.observe_cluster(
        ClusterEvent(
            kind="join",
            namespace="w",
            agent_id="a",
            cluster_id="c1",
            memory_id="w:a:49",
            size=7,
            radius=0.1,
            stability=0.8,
            event_ts=T0 + 49,
        )
    )
    after = dict(zip(RECALL_FEATURES, ns.pending["w:a:49"].x, strict=True))
    assert before == 0.0 and after["cluster_size"] == pytest.approx(math.log1p(7))
    assert after["cluster_stability"] == 0.8
    # a redelivered memory is not counted twice
    a.observe_memory(_mem(49, "a", T0 + 49))
    assert ns.counts["events"]["total"] == 50 and ns.counts["events"]["replayed"] == 1


# --- (b) importance --------------------------------------------------------------------------


def test_importance_regression_beats_the_mean() -> None:
    # in the simulation importance follows the theme's arousal (tags, words, emotion)
    a = Analytics()
    _feed(a, Population(10, seed=3).events(1500))
    score, base = a.scores("sim")["importance"]
    assert score.metric == "mae" and not score.higher_is_better and score.n == 1500
    assert score.value is not None and base.value is not None
    assert score.value < 0.9 * base.value, (score, base)
    # an event without an importance gets one predicted (and is not learnt from)
    a.drain()
    ev = next(Population(10, seed=3).events(1)).model_dump(exclude={"importance"})
    ev["memory_id"] = "sim:new:1"
    a.observe_memory(MemoryEvent.model_validate(ev))
    preds, _ = a.drain()
    (imp,) = [p for p in preds if p.target == "importance"]
    assert imp.memory_id == "sim:new:1" and 0.0 <= imp.value <= 1.0
    assert imp.score.n == 1500 and imp.baseline.name == "mean"


# --- (c) anomalous agent ---------------------------------------------------------------------


def test_an_agent_turning_anomalous_is_flagged_soon_after_and_not_before() -> None:
    pop = Population(10, seed=3)
    normal = list(pop.events(1500))
    t_bad = normal[-1].event_ts
    rng = random.Random(5)
    burst = [  # agent-0003 goes wild: an event every 10 s, extreme emotion, jumping around
        _mem(
            10_000 + i,
            "agent-0003",
            t_bad + 10.0 * (i + 1),
            ns="sim",
            importance=0.95,
            valence=-0.9,
            arousal=0.98,
            pos=(rng.uniform(0, 100), rng.uniform(0, 100)),
        )
        for i in range(60)
    ]
    after = sorted([*pop.events(500), *burst], key=lambda e: e.event_ts)
    a = Analytics()
    _feed(a, normal)
    preds, _ = a.drain()
    assert not [p for p in preds if p.target == "anomaly"]  # nothing flagged before
    _feed(a, after)
    preds, _ = a.drain()
    flags = [p for p in preds if p.target == "anomaly"]
    assert flags and {p.agent_id for p in flags} == {"agent-0003"}
    assert t_bad < flags[0].event_ts <= t_bad + 120.0
    first = flags[0]
    assert first.details["z"] > first.details["threshold"]
    assert first.score.metric == "flag_rate" and first.score.value is not None
    assert first.score.value < 0.05 and first.baseline.name.startswith("zscore")


# --- (d) volume forecast ---------------------------------------------------------------------


def test_volume_forecast_beats_no_change_on_a_seasonal_trending_volume() -> None:
    rng = random.Random(4)
    season = 12
    a = Analytics(AnalyticsParams(volume_season=season, volume_lateness_s=0.0))
    i = 0
    counts = []
    for b in range(8 * season):
        n = max(0, round(15 + 10 * math.sin(2 * math.pi * b / season) + 0.05 * b + rng.gauss(0, 1)))
        counts.append(n)
        for j in range(n):
            a.observe_memory(_mem(i, f"a{i % 5}", T0 + 600.0 * b + 600.0 * j / n))
            i += 1
    preds, _ = a.drain()
    fc = [p for p in preds if p.target == "volume_forecast"]
    assert len(fc) == 8 * season - 1  # every closed bucket (the last is still open)
    assert [p.details["last_count"] for p in fc] == counts[:-1]
    score, base = a.scores("w")["volume_forecast"]
    assert score.n == len(fc) - 2 * season  # scored after the warm-up
    assert score.value is not None and base.value is not None
    assert score.value < 0.6 * base.value, (score, base)
    assert fc[-1].baseline.name == "no-change" and fc[-1].event_ts == T0 + 600.0 * (8 * season - 1)


# --- (e) drift -------------------------------------------------------------------------------


def test_drift_is_detected_after_a_planted_shift_in_one_agents_valence_and_not_before() -> None:
    rng = random.Random(2)
    a = Analytics()
    shift_at = 200
    for i in range(300):
        for k in range(8):
            v = rng.gauss(0.3, 0.1) if k != 3 or i < shift_at else rng.gauss(-0.3, 0.1)
            a.observe_memory(_mem(i, f"a{k}", T0 + 600.0 * i + k, valence=round(v, 3)))
    preds, _ = a.drain()
    drifts = [p for p in preds if p.target == "drift"]
    assert drifts and {p.agent_id for p in drifts} == {"a3"}
    step = (drifts[0].event_ts - T0) // 600
    assert shift_at < step <= shift_at + 64
    assert drifts[0].details["signal"] == "valence"
    assert drifts[0].details["mean_before"] == pytest.approx(0.3, abs=0.05)
    assert drifts[0].value < -0.1  # towards -0.6 (the part ADWIN kept still holds older events)
    assert drifts[0].score.metric == "alarms_per_1k"


def test_drift_of_cluster_stability_per_namespace() -> None:
    a = Analytics()
    rng = random.Random(3)
    for i in range(400):
        stab = min(1.0, max(0.0, rng.gauss(0.8 if i < 250 else 0.4, 0.05)))
        a.observe_cluster(
            ClusterEvent(
                kind="join",
                namespace="w",
                agent_id=f"a{i % 4}",
                cluster_id=f"c{i % 7}",
                size=5,
                radius=0.1,
                stability=stab,
                event_ts=T0 + i,
            )
        )
    preds, _ = a.drain()
    drifts = [p for p in preds if p.target == "drift"]
    assert drifts and all(p.details["signal"] == "cluster_stability" for p in drifts)
    assert 250 < drifts[0].event_ts - T0 <= 250 + 64


# --- (f) statistics --------------------------------------------------------------------------


def test_statistics_match_an_offline_computation() -> None:
    p = AnalyticsParams(recall_window_s=3600.0, label_lateness_s=0.0, latency_window=200)
    a = Analytics(p)
    events = list(Population(8, seed=5).events(800))
    rng = random.Random(9)
    latencies = []
    for ev in events:
        lat = rng.expovariate(10.0)
        latencies.append(lat)
        a.observe_memory(ev, 1000.0, seen_ts=1000.0 + lat)
    decayed = [ev for ev in events[:800:10]]
    for ev in decayed:
        a.observe_lifecycle(
            LifecycleEvent(
                namespace="sim",
                agent_id=ev.agent_id,
                memory_id=ev.memory_id,
                from_state="active",
                to_state="decayed",
                event_ts=events[-1].event_ts,
                retention=0.04,
                stability_s=100.0,
                recalls=0,
                cause="clock",
            )
        )
    _, mets = a.drain()
    m = {x.name: x for x in mets}

    imp = np.array([e.importance for e in events])
    aro = np.array([e.emotion.arousal for e in events])
    val = np.array([e.emotion.valence for e in events])
    length = np.array([len(e.content) for e in events], dtype=float)
    types = [e.type.value for e in events]
    assert m["events"].values["total"] == 800
    for t in ("episodic", "semantic", "procedural"):
        assert m["events"].values[t] == types.count(t)
    for name, x in (
        ("importance", imp),
        ("arousal", aro),
        ("valence", val),
        ("content_length", length),
    ):
        s = m[name]
        assert s.kind == "summary" and s.n == 800
        assert s.values["mean"] == pytest.approx(x.mean(), rel=1e-9, abs=1e-12)
        assert s.values["var"] == pytest.approx(x.var(ddof=1), rel=1e-9, abs=1e-12)
        spread = float(x.max() - x.min()) or 1.0
        for q in (0.5, 0.9):  # P² estimates
            key = f"q{round(q * 100):02d}"
            assert abs(s.values[key] - np.quantile(x, q)) < 0.05 * spread, (name, q)
    corr = m["correlation"]
    assert corr.kind == "correlation"
    assert corr.values["arousal~importance"] == pytest.approx(np.corrcoef(aro, imp)[0, 1], rel=1e-6)
    assert corr.values["valence~importance"] == pytest.approx(np.corrcoef(val, imp)[0, 1], rel=1e-6)
    span_h = (events[-1].event_ts - events[0].event_ts) / 3600.0
    assert m["event_rates"].values["total_per_h"] == pytest.approx(800 / span_h)
    assert m["lifecycle_transitions"].values == {"decayed": len(decayed)}
    assert m["lifecycle_rates"].values["decayed_rate"] == pytest.approx(len(decayed) / 800)
    lat = m["latency.ingest_to_analytics_s"]
    assert lat.n == 800
    recent = np.array(latencies[-200:])
    assert lat.values["q50"] == pytest.approx(np.quantile(recent, 0.5), rel=0.05)
    assert lat.values["q90"] == pytest.approx(np.quantile(recent, 0.9), rel=0.05)
    assert all(x.namespace == "sim" and x.event_ts == events[-1].event_ts for x in mets)


def test_recall_correlations_match_the_labels() -> None:
    window = 3600.0
    stream = _recall_stream(600, window, seed=7)
    a = Analytics(AnalyticsParams(recall_window_s=window, label_lateness_s=0.0))
    _feed(a, stream)
    a.drain(now_event_ts=_ts(stream[-1]) + 2 * window)  # every label is known
    recalled: dict[str, bool] = {}
    for e in stream:
        if isinstance(e, MemoryEvent):
            recalled[e.memory_id] = False
        elif isinstance(e, AccessEvent):
            recalled[e.memory_ids[0]] = True  # planted recalls are all inside the window
    mems = [e for e in stream if isinstance(e, MemoryEvent)]
    y = np.array([recalled[m.memory_id] for m in mems], dtype=float)
    imp = np.array([m.importance for m in mems])
    ns = a.namespaces["w"]
    assert ns.corr["importance~recalled"].get() == pytest.approx(np.corrcoef(imp, y)[0, 1])


# --- (g) checkpoint --------------------------------------------------------------------------


def _mixed_stream() -> Iterator[Event]:
    rng = random.Random(11)
    for i, ev in enumerate(Population(6, seed=2).events(900)):
        yield ev
        if i % 3 == 0:
            yield ClusterEvent(
                kind="join" if i % 2 else "create",
                namespace="sim",
                agent_id=ev.agent_id,
                cluster_id=f"{ev.agent_id}:c{i % 5}",
                memory_id=ev.memory_id,
                size=1 + i % 9,
                radius=0.1,
                stability=round(rng.random(), 3),
                event_ts=ev.event_ts,
            )
        if i % 4 == 0 and i > 20:
            yield AccessEvent(
                namespace="sim",
                agent_id=ev.agent_id,
                memory_ids=[f"sim:{ev.agent_id}:{max(1, int(ev.memory_id[-8:]) - 3):08d}"],
                event_ts=ev.event_ts,
            )


def _dump(out: tuple[list[PredictionEvent], list[MetricEvent]]) -> list[str]:
    return [x.model_dump_json() for x in (*out[0], *out[1])]


def test_checkpoint_round_trip_continues_identically() -> None:
    p = AnalyticsParams(recall_window_s=1800.0, volume_season=6, anomaly_window_size=100)
    stream = list(_mixed_stream())
    head, tail = stream[:700], stream[700:]
    a = Analytics(p)
    _feed(a, head)
    a.observe_memory(tail[0])  # an undrained output travels in the checkpoint too
    blob = a.to_bytes()
    b = Analytics.from_bytes(blob)
    assert b.params == p and b is not a
    outs = []
    for x in (a, b):
        _feed(x, tail[1:])
        outs.append(_dump(x.drain(now_event_ts=_ts(stream[-1]) + 7200)))
    assert outs[0] == outs[1]
    assert any('"target":"volume_forecast"' in line for line in outs[0])


_RESTART = """
import sys
from pipelines.analytics import Analytics
from tests.unit import test_analytics as t
stream = list(t._mixed_stream())
b = Analytics.from_bytes(sys.stdin.buffer.read())
t._feed(b, stream[700:])
print("\\n".join(t._dump(b.drain(now_event_ts=t._ts(stream[-1]) + 7200))))
"""


def test_a_restarted_process_continues_identically() -> None:
    """A restart is a new process, with its own string hashes: nothing may depend on them."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    stream = list(_mixed_stream())
    a = Analytics(AnalyticsParams(recall_window_s=1800.0, volume_season=6))
    _feed(a, stream[:700])
    blob = a.to_bytes()
    _feed(a, stream[700:])
    expected = _dump(a.drain(now_event_ts=_ts(stream[-1]) + 7200))
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(
        [sys.executable, "-c", _RESTART], input=blob, capture_output=True, cwd=root, env=env
    )
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    assert out.stdout.decode().splitlines() == expected


def test_version_1_and_2_checkpoints_still_load_and_continue_identically(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Version 3 saves a namespace's memories and open samples as columns, each pickled on
    its own; version 2 (the columns as lists) and version 1 (the objects themselves)
    checkpoints from before still load, to the same state."""
    import pickle

    from pipelines import analytics as mod

    stream = list(_mixed_stream())
    a = Analytics(AnalyticsParams(recall_window_s=1800.0, volume_season=6))
    _feed(a, stream[:700])
    ns = next(iter(a.namespaces.values()))
    assert ns.memories and ns.pending
    ids, columns = ns.__getstate__()["memories"]
    assert pickle.loads(ids) == list(ns.memories) and len(columns) == len(mod._MEMORY_FIELDS)  # noqa: S301
    v3 = a.to_bytes()
    with monkeypatch.context() as m:
        m.setattr(mod._Namespace, "__getstate__", lambda self: self.__dict__.copy())
        v1 = pickle.dumps({"format": "argos-analytics", "version": 1, "analytics": a})
    with monkeypatch.context() as m:
        m.setattr(mod, "_dumped", lambda column: column)  # version 2: the lists themselves
        v2 = pickle.dumps({"format": "argos-analytics", "version": 2, "analytics": a})
    assert len(v3) < len(v1)
    outs = []
    for blob in (v1, v2, v3):
        b = Analytics.from_bytes(blob)
        nb = next(iter(b.namespaces.values()))
        assert nb.memories == ns.memories and nb.pending == ns.pending
        assert list(nb.memories) == list(ns.memories)  # the LRU order too
        _feed(b, stream[700:])
        outs.append(_dump(b.drain(now_event_ts=_ts(stream[-1]) + 7200)))
    assert outs[0] == outs[1] == outs[2]


def test_checkpoint_refuses_other_versions_and_other_bytes() -> None:
    import pickle

    blob = pickle.dumps({"format": "argos-analytics", "version": CHECKPOINT_VERSION + 1})
    with pytest.raises(ValueError, match="version"):
        Analytics.from_bytes(blob)
    with pytest.raises(ValueError, match="not an analytics checkpoint"):
        Analytics.from_bytes(pickle.dumps([1, 2, 3]))


# --- (h) batch function ----------------------------------------------------------------------

TOPICS = {
    "embedded": "argos.memory.embedded",
    "events": "argos.memory.events",
    "access": "argos.memory.access",
    "lifecycle": "argos.memory.lifecycle",
    "clusters": "argos.clusters",
}


def test_analytics_batch_maps_topics_and_dead_letters_garbage() -> None:
    ev = _mem(1, "ann", T0, importance=0.7)
    vec = np.ones(4, dtype=np.float32) / 2.0
    emb = EmbeddedMemory.build(ev, vec, "test", ingest_ts=500.0)
    no_importance = json.loads(_mem(2, "ann", T0 + 5).to_json_bytes())
    del no_importance["importance"]
    raw_event = json.dumps(no_importance).encode()
    access = AccessEvent(namespace="w", agent_id="ann", memory_ids=[ev.memory_id], event_ts=T0 + 9)
    records = [
        RawRecord(emb.model_dump_json().encode(), b"ann", TOPICS["embedded"], 0, 1),
        RawRecord(raw_event, b"ann", TOPICS["events"], 0, 2),
        RawRecord(access.model_dump_json().encode(), b"ann", TOPICS["access"], 0, 3),
        RawRecord(b"\xff not json", b"ann", TOPICS["access"], 0, 4),
        RawRecord(b'{"kind": "join"}', b"w", TOPICS["clusters"], 1, 5),
        RawRecord(b"{}", None, TOPICS["lifecycle"], 2, 6),
        RawRecord(emb.model_dump_json().encode(), b"ann", "argos.other", 0, 7),
    ]
    preds, mets, dead = analytics_batch(records, Analytics(), TOPICS, now=501.5)
    assert len(dead) == 4
    letters = [json.loads(v) for _, v in dead]
    assert [d["source_offset"] for d in letters] == [4, 5, 6, 7]
    assert all(d["stage"] == "analytics" for d in letters)
    assert "no analytics input for topic 'argos.other'" in letters[-1]["reason"]
    assert base64.b64decode(letters[0]["original_b64"]) == b"\xff not json"
    assert [k for k, _ in dead] == [b"ann", b"w", None, b"ann"]
    targets = sorted(json.loads(v)["target"] for _, v in preds)
    # two recall probabilities; the raw event came without an importance: it gets one
    assert targets == ["importance", "recall_probability", "recall_probability"]
    assert {k for k, _ in preds} == {k for k, _ in mets} == {b"w"}
    by_name = {json.loads(v)["name"]: json.loads(v) for _, v in mets}
    assert by_name["latency.ingest_to_analytics_s"]["values"]["q50"] == pytest.approx(1.5)
    assert by_name["recalls"]["values"]["memories"] == 1
    for _, v in preds:
        PredictionEvent.model_validate_json(v)
    for _, v in mets:
        MetricEvent.model_validate_json(v)


def test_metric_event_needs_exactly_one_of_value_and_values() -> None:
    with pytest.raises(ValueError):
        MetricEvent(namespace="w", name="x", kind="gauge", event_ts=0.0)
    with pytest.raises(ValueError):
        MetricEvent(namespace="w", name="x", kind="gauge", value=1.0, values={"a": 1.0}, event_ts=0)
    assert MetricEvent(namespace="w", name="x", kind="gauge", value=1.0, event_ts=0).value == 1.0
