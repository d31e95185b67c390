"""Kafka with authentication and encryption: a real broker with a SASL_PLAINTEXT listener
(PLAIN mechanism), an SSL listener, a SASL_SSL listener and a mutual-TLS listener (client
certificates required), a real worker process and a publisher that both log in (or verify the
broker's certificate, or show their own) with the ``ARGOS_KAFKA_*`` settings.

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
from typing import Any

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


def _security(kind: str, kafka: LocalKafka) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(listener address, the worker's settings, the agent's settings) for one listener kind;
    each side has its own account (SASL user, or client certificate for mutual TLS)."""
    ca = {"kafka_ssl_cafile": str(kafka.tls_ca_file)}

    def sasl(protocol: str, user: str, password: str) -> dict[str, Any]:
        return {
            "kafka_security_protocol": protocol,
            "kafka_sasl_mechanism": "PLAIN",
            "kafka_username": user,
            "kafka_password": password,
        }

    def cert(name: str) -> dict[str, Any]:
        files = kafka.client_tls(name)
        return {
            "kafka_security_protocol": "SSL",
            "kafka_ssl_certfile": str(files["cert"]),
            "kafka_ssl_keyfile": str(files["key"]),
        } | ca

    if kind == "sasl":
        return (
            kafka.sasl_bootstrap_servers,
            sasl("SASL_PLAINTEXT", WORKER_USER, WORKER_PASSWORD),
            sasl("SASL_PLAINTEXT", AGENT_USER, AGENT_PASSWORD),
        )
    if kind == "tls":
        tls = {"kafka_security_protocol": "SSL"} | ca
        return kafka.tls_bootstrap_servers, tls, tls
    if kind == "sasl_ssl":
        return (
            kafka.sasl_ssl_bootstrap_servers,
            sasl("SASL_SSL", WORKER_USER, WORKER_PASSWORD) | ca,
            sasl("SASL_SSL", AGENT_USER, AGENT_PASSWORD) | ca,
        )
    assert kind == "mtls"
    return kafka.mtls_bootstrap_servers, cert(WORKER_USER), cert(AGENT_USER)


@pytest.mark.parametrize("kind", ["sasl", "tls", "sasl_ssl", "mtls"])
def test_worker_and_publisher_store_every_event_over_a_secured_listener(
    sasl_kafka: LocalKafka, tmp_path: Path, kind: str
) -> None:
    """Only the listener's address: every Kafka client of the worker (topic admin, Faust's
    consumer, producer and changelogs) and the publisher must authenticate (SASL PLAIN, or a
    client certificate the broker's CA signed) and/or verify the broker against the given CA
    over TLS, or nothing is stored. The settings are the ``ARGOS_KAFKA_*`` environment the
    worker reads, and the same settings object for the agent."""
    bootstrap, worker_settings, agent_settings = _security(kind, sasl_kafka)
    prefix = unique(kind.replace("_", "-"))
    worker = WorkerProcess(
        bootstrap,
        tmp_path / "worker",
        topic_prefix=prefix,
        app_id=f"{prefix}-app",
        embedder="hashing",
        extra_env=WORKER_ENV | {f"ARGOS_{k.upper()}": v for k, v in worker_settings.items()},
    )
    try:
        worker.start(timeout=120)
        client = MemoryClient(worker.url)
        ns = f"{kind}-e2e".replace("_", "-")
        events = _events(ns, N)
        assert len({e.memory_id for e in events}) == N
        agent = Settings.model_validate(agent_settings)
        with MemoryPublisher(
            bootstrap, f"{prefix}.memory.events", connect_timeout=20, **agent.kafka_client_options()
        ) as pub:
            futures = [pub.publish(e) for e in events]
            assert all(f.get(timeout=30).offset >= 0 for f in futures)  # acked
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
    with pytest.raises(RuntimeError, match="no SASL_SSL listener"):
        _ = LocalKafka(Path("/nonexistent"), tls=True).sasl_ssl_bootstrap_servers
    with pytest.raises(RuntimeError, match="no mutual-TLS listener"):
        _ = LocalKafka(Path("/nonexistent")).mtls_bootstrap_servers


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


def test_mutual_tls_refuses_a_client_without_a_certificate_or_with_a_strange_one(
    sasl_kafka: LocalKafka, tmp_path: Path
) -> None:
    """The mutual-TLS listener: a client that trusts the broker but shows no certificate, and
    one whose certificate another CA signed, are refused within a bounded time, clearly."""
    from infra.tls import write_client_tls, write_server_tls

    write_server_tls(tmp_path, "127.0.0.1")  # another CA
    stranger = write_client_tls(tmp_path, "stranger")
    ca = {"security_protocol": "SSL", "ssl_cafile": sasl_kafka.tls_ca_file}
    for options in (ca, ca | {"ssl_certfile": stranger["cert"], "ssl_keyfile": stranger["key"]}):
        started = time.monotonic()
        with pytest.raises(ConfigurationError, match="cannot connect to Kafka"):
            MemoryPublisher(
                sasl_kafka.mtls_bootstrap_servers, "never.written", connect_timeout=5, **options
            )
        assert time.monotonic() - started < 20
