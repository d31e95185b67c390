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
SHEEP = "counting sheep in a meadow"
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

    # asked now, 'old' is there (and the answer is cached in L1)
    assert "old" in {h.memory_id for h in client.recall(NS, "ann", SHEEP, k=10).hits}

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
    # the same question again: the decay invalidated the cached answer
    hits = client.recall(NS, "ann", SHEEP, k=10).hits
    assert "old" not in {h.memory_id for h in hits}
    assert "kept" not in {h.memory_id for h in hits}  # archived: only when asked for
    hits = client.recall(NS, "ann", "tempering steel", k=10, include_archived=True).hits
    assert [(h.memory_id, h.state) for h in hits if h.memory_id == "kept"] == [("kept", "archived")]


FORGE = [
    "I hammered a hot iron bar on the anvil at the forge",
    "The blacksmith showed me how to quench a blade in oil",
    "I pumped the bellows to heat the forge fire for the smith",
    "We forged iron nails from a rod at the blacksmith's anvil",
    "The smith tempered a new sword blade in the forge",
    "I repaired a horseshoe with the blacksmith at his anvil",
]


def test_stable_cluster_is_distilled_and_near_copy_strengthens(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """Episodes of one theme, an hour apart, form a stable cluster: they consolidate and a
    semantic memory derived from them is stored and recallable; a near-copy is not stored."""
    stable = {"ARGOS_STABLE_SIZE": "4", "ARGOS_STABLE_AGE_S": "3600", "ARGOS_STABLE_MIN": "0"}
    worker = start_worker(extra_env={"ARGOS_CLUSTER_JOIN": "0.3", **stable})
    client = MemoryClient(worker.url)
    topic = worker.env["ARGOS_TOPIC_PREFIX"] + ".memory.events"
    events = [_ev(f"f{i}", text, T0 + timedelta(hours=i)) for i, text in enumerate(FORGE)]
    copy = _ev("copy", FORGE[0] + ".", T0 + timedelta(hours=len(FORGE)))
    with MemoryPublisher(worker.bootstrap, topic) as pub:
        pub.publish_many([*events, copy])

    def distilled(evs: list[LifecycleEvent]) -> bool:
        return any(e.cause == "cluster" for e in evs) and any(e.cause == "duplicate" for e in evs)

    evs = _lifecycle(worker, distilled)
    by_cluster = [e for e in evs if e.cause == "cluster"]
    sem_id = by_cluster[0].related[1]
    assert sem_id.startswith("sem:") and {e.to_state for e in by_cluster} == {"consolidated"}
    assert [(e.memory_id, e.related) for e in evs if e.cause == "duplicate"] == [("f0", ["copy"])]
    # the derived memory went through the store like any other: recallable as semantic
    deadline = time.monotonic() + 60
    hits: list = []
    while not hits and time.monotonic() < deadline:
        hits = client.recall(NS, "ann", "working iron at a forge", k=3, types=["semantic"]).hits
        time.sleep(0.5)
    assert [h.memory_id for h in hits] == [sem_id]
    assert "forge" in hits[0].content or "anvil" in hits[0].content
    assert client.count(NS) == len(FORGE) + 1  # the episodes + the semantic memory, no copy
    hits = client.recall(NS, "ann", FORGE[0], k=10).hits  # nor in the hot recall index
    assert "f0" in {h.memory_id for h in hits} and "copy" not in {h.memory_id for h in hits}


def test_a_procedure_that_works_is_reinforced_more_than_one_that_fails(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker()
    topic = worker.env["ARGOS_TOPIC_PREFIX"] + ".memory.events"
    skills = {"works": "How to light a fire with flint", "fails": "How to catch fish by hand"}
    with MemoryPublisher(worker.bootstrap, topic) as pub:
        for mid, text in skills.items():
            ev = _ev(mid, text, T0).model_copy(
                update={"type": MemoryType.procedural, "steps": ["try", "again"]}
            )
            pub.publish(ev)
        pub.flush()
        assert MemoryClient(worker.url).wait_stored(NS, 2, timeout=60) == 2
        for h in (1, 2, 3):  # used three times each: both consolidate (three recalls)
            for mid in skills:
                when = T0 + timedelta(hours=h)
                pub.report_use(NS, "ann", [mid], success=mid == "works", event_time=when)

    def both(evs: list[LifecycleEvent]) -> bool:
        return {e.memory_id for e in evs if e.to_state == "consolidated"} == set(skills)

    consolidated = {
        e.memory_id: e for e in _lifecycle(worker, both) if e.to_state == "consolidated"
    }
    assert consolidated["works"].recalls == consolidated["fails"].recalls == 3
    assert consolidated["works"].stability_s > consolidated["fails"].stability_s
