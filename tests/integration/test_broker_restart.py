"""Restart the broker mid-stream (issue #8's faults): the worker rides it out, nothing is lost,
nothing is stored twice, and the lifecycle and clusters end as in an uninterrupted run. The
broker here is the test's own (the session's broker serves the other tests), restarted on the
same port from the same data folder, counted from the topics, never trusting the framework."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from infra.local_kafka import LocalKafka
from pipelines.client import MemoryClient
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher
from tests.conftest import WORKER_ENV, unique
from tests.integration.test_restart import FAST_FORGETTING, N, _clusters, _events, _wait

pytestmark = pytest.mark.integration


def _worker(bootstrap: str, folder: Path, prefix: str) -> WorkerProcess:
    w = WorkerProcess(
        bootstrap,
        folder,
        topic_prefix=prefix,
        app_id=f"{prefix}-app",
        extra_env={**WORKER_ENV, **FAST_FORGETTING},
    )
    w.start()
    return w


def test_broker_restart_mid_stream_loses_nothing(tmp_path: Path) -> None:
    events = _events()
    agents = {e.agent_id for e in events}
    broker = LocalKafka(tmp_path / "kafka")
    bootstrap = broker.start()
    workers: list[WorkerProcess] = []
    try:
        # the reference: the same events through an uninterrupted worker on this broker
        ref = _worker(bootstrap, tmp_path / "ref", unique("ref"))
        workers.append(ref)
        with MemoryPublisher(bootstrap, ref.env["ARGOS_TOPIC_PREFIX"] + ".memory.events") as pub:
            pub.publish_many(events)
        ref_count, ref_book = _wait(ref)
        expected = _clusters(MemoryClient(ref.url), agents)
        ref.stop()

        w = _worker(bootstrap, tmp_path / "victim", unique("victim"))
        workers.append(w)
        client = MemoryClient(w.url)
        with MemoryPublisher(bootstrap, w.env["ARGOS_TOPIC_PREFIX"] + ".memory.events") as pub:
            pub.publish_many(events)
        deadline = time.monotonic() + 120
        while int(client.stats()["stored"]) < N // 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        before = client.stats()
        broker.stop()  # the broker goes away mid-stream ...
        time.sleep(5.0)
        assert broker.start() == bootstrap  # ... and comes back on the same address
        assert before["stored"] < N, "the restart came too late to test anything"
        stored, book = _wait(w)
        assert w.proc is not None and w.proc.poll() is None, w.log_tail()  # it rode it out
        published = {e.memory_id for e in events}
        print(
            f"broker restarted after {before['stored']} stored; then {stored} in the store, "
            + ", ".join(f"{len(v)} {k}" for k, v in book.items())
            + f" (uninterrupted: {ref_count} in the store)"
        )
        assert (book["created"] & published) | book["duplicates"] == published  # nothing lost
        assert stored == len(book["created"] - book["decayed"] - book["archived"])  # no doubles
        assert (stored, book) == (ref_count, ref_book)
        assert _clusters(client, agents) == expected
    finally:
        for w in workers:
            w.stop()
        broker.stop()
