"""The stall watchdog's pure part: partitions with records waiting and no progress."""

from __future__ import annotations

from pipelines.stall_watch import StallWatch

TP = ("argos.memory.events", 0)
OTHER = ("argos.memory.events", 1)


def test_a_partition_with_records_waiting_and_no_progress_is_reported_after_stall_s() -> None:
    watch = StallWatch(stall_s=30)
    assert watch.observe(0.0, {TP: (100, 40)}) == []
    assert watch.observe(29.0, {TP: (120, 40)}) == []  # not yet
    assert watch.observe(30.0, {TP: (120, 40)}) == [TP]
    # reported once per stall_s while it stays stuck
    assert watch.observe(31.0, {TP: (120, 40)}) == []
    assert watch.observe(60.0, {TP: (120, 40)}) == [TP]
    assert watch.stalls == 2


def test_progress_or_catching_up_resets_the_clock() -> None:
    watch = StallWatch(stall_s=10)
    watch.observe(0.0, {TP: (100, 40), OTHER: (5, 5)})
    assert watch.observe(9.0, {TP: (100, 41), OTHER: (5, 5)}) == []  # moved
    assert watch.observe(18.0, {TP: (100, 41), OTHER: (5, 5)}) == []  # 9 s since it moved
    assert watch.observe(19.0, {TP: (100, 41), OTHER: (5, 5)}) == [TP]
    # caught up (nothing waiting) is never a stall, however long it stays quiet
    assert watch.observe(100.0, {TP: (100, 100), OTHER: (5, 5)}) == []
    assert watch.observe(200.0, {TP: (100, 100), OTHER: (5, 5)}) == []
    assert watch.stalls == 1


def test_unknown_high_water_marks_and_revoked_partitions_are_not_reported() -> None:
    watch = StallWatch(stall_s=10)
    watch.observe(0.0, {TP: (None, 0), OTHER: (9, 0)})
    assert watch.observe(50.0, {TP: (None, 0)}) == []  # OTHER was revoked: forgotten
    # assigned again: its clock starts afresh
    assert watch.observe(51.0, {TP: (None, 0), OTHER: (9, 0)}) == []
    assert watch.observe(61.0, {TP: (None, 0), OTHER: (9, 0)}) == [OTHER]
