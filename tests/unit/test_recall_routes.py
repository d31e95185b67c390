"""RecallRoutes against real local HTTP servers (aiohttp): a recall of another worker's agent
goes to that worker's recall process when its /ready names one, to its /recall when not, and
to its /recall again when the recall process refuses the connection."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import ClientSession, web

from infra.ports import free_port
from pipelines.recall_routes import ROUTED_HEADER, RecallRoutes


async def _serve(name: str, seen: list[tuple[str, Any]], ready: dict[str, Any]) -> web.AppRunner:
    async def recall(request: web.Request) -> web.Response:
        seen.append(
            (name, request.headers.get(ROUTED_HEADER), request.headers.get("Authorization"))
        )
        return web.json_response({"answered_by": name, "body": (await request.read()).decode()})

    async def ready_view(request: web.Request) -> web.Response:
        seen.append((name, "ready", None))
        return web.json_response(ready)

    app = web.Application()
    app.router.add_post("/recall", recall)
    app.router.add_get("/ready", ready_view)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    return runner


def test_routes_to_the_owners_recall_process_then_its_worker_when_refused() -> None:
    async def main() -> None:
        seen: list[tuple[str, Any]] = []
        wport, rport = free_port(), free_port()
        owner, process = f"http://127.0.0.1:{wport}", f"http://127.0.0.1:{rport}"
        worker = await _serve("worker", seen, {"ready": True, "recall_url": process})
        await web.TCPSite(worker, "127.0.0.1", wport).start()
        proc = await _serve("process", seen, {"ready": True})
        await web.TCPSite(proc, "127.0.0.1", rport).start()
        routes = RecallRoutes(ttl_s=60.0)
        async with ClientSession() as http:
            for _ in range(3):  # asked once, then known
                body, status = await routes.post(http, owner + "/", b'{"q": 1}', "Bearer t")
                assert status == 200 and b'"answered_by": "process"' in body
            assert routes.recall_url_of(owner) == process
            assert [s for s in seen if s[1] == "ready"] == [("worker", "ready", None)]
            assert all(s == ("process", "1", "Bearer t") for s in seen if s[1] != "ready")

            await proc.cleanup()  # the recall process is gone: its worker answers
            body, status = await routes.post(http, owner, b"{}", None)
            assert status == 200 and b'"answered_by": "worker"' in body
            assert seen[-1] == ("worker", "1", None)
            assert routes.recall_url_of(owner) is None  # until ttl_s has passed
            await routes.post(http, owner, b"{}", None)
            assert seen[-1] == ("worker", "1", None)
            assert routes.counters == {"to_recall_process": 3, "to_worker": 2, "fallbacks": 1}
        await worker.cleanup()

    asyncio.run(main())


def test_an_owner_without_a_recall_process_answers_itself() -> None:
    async def main() -> None:
        seen: list[tuple[str, Any]] = []
        port = free_port()
        owner = f"http://127.0.0.1:{port}"
        worker = await _serve("worker", seen, {"ready": True, "recall_url": None})
        await web.TCPSite(worker, "127.0.0.1", port).start()
        routes = RecallRoutes(ttl_s=0.0)  # asks every time
        async with ClientSession() as http:
            for _ in range(2):
                body, status = await routes.post(http, owner, b"{}", None)
                assert status == 200 and b'"answered_by": "worker"' in body
        assert [s[1] for s in seen] == ["ready", "1", "ready", "1"]
        assert routes.stats()["known"] == {owner: None}
        await worker.cleanup()

    asyncio.run(main())
