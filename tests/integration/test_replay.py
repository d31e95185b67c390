"""Full replay from offset 0 into an empty store (issue #8's faults): a fresh deployment (its
own topic prefix, consumer group, tables and Milvus Lite file) pointed at an existing events
topic with ``ARGOS_EVENTS_TOPIC`` ends in the same state as the run that first read it: the
same lifecycle, the same store count, the same clusters. Counted from the topics."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pipelines.client import MemoryClient
from pipelines.errors import ConfigurationError
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher
from pipelines.settings import Settings
from pipelines.topics_admin import ensure_topics
from tests.conftest import unique
from tests.integration.test_restart import FAST_FORGETTING, _clusters, _events, _wait

pytestmark = pytest.mark.integration


def test_replay_from_offset_zero_into_an_empty_store_gives_the_same_state(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    events = _events()
    agents = {e.agent_id for e in events}
    first = start_worker(extra_env=FAST_FORGETTING)
    source = first.env["ARGOS_TOPIC_PREFIX"] + ".memory.events"
    with MemoryPublisher(first.bootstrap, source) as pub:
        pub.publish_many(events)
    count, book = _wait(first)
    clusters = _clusters(MemoryClient(first.url), agents)
    first.stop()  # the original deployment is gone; its events topic stays

    replay = start_worker(extra_env={**FAST_FORGETTING, "ARGOS_EVENTS_TOPIC": source})
    again, again_book = _wait(replay)
    print(
        f"replayed {len(events)} events from offset 0: {again} in the store, "
        + ", ".join(f"{len(v)} {k}" for k, v in again_book.items())
        + f" (first run: {count} in the store, "
        + ", ".join(f"{len(v)} {k}" for k, v in book.items())
        + ")"
    )
    assert again_book["created"] and again_book["decayed"] and again_book["duplicates"]
    assert (again, again_book) == (count, book)
    assert _clusters(MemoryClient(replay.url), agents) == clusters


def test_a_replay_topic_must_exist_and_be_partitioned_like_the_pipeline(
    kafka_bootstrap: str,
) -> None:
    prefix = unique("replay-src")
    ensure_topics(Settings(kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=prefix))
    source = prefix + ".memory.events"  # 4 partitions, the default
    with pytest.raises(ConfigurationError, match="has 4 partitions; ARGOS_TOPIC_PARTITIONS is 2"):
        ensure_topics(
            Settings(
                kafka_bootstrap_servers=kafka_bootstrap,
                topic_prefix=unique("replay"),
                topic_partitions=2,
                events_topic=source,
            )
        )
    with pytest.raises(ConfigurationError, match="does not exist"):
        ensure_topics(
            Settings(
                kafka_bootstrap_servers=kafka_bootstrap,
                topic_prefix=unique("replay"),
                events_topic=prefix + ".no-such-topic",
            )
        )
    # alike: accepted
    ensure_topics(
        Settings(
            kafka_bootstrap_servers=kafka_bootstrap,
            topic_prefix=unique("replay"),
            events_topic=source,
        )
    )
