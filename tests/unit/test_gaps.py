"""A stage's batch is cut at the first hole in each partition's offsets (records the consumer
skipped), so an agent's saved offsets never pass records that were not handled."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipelines.ingest import RawRecord
from pipelines.stage_batches import split_at_gaps


def rec(p: int, o: int, topic: str = "t") -> RawRecord:
    return RawRecord(b"", None, topic, p, o)


def test_contiguous_batches_pass_whole_and_advance_the_expectation() -> None:
    nxt: dict[tuple[str, int], int] = {}
    keep, cut, again = split_at_gaps(
        [rec(0, 3), rec(1, 0), rec(0, 4)], nxt, lambda t, p: {0: 3, 1: 0}[p]
    )
    assert [r.offset for r in keep] == [3, 0, 4] and cut == [] and again == {}
    assert nxt == {("t", 0): 5, ("t", 1): 1}
    keep, cut, again = split_at_gaps([rec(0, 5), rec(0, 6)], nxt, lambda t, p: None)
    assert len(keep) == 2 and nxt[("t", 0)] == 7


def test_a_hole_cuts_that_partition_only_and_names_where_to_read_again() -> None:
    nxt = {("t", 0): 10, ("u", 0): 4}
    batch = [rec(0, 10), rec(0, 12), rec(0, 13), rec(0, 4, "u"), rec(0, 11)]
    keep, cut, again = split_at_gaps(batch, nxt, lambda t, p: None)
    assert [(r.topic, r.offset) for r in keep] == [("t", 10), ("u", 4)]
    assert cut == [1, 2, 4]  # even 11, after the hole: the partition is read again in order
    assert again == {("t", 0): 11} and nxt[("t", 0)] == 11


def test_redeliveries_are_kept_and_never_move_the_expectation_back() -> None:
    nxt = {("t", 0): 20}
    keep, cut, again = split_at_gaps([rec(0, 15), rec(0, 16), rec(0, 20)], nxt, lambda t, p: 0)
    assert len(keep) == 3 and not cut and not again and nxt[("t", 0)] == 21


def test_the_committed_offset_is_the_baseline_of_a_partition_not_seen_yet() -> None:
    nxt: dict[tuple[str, int], int] = {}
    keep, cut, again = split_at_gaps([rec(2, 7)], nxt, lambda t, p: 5)
    assert keep == [] and cut == [0] and again == {("t", 2): 5}
    keep, cut, again = split_at_gaps([rec(2, 5), rec(2, 6), rec(2, 7)], nxt, lambda t, p: 5)
    assert len(keep) == 3 and not again


@given(st.lists(st.integers(0, 30), max_size=40), st.integers(0, 30))
def test_kept_offsets_never_skip_one(offsets: list[int], start: int) -> None:
    """Whatever arrives, the offsets handled per partition never jump past an unhandled one."""
    nxt: dict[tuple[str, int], int] = {}
    keep, cut, again = split_at_gaps([rec(0, o) for o in offsets], nxt, lambda t, p: start)
    expected = start
    for r in keep:
        assert r.offset is not None and r.offset <= expected
        expected = max(expected, r.offset + 1)
    assert len(keep) + len(cut) == len(offsets)
    if again:
        assert again[("t", 0)] == expected
