"""The memory table's per-agent layout (snapshot + deltas): whatever mix of deltas and snapshots
a run writes, and whether the stage reads its live objects or the table, every agent's state and
every record sent are those of a run that rewrote the whole state each batch."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines import agent_log
from pipelines.agent_log import (
    AgentIndex,
    Saved,
    delta_key,
    encode,
    is_delta,
    merge,
    saved_from,
    seq_of,
)
from pipelines.ingest import RawRecord
from pipelines.stage_batches import drop_forgotten, memory_batch
from pipelines.store import StoredMemory
from schemas import EmbeddedMemory
from tests.unit.test_memory_batch import SMALL, _core, _store_for, _streams


def _replay(
    stream: list[tuple[float, RawRecord]],
    cuts: list[int],
    cache: dict[bytes, Any] | None,
) -> tuple[dict[bytes, bytes | None], list[Any], int]:
    """The stream through the memory stage in batches cut at ``cuts``; the table (every write
    applied), the records sent, and how many values were deltas."""
    store = _store_for(stream)
    records = [r for _, r in stream]
    bounds = sorted({c for c in cuts if c < len(records)} | {0, len(records)})
    table: dict[bytes, bytes | None] = {}
    sent: list[Any] = []
    deltas = 0
    rows = [
        StoredMemory.from_embedded(EmbeddedMemory.model_validate_json(r.value or b""))
        for r in records
        if r.topic == "emb"
    ]
    forgotten: dict[bytes, Any] = {}  # the store stage's cache, read after every batch
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        sweep = {"w": stream[hi][0]} if hi < len(stream) else None
        out = memory_batch(
            records[lo:hi], saved_from(table), SMALL, "emb", 0.0, store, "test", sweep, cache
        )
        table.update(out.states)
        kept = drop_forgotten(rows, saved_from(table), forgotten)
        assert kept == drop_forgotten(rows, saved_from(table))  # read incrementally = in full
        deltas += sum(1 for k, v in out.states.items() if v is not None and is_delta(k))
        sent += out.lifecycle + out.clusters + out.derived + out.audit
    return table, sent, deltas


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    _streams(),
    st.lists(st.integers(1, 21), max_size=6),
    st.sampled_from([0, 200, 2000]),
    st.booleans(),
)
def test_deltas_and_snapshots_give_the_states_and_records_of_whole_rewrites(
    stream: list[tuple[float, RawRecord]], cuts: list[int], small: int, cached: bool
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(agent_log, "DELTAS_MAX", 1)  # every batch a snapshot: the old layout
        whole_table, whole_sent, none = _replay(stream, cuts, None)
        assert none == 0
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(agent_log, "SNAPSHOT_MIN", small)  # deltas, with snapshots now and then
        table, sent, _ = _replay(stream, cuts, {} if cached else None)
    assert _core(table) == _core(whole_table)
    assert [v for _, v in sent] == [v for _, v in whole_sent]


def test_a_snapshot_folds_in_the_deltas_and_stale_ones_are_ignored() -> None:
    """A crash after a snapshot but before the tombstones of the deltas it folded in leaves
    those deltas in the table: their numbers are at or below the snapshot's, so they are
    ignored (and deleted by the next snapshot)."""
    snap = encode(1, {"_offsets": {"t": [0, 1]}})
    d2 = encode(2, {"_offsets": {"t": [0, 2]}})
    table = {b"ann": snap, delta_key(b"ann", 2): d2}
    assert saved_from(table)[b"ann"].state()["_offsets"] == {"t": [0, 2]}  # type: ignore[union-attr]
    table[b"ann"] = encode(3, {"_offsets": {"t": [0, 3]}})  # the snapshot; tombstones lost
    saved = saved_from(table)[b"ann"]
    assert saved is not None and saved.seq == 3 and saved.deltas == []
    assert saved.stale == [delta_key(b"ann", 2)]
    assert saved.state()["_offsets"] == {"t": [0, 3]}


def test_a_state_saved_before_deltas_loads_as_a_snapshot() -> None:
    old = json.dumps({"_offsets": {"t": [1, 5]}}).encode()
    assert seq_of(old) == 0
    saved = saved_from({b"bob": old})[b"bob"]
    assert saved is not None and saved.seq == 0 and saved.state()["_offsets"] == {"t": [1, 5]}


def test_the_index_follows_writes_and_rescans_after_recovery() -> None:
    table: dict[bytes, bytes] = {b"ann": encode(1, {})}
    index = AgentIndex(lambda: table.keys(), table.get)
    assert index.saved(b"ann") == Saved(encode(1, {}))
    writes = {delta_key(b"ann", 2): encode(2, {"_offsets": {"t": [0, 9]}})}
    table.update(writes)
    index.note(writes)
    saved = index.saved(b"ann")
    assert saved is not None and saved.seq == 2 and saved.delta_keys == list(writes)
    table[delta_key(b"ann", 3)] = encode(3, {})  # written by another worker, recovered here
    assert index.saved(b"ann").seq == 2  # type: ignore[union-attr]  # not seen until ...
    index.invalidate()  # ... recovery says the table changed
    assert index.saved(b"ann").seq == 3  # type: ignore[union-attr]
    assert index.agents() == [b"ann"]


def test_merge_appends_members_and_keeps_cluster_order() -> None:
    ns = {
        "clock": 1.0,
        "due": None,
        "m": {"a": [1]},
        "dups": {},
        "derived": {"x/c1": ["sem", 2]},
        "derived_drop": [],
        "clusters": {
            "agent_id": "x",
            "next": 3,
            "put": [{"id": "x/c1", "members": ["a"]}, {"id": "x/c2", "members": ["b"]}],
            "drop": [],
        },
    }
    state = merge({}, {"w": ns}, 1)
    step = {
        "clock": 2.0,
        "due": 5.0,
        "m": {"c": [2]},
        "dups": {"d": "a"},
        "derived": {},
        "derived_drop": ["x/c1"],
        "clusters": {
            "agent_id": "x",
            "next": 4,
            "put": [{"id": "x/c1", "add": ["c"]}, {"id": "x/c3", "members": ["e"]}],
            "drop": ["x/c2"],
        },
    }
    merge(state, {"w": step}, 2)
    w = state["w"]
    assert [c["id"] for c in w["clusters"]["clusters"]] == ["x/c1", "x/c3"]
    assert w["clusters"]["clusters"][0]["members"] == ["a", "c"]
    assert w["m"] == {"a": [1], "c": [2]} and w["dups"] == {"d": "a"} and w["derived"] == {}
    assert (w["clock"], w["due"], w["clusters"]["next"], state["_seq"]) == (2.0, 5.0, 4, 2)
