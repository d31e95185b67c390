"""Where a recall of another worker's agent goes: that worker's recall process, if it has one.

A worker routes a recall of an agent it does not own to the owner (Faust's table routing). The
owner answers it on its own event loop, behind its stages' GIL time, unless it runs a recall
process (``ARGOS_RECALL_PORT``): then the recall goes there. ``RecallRoutes`` learns each
owner's recall URL from the owner's ``GET /ready`` (its ``recall_url``), keeps it for
``ttl_s`` seconds, and drops it when a connection to it fails (the process was restarted on
another port, or is gone): that recall, and the next ones until ``ttl_s`` has passed, go to
the owner's own ``/recall``.

Both the worker's ``/recall`` (``pipelines.web``) and the recall process
(``pipelines.recall_server``) route through it. The request carries ``X-Argos-Routed``: whoever
receives it answers it (one hop), and counts it against the rate limits.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp

ROUTED_HEADER = "X-Argos-Routed"


def recall_headers(auth: str | None, routed: bool = True) -> dict[str, str]:
    """The headers of a recall sent on: JSON, the caller's token, and (``routed``) the mark
    that makes the receiver answer it."""
    return {
        "Content-Type": "application/json",
        **({"Authorization": auth} if auth else {}),
        **({ROUTED_HEADER: "1"} if routed else {}),
    }


class RecallRoutes:
    """Owner worker URL → the URL to POST its agents' recalls to (its recall process or its
    own ``/recall``), learned from the owner's ``/ready`` and cached."""

    def __init__(self, ttl_s: float = 30.0, ask_timeout_s: float = 2.0) -> None:
        self.ttl_s, self.ask_timeout_s = ttl_s, ask_timeout_s
        self._known: dict[str, tuple[str | None, float]] = {}  # owner -> (recall url, when)
        self.counters = {"to_recall_process": 0, "to_worker": 0, "fallbacks": 0}

    def recall_url_of(self, owner: str) -> str | None:
        """The owner's recall process as last learnt (None: none, or not asked yet)."""
        hit = self._known.get(owner.rstrip("/"))
        return hit[0] if hit is not None else None

    async def _learn(self, http: aiohttp.ClientSession, owner: str) -> str | None:
        now = time.monotonic()
        hit = self._known.get(owner)
        if hit is not None and now - hit[1] < self.ttl_s:
            return hit[0]
        url: str | None = None
        try:
            timeout = aiohttp.ClientTimeout(total=self.ask_timeout_s)
            async with http.get(f"{owner}/ready", timeout=timeout) as r:
                body = await r.json(content_type=None)
            found = body.get("recall_url") if isinstance(body, dict) else None
            url = found.rstrip("/") if isinstance(found, str) and found else None
        except (TimeoutError, aiohttp.ClientError, ValueError):
            url = None  # the owner's own /recall answers; asked again after ttl_s
        self._known[owner] = (url, now)
        return url

    async def post(
        self, http: aiohttp.ClientSession, owner: str, body: bytes, auth: str | None
    ) -> tuple[bytes, int]:
        """POST the recall to the owner's recall process (or its ``/recall``), marked routed;
        the owner's answer and status. A recall process whose connection fails (refused, or
        a pooled one it closed when it ended) is set aside for ``ttl_s`` and the owner's
        ``/recall`` asked instead. Had it answered before its connection broke, the recall is
        answered twice and reinforces twice (the access events are at-least-once anyway)."""
        owner = owner.rstrip("/")
        headers = recall_headers(auth)
        target = await self._learn(http, owner)
        if target is not None:
            try:
                async with http.post(f"{target}/recall", data=body, headers=headers) as r:
                    out = await r.read(), r.status
                self.counters["to_recall_process"] += 1
                return out
            except aiohttp.ClientConnectionError:  # gone or moved: its worker, until ttl_s
                self._known[owner] = (None, time.monotonic())
                self.counters["fallbacks"] += 1
        async with http.post(f"{owner}/recall", data=body, headers=headers) as r:
            out = await r.read(), r.status
        self.counters["to_worker"] += 1
        return out

    def stats(self) -> dict[str, Any]:
        return {
            **self.counters,
            "known": {o: u for o, (u, _) in sorted(self._known.items())},
        }
