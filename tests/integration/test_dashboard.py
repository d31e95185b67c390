"""The dashboard in a real browser: headless Debian Chromium (Playwright driving
``/usr/bin/chromium``) against a live worker on the real broker, behind tokens.

The page loads with a valid token, points appear, a newly published memory shows up within a
few seconds (Server-Sent Events), hovering shows a memory, the comparison view fills, the
recall box returns ranked results, and a wrong token is refused (401 page and JSON; 403 for
another namespace). Screenshots go to ``$ARGOS_ARTIFACTS`` (default ``tests/artifacts/``);
with ``ARGOS_README_SHOT=1`` the README's ``docs/dashboard.png`` is rewritten too.

No skip: without Chromium (``apt-get install -y chromium``), Playwright (the ``playwright``
Python package; its own browsers are never downloaded) or the built page (``make dashboard``)
the test fails and says which is missing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from pipelines.client import MemoryClient, wait_until_settled
from pipelines.dashboard import dashboard_url
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher
from pipelines.simulation import Population
from schemas import MemoryEvent, MemoryType
from tests.integration.page_utils import ROOT, artifacts, wait_js

pytestmark = pytest.mark.integration

NS = "dash-world"
SIM = "dash-sim"  # a simulated population: the second namespace of the comparison
SIM_EVENTS = 600
READ = "dash-reader-token-0123456789"
WRITE = "dash-writer-token-0123456789"
ONLY_B = "dash-agent-b-token-0123456789"
ELSEWHERE = "dash-elsewhere-token-0123456789"
TOKENS = [
    {"token": READ, "subject": "viewer", "namespaces": [NS, SIM]},
    {"token": WRITE, "subject": "writer", "namespaces": [NS, SIM], "publish": True},
    {"token": ONLY_B, "subject": "bea", "namespaces": [NS], "agents": ["bea"]},
    {"token": ELSEWHERE, "subject": "stranger", "namespaces": ["elsewhere"]},
]
T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
AGENTS = ["ann", "bea", "cy"]
TEXTS = [
    "A grey wolf chased me through the pine forest",
    "I traded two fish for a sharp iron knife at the market",
    "We sang around the fire after the harvest festival",
    "I built a shelter of branches before the storm came",
    "The river flooded the lower field after heavy rain",
    "My neighbour taught me how to smoke fish over oak wood",
    "A merchant cheated me out of three silver coins",
    "I found wild honey in a hollow tree near the cliffs",
    "The elders argued about moving the village uphill",
    "I fell from the ladder while fixing the granary roof",
    "Children laughed as the juggler dropped his torches",
    "I saw a bear drinking at the lake at dawn",
]


def _events(agent: str, k: int) -> list[MemoryEvent]:
    out = []
    for i, text in enumerate(TEXTS):
        out.append(
            MemoryEvent(
                schema_version=1,
                memory_id=f"{agent}:{i}",
                agent_id=agent,
                namespace=NS,
                type=MemoryType.procedural if "how to" in text else MemoryType.episodic,
                content=f"{text} ({agent})",
                importance=0.3 + 0.05 * (i % 10),
                position={"x": 10.0 * k + i, "y": 5.0 * i},  # type: ignore[arg-type]
                tags=["test"],
                event_time=T0 + timedelta(minutes=10 * i + k),
            )
        )
    return out


@pytest.fixture(scope="module")
def worker(start_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    w = start_worker(extra_env={"ARGOS_TOKENS": json.dumps(TOKENS)})
    topic = w.env["ARGOS_TOPIC_PREFIX"] + ".memory.events"
    with MemoryPublisher(w.bootstrap, topic, token=WRITE) as pub:
        for k, agent in enumerate(AGENTS):
            pub.publish_many(_events(agent, k))
        pub.publish_many(Population(8, seed=3, namespace=SIM).events(SIM_EVENTS))
    client = MemoryClient(w.url)
    want = len(AGENTS) * len(TEXTS) + SIM_EVENTS  # stored or skipped as near-duplicates
    assert client.wait_counter("stored", want, timeout=180) >= want, w.log_tail()
    return w


def test_dashboard_in_chromium(worker: WorkerProcess, browser: Any) -> None:
    shots = artifacts()
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        resp = page.goto(dashboard_url(worker.url, NS, READ))
        assert resp is not None
        assert resp.status == 200, (  # 404 "Not Found": create_app lacks register_dashboard(pipe)
            f"/dashboard answered {resp.status}: {resp.text()[:300]}"
        )
        assert "no-store" in resp.headers["cache-control"]
        # points appear: every stored memory of the namespace, drawn
        total = len(AGENTS) * len(TEXTS)
        wait_js(
            page, f"() => window.__argosDash?.ready && window.__argosDash.panes()[0].n >= {total}"
        )
        pane = page.evaluate("() => window.__argosDash.panes()[0]")
        assert pane["namespace"] == NS and pane["n"] == total and pane["drawn"] == total
        assert pane["renders"] >= 1 and pane["firstRenderAt"] > 0
        # the live stream is connected and counting
        wait_js(page, "() => (window.__argosDash.sse.counters || 0) >= 2")
        assert page.locator("#live").text_content() == "● live"
        counters = page.evaluate("() => window.__argosDash.counters")
        assert counters["stored"] >= total and "lag_total" in counters
        page.screenshot(path=str(shots / "dashboard-loaded.png"))

        # hovering a point shows its memory
        box = page.locator(".pane canvas").first.bounding_box()
        assert box is not None
        found = page.evaluate(
            """() => { const c = document.querySelector('.pane canvas');
                 const dpr = Math.min(window.devicePixelRatio || 1, 2);
                 for (const id of ['ann:0', 'bea:3', 'cy:7']) {
                   if (!window.__argosDash.has(id)) continue;
                   const xy = window.__argosDash.screenOf(id);
                   if (xy) return [xy[0] / dpr, xy[1] / dpr, id];
                 } return null; }"""
        )
        assert found is not None
        page.mouse.move(box["x"] + found[0], box["y"] + found[1])
        wait_js(page, "() => document.querySelector('#details dl') !== null")
        assert page.locator("#details dl dd").first.text_content() is not None

        # a newly published memory shows up within a few seconds, pushed by the server
        new_id = f"ann:new-{int(time.time())}"
        topic = worker.env["ARGOS_TOPIC_PREFIX"] + ".memory.events"
        t_pub = time.monotonic()
        with MemoryPublisher(worker.bootstrap, topic, token=WRITE) as pub:
            pub.publish(
                MemoryEvent(
                    schema_version=1,
                    memory_id=new_id,
                    agent_id="ann",
                    namespace=NS,
                    type=MemoryType.episodic,
                    content="An eagle stole the fish I had just caught",
                    importance=0.8,
                    position={"x": 3.0, "y": 4.0},  # type: ignore[arg-type]
                    event_time=T0 + timedelta(hours=5),
                )
            )
        wait_js(page, f"() => window.__argosDash.has({json.dumps(new_id)})", timeout_s=15)
        seen_after = time.monotonic() - t_pub
        assert seen_after < 15, seen_after
        assert page.evaluate("() => window.__argosDash.sse.memories") >= 1
        assert page.locator("#log").text_content().find("eagle") >= 0
        page.screenshot(path=str(shots / "dashboard-live.png"))

        # the world view and the comparison view (two agents side by side)
        page.click("#view button[data-view=world]")
        wait_js(page, "() => window.__argosDash.panes()[0].drawn > 0")
        page.click("#view button[data-view=embedding]")
        page.check("#compare")
        wait_js(page, "() => window.__argosDash.panes().length === 2")
        wait_js(page, "() => window.__argosDash.panes()[1].n >= 12")
        b = page.evaluate("() => window.__argosDash.panes()[1]")
        mine = len(TEXTS) + (b["agent"] == "ann")  # ann has the new memory too
        assert b["agent"] in AGENTS and b["n"] == mine and b["drawn"] == mine
        # ... and two namespaces side by side
        sim_total = httpx.get(
            f"{worker.url}/dashboard/api/points",
            params={"namespace": SIM, "limit": 1, "token": READ},
            timeout=30,
        ).json()["total"]
        assert sim_total > 100
        page.select_option("[data-testid=namespace-B]", SIM)
        page.select_option("[data-testid=agent-B]", "")  # every agent of it
        wait_js(page, f"() => window.__argosDash.panes()[1].n === {sim_total}")
        panes = page.evaluate("() => window.__argosDash.panes()")
        assert [p["namespace"] for p in panes] == [NS, SIM] and panes[1]["drawn"] == sim_total

        # the recall box: the existing POST /recall, ranked hits with their score parts
        page.select_option("#recall-agent", "ann")
        page.fill("#recall-query", "a wild animal frightened me")
        page.click("#recall button[type=submit]")
        wait_js(page, "() => document.querySelectorAll('#recall-out tr').length > 0")
        rows = page.locator("#recall-out tr")
        assert rows.count() == 8
        top = [rows.nth(i).get_attribute("data-memory") for i in range(3)]
        assert "ann:0" in top or "ann:11" in top, top  # the wolf or the bear
        assert "rel " in rows.first.text_content()
        page.screenshot(path=str(shots / "dashboard-compare-recall.png"))
        assert errors == []
    finally:
        page.close()

    # the simulated population: two of its agents compared, a recall, a cluster clicked
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(dashboard_url(worker.url, SIM, READ))
        wait_js(page, "() => window.__argosDash?.ready && window.__argosDash.panes()[0].n > 100")
        page.check("#compare")
        wait_js(page, "() => window.__argosDash.panes().length === 2")
        wait_js(page, "() => window.__argosDash.panes()[1].n > 10")
        agent = page.evaluate("() => window.__argosDash.panes()[1].agent")
        page.select_option("#recall-agent", agent)
        page.fill("#recall-query", "I was scared by a wild animal")
        page.click("#recall button[type=submit]")
        wait_js(page, "() => document.querySelectorAll('#recall-out tr').length > 0")
        box = page.locator(".pane canvas").first.bounding_box()
        assert box is not None
        at = page.evaluate(
            """() => { const d = window.__argosDash; const dpr = Math.min(devicePixelRatio || 1, 2);
                 for (let k = 0; k < 400; k++) {
                   const id = d.idAt(k); if (!id) break;
                   const xy = d.screenOf(id);
                   if (xy && d.clusterOf(id)) return [xy[0] / dpr, xy[1] / dpr];
                 }
                 return null; }"""
        )
        assert at is not None
        page.mouse.click(box["x"] + at[0], box["y"] + at[1])
        wait_js(
            page, "() => /size \\d+ · radius/.test(document.querySelector('#details').textContent)"
        )
        page.mouse.move(box["x"] + at[0], box["y"] + at[1] + 1)
        wait_js(page, "() => (window.__argosDash.sse.counters || 0) >= 5")  # a few s of the chart
        page.screenshot(path=str(shots / "dashboard-population.png"))
        if os.environ.get("ARGOS_README_SHOT") == "1":
            (ROOT / "docs").mkdir(exist_ok=True)
            page.screenshot(path=str(ROOT / "docs" / "dashboard.png"))
        assert errors == []
    finally:
        page.close()

    # a wrong token: the page is refused with 401 (an HTML page with a token form) ...
    page = browser.new_page()
    try:
        resp = page.goto(dashboard_url(worker.url, NS, "not-a-token"))
        assert resp is not None and resp.status == 401
        assert page.locator("#refused").get_attribute("data-status") == "401"
        assert page.locator("#reason").text_content() == "invalid token"
        page.screenshot(path=str(shots / "dashboard-refused.png"))
        resp = page.goto(dashboard_url(worker.url, NS, ELSEWHERE))  # another namespace's token
        assert resp is not None and resp.status == 403
    finally:
        page.close()


def test_dashboard_api_tokens_sampling_and_stream(worker: WorkerProcess) -> None:
    url = worker.url
    pts = "/dashboard/api/points"
    with httpx.Client(base_url=url, timeout=30) as http:
        # ... and so is the API (JSON like the recall API's refusals)
        for kwargs in (
            {"params": {"namespace": NS, "token": "wrong"}},
            {"params": {"namespace": NS}, "headers": {"Authorization": "Bearer wrong"}},
            {"params": {"namespace": NS}},
        ):
            r = http.get(pts, **kwargs)
            assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
            assert r.json()["status"] == 401
        r = http.get(pts, params={"namespace": NS, "token": ELSEWHERE})
        assert r.status_code == 403 and "may not use namespace" in r.json()["error"]
        r = http.get("/dashboard/api/events", params={"namespace": NS, "token": "wrong"})
        assert r.status_code == 401
        assert http.get("/dashboard", params={"namespace": NS}).status_code == 401
        # the header works as well as ?token=
        auth = {"Authorization": f"Bearer {READ}"}
        full = http.get(pts, params={"namespace": NS, "limit": 1000}, headers=auth).json()
        n = full["n"]
        assert n >= len(AGENTS) * len(TEXTS) and full["total"] == n
        assert {full["agents"][a] for a in full["agent"]} == set(AGENTS)
        assert all(v is not None for v in full["x"] + full["y"])
        assert len(full["content"]) == n and full["projection"]["rows_learnt"] >= 1
        # server-side sampling: the same memories every time, a superset when larger
        s5 = http.get(pts, params={"namespace": NS, "limit": 5, "token": READ}).json()
        s9 = http.get(pts, params={"namespace": NS, "limit": 9, "token": READ}).json()
        assert s5["n"] == 5 and s5["total"] == n and set(s5["memory_id"]) <= set(s9["memory_id"])
        again = http.get(pts, params={"namespace": NS, "limit": 5, "token": READ}).json()
        assert again["memory_id"] == s5["memory_id"]
        world = http.get(pts, params={"namespace": NS, "view": "world", "token": READ}).json()
        assert all(v is not None for v in world["wx"])
        assert {a["agent_id"] for a in world["world_agents"]} == set(AGENTS)
        assert http.get(pts, params={"namespace": NS, "limit": 0, "token": READ}).status_code == 400
        # a token scoped to one agent sees only that agent
        only = http.get(pts, params={"namespace": NS, "token": ONLY_B}).json()
        assert {only["agents"][a] for a in only["agent"]} == {"bea"}
        r = http.get(pts, params={"namespace": NS, "agent_id": "ann", "token": ONLY_B})
        assert r.status_code == 403
        agents = http.get("/dashboard/api/agents", params={"namespace": NS, "token": ONLY_B})
        assert [a["agent_id"] for a in agents.json()["agents"]] == ["bea"]
        names = http.get("/dashboard/api/namespaces", params={"token": READ}).json()
        assert [x["namespace"] for x in names["namespaces"]] == sorted([NS, SIM])
        names = http.get("/dashboard/api/namespaces", params={"token": ONLY_B}).json()
        assert names["namespaces"] == [{"namespace": NS, "agents": 1, "memories": len(TEXTS)}]
        deadline = time.monotonic() + 60  # the analytics stage runs behind the store stage
        while True:
            an = http.get("/dashboard/api/analytics", params={"namespace": NS, "token": READ})
            body = an.json()
            if body["models"] or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert body["enabled"] is True
        assert {m["target"] for m in body["models"]} >= {"importance", "recall_probability"}
        assert "lifecycle_states" in body["metrics"]
        # static files: served without a token; a missing one is a 404 that says what to do
        assert http.get("/dashboard/static/dashboard.js").status_code == 200
        r = http.get("/dashboard/static/nope.js")
        assert r.status_code == 404 and "nope.js" in r.json()["error"]
        assert http.get("/dashboard/static/..%2Fpyproject.toml").status_code == 404

        # the event stream: hello, then counters every second; its subscription ends with it
        def watchers_seen() -> int:
            with http.stream(
                "GET", "/dashboard/api/events", params={"namespace": NS, "token": READ}
            ) as s:
                assert s.headers["content-type"].startswith("text/event-stream")
                events: list[tuple[str, dict[str, Any]]] = []
                name = ""
                for line in s.iter_lines():
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: "):
                        events.append((name, json.loads(line[6:])))
                    if sum(1 for k, _ in events if k == "counters") >= 2:
                        break
            assert events[0][0] == "hello" and events[0][1]["namespace"] == NS
            return int([d for k, d in events if k == "counters"][-1]["watchers"])

        assert watchers_seen() >= 1
        deadline = time.monotonic() + 10
        while watchers_seen() != 1:  # the earlier streams unsubscribed when they were closed
            assert time.monotonic() < deadline, "an event stream kept its subscription"
            time.sleep(0.5)


def _sse_events(resp: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) of a Server-Sent Events response, as they arrive."""
    event = None
    for line in resp.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event is not None:
            yield event, json.loads(line[6:])
            event = None


def test_any_worker_serves_the_whole_dashboard(start_worker: Callable[..., WorkerProcess]) -> None:
    """Two workers in one group, each holding some agents: either one's dashboard API answers
    with every memory (points, namespaces, agents), and its event stream relays the memories
    the other worker stores, with counters summed over both."""
    env = {"ARGOS_TOKENS": json.dumps(TOKENS), "ARGOS_TOPIC_PARTITIONS": "4"}
    first = start_worker(embedder="hashing", extra_env=env)
    prefix = first.env["ARGOS_TOPIC_PREFIX"]
    workers = [
        first,
        start_worker(topic_prefix=prefix, ready_timeout=300, embedder="hashing", extra_env=env),
    ]
    clients = [MemoryClient(w.url) for w in workers]
    wait_until_settled(clients)
    agents = [f"agent-{i}" for i in range(8)]
    topic = prefix + ".memory.events"
    with MemoryPublisher(first.bootstrap, topic, token=WRITE) as pub:
        for k, agent in enumerate(agents):
            pub.publish_many(_events(agent, k))
    total = len(agents) * len(TEXTS)
    deadline = time.monotonic() + 180
    while sum(c.stats()["stored"] for c in clients) < total and time.monotonic() < deadline:
        time.sleep(1.0)
    auth = {"Authorization": f"Bearer {READ}"}
    own = {"X-Argos-Routed": "1", **auth}  # what a peer asks: this worker's share only
    params = {"namespace": NS, "limit": 100_000}
    shares = [
        set(
            httpx.get(
                f"{w.url}/dashboard/api/points", params=params, headers=own, timeout=60
            ).json()["memory_id"]
        )
        for w in workers
    ]
    print("memories per worker:", [len(s) for s in shares])
    assert all(shares) and not shares[0] & shares[1]  # each holds some agents, none twice
    everything = shares[0] | shares[1]
    assert len(everything) == total
    for w in workers:
        body = httpx.get(
            f"{w.url}/dashboard/api/points", params=params, headers=auth, timeout=60
        ).json()
        assert set(body["memory_id"]) == everything and body["total"] == total, w.url
        assert body["workers"] == 2 and body["unanswered"] == []
        # every point is projected in this worker's basis: no point left at the origin
        assert all(x is not None for x in body["x"]) and any(body["x"]) and any(body["y"])
        assert {body["agents"][a] for a in body["agent"]} == set(agents)
        sample = httpx.get(
            f"{w.url}/dashboard/api/points",
            params={"namespace": NS, "limit": 7},
            headers=auth,
            timeout=60,
        ).json()
        assert sample["n"] == 7 and set(sample["memory_id"]) <= everything
        names = httpx.get(f"{w.url}/dashboard/api/namespaces", headers=auth, timeout=60).json()[
            "namespaces"
        ]
        assert {"namespace": NS, "agents": len(agents), "memories": total} in names
        listed = httpx.get(
            f"{w.url}/dashboard/api/agents", params={"namespace": NS}, headers=auth, timeout=60
        ).json()["agents"]
        assert [a["agent_id"] for a in listed] == sorted(agents)
    # a peer's question needs a token like any other
    r = httpx.get(
        f"{first.url}/dashboard/api/feed",
        params={"namespace": NS},
        headers={"X-Argos-Routed": "1"},
        timeout=30,
    )
    assert r.status_code == 401

    # the first worker's event stream shows the memories both workers store from now on
    new = {f"{agent}:live": agent for agent in agents}
    seen: set[str] = set()
    counters: dict[str, Any] = {}
    with httpx.stream(
        "GET",
        f"{first.url}/dashboard/api/events",
        params={"namespace": NS},
        headers=auth,
        timeout=httpx.Timeout(30.0),
    ) as resp:
        assert resp.status_code == 200
        events = _sse_events(resp)
        published = False
        stop_at = time.monotonic() + 90
        for event, data in events:
            if event == "counters":
                counters = data
                if not published and data.get("workers") == 2:  # the relay is connected
                    with MemoryPublisher(first.bootstrap, topic, token=WRITE) as pub:
                        for mid, agent in new.items():
                            pub.publish(
                                _events(agent, 0)[0].model_copy(
                                    update={"memory_id": mid, "content": f"{agent} saw a comet"}
                                )
                            )
                    published = True
            elif event == "memories":
                seen.update(data["memory_id"])
            if seen >= set(new) and counters.get("stored", 0) >= total + len(new):
                break
            assert time.monotonic() < stop_at, (sorted(seen), counters)
    assert seen >= set(new)
    from_second = {m for m in new if new[m] in {i.split(":")[0] for i in shares[1]}}
    assert from_second  # some of them were stored by the other worker: relayed
    assert counters["workers"] == 2 and counters["stored"] >= total + len(new)
