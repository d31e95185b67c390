"""Reading topics back in tests: count what really arrived, never trust the framework."""

from __future__ import annotations

import time
from collections.abc import Callable

from kafka import KafkaConsumer, TopicPartition


def read_topic(
    bootstrap: str,
    topic: str,
    until: Callable[[list[object]], bool] | None = None,
    timeout: float = 60.0,
) -> list[object]:
    """All records of ``topic`` from offset 0 (no consumer group), until ``until`` holds or the
    end offsets are reached after it; gives up after ``timeout`` seconds."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    try:
        deadline = time.monotonic() + timeout
        parts: set[int] = set()
        while not parts and time.monotonic() < deadline:
            parts = consumer.partitions_for_topic(topic) or set()
            if not parts:
                time.sleep(0.2)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[object] = []
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
            if until is None or until(records):
                ends = consumer.end_offsets(tps)
                if all(consumer.position(tp) >= ends[tp] for tp in tps):
                    break
        return records
    finally:
        consumer.close()
