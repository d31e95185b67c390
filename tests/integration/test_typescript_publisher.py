"""The TypeScript publisher (sdk/typescript, kafkajs) against the real broker.

Runs the package's CLI on a JSONL file of simulated events plus invalid ones, then reads the
topic back with kafka-python: only the valid events arrive, keyed by ``agent_id``, each one parses
with the Python contract, and each lands on the partition kafka-python's default partitioner picks
for its key (murmur2), so an agent's memories share a partition whichever language publishes.

No skips on purpose: without node/npm (or the npm registry for the first install) this fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.partitioner.default import DefaultPartitioner

from pipelines.client import MemoryClient
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher
from pipelines.simulation import Population
from schemas import MemoryEvent, parse_memory_event
from tests.integration.kafka_utils import expected_in_store

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
SDK = REPO / "sdk" / "typescript"
CLI = SDK / "dist" / "cli.js"
NPM_CACHE = REPO / ".cache" / "npm"
PARTITIONS = 4


def _run(cmd: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


@pytest.fixture(scope="module")
def cli() -> list[str]:
    """``node sdk/typescript/dist/cli.js``, installing and building the package when needed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node is not None, "node (20+) is not on PATH: the TypeScript publisher needs it"
    assert npm is not None, "npm is not on PATH: the TypeScript publisher needs it to build"
    sources = list((SDK / "src").glob("*.ts")) + [SDK / "package.json", SDK / "tsconfig.json"]
    stale = not CLI.exists() or any(p.stat().st_mtime > CLI.stat().st_mtime for p in sources)
    if stale:
        if not (SDK / "node_modules" / ".bin" / "tsc").exists():
            started = time.monotonic()
            _run(
                [npm, "ci", "--cache", str(NPM_CACHE), "--no-audit", "--no-fund"], SDK, timeout=300
            )
            print(f"npm ci took {time.monotonic() - started:.1f}s")
        started = time.monotonic()
        _run([npm, "run", "build"], SDK, timeout=300)
        print(f"npm run build took {time.monotonic() - started:.1f}s")
    assert CLI.is_file(), f"build did not produce {CLI}"
    return [node, str(CLI)]


def _create_topic(bootstrap: str, topic: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        admin.create_topics(
            [NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)], timeout_ms=30000
        )
    finally:
        admin.close()


class _Cluster:
    """Just enough of kafka-python's ClusterMetadata for ``DefaultPartitioner.partition``."""

    def __init__(self, topic: str, partitions: int) -> None:
        self._topic, self._parts = topic, set(range(partitions))

    def topics(self) -> set[str]:
        return {self._topic}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return self._parts

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self._parts


def _python_partition(topic: str, key: bytes) -> int:
    """The partition kafka-python's KafkaProducer (DefaultPartitioner, murmur2) picks for key."""
    return DefaultPartitioner().partition(topic, key, key, None, None, _Cluster(topic, PARTITIONS))


def _consume(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap.split(","),
        group_id=f"ts-test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
    )
    records: list = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # Iteration stops after consumer_timeout_ms without a record; keep going until the
            # expected count arrived and then one more quiet window (so extras would be seen).
            before = len(records)
            records.extend(consumer)
            if len(records) >= expected and len(records) == before:
                break
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        end_offsets = consumer.end_offsets(tps)
    finally:
        consumer.close()
    assert len(tps) == PARTITIONS
    assert sum(end_offsets.values()) == expected, f"topic holds {end_offsets}"
    return records


def test_cli_validates_and_publishes_keyed_by_agent(
    kafka_bootstrap: str, cli: list[str], tmp_path: Path
) -> None:
    namespace = f"ts-{uuid.uuid4().hex[:8]}"
    topic = f"argos-ts-{uuid.uuid4().hex[:10]}"
    events = list(Population(3, seed=7, namespace=namespace).events(5))
    assert len({e.agent_id for e in events}) == 3
    valid_lines = [e.model_dump_json() for e in events]
    template = json.loads(valid_lines[0])
    bad_version = json.dumps({**template, "memory_id": "bad-version", "schema_version": 99})
    bad_importance = json.dumps({**template, "memory_id": "bad-importance", "importance": 3})
    # Invalid lines in between valid ones: lines 3 and 6 of the file.
    lines = valid_lines[:2] + [bad_version] + valid_lines[2:4] + [bad_importance] + valid_lines[4:]
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("\n".join(lines) + "\n")

    _create_topic(kafka_bootstrap, topic)

    started = time.monotonic()
    proc = subprocess.run(
        [*cli, "--brokers", kafka_bootstrap, "--topic", topic, "--file", str(events_file)],
        capture_output=True,
        text=True,
        timeout=180,
        env={k: v for k, v in os.environ.items() if k != "KAFKAJS_NO_PARTITIONER_WARNING"},
    )
    print(f"CLI took {time.monotonic() - started:.1f}s; stderr: {proc.stderr!r}")
    assert proc.returncode == 0, f"CLI failed:\n{proc.stdout}\n{proc.stderr}"
    assert "partitioner" not in proc.stderr.lower()  # the explicit partitioner silences kafkajs
    out_lines = proc.stdout.strip().splitlines()
    assert len(out_lines) == 1, proc.stdout  # exactly one JSON line on stdout
    summary = json.loads(out_lines[0])
    assert summary["published"] == 5
    assert summary["invalid"] == 2
    reasons = summary["reasons"]
    assert len(reasons) == 2, reasons
    assert reasons[0].startswith("line 3: ") and "schema_version" in reasons[0], reasons
    assert "99" in reasons[0]
    assert reasons[1].startswith("line 6: ") and "importance" in reasons[1], reasons

    # --strict: same summary shape, exit 2 when anything was invalid; nothing valid = nothing sent.
    only_bad = tmp_path / "bad.jsonl"
    only_bad.write_text(f"{bad_version}\n{bad_importance}\n")
    strict = subprocess.run(
        [*cli, "--brokers", kafka_bootstrap, "--topic", topic, "--file", str(only_bad), "--strict"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert strict.returncode == 2, f"{strict.stdout}\n{strict.stderr}"
    assert json.loads(strict.stdout)["published"] == 0

    records = _consume(kafka_bootstrap, topic, expected=5)
    assert len(records) == 5
    by_id = {e.memory_id: e for e in events}
    seen_ids = []
    for record in records:
        parsed: MemoryEvent = parse_memory_event(record.value)
        assert record.key == parsed.agent_id.encode()
        assert parsed == by_id[parsed.memory_id]  # the very event that was written to the file
        assert record.partition == _python_partition(topic, record.key), (
            f"{record.key!r} on partition {record.partition}; kafka-python would pick "
            f"{_python_partition(topic, record.key)}"
        )
        seen_ids.append(parsed.memory_id)
    assert sorted(seen_ids) == sorted(by_id)
    # The check means something: the agents' keys spread over more than one partition.
    assert len({r.partition for r in records}) > 1
    # One agent, one partition, in publish order.
    for agent in {e.agent_id for e in events}:
        mine = sorted((r for r in records if r.key == agent.encode()), key=lambda r: r.offset)
        assert len({r.partition for r in mine}) == 1
        ids = [parse_memory_event(r.value).memory_id for r in mine]
        assert ids == [e.memory_id for e in events if e.agent_id == agent]


def test_typescript_events_are_stored_like_python_ones(
    cli: list[str], start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """Same events, one half published from TypeScript and the other from Python, through a
    worker: every one is stored, and recall treats both halves the same."""
    worker = start_worker()
    client = MemoryClient(worker.url)
    prefix = worker.env["ARGOS_TOPIC_PREFIX"]
    events = list(Population(4, seed=21, namespace="ts-e2e").events(40))
    ts_half, py_half = events[::2], events[1::2]
    events_file = tmp_path / "ts.jsonl"
    events_file.write_text("".join(e.model_dump_json() + "\n" for e in ts_half))
    proc = subprocess.run(
        [
            *cli,
            "--brokers",
            worker.bootstrap,
            "--topic",
            f"{prefix}.memory.events",
            "--file",
            str(events_file),
            "--strict",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["published"] == len(ts_half)
    with MemoryPublisher(worker.bootstrap, f"{prefix}.memory.events") as pub:
        pub.publish_many(py_half)
    expected = expected_in_store(worker, client, "ts-e2e", len(events), 0)
    client.wait_stored("ts-e2e", expected, timeout=120)
    time.sleep(1.0)
    assert client.count("ts-e2e") == expected
    for ev in (ts_half[0], py_half[0]):
        hits = client.recall("ts-e2e", ev.agent_id, ev.content, k=1).hits
        assert hits[0].memory_id == ev.memory_id and hits[0].score > 0.99
