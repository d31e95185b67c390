"""Poison at a high rate (issue #8's faults): as many malformed events as good ones, interleaved
and published as fast as the client can: every bad one is dead-lettered with its reason and its
original bytes, every good one is stored or folded into an earlier memory, and the stream keeps
its pace (the good events' rate with poison beside them is printed next to a clean run's; speed
goals live in the benchmarks, not in assertions)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable

import pytest
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

from pipelines.client import MemoryClient
from pipelines.errors import InvalidEventError
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher
from pipelines.simulation import Population, malformed_events
from schemas import DeadLetter
from schemas.memory_event import MAX_EVENT_BYTES
from schemas.topics import DEADLETTER_MAX_BYTES, EVENT_MAX_BYTES
from tests.conftest import unique
from tests.integration.kafka_utils import ledger, read_topic

pytestmark = pytest.mark.integration

GOOD = 800


def _run(worker: WorkerProcess, ns: str, poison: int) -> tuple[float, list[bytes]]:
    """Publish GOOD events of ``ns`` with ``poison`` malformed ones between them; returns the
    seconds until the memory stage has every good one, and the poison sent."""
    prefix = worker.env["ARGOS_TOPIC_PREFIX"]
    good = list(Population(8, seed=31, namespace=ns).events(GOOD))
    bad = list(malformed_events(poison, seed=3, namespace=ns))
    client = MemoryClient(worker.url)
    before = client.stats()
    t0 = time.monotonic()
    with MemoryPublisher(worker.bootstrap, prefix + ".memory.events") as pub:
        for i, ev in enumerate(good):
            pub.publish(ev)
            for raw in bad[i * poison // GOOD : (i + 1) * poison // GOOD]:
                pub.publish_raw(b"poison", raw)
    client.wait_counter("clustered", int(before["clustered"]) + GOOD, timeout=240)
    return time.monotonic() - t0, bad


def test_poison_at_a_high_rate_is_all_dead_lettered_and_the_stream_keeps_going(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    w = start_worker()
    clean_s, _ = _run(w, "poison-clean", 0)
    dirty_s, bad = _run(w, "poison-dirty", GOOD)
    client = MemoryClient(w.url)
    client.wait_counter("dead_lettered", len(bad), timeout=60)
    prefix = w.env["ARGOS_TOPIC_PREFIX"]
    dead = [
        DeadLetter.model_validate_json(r.value)  # type: ignore[attr-defined]
        for r in read_topic(w.bootstrap, prefix + ".deadletter", timeout=30)
    ]
    assert Counter(d.original() for d in dead) == Counter(bad)  # each once, bytes intact
    assert all(d.reason.strip() and d.stage == "ingest" for d in dead)
    book = ledger(w, "poison-dirty")
    published = {e.memory_id for e in Population(8, seed=31, namespace="poison-dirty").events(GOOD)}
    assert (book["created"] & published) | book["duplicates"] == published  # no good one lost
    print(
        f"{GOOD} good events: {GOOD / clean_s:.0f}/s alone, {GOOD / dirty_s:.0f}/s with "
        f"{len(bad)} poison interleaved ({Counter(d.error for d in dead)})"
    )
    assert w.proc is not None and w.proc.poll() is None


def _record_limit(admin: KafkaAdminClient, topic: str) -> int:
    found = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all"
    )
    return int(found["topic"][topic]["max.message.bytes"]["value"])


def test_an_oversized_event_is_dead_lettered_whole_and_the_events_after_it_are_kept(
    start_worker: Callable[..., WorkerProcess], kafka_bootstrap: str
) -> None:
    """An event of ~1 MB (under the topic's limit, far over the schema's 64 KiB) is
    dead-lettered whole, base64 in its envelope (the dead-letter topic takes twice the input
    topics' largest record), and the events after it on the same partition are kept; one over
    the producer's limit is refused by the publisher before anything is sent. The dead-letter
    topic exists before the worker starts, at the broker's default limit (as one created
    before the registry set it): the worker raises it."""
    prefix = unique("t")
    admin = KafkaAdminClient(bootstrap_servers=[kafka_bootstrap])
    try:
        admin.create_topics([NewTopic(prefix + ".deadletter", 4, 1)])
        before = _record_limit(admin, prefix + ".deadletter")
        assert before < DEADLETTER_MAX_BYTES  # the broker's default: too small for it below
        w = start_worker(topic_prefix=prefix)
        assert _record_limit(admin, prefix + ".deadletter") == DEADLETTER_MAX_BYTES
    finally:
        admin.close()
    client = MemoryClient(w.url)
    ns = "oversized"
    good = list(Population(3, seed=37, namespace=ns).events(40))
    body = good[0].model_dump(mode="json") | {"memory_id": "too-big", "content": "x" * 1_000_000}
    big = json.dumps(body).encode()
    assert 1_000_000 < len(big) < EVENT_MAX_BYTES - 4096
    with MemoryPublisher(w.bootstrap, prefix + ".memory.events") as pub:
        with pytest.raises(InvalidEventError, match="max_request_size"):
            pub.publish_raw(b"poison", big + b" " * EVENT_MAX_BYTES)
        for ev in good[:20]:
            pub.publish(ev)
        pub.publish_raw(good[0].agent_id.encode(), big).get(timeout=30)  # the broker took it
        for ev in good[20:]:
            pub.publish(ev)
    client.wait_counter("clustered", len(good), timeout=240)
    client.wait_counter("dead_lettered", 1, timeout=60)
    dead = [
        DeadLetter.model_validate_json(r.value)  # type: ignore[attr-defined]
        for r in read_topic(w.bootstrap, prefix + ".deadletter", timeout=30)
    ]
    assert len(dead) == 1 and dead[0].original() == big  # whole, once
    assert f"the limit is {MAX_EVENT_BYTES}" in dead[0].reason and dead[0].stage == "ingest"
    book = ledger(w, ns)
    published = {e.memory_id for e in good}
    assert (book["created"] & published) | book["duplicates"] == published  # none after it lost
    assert w.proc is not None and w.proc.poll() is None
    print(f"a {len(big):,}-byte event dead-lettered whole; {len(good)} good events kept")
