"""MemoryPublisher on the real broker: validation before sending, keys, delivery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


def test_argos_subscribe_prints_a_topic_readably(kafka_bootstrap: str) -> None:
    prefix = f"sub-{uuid.uuid4().hex[:8]}"
    events = list(Population(2, seed=9, namespace="sub").events(3))
    with MemoryPublisher(kafka_bootstrap, f"{prefix}.memory.events") as pub:
        for f in [pub.publish(e) for e in events]:
            f.get(timeout=10)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "ARGOS_TOPIC_PREFIX": prefix}
    proc = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "pipelines.cli", "subscribe", "memory.events"]
        + ["--from-beginning", "--limit", "3", "--raw"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert sorted(x["value"]["memory_id"] for x in lines) == sorted(e.memory_id for e in events)
    assert all(x["key"] == x["value"]["agent_id"] for x in lines)
