"""Latency by operation: every timed store call is counted once, failures included."""

from __future__ import annotations

import pytest

from pipelines.errors import StoreUnavailableError
from pipelines.stats import OperationLatency, TimedStore
from pipelines.store import InMemoryStore


class _Down(InMemoryStore):
    def delete(self, namespace: str, memory_ids: list[str]) -> int:  # type: ignore[override]
        raise StoreUnavailableError("milvus is away")


def test_each_store_call_is_timed_under_its_operation() -> None:
    seen: list[tuple[str, float]] = []
    ops = OperationLatency(lambda op, s: seen.append((op, s)))
    store = TimedStore(_Down(), ops, "milvus")
    assert store.count("w") == 0 and store.get("w", ["a"]) == []
    with pytest.raises(StoreUnavailableError):
        store.delete("w", ["a"])  # a failure is timed too, and still raised
    assert store.close is not None  # not timed: the store's own attribute
    summary = ops.summary()
    assert set(summary) == {"milvus.count", "milvus.get", "milvus.delete"}
    assert all(s["n"] == 1 and s["p50_ms"] >= 0 for s in summary.values())
    assert [op for op, _ in seen] == ["milvus.count", "milvus.get", "milvus.delete"]
    assert all(sec >= 0 for _, sec in seen)
