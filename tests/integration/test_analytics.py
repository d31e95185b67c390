"""The analytics stage on the real broker: predictions with their scores beside a baseline's,
metrics per namespace, and models that survive a restart (checkpointed into a changelog-recovered
table, so a worker restarted on a fresh disk still finds them)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.client import MemoryClient
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher
from pipelines.simulation import Population
from schemas.analytics import MetricEvent, PredictionEvent
from tests.integration.kafka_utils import read_topic

pytestmark = pytest.mark.integration

NS = "analytics-test"
FAST = {"ARGOS_ANALYTICS_CHECKPOINT_S": "0.5", "ARGOS_PREFETCH_S": "1"}


def _metric_total(worker: WorkerProcess) -> float:
    """The models' count of published memories (derived semantic ones left out)."""
    topic = worker.env["ARGOS_TOPIC_PREFIX"] + ".analytics.metrics"
    totals = [
        m.values["total"] - m.values.get("derived", 0.0)
        for m in (
            MetricEvent.model_validate_json(r.value) for r in read_topic(worker.bootstrap, topic)
        )
        if m.namespace == NS and m.name == "events" and m.values
    ]
    return max(totals, default=0.0)


def test_predictions_metrics_and_models_survive_a_restart(
    start_worker: Callable[..., WorkerProcess], tmp_path_factory: pytest.TempPathFactory
) -> None:
    data_dir: Path = tmp_path_factory.mktemp("analytics")
    worker = start_worker(data_dir=data_dir, extra_env=FAST)
    prefix = worker.env["ARGOS_TOPIC_PREFIX"]
    pop = Population(8, seed=4, namespace=NS)
    with MemoryPublisher(worker.bootstrap, prefix + ".memory.events") as pub:
        pub.publish_many(pop.events(400))
    client = MemoryClient(worker.url)
    assert client.stats()["analytics_restored"] is False
    client.wait_counter("clustered", 400, timeout=180)
    deadline = time.monotonic() + 60
    while _metric_total(worker) < 400 and time.monotonic() < deadline:
        time.sleep(1.0)
    assert _metric_total(worker) == 400
    # the recall model's forecast reached the hot index: the prefetch timer ran on it
    recall_stats = client.stats()["recall"]
    assert recall_stats["prefetch_runs"] >= 1, recall_stats

    preds = [
        PredictionEvent.model_validate_json(r.value)
        for r in read_topic(worker.bootstrap, prefix + ".analytics.predictions")
    ]
    targets = {p.target for p in preds}
    assert {"recall_probability", "volume_forecast"} <= targets, targets
    for p in preds:  # every prediction says how far to trust it
        assert p.model and p.model_version and p.score.metric and p.baseline.name
    # the documented example subscriber reads the same stream into a table of standings
    from examples.subscribe_predictions import follow

    table = follow(worker.bootstrap, prefix + ".analytics.predictions", timeout_s=5)
    assert {m for ns, m in table if ns == NS} == {p.model for p in preds if p.namespace == NS}
    latest = {(p.namespace, p.model): p for p in preds}
    for key, s in table.items():
        assert (s.score, s.baseline_score) == (
            latest[key].score.value,
            latest[key].baseline.value,
        )
    # events that come without an importance get one predicted
    blank = [
        {k: v for k, v in e.model_dump(mode="json").items() if k != "importance"}
        for e in Population(8, seed=5, namespace=NS).events(20)
    ]
    blank = [{**b, "memory_id": f"blank-{i}"} for i, b in enumerate(blank)]
    with MemoryPublisher(worker.bootstrap, prefix + ".memory.events") as pub:
        for b in blank:
            pub.publish(b)

    def importance_preds() -> list[PredictionEvent]:
        recs = read_topic(worker.bootstrap, prefix + ".analytics.predictions")
        got = [PredictionEvent.model_validate_json(r.value) for r in recs]
        return [p for p in got if p.target == "importance"]

    deadline = time.monotonic() + 60
    while len(importance_preds()) < len(blank) and time.monotonic() < deadline:
        time.sleep(1.0)
    imp = importance_preds()
    assert {p.memory_id for p in imp} == {b["memory_id"] for b in blank}
    assert all(0.0 <= p.value <= 1.0 and p.baseline.name == "mean" for p in imp)
    time.sleep(1.5)  # past one checkpoint interval
    worker.stop()

    # restarted on a fresh disk (as a pod without a volume would be): the models come back
    # from the table's changelog
    fresh_disk = tmp_path_factory.mktemp("analytics-again")
    again = start_worker(topic_prefix=prefix, data_dir=fresh_disk, extra_env=FAST)
    with MemoryPublisher(again.bootstrap, prefix + ".memory.events") as pub:
        pub.publish_many(pop.events(50))
    client = MemoryClient(again.url)
    deadline = time.monotonic() + 120
    while _metric_total(again) < 470 and time.monotonic() < deadline:
        time.sleep(1.0)
    # the models were restored and go on counting: 400 + 20 + 50, each memory once (a memory
    # the restarted worker reads again is not counted twice)
    assert client.stats()["analytics_restored"] is True
    assert _metric_total(again) == 470
