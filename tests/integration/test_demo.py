"""The README's main command, run as a user runs it: ``argos demo`` starts its own Kafka broker
and a secured worker, simulated agents publish (malformed events mixed in), the demo checks
that nothing is missing and prints recalls and clusters; then, left running (``--keep``), the
dashboard link it printed is opened in headless Chromium: points appear, a memory published
now shows up, the recall box answers, and a wrong token is refused.

It runs in a fresh folder with no ``ARGOS_*`` settings, as on a new machine (the broker's jars
come from the project's cache), and stops the worker and the broker it left running.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from pipelines.processes import free_port
from pipelines.publisher import MemoryPublisher
from pipelines.settings import Settings
from pipelines.simulation import Population
from schemas import MemoryEvent, MemoryType
from tests.integration.page_utils import ROOT, artifacts, wait_js

pytestmark = pytest.mark.integration

AGENTS, EVENTS, BAD = 4, 240, 6

SUMMARY = re.compile(
    r"(?P<published>\d+) published \+ (?P<derived>\d+) semantic memories derived: "
    r"(?P<hot>\d+) in the hot store \+ (?P<archived>\d+) archived \+ (?P<decayed>\d+) decayed "
    r".*?\+ (?P<near>\d+) near-duplicates .*?\+ (?P<dead>\d+) dead-lettered; "
    r"(?P<missing>-?\d+) missing\.",
    re.S,
)


def _demo_env(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARGOS_", "KAFKA_"))}
    env.update(ARGOS_WEB_PORT=str(port), COLUMNS="400", PYTHONPATH=str(ROOT))
    return env


def _stop_left_running(out: str, cwd: Path) -> None:
    """Stop what ``--keep`` left: the worker (its pid is printed) and the demo's broker."""
    m = re.search(r"left running: worker \S+ \(pid (\d+)\)", out)
    if m:
        pid = int(m.group(1))
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(60):
                os.kill(pid, 0)
                time.sleep(0.5)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "broker", "stop", "--data-dir", ".data/demo/kafka"],
        cwd=cwd,
        env=_demo_env(0),
        timeout=120,
        check=False,
    )


def test_demo_end_to_end_then_its_dashboard_in_chromium(tmp_path: Path, browser: Any) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "demo", "--agents", str(AGENTS)]
        + ["--events", str(EVENTS), "--bad", str(BAD), "--keep"],
        cwd=tmp_path,
        env=_demo_env(free_port()),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    out = run.stdout
    try:
        assert run.returncode == 0, out[-3000:] + run.stderr[-3000:]
        # the demo's own accounting: everything published is somewhere, nothing missing
        m = SUMMARY.search(out)
        assert m is not None, out[-3000:]
        got = {k: int(v) for k, v in m.groupdict().items()}
        assert got["published"] == EVENTS + BAD and got["dead"] == BAD, got
        assert got["missing"] == 0 and got["hot"] > 0, got
        assert out.count(" remembers, like ") == 4, out[-3000:]  # the demo's four recalls
        link = re.search(r"Dashboard (http://\S+)", out)
        assert link is not None, out[:3000]
        url = link.group(1)
        query = parse_qs(urlparse(url).query)
        namespace, reader = query["namespace"][0], query["token"][0]
        secrets = json.loads((tmp_path / ".data/demo/secrets.json").read_text())
        bootstrap = re.search(r"Kafka (\S+)", out)
        assert bootstrap is not None

        page = browser.new_page(viewport={"width": 1600, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            resp = page.goto(url)
            assert resp is not None and resp.status == 200
            # the points of the demo's namespace: every memory in the hot store
            n = wait_js(
                page,
                f"() => window.__argosDash?.ready && window.__argosDash.panes()[0].n >= "
                f"{got['hot']} && window.__argosDash.panes()[0].n",
                timeout_s=30,
            )
            assert n == got["hot"], (n, got)
            wait_js(page, "() => (window.__argosDash.sse.counters || 0) >= 1")
            # a memory published now appears, pushed by the server
            # the demo's population, replayed here (same seed): an agent, and its clock's last
            # event time (a memory at the wall clock's now would age the others by months)
            pop = Population(AGENTS, seed=7, namespace=namespace)
            agent = pop.agents[0].agent_id
            last = max(e.event_time for e in pop.events(EVENTS) if e.agent_id == agent)
            new_id = f"{namespace}:{agent}:seen-live"
            topic = Settings.model_fields["topic_prefix"].default + ".memory.events"
            with MemoryPublisher(bootstrap.group(1), topic, token=secrets["writer"]) as pub:
                pub.publish(
                    MemoryEvent(
                        schema_version=1,
                        memory_id=new_id,
                        agent_id=agent,
                        namespace=namespace,
                        type=MemoryType.episodic,
                        content="A heron took the fish from my basket by the ford",
                        importance=0.9,
                        event_time=last + timedelta(minutes=1),
                    )
                )
            wait_js(page, f"() => window.__argosDash.has({json.dumps(new_id)})", timeout_s=20)
            pane = wait_js(page, "() => window.__argosDash.panes()[0]")
            assert pane["n"] == got["hot"] + 1 and pane["drawn"] == pane["n"], pane
            # the recall box answers with ranked hits and their score parts
            page.select_option("#recall-agent", agent)
            page.fill("#recall-query", "a bird stole my fish")
            page.click("#recall button[type=submit]")
            wait_js(page, "() => document.querySelectorAll('#recall-out tr').length > 0")
            rows = page.locator("#recall-out tr")
            assert rows.count() == 8  # the box asks for 8; the agent holds more
            assert rows.first.get_attribute("data-memory") == new_id
            assert "rel " in rows.first.text_content()
            page.screenshot(path=str(artifacts() / "demo-dashboard.png"))
            assert errors == []
        finally:
            page.close()
        page = browser.new_page()
        try:  # a wrong token is refused
            resp = page.goto(url.replace(reader, "not-the-token"))
            assert resp is not None and resp.status == 401
        finally:
            page.close()
    finally:
        _stop_left_running(out, tmp_path)
