"""``pipelines.web.Coalesced``: one blocking call per key at a time, its answer shared."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from pipelines.web import Coalesced


def _gate() -> tuple[threading.Event, list[str], object]:
    release, calls = threading.Event(), []

    def count(ns: str) -> int:
        calls.append(ns)
        release.wait(5)
        return len(calls) * 100

    return release, calls, count


def test_a_second_ask_while_the_first_runs_gets_its_answer_and_a_later_one_runs_again() -> None:
    release, calls, count = _gate()

    async def main() -> tuple[int, int, int, int]:
        c = Coalesced(ThreadPoolExecutor(1))
        first = asyncio.ensure_future(c.run(("hot", "w"), count, "w"))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(c.run(("hot", "w"), count, "w"))
        await asyncio.sleep(0.05)
        release.set()
        a, b = await first, await second
        later = await c.run(("hot", "w"), count, "w")  # nothing running: a fresh call
        return a, b, later, c.joined

    a, b, later, joined = asyncio.run(main())
    assert (a, b) == (100, 100) and joined == 1
    assert later == 200 and calls == ["w", "w"]


def test_other_keys_do_not_join_and_an_error_reaches_every_caller() -> None:
    release, calls, count = _gate()

    def broken(ns: str) -> int:
        release.wait(5)
        raise RuntimeError(f"store away for {ns}")

    async def main() -> list[object]:
        c = Coalesced(ThreadPoolExecutor(2))
        jobs = [
            asyncio.ensure_future(c.run(("hot", "a"), broken, "a")),
            asyncio.ensure_future(c.run(("hot", "a"), broken, "a")),
            asyncio.ensure_future(c.run(("hot", "b"), count, "b")),
        ]
        await asyncio.sleep(0.05)
        release.set()
        return await asyncio.gather(*jobs, return_exceptions=True)

    got = asyncio.run(main())
    assert [str(g) for g in got[:2]] == ["store away for a"] * 2
    assert got[2] == 100 and calls == ["b"]


def test_a_caller_that_goes_away_leaves_the_others_their_answer() -> None:
    release, calls, count = _gate()

    async def main() -> int:
        c = Coalesced(ThreadPoolExecutor(1))
        gone = asyncio.ensure_future(c.run("k", count, "w"))
        await asyncio.sleep(0.05)
        kept = asyncio.ensure_future(c.run("k", count, "w"))
        await asyncio.sleep(0.05)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        release.set()
        return await kept

    assert asyncio.run(main()) == 100 and calls == ["w"]
