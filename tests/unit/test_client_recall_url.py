"""Where ``MemoryClient`` sends a recall: with ``recall_url="auto"`` (the default) to the recall
process the worker's ``GET /ready`` names, else to the worker; a named process that refuses
the connection is left out and the worker answers. Two small real HTTP servers stand in for a
worker and its recall process (the client's logic only; the real ones are in
tests/integration/test_recall_process.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from pipelines import client as client_module
from pipelines.client import MemoryClient
from pipelines.processes import free_port


class _Server:
    """Answers GET /ready with ``ready`` and POST /recall with an empty answer, counting the
    recalls it got."""

    def __init__(self, name: str, ready: dict[str, Any] | None = None) -> None:
        self.name, self.ready, self.recalls = name, ready or {"ready": True}, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self._send(outer.ready)

            def do_POST(self) -> None:  # noqa: N802
                req = json.loads(self.rfile.read(int(self.headers["content-length"])))
                outer.recalls += 1
                self._send(
                    {
                        "namespace": req["namespace"],
                        "agent_id": req["agent_id"],
                        "query": f"{outer.name}: {req['query']}",
                        "hits": [],
                        "took_ms": 0.1,
                    }
                )

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def process() -> Iterator[_Server]:
    s = _Server("process")
    yield s
    s.close()


def _worker(recall_url: str | None) -> _Server:
    return _Server("worker", {"ready": True, "recall_url": recall_url})


def test_auto_sends_recalls_to_the_process_the_worker_names(process: _Server) -> None:
    worker = _worker(process.url)
    try:
        with MemoryClient(worker.url) as c:
            assert c.recall("ns", "a", "x").query == "process: x"
            assert c.recall("ns", "a", "y").query == "process: y"
            assert c.recall_url == process.url
        assert (process.recalls, worker.recalls) == (2, 0)
    finally:
        worker.close()


def test_none_and_a_url_are_kept(process: _Server) -> None:
    worker = _worker(process.url)
    try:
        with MemoryClient(worker.url, recall_url=None) as c:
            assert c.recall("ns", "a", "x").query == "worker: x"
        with MemoryClient(worker.url, recall_url=process.url + "/") as c:
            assert c.recall("ns", "a", "x").query == "process: x"
        assert (process.recalls, worker.recalls) == (1, 1)
    finally:
        worker.close()


def test_auto_without_a_process_asks_the_worker_and_asks_ready_again_later(
    process: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = _worker(None)
    try:
        with MemoryClient(worker.url) as c:
            assert c.recall("ns", "a", "x").query == "worker: x"
            worker.ready = {"ready": True, "recall_url": process.url}
            assert c.recall("ns", "a", "y").query == "worker: y"  # not asked again yet
            monkeypatch.setattr(client_module, "REASK_S", 0.0)
            assert c.recall("ns", "a", "z").query == "process: z"
    finally:
        worker.close()


def test_a_process_that_refuses_the_connection_is_left_out(
    process: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    worker = _worker(gone)
    monkeypatch.setattr(client_module, "REASK_S", 0.0)
    try:
        with MemoryClient(worker.url) as c:
            assert c.recall("ns", "a", "x").query == "worker: x"  # refused: the worker answers
            assert c.recall("ns", "a", "y").query == "worker: y"  # named again, still left out
            worker.ready = {"ready": True, "recall_url": process.url}  # started elsewhere
            assert c.recall("ns", "a", "z").query == "process: z"
        assert worker.recalls == 2
    finally:
        worker.close()


def test_an_explicit_process_that_refuses_the_connection_is_an_error() -> None:
    gone = f"http://127.0.0.1:{free_port()}"
    with MemoryClient("http://127.0.0.1:1", recall_url=gone) as c:
        with pytest.raises(httpx.ConnectError):
            c.recall("ns", "a", "x")
