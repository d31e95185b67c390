"""The local single-node Kafka broker (infra/local_kafka.py) against a real JVM.

No skips on purpose: without Java (or Maven for the first jar fetch) these tests fail.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from infra import local_kafka
from infra.local_kafka import LocalKafka

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _process_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not local_kafka._pid_alive(pid):
            return True
        time.sleep(0.1)
    return False


def _port_closed(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    try:
        for i, value in enumerate(values):
            producer.send(topic, key=f"k{i}".encode(), value=value).get(timeout=30)
        producer.flush(timeout=30)
    finally:
        producer.close()


def _consume(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list[bytes]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    received: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout
        while len(received) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                received.extend(record.value for record in records)
        partitions = consumer.partitions_for_topic(topic)
    finally:
        consumer.close()
    assert partitions is not None and len(partitions) == 4  # num.partitions=4, auto-created
    return received


def test_start_produce_consume_stop(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path / "kafka")
    started = time.monotonic()
    bootstrap = kafka.start()
    print(f"broker start took {time.monotonic() - started:.1f}s")
    pid = kafka.pid
    assert pid is not None
    try:
        assert kafka.is_running()
        assert bootstrap == kafka.bootstrap_servers == f"127.0.0.1:{kafka.port}"
        assert (tmp_path / "kafka" / "bootstrap").read_text().strip() == bootstrap
        assert (tmp_path / "kafka" / "kafka.pid").read_text().strip() == str(pid)
        assert local_kafka.status(tmp_path / "kafka") == bootstrap
        assert "Kafka Server started" in kafka.stdout_file.read_text()

        topic = f"argos-test-{uuid.uuid4().hex[:8]}"  # new topic, auto-created on produce
        values = [f"memory-event-{i}".encode() for i in range(5)]
        _produce(bootstrap, topic, values)
        assert sorted(_consume(bootstrap, topic, len(values))) == sorted(values)
    finally:
        kafka.stop()

    assert not kafka.is_running()
    assert _process_gone(pid), f"broker pid {pid} still alive after stop()"
    assert kafka.port is not None and _port_closed(kafka.port)
    assert not (tmp_path / "kafka" / "kafka.pid").exists()
    assert local_kafka.status(tmp_path / "kafka") is None


def test_restart_keeps_data_and_context_manager(tmp_path: Path) -> None:
    data_dir = tmp_path / "kafka"
    topic = "argos-restart"
    with LocalKafka(data_dir) as kafka:
        first_bootstrap = kafka.bootstrap_servers
        first_pid = kafka.pid
        _produce(first_bootstrap, topic, [b"before-restart"])
    assert first_pid is not None and _process_gone(first_pid)

    # Same data dir again: the storage format step must be a no-op and the data must survive.
    with LocalKafka(data_dir) as kafka:
        assert kafka.pid != first_pid
        assert kafka.bootstrap_servers == first_bootstrap  # previous ports reused when free
        _produce(kafka.bootstrap_servers, topic, [b"after-restart"])
        received = _consume(kafka.bootstrap_servers, topic, 2)
    assert sorted(received) == [b"after-restart", b"before-restart"]


def test_start_detached_twice_reuses_broker(tmp_path: Path) -> None:
    data_dir = tmp_path / "kafka"
    try:
        first = local_kafka.start_detached(data_dir)
        pid = int((data_dir / "kafka.pid").read_text())
        second = local_kafka.start_detached(data_dir)
        assert second == first
        assert int((data_dir / "kafka.pid").read_text()) == pid
        assert local_kafka.status(data_dir) == first

        # LocalKafka must refuse to start a second JVM on a data dir that is in use.
        with pytest.raises(local_kafka.KafkaStartError, match="already runs"):
            LocalKafka(data_dir).start()
        assert local_kafka.status(data_dir) == first

        _produce(first, "argos-detached", [b"hello"])
        assert _consume(first, "argos-detached", 1) == [b"hello"]
    finally:
        stopped = local_kafka.stop_detached(data_dir)
    assert stopped
    assert _process_gone(pid), f"broker pid {pid} still alive after stop_detached()"
    assert local_kafka.status(data_dir) is None
    assert local_kafka.stop_detached(data_dir) is False
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
