"""A worker's live feed: what its stages just did, fanned out to whoever watches (the dashboard's
Server-Sent Events). In-process and lossy by design: each subscriber has a bounded queue, and a
subscriber too slow to keep up loses its oldest items (counted), never slowing the stream.

>>> import asyncio
>>> async def demo():
...     feed = LiveFeed(max_queue=2)
...     sub = feed.subscribe()
...     for i in range(3):
...         feed.publish("memory", {"i": i})
...     return [(await sub.get())[1]["i"] for _ in range(2)], sub.dropped
>>> asyncio.run(demo())
([1, 2], 1)
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

Item = tuple[str, dict[str, Any]]  # (kind, payload)


class Subscription:
    """One watcher's queue of ``(kind, payload)`` items."""

    def __init__(self, feed: LiveFeed, max_queue: int) -> None:
        self._feed = feed
        self._queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=max_queue)
        self.dropped = 0

    def put(self, item: Item) -> None:
        if self._queue.full():  # drop the oldest: a watcher wants what is happening now
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(item)

    async def get(self) -> Item:
        return await self._queue.get()

    def close(self) -> None:
        self._feed.unsubscribe(self)


class LiveFeed:
    """Fan-out of stage events to subscribers, on the worker's event loop (call ``publish``
    from the loop thread: the stage coroutines do)."""

    def __init__(self, max_queue: int = 10_000) -> None:
        self.max_queue = max_queue
        self._subs: list[Subscription] = []
        self.published: Counter[str] = Counter()
        self.started = time.time()

    def subscribe(self) -> Subscription:
        sub = Subscription(self, self.max_queue)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def publish(self, kind: str, payload: dict[str, Any]) -> None:
        """Hand one item to every subscriber (nothing is kept when nobody watches)."""
        self.published[kind] += 1
        for sub in list(self._subs):
            sub.put((kind, payload))
