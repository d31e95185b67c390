"""Shared fixtures: one real Kafka broker per test session, workers per module.

The broker is the project's own (``infra.local_kafka``), started from Kafka's jars; set
``KAFKA_BOOTSTRAP_SERVERS`` to run the suite against an existing cluster instead. There is no
fallback and no skip: without a broker the integration tests fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.local_kafka import LocalKafka
from pipelines.dashboard import CHROMIUM, CHROMIUM_ARGS, dist_dir
from pipelines.processes import WorkerProcess


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        yield existing
        return
    broker = LocalKafka(tmp_path_factory.mktemp("kafka"))
    bootstrap = broker.start()
    try:
        yield bootstrap
    finally:
        broker.stop()


# Every test worker encrypts at rest (content in Milvus, state changelogs) with one shared key,
# so the whole suite runs the encrypted path; OTel exporters are off unless a test asks.
TEST_KEYS = "test1:" + "A" * 43 + "="
WORKER_ENV = {"ARGOS_ENCRYPTION_KEYS": TEST_KEYS, "ARGOS_OTEL_EXPORTER": "none"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def start_worker(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory: start a worker on fresh topics (own prefix, group, data folder) and wait ready.
    Its workers stop at the end of the module: kept for the whole session, a clean-clone CI
    run's workers (each with its Milvus Lite child and recall process, ~0.8 GB) filled the
    2-core machine's 24 GiB and the kernel killed the run."""
    started: list[WorkerProcess] = []

    def _start(
        topic_prefix: str | None = None, data_dir: Path | None = None, **kwargs: object
    ) -> WorkerProcess:
        prefix = topic_prefix or unique("t")
        ready_timeout = float(kwargs.pop("ready_timeout", 120.0))  # type: ignore[arg-type]
        w = WorkerProcess(
            kafka_bootstrap,
            data_dir or tmp_path_factory.mktemp("worker"),
            topic_prefix=prefix,
            app_id=f"{prefix}-app",
            embedder=str(kwargs.pop("embedder", "onnx")),
            extra_env={**WORKER_ENV, **dict(kwargs.pop("extra_env", None) or {})},  # type: ignore[call-overload]
            **kwargs,  # type: ignore[arg-type]
        )
        started.append(w)
        w.start(timeout=ready_timeout)
        return w

    yield _start
    for w in started:
        w.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright (its own browsers are never downloaded).
    No skip: without Chromium or the built page the tests fail and say what is missing.
    Per module: Playwright's sync API keeps an event loop running in this thread while it is
    open, and later code that calls ``asyncio.run`` (the doctests) would fail beside it."""
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install -y chromium)"
    )
    assert (dist_dir() / "index.html").is_file(), (
        f"{dist_dir()}/index.html is missing: build the dashboard (make dashboard)"
    )
    from playwright.sync_api import sync_playwright  # the `playwright` package (pyproject)

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
