"""Kafka with authentication and encryption: a real broker with a SASL_PLAINTEXT listener
(PLAIN mechanism) and an SSL listener, a real worker process and a publisher that both log in
(or verify the broker's certificate) with the ``ARGOS_KAFKA_*`` settings.

The broker is the module's own (``LocalKafka(sasl_users=..., tls=True)``; the jars come from
the same cache as the session broker's; the TLS certificate is signed by a CA made for it).
The worker and the publisher are given only the SASL (or the SSL) listener's address, so every
Kafka client they create (the topic admin, Faust's consumer, producer and changelogs, the
publisher's producer) has to authenticate (or verify the broker) for the events to be stored;
wrong or missing credentials, or an untrusted broker, are refused within a bounded time, with a
clear error.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.local_kafka import LocalKafka
from pipelines.client import MemoryClient
from pipelines.errors import ConfigurationError
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher
from pipelines.settings import Settings
from pipelines.simulation import Population
from schemas import MemoryEvent
from tests.conftest import WORKER_ENV, unique

pytestmark = pytest.mark.integration

WORKER_USER, WORKER_PASSWORD = "argos-worker", "worker-pw-1"
AGENT_USER, AGENT_PASSWORD = "agent-7", "agent-pw-2"
N = 60


@pytest.fixture(scope="module")
def sasl_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    broker = LocalKafka(
        tmp_path_factory.mktemp("kafka-sasl"),
        sasl_users={WORKER_USER: WORKER_PASSWORD, AGENT_USER: AGENT_PASSWORD},
        tls=True,
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _sasl_env(user: str, password: str) -> dict[str, str]:
    return {
        "ARGOS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "ARGOS_KAFKA_SASL_MECHANISM": "PLAIN",
        "ARGOS_KAFKA_USERNAME": user,
        "ARGOS_KAFKA_PASSWORD": password,
    }


def _events(namespace: str, n: int) -> list[MemoryEvent]:
    """``n`` events whose contents share no words, so none is folded into another as a
    near-duplicate: every one of them must be stored."""
    rng = random.Random(17)
    words = lambda: " ".join(  # noqa: E731
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=7)) for _ in range(10)
    )
    return [
        e.model_copy(update={"content": words()})
        for e in Population(4, seed=3, namespace=namespace).events(n)
    ]


def test_worker_and_publisher_authenticate_and_every_event_is_stored(
    sasl_kafka: LocalKafka, tmp_path: Path
) -> None:
    prefix = unique("sasl")
    worker = WorkerProcess(
        sasl_kafka.sasl_bootstrap_servers,
        tmp_path / "worker",
        topic_prefix=prefix,
        app_id=f"{prefix}-app",
        embedder="hashing",
        extra_env={**WORKER_ENV, **_sasl_env(WORKER_USER, WORKER_PASSWORD)},
    )
    try:
        worker.start(timeout=120)
        client = MemoryClient(worker.url)
        ns = "sasl-e2e"
        events = _events(ns, N)
        assert len({e.memory_id for e in events}) == N
        # the agent's own account, from the same settings object the worker reads
        agent = Settings.model_validate(
            {
                "kafka_security_protocol": "SASL_PLAINTEXT",
                "kafka_username": AGENT_USER,
                "kafka_password": AGENT_PASSWORD,
            }
        )
        with MemoryPublisher(
            sasl_kafka.sasl_bootstrap_servers,
            f"{prefix}.memory.events",
            connect_timeout=20,
            **agent.kafka_client_options(),
        ) as pub:
            futures = [pub.publish(e) for e in events]
            assert all(f.get(timeout=30).offset >= 0 for f in futures)  # acked through SASL
        try:
            assert client.wait_stored(ns, N, timeout=90) == N
        except TimeoutError:
            pytest.fail(f"not all {N} events stored; worker log:\n{worker.log_tail(60)}")
        time.sleep(1.0)  # nothing stored twice
        assert client.count(ns) == N
        assert int(client.stats()["dead_lettered"]) == 0
    finally:
        worker.stop()


def test_wrong_password_is_refused_with_a_clear_error_in_bounded_time(
    sasl_kafka: LocalKafka,
) -> None:
    started = time.monotonic()
    with pytest.raises(ConfigurationError, match="credentials") as err:
        MemoryPublisher(
            sasl_kafka.sasl_bootstrap_servers,
            "never.written",
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="PLAIN",
            sasl_plain_username=AGENT_USER,
            sasl_plain_password="not-the-password",
            connect_timeout=5,
        )
    assert time.monotonic() - started < 20
    message = str(err.value)
    assert sasl_kafka.sasl_bootstrap_servers in message
    assert AGENT_USER in message and "not-the-password" not in message


def test_a_client_without_sasl_is_refused_on_the_sasl_listener(sasl_kafka: LocalKafka) -> None:
    started = time.monotonic()
    with pytest.raises(ConfigurationError, match="cannot connect to Kafka"):
        MemoryPublisher(sasl_kafka.sasl_bootstrap_servers, "never.written", connect_timeout=3)
    assert time.monotonic() - started < 15
    # ... while the broker's PLAINTEXT listener stays as it was
    with MemoryPublisher(sasl_kafka.bootstrap_servers, unique("plain"), connect_timeout=20) as pub:
        assert pub.publish_raw(b"k", b"v").get(timeout=30).offset == 0


def test_local_kafka_rejects_sasl_users_it_cannot_write() -> None:
    for users in ({}, {"bad name": "pw"}, {"u": 'say "hi"'}, {"u": "a;b"}, {"u": ""}):
        with pytest.raises(ValueError, match="SASL|sasl_users"):
            LocalKafka(Path("/nonexistent"), sasl_users=users)
    with pytest.raises(RuntimeError, match="no SASL listener"):
        _ = LocalKafka(Path("/nonexistent")).sasl_bootstrap_servers
    with pytest.raises(RuntimeError, match="no TLS listener"):
        _ = LocalKafka(Path("/nonexistent")).tls_bootstrap_servers


def test_worker_and_publisher_over_tls_store_every_event(
    sasl_kafka: LocalKafka, tmp_path: Path
) -> None:
    """Only the SSL listener's address: every Kafka client of the worker and the publisher
    must complete a TLS handshake that verifies the broker against the given CA."""
    prefix = unique("tls")
    tls_env = {
        "ARGOS_KAFKA_SECURITY_PROTOCOL": "SSL",
        "ARGOS_KAFKA_SSL_CAFILE": str(sasl_kafka.tls_ca_file),
    }
    worker = WorkerProcess(
        sasl_kafka.tls_bootstrap_servers,
        tmp_path / "worker",
        topic_prefix=prefix,
        app_id=f"{prefix}-app",
        embedder="hashing",
        extra_env={**WORKER_ENV, **tls_env},
    )
    try:
        worker.start(timeout=120)
        client = MemoryClient(worker.url)
        ns = "tls-e2e"
        events = _events(ns, N)
        agent = Settings.model_validate(
            {"kafka_security_protocol": "SSL", "kafka_ssl_cafile": sasl_kafka.tls_ca_file}
        )
        with MemoryPublisher(
            sasl_kafka.tls_bootstrap_servers,
            f"{prefix}.memory.events",
            connect_timeout=20,
            **agent.kafka_client_options(),
        ) as pub:
            futures = [pub.publish(e) for e in events]
            assert all(f.get(timeout=30).offset >= 0 for f in futures)  # acked over TLS
        try:
            assert client.wait_stored(ns, N, timeout=90) == N
        except TimeoutError:
            pytest.fail(f"not all {N} events stored; worker log:\n{worker.log_tail(60)}")
        time.sleep(1.0)
        assert client.count(ns) == N
        assert int(client.stats()["dead_lettered"]) == 0
    finally:
        worker.stop()


def test_a_client_that_does_not_trust_the_broker_is_refused(sasl_kafka: LocalKafka) -> None:
    """TLS with the system CAs (which never signed the local CA's certificate), and plaintext
    on the SSL port: both refused within a bounded time, with a clear error."""
    for options in ({"security_protocol": "SSL"}, {}):
        started = time.monotonic()
        with pytest.raises(ConfigurationError, match="cannot connect to Kafka"):
            MemoryPublisher(
                sasl_kafka.tls_bootstrap_servers, "never.written", connect_timeout=5, **options
            )
        assert time.monotonic() - started < 20
