"""Python client of a worker's HTTP API (recall, stats, readiness)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import httpx

from schemas import MemoryType, RecallRequest, RecallResponse


class RecallError(RuntimeError):
    """The worker refused or failed a request; ``status`` is the HTTP status."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


class MemoryClient:
    """Talks to one worker (any worker will do once recall routing lands)."""

    def __init__(self, base_url: str = "http://127.0.0.1:6066", timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

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
    ) -> RecallResponse:
        req = RecallRequest(
            namespace=namespace,
            agent_id=agent_id,
            query=query,
            k=k,
            types=[MemoryType(t) for t in types] if types else None,
        )
        resp = self._http.post("/recall", content=req.model_dump_json(exclude_none=True),
                               headers={"content-type": "application/json"})
        return RecallResponse.model_validate(self._json(resp))

    def stats(self, namespace: str | None = None) -> dict[str, Any]:
        params = {"namespace": namespace} if namespace else None
        return dict(self._json(self._http.get("/stats", params=params)))

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
        self, namespace: str, expected: int, timeout: float = 120.0, poll: float = 0.25
    ) -> int:
        """Poll until the store holds ``expected`` memories of ``namespace``; returns the count."""
        deadline = time.monotonic() + timeout
        count = -1
        while time.monotonic() < deadline:
            count = int(self.stats(namespace)["store_count"])
            if count >= expected:
                return count
            time.sleep(poll)
        return count

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MemoryClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
