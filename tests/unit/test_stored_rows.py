"""The L2 table's row format (``StoredMemory.to_bytes``) read back one by one and many at once
(``rows_from_bytes``: how a warm answer's rows are decoded in the recall process)."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.store import StoredMemory, rows_from_bytes


def row(i: int, dim: int = 8) -> StoredMemory:
    return StoredMemory(
        memory_id=f"m-{i}",
        agent_id="ann",
        namespace="w",
        type="episodic" if i % 2 else "semantic",
        content=f'ann saw the heron, "quoted" and unicode é {i}',
        importance=i / 10,
        event_ts=1_767_225_600.0 + i,
        event_time="2026-01-01T00:00:00+00:00",
        vector=np.arange(dim, dtype=np.float32) + i,
        extra={"tags": ["river", str(i)], "position": {"x": float(i), "y": -1.5}},
    )


def same(a: StoredMemory, b: StoredMemory) -> bool:
    return a == b and a.extra == b.extra and np.array_equal(a.vector, b.vector)


def test_many_rows_read_at_once_equal_those_read_one_by_one() -> None:
    values = [row(i).to_bytes() for i in range(50)]
    many = rows_from_bytes(values)
    assert len(many) == 50
    for value, got in zip(values, many, strict=True):
        assert same(got, StoredMemory.from_bytes(value))
    assert many[3].vector.dtype == np.float32 and many[3].vector.flags.writeable
    assert rows_from_bytes([]) == []


def test_rows_with_vectors_of_different_sizes_are_read_one_by_one() -> None:
    values = [row(0, dim=8).to_bytes(), row(1, dim=4).to_bytes()]
    got = rows_from_bytes(values)
    assert [r.vector.shape for r in got] == [(8,), (4,)]
    assert same(got[1], row(1, dim=4))


def test_a_value_that_is_not_a_row_is_refused() -> None:
    with pytest.raises(ValueError, match="not a stored-memory record"):
        rows_from_bytes([row(0).to_bytes(), b"{}"])
