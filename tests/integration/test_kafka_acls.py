"""Kafka ACLs on a real broker with its authorizer on (``LocalKafka(acls=True)``): with the
bindings of ``argos acls`` (``pipelines/kafka_acls.py``) the worker runs the whole pipeline
as its own user, an agent publishes memory events and can do nothing else (reading any topic,
or writing the pipeline's own, is refused), and a reader reads the analytics topics only."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError, TopicAuthorizationFailedError

from infra.local_kafka import LocalKafka
from pipelines.client import MemoryClient
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher
from pipelines.settings import Settings
from tests.conftest import WORKER_ENV, unique
from tests.integration.test_kafka_auth import N, _events

pytestmark = pytest.mark.integration

USERS = {"argos-worker": "worker-pw", "agent-9": "agent-pw", "viewer": "viewer-pw"}


@pytest.fixture(scope="module")
def acl_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    broker = LocalKafka(tmp_path_factory.mktemp("kafka-acls"), sasl_users=USERS, acls=True)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _login(user: str) -> dict[str, Any]:
    """The ``ARGOS_KAFKA_*`` settings of one SASL user."""
    return {
        "kafka_security_protocol": "SASL_PLAINTEXT",
        "kafka_sasl_mechanism": "PLAIN",
        "kafka_username": user,
        "kafka_password": USERS[user],
    }


def _options(user: str) -> dict[str, Any]:
    return Settings.model_validate(_login(user)).kafka_client_options()


def _refused(fn: Any) -> KafkaError:
    """What a client call refused by the authorizer raised (it must be refused)."""
    with pytest.raises(KafkaError) as err:
        fn()
    return err.value


def test_each_user_may_do_what_its_acls_allow_and_nothing_else(
    acl_kafka: LocalKafka, tmp_path: Path
) -> None:
    prefix = unique("acl")
    app_id = f"{prefix}-app"
    env = {"ARGOS_TOPIC_PREFIX": prefix, "ARGOS_APP_ID": app_id}
    # the ACLs, created by `argos acls --apply` as the super user (the PLAINTEXT listener)
    made = subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "pipelines.cli", "acls", "--worker", "argos-worker"]
        + ["--agent", "agent-9", "--reader", "viewer", "--apply"],
        env={**os.environ, **env, "KAFKA_BOOTSTRAP_SERVERS": acl_kafka.bootstrap_servers},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    assert "created 7 ACLs" in made.stdout, made.stdout

    sasl = acl_kafka.sasl_bootstrap_servers
    worker = WorkerProcess(
        sasl,
        tmp_path / "worker",
        topic_prefix=prefix,
        app_id=app_id,
        embedder="hashing",
        extra_env=WORKER_ENV | {f"ARGOS_{k.upper()}": v for k, v in _login("argos-worker").items()},
    )
    try:
        worker.start(timeout=180)
        client = MemoryClient(worker.url)
        ns = "acl-e2e"
        events = _events(ns, N)
        # the agent publishes memory events
        with MemoryPublisher(
            sasl, f"{prefix}.memory.events", connect_timeout=20, **_options("agent-9")
        ) as pub:
            assert all(pub.publish(e).get(timeout=30).offset >= 0 for e in events)
        assert client.wait_stored(ns, N, timeout=120) == N
        print("stored", N, "as argos-worker; published as agent-9")

        # ... and nothing else: not the pipeline's own topics, not reading
        producer = KafkaProducer(bootstrap_servers=[sasl], **_options("agent-9"))
        try:
            err = _refused(
                lambda: producer.send(f"{prefix}.memory.lifecycle", b"forged").get(timeout=30)
            )
            assert isinstance(err, TopicAuthorizationFailedError), repr(err)
        finally:
            producer.close(timeout=5)
        assert not _readable("agent-9", sasl, f"{prefix}.memory.events")
        assert _readable("argos-worker", sasl, f"{prefix}.memory.events")  # it holds records

        # the reader reads the analytics topics (the worker wrote metrics there), nothing else
        deadline = time.monotonic() + 120
        got: list[Any] = []
        while not got and time.monotonic() < deadline:
            got = _read("viewer", sasl, f"{prefix}.analytics.metrics")
        assert got, "the reader read no analytics metric"
        assert not _readable("viewer", sasl, f"{prefix}.memory.events")
    finally:
        worker.stop()


def _read(user: str, bootstrap: str, topic: str) -> list[Any]:
    """The records of ``topic`` this user reads in a few seconds, from the start (no group)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=[bootstrap],
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
        **_options(user),
    )
    try:
        return list(consumer)
    finally:
        consumer.close()


def _readable(user: str, bootstrap: str, topic: str) -> bool:
    """Whether this user reads any record of ``topic``, which holds some: refused, its fetch
    raises (a user that may describe the topic) or its metadata names the topic unauthorized
    and nothing arrives (one that may not even describe it)."""
    try:
        return bool(_read(user, bootstrap, topic))
    except TopicAuthorizationFailedError:
        return False
