import os
import sys
import threading

import pytest

from pipelines.runtime import lower_this_thread, stage_pool


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_stage_pool_thread_is_nicer_and_the_caller_is_not() -> None:
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    pool = stage_pool("t", 5)
    try:
        tid = pool.submit(threading.get_native_id).result()
        assert os.getpriority(os.PRIO_PROCESS, tid) == min(19, mine + 5)
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine
    finally:
        pool.shutdown()


def test_zero_leaves_the_thread_alone() -> None:
    assert lower_this_thread(0) is None
    pool = stage_pool("z", 0)
    try:
        tid = pool.submit(threading.get_native_id).result()
        assert os.getpriority(os.PRIO_PROCESS, tid) == os.getpriority(
            os.PRIO_PROCESS, threading.get_native_id()
        )
    finally:
        pool.shutdown()


def test_tune_process_sets_the_collector_and_freeze_moves_objects() -> None:
    import gc

    from pipelines.runtime import freeze_start_up, tune_process
    from pipelines.settings import Settings

    before, interval = gc.get_threshold(), sys.getswitchinterval()
    try:
        tune_process(Settings(gc_threshold="20000, 15,12", switch_interval_ms=2, blas_threads=0))
        assert gc.get_threshold() == (20000, 15, 12)
        assert sys.getswitchinterval() == pytest.approx(0.002)
        assert freeze_start_up(Settings(gc_freeze=False)) == 0
        assert freeze_start_up(Settings(gc_freeze=True, gc_refreeze=0)) > 1000
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
        sys.setswitchinterval(interval)


def test_refreeze_moves_each_full_collections_survivors_and_hands_them_back_every_nth() -> None:
    """``ARGOS_GC_REFREEZE``: the start-up freeze installs the hook; after a full collection
    what survived it is frozen (never scanned again), a cycle that dies frozen is freed only
    once N collections froze theirs and the next hands the permanent generation back."""
    import gc
    import weakref

    from pipelines.runtime import FreezeSurvivors, freeze_start_up
    from pipelines.settings import Settings

    class Node:
        pass

    try:
        freeze_start_up(Settings(gc_freeze=True, gc_refreeze=2))
        hook = FreezeSurvivors.installed()
        assert hook is not None
        hook.min_sweep_s = 0.0  # (300 s in a worker)
        cycle = Node()
        cycle.me = cycle  # type: ignore[attr-defined]
        gone = weakref.ref(cycle)
        gc.collect()  # full collection 1: the cycle survives it (still referenced) and is frozen
        assert hook.frozen == 1 and gc.get_freeze_count() > 0
        del cycle
        gc.collect()  # 2: a frozen cycle is not scanned: it stays
        assert gone() is not None and hook.frozen == 2
        gc.collect()  # 3: two have frozen: this one hands everything back ...
        assert hook.swept == 1 and gc.get_freeze_count() == 0
        gc.collect()  # ... and the next full collection frees the cycle
        assert gone() is None
    finally:
        while (installed := FreezeSurvivors.installed()) is not None:
            installed.uninstall()
        gc.unfreeze()


def test_a_negative_refreeze_is_refused() -> None:
    from pydantic import ValidationError

    from pipelines.settings import Settings

    with pytest.raises(ValidationError, match="gc_refreeze"):
        Settings(gc_refreeze=-1)


@pytest.mark.parametrize("bad", ["700", "700,10", "a,b,c", "-1,10,10", "700;10;10"])
def test_a_bad_gc_threshold_is_refused(bad: str) -> None:
    from pydantic import ValidationError

    from pipelines.settings import Settings

    with pytest.raises(ValidationError, match="gc_threshold"):
        Settings(gc_threshold=bad)


def test_the_recallable_path_batch_clock_is_read_and_refuses_zero(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    from pipelines.settings import Settings

    assert Settings().recallable_take_within == 0.1 < Settings().take_within
    monkeypatch.setenv("ARGOS_RECALLABLE_TAKE_WITHIN", "0.05")
    assert Settings().recallable_take_within == 0.05
    for bad in ("0", "-1"):
        monkeypatch.setenv("ARGOS_RECALLABLE_TAKE_WITHIN", bad)
        with pytest.raises(ValidationError, match="recallable_take_within"):
            Settings()
