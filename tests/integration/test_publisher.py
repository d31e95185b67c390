"""MemoryPublisher on the real broker: validation before sending, keys, delivery."""

from __future__ import annotations

import uuid

import pytest

from pipelines.errors import ConfigurationError, InvalidEventError
from pipelines.publisher import MemoryPublisher
from pipelines.simulation import Population
from schemas import parse_memory_event
from tests.integration.kafka_utils import read_topic

pytestmark = pytest.mark.integration


def test_publishes_keyed_by_agent_and_refuses_invalid_events(kafka_bootstrap: str) -> None:
    topic = f"pub-{uuid.uuid4().hex[:8]}"
    events = list(Population(3, seed=5, namespace="pub").events(30))
    with MemoryPublisher(kafka_bootstrap, topic) as pub:
        futures = [pub.publish(e) for e in events]
        with pytest.raises(InvalidEventError, match="importance"):
            pub.publish({**events[0].model_dump(mode="json"), "importance": 7})
        with pytest.raises(InvalidEventError, match="schema_version"):
            pub.publish({"schema_version": 3})
        assert pub.published == 30
    assert all(f.get(timeout=10).offset >= 0 for f in futures)  # acked by the broker
    records = read_topic(kafka_bootstrap, topic, until=lambda r: len(r) >= 30)
    assert len(records) == 30
    by_key: dict[bytes, set[int]] = {}
    for r in records:
        ev = parse_memory_event(r.value)
        assert r.key == ev.agent_id.encode()
        by_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(parts) == 1 for parts in by_key.values())  # an agent stays on one partition
    got = sorted(parse_memory_event(r.value).memory_id for r in records)
    assert got == sorted(e.memory_id for e in events)


def test_publisher_without_bootstrap_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="bootstrap"):
        MemoryPublisher("")
