"""Reading topics back in tests: count what really arrived, never trust the framework."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from pipelines.client import MemoryClient
from pipelines.processes import WorkerProcess
from schemas import LifecycleEvent


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


def ledger(worker: WorkerProcess, namespace: str) -> dict[str, set[str]]:
    """What the lifecycle topic says happened to ``namespace``'s memories: ids ``created``
    (published ones and derived semantic ones), ``decayed``, ``archived``, and ``duplicates``
    (near-copies folded into an earlier memory, never stored)."""
    topic = worker.env["ARGOS_TOPIC_PREFIX"] + ".memory.lifecycle"
    out: dict[str, set[str]] = {k: set() for k in ("created", "decayed", "archived", "duplicates")}
    for r in read_topic(worker.bootstrap, topic, timeout=30):
        e = LifecycleEvent.model_validate_json(r.value)  # type: ignore[attr-defined]
        if e.namespace != namespace:
            continue
        if e.cause == "duplicate":
            out["duplicates"].update(e.related)
        elif e.to_state == "active" and e.from_state == "created":
            out["created"].add(e.memory_id)
        elif e.to_state in ("decayed", "archived"):
            out[e.to_state].add(e.memory_id)
    return out


def expected_in_store(
    worker: WorkerProcess, client: MemoryClient, namespace: str, n: int, clustered_before: int
) -> int:
    """How many of ``n`` just-published memories of ``namespace`` belong in the hot store: all
    but the near-duplicates the memory stage folded into earlier memories, counted from the
    lifecycle topic once the memory stage has handled all ``n``."""
    client.wait_counter("clustered", clustered_before + n, timeout=180)
    return n - len(ledger(worker, namespace)["duplicates"])


def console_records(path: Path) -> list[dict[str, Any]]:
    """The JSON documents the worker's OTel console exporter wrote to ``path`` so far (spans,
    metrics, logs; one per line). The worker may be writing while a test polls: a last line
    without its newline is not whole yet and is left for the next read."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    whole = text[: text.rfind("\n") + 1]
    return [json.loads(line) for line in whole.splitlines() if line]
