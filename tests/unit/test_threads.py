import os
import sys
import threading

import pytest

from pipelines.threads import lower_this_thread, stage_pool


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
