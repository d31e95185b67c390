"""Hot-partition detection's pure part: rates, skew, the busiest agent, a suggested count."""

from __future__ import annotations

import pytest

from pipelines.partition_load import PartitionLoad


def _feed(load: PartitionLoad, per_s: dict[int, dict[bytes, int]], seconds: int, t0: float = 0):
    """``per_s``: events per second per partition, by agent key."""
    for t in range(seconds):
        load.tick(t0 + t, set(per_s))
        for p, agents in per_s.items():
            for key, n in agents.items():
                load.note_keys(p, [key] * n)
    load.tick(t0 + seconds, set(per_s))


def test_even_load_is_not_skewed_and_needs_no_more_partitions() -> None:
    load = PartitionLoad(partitions=4, target_rate=100.0)
    _feed(load, {p: {f"a{p}".encode(): 50} for p in range(4)}, 10)
    r = load.report()
    assert r["rates"] == {"0": 50.0, "1": 50.0, "2": 50.0, "3": 50.0}
    assert r["total_rate"] == pytest.approx(200.0)
    assert r["skew"] == pytest.approx(1.0) and r["hot_partitions"] == []
    assert r["agent_bound"] is False
    assert r["suggested_partitions"] == 4  # 200/s fits 4 partitions of 100/s


def test_a_hot_partition_and_its_agent_are_named_and_more_partitions_suggested() -> None:
    load = PartitionLoad(partitions=4, target_rate=100.0)
    quiet = {b"calm": 20}
    _feed(load, {0: quiet, 1: quiet, 2: {b"busy": 360, b"quiet": 40}, 3: quiet}, 10)
    r = load.report()
    assert r["hot_partitions"] == [2]
    assert r["skew"] == pytest.approx(400 / 115)
    assert r["top_agent"] == "busy" and r["top_agent_rate"] == pytest.approx(360.0)
    # one agent alone is over the target: more partitions will not split its events
    assert r["agent_bound"] is True
    assert r["suggested_partitions"] == 5  # mean 115/s x 4 partitions / 100/s


def test_the_window_slides_and_a_worker_scales_its_share_to_the_topic() -> None:
    load = PartitionLoad(partitions=8, target_rate=100.0, window_s=10.0)
    _feed(load, {0: {b"a": 1000}, 1: {b"b": 1000}}, 30)  # this worker owns 2 of 8 partitions
    assert load.rates() == {0: 1000.0, 1: 1000.0}
    assert load.report()["suggested_partitions"] == 80  # 1000/s x 8 / 100/s
    # the rate drops: two windows later the old rate no longer counts
    _feed(load, {0: {b"a": 10}, 1: {b"b": 10}}, 25, t0=30)
    assert load.rates()[0] == pytest.approx(10.0)
    # partitions taken away are forgotten; never fewer partitions than the topic has
    load.tick(56.0, {0})
    assert set(load.rates()) == {0}
    assert load.report()["suggested_partitions"] == 8
