"""Python client of a worker's HTTP API (recall, stats, readiness)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx

from schemas import MemoryType, RecallRequest, RecallResponse

AUTO = "auto"  # recall_url: the recall process the worker's /ready names
REASK_S = 5.0  # recall_url="auto": how often /ready is asked again while it names no process
UNREACHABLE_S = 60.0  # ... and how long a recall process that refused a connection is left out


class RecallError(RuntimeError):
    """The worker refused or failed a request; ``status`` is the HTTP status."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


class MemoryClient:
    """Talks to one worker (any worker answers any agent: requests are routed to the owner).
    ``token``: the bearer token, when the workers require one (``ARGOS_TOKENS``).
    ``recall_url``: where recalls go. ``"auto"`` (the default): the worker's recall process
    (``ARGOS_RECALL_PROCESS``), which answers recalls without waiting for the worker's
    stages, found at the first recall in the worker's ``GET /ready`` (``recall_url``); the
    worker's own ``/recall`` while it names none or while the process cannot be reached (a
    ``/ready`` asked again later may name it). A URL: that recall process, always. ``None``:
    the worker's own ``/recall``."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:6066",
        timeout: float = 30.0,
        token: str | None = None,
        recall_url: str | None = AUTO,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._headers = {"Authorization": f"Bearer {token}"} if token else None
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, headers=self._headers)
        self._auto = recall_url == AUTO
        self._asked_at: float | None = None  # when /ready was last asked for the recall URL
        self._unreachable: dict[str, float] = {}  # named by /ready, refused: since when
        self.recall_url: str | None = None
        self._recall_http = self._http
        if recall_url and not self._auto:
            self._use_recall_url(recall_url)

    def _use_recall_url(self, url: str | None) -> None:
        if self._recall_http is not self._http:
            self._recall_http.close()
        self.recall_url = url.rstrip("/") if url else None
        self._recall_http = (
            httpx.Client(
                base_url=self.recall_url,
                # a local process accepts at once: one that does not is not reachable from here
                timeout=httpx.Timeout(self._timeout, connect=min(self._timeout, 2.0)),
                headers=self._headers,
            )
            if self.recall_url
            else self._http
        )

    def recall_url_named(self) -> str | None:
        """The recall process's URL as the worker's ``GET /ready`` names it (None: it has
        none, or did not answer)."""
        try:
            body = self._http.get("/ready").json()
        except (httpx.HTTPError, ValueError):
            return None
        url = body.get("recall_url") if isinstance(body, dict) else None
        return str(url) if url else None

    def _recall_client(self) -> httpx.Client:
        """Where the next recall goes (``recall_url="auto"``: asks ``/ready`` at the first
        recall, and again at most every ``REASK_S`` while it names none)."""
        if self._auto and self.recall_url is None:
            now = time.monotonic()
            if self._asked_at is None or now - self._asked_at >= REASK_S:
                self._asked_at = now
                named = self.recall_url_named()
                refused = self._unreachable.get(named or "")
                shunned = refused is not None and now - refused < UNREACHABLE_S
                self._use_recall_url(None if shunned else named)
        return self._recall_http

    def _json(self, resp: httpx.Response) -> Any:
        try:
            body = resp.json()
        except ValueError:
            body = resp.text
        if resp.status_code >= 400:
            raise RecallError(resp.status_code, body)
        return body

    def recall(
        self,
        namespace: str,
        agent_id: str,
        query: str,
        k: int = 10,
        types: Sequence[MemoryType | str] | None = None,
        event_time: datetime | None = None,
        **filters: Any,
    ) -> RecallResponse:
        """Top-k memories, scored by relevance, recency and importance (each hit has its parts).

        ``event_time`` is the agent's simulation time of this recall; ``filters`` are the other
        ``RecallRequest`` fields: ``since``, ``until``, ``states``, ``include_archived``,
        ``cluster_id``, ``tags``, ``near`` (``{"x", "y", "z"?, "radius"}``), ``weights``.
        """
        req = RecallRequest(
            namespace=namespace,
            agent_id=agent_id,
            query=query,
            k=k,
            types=[MemoryType(t) for t in types] if types else None,
            event_time=event_time,
            **filters,
        )
        body = req.model_dump_json(exclude_none=True, exclude_defaults=True)
        headers = {"content-type": "application/json"}
        http = self._recall_client()
        try:
            resp = http.post("/recall", content=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout):  # nothing was sent
            if not self._auto or http is self._http:
                raise
            # the process named is not there (restarting), or its address cannot be reached
            # from here (as through a port-forward): the worker answers this recall, and the
            # recall goes back to it only when /ready names it again after UNREACHABLE_S
            self._unreachable[str(self.recall_url)] = time.monotonic()
            self._use_recall_url(None)
            resp = self._http.post("/recall", content=body, headers=headers)
        return RecallResponse.model_validate(self._json(resp))

    def stats(self) -> dict[str, Any]:
        """The worker's stage counters (cheap: no store query)."""
        return dict(self._json(self._http.get("/stats")))

    def count(self, namespace: str | None = None, archive: bool = False) -> int:
        """How many memories the hot collection (or, with ``archive``, the archive) holds (of
        ``namespace``): a query on Milvus. Milvus Lite reads every row for it: ~9 us per row
        for the whole collection, ~100 us per row with a namespace (``bench.growth``)."""
        params = {"count": "1", **({"namespace": namespace} if namespace else {})}
        body = self._json(self._http.get("/stats", params=params))
        return int(body["archive_count" if archive else "store_count"])

    def clusters(self, namespace: str, agent_id: str) -> list[dict[str, Any]]:
        """An agent's live memory clusters with size, radius, stability and times."""
        params = {"namespace": namespace, "agent_id": agent_id}
        return list(self._json(self._http.get("/clusters", params=params))["clusters"])

    def population(self, namespace: str) -> list[dict[str, Any]]:
        """The namespace-wide clusters: shared experiences across agents, largest first."""
        params = {"namespace": namespace}
        return list(self._json(self._http.get("/population", params=params))["clusters"])

    def population_near(self, namespace: str, x: float, y: float, radius: float) -> dict[str, Any]:
        """The agents last seen within ``radius`` of (x, y) (nearest first) and their part of
        each population cluster, from the namespace-wide spatial index."""
        params = {"namespace": namespace, "x": repr(x), "y": repr(y), "radius": repr(radius)}
        return dict(self._json(self._http.get("/population", params=params)))

    def ready(self) -> bool:
        try:
            return self._http.get("/ready").status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self, timeout: float = 120.0, poll: float = 0.25) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready():
                return
            time.sleep(poll)
        raise TimeoutError(f"worker at {self.base_url} not ready after {timeout:.0f}s")

    def wait_stored(
        self, namespace: str, expected: int, timeout: float = 120.0, poll: float = 1.0
    ) -> int:
        """Poll until the store holds ``expected`` memories of ``namespace``; returns the count."""
        return _poll(lambda: self.count(namespace), expected, timeout, poll)

    def wait_counter(
        self, name: str, expected: int, timeout: float = 120.0, poll: float = 0.1
    ) -> int:
        """Poll a stage counter (e.g. ``stored``) until it reaches ``expected``; returns it."""
        return _poll(lambda: int(self.stats()[name]), expected, timeout, poll)

    def recall_stats(self) -> dict[str, Any]:
        """The recall process's counters and latency (the client must have found or been
        given its ``recall_url``)."""
        self._recall_client()
        if self.recall_url is None:
            raise ValueError("no recall_url: this client talks to the worker only")
        return dict(self._json(self._recall_http.get("/stats")))

    def close(self) -> None:
        self._http.close()
        if self._recall_http is not self._http:
            self._recall_http.close()

    def __enter__(self) -> MemoryClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _poll(read: Callable[[], int], expected: int, timeout: float, poll: float) -> int:
    """Call ``read`` until it reaches ``expected`` or ``timeout`` passes; returns the last value."""
    deadline = time.monotonic() + timeout
    value = -1
    while time.monotonic() < deadline:
        value = read()
        if value >= expected:
            return value
        time.sleep(poll)
    return value


def wait_until_settled(
    clients: list[MemoryClient], seconds: float = 3.0, timeout: float = 180.0
) -> None:
    """Until every worker of a group is ready with an unchanged assignment for ``seconds``
    (after workers join, the group rebalances and recovers before it serves)."""
    import time

    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        try:
            now = [c._http.get("/ready").json() for c in clients]
        except httpx.HTTPError:
            now = None
        state = (
            tuple(s["assigned_partitions"] for s in now)
            if now and all(s["ready"] for s in now)
            else None
        )
        if state != last:
            last, since = state, time.monotonic()
        elif state is not None and time.monotonic() - since >= seconds and all(state):
            return
        time.sleep(0.5)
    raise TimeoutError(f"workers did not settle: {last}")
