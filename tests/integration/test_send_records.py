"""``send_records`` on the real broker: every record arrives, each key in the partition the
producer's own ``send`` gives it (the one Kafka's default partitioner and the publishers give),
explicit partitions kept, order kept within a partition, across more than one batch."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from pipelines.app import partition_of, send_records
from tests.integration.kafka_utils import read_topic

pytestmark = pytest.mark.integration

PARTITIONS = 4


def _topic(bootstrap: str) -> str:
    name = f"send-records-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    finally:
        admin.close()
    return name


async def _send(bootstrap: str, topic: str, records: list) -> int:
    # a small batch size, so the records fill several batches per partition
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_batch_size=4096)
    await producer.start()
    try:
        futures = await send_records(producer, topic, records)
        await asyncio.gather(*futures)
        return len(futures)
    finally:
        await producer.stop()


def test_records_arrive_in_their_keys_partitions_in_order(kafka_bootstrap: str) -> None:
    topic = _topic(kafka_bootstrap)
    keyed = [
        (None, f"agent-{i % 7}".encode(), b"%d:" % i + b"x" * 300, [("n", b"%d" % i)])
        for i in range(400)
    ]
    pinned = [(3, b"state-key", b"pinned-%d" % i, None) for i in range(5)]
    tombstone = [(2, b"gone-key", None, None)]
    records = keyed + pinned + tombstone
    batches = asyncio.run(_send(kafka_bootstrap, topic, records))
    assert batches > PARTITIONS  # ~130 KB in 4 KB batches: many per partition

    got = read_topic(kafka_bootstrap, topic, until=lambda r: len(r) >= len(records))
    assert len(got) == len(records)
    seen: dict[int, list[bytes | None]] = {}
    for r in got:
        seen.setdefault(r.partition, []).append(r.value)  # type: ignore[attr-defined]
        if r.key.startswith(b"agent-"):  # type: ignore[attr-defined]
            assert r.partition == partition_of(r.key, PARTITIONS)  # type: ignore[attr-defined]
            n = r.value.split(b":")[0]  # type: ignore[attr-defined]
            assert dict(r.headers) == {"n": n}  # type: ignore[attr-defined]
    for part, values in seen.items():  # in each partition, the order they were given in
        want = [v for p, k, v, _ in records if (p if p is not None else partition_of(k, 4)) == part]
        assert values == want
    assert seen[3][-5:] == [b"pinned-%d" % i for i in range(5)]
    assert None in seen[2]  # the tombstone, a record with no value
