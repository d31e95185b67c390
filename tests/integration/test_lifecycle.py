"""The lifecycle stage on the real broker: recalls reinforce, forgotten memories decay out of
the hot collection on event time, and every transition is on ``argos.memory.lifecycle``."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from pipelines.client import MemoryClient
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher
from schemas import LifecycleEvent, MemoryEvent, MemoryType
from tests.integration.kafka_utils import read_topic

pytestmark = pytest.mark.integration

NS = "life-test"
T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def _ev(mid: str, content: str, when: datetime) -> MemoryEvent:
    return MemoryEvent(
        schema_version=1,
        memory_id=mid,
        agent_id="ann",
        namespace=NS,
        type=MemoryType.episodic,
        content=content,
        importance=0.1,
        event_time=when,
    )


def _lifecycle(worker: WorkerProcess, until: Callable[[list], bool]) -> list[LifecycleEvent]:
    topic = worker.env["ARGOS_TOPIC_PREFIX"] + ".memory.lifecycle"
    parse = lambda recs: [LifecycleEvent.model_validate_json(r.value) for r in recs]  # noqa: E731
    return parse(read_topic(worker.bootstrap, topic, until=lambda r: until(parse(r)), timeout=90))


def test_recalled_memory_consolidates_and_is_archived_forgotten_one_decays_and_is_gone(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker()
    client = MemoryClient(worker.url)
    topic = worker.env["ARGOS_TOPIC_PREFIX"] + ".memory.events"
    with MemoryPublisher(worker.bootstrap, topic) as pub:
        pub.publish(_ev("old", "I counted the sheep in the northern meadow", T0))
        pub.publish(_ev("kept", "The blacksmith taught me to temper steel", T0))
    assert client.wait_stored(NS, 2, timeout=60) == 2

    for h in (1, 2, 3):
        hits = client.recall(
            NS,
            "ann",
            "learning to harden metal at the forge",
            k=1,
            event_time=T0 + timedelta(hours=h),
        ).hits
        assert [x.memory_id for x in hits] == ["kept"]
    consolidated = lambda evs: any(  # noqa: E731
        e.memory_id == "kept" and e.to_state == "consolidated" for e in evs
    )
    assert consolidated(_lifecycle(worker, consolidated))

    # the world's clock moves on 60 days: the unrecalled memory is forgotten
    with MemoryPublisher(worker.bootstrap, topic) as pub:
        pub.publish(_ev("new", "A storm flattened the wheat", T0 + timedelta(days=60)))
    decayed = lambda evs: any(e.memory_id == "old" and e.to_state == "decayed" for e in evs)  # noqa: E731
    evs = _lifecycle(worker, decayed)
    assert decayed(evs)
    moves = {(e.memory_id, e.from_state, e.to_state) for e in evs}
    assert {
        ("old", "created", "active"),
        ("old", "active", "decayed"),
        ("kept", "active", "consolidated"),
        ("new", "created", "active"),
    } <= moves
    assert ("kept", "active", "decayed") not in moves

    # consolidated and idle for 60 days (> archive_idle): moved to the archive collection
    def archived(evs: list[LifecycleEvent]) -> bool:
        return ("kept", "consolidated", "archived") in {
            (e.memory_id, e.from_state, e.to_state) for e in evs
        }

    assert archived(_lifecycle(worker, archived))
    deadline = time.monotonic() + 30
    while (client.count(NS), client.count(NS, archive=True)) != (1, 1):
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # 'old' left the hot collection, 'kept' moved to the archive, 'new' is hot
    assert (client.count(NS), client.count(NS, archive=True)) == (1, 1)
    hits = client.recall(NS, "ann", "counting sheep in a meadow", k=10).hits
    assert "old" not in {h.memory_id for h in hits}
