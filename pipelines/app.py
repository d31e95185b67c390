"""The Faust application: thin stream wrappers around the pure stage cores.

``create_app(settings)`` builds everything and starts nothing. Each stage is one Faust agent with
``concurrency=1`` (faust-streaming #606: higher concurrency can commit past an in-flight message)
that takes batches with ``take_events`` and finishes all its writes (produce acks, Milvus upserts)
before the batch ends, because Faust acks the batch's offsets as soon as the loop body returns --
and also when it raises. So the bodies never raise: bad events are dead-lettered, a store outage
is retried with backoff until it recovers (which pauses the stream: backpressure, not loss).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import faust
from pydantic import ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from pipelines.embed import Embedder, load_embedder
from pipelines.embed_stage import embed_events
from pipelines.errors import ConfigurationError, InvalidEventError, StoreUnavailableError
from pipelines.ingest import RawRecord, dead_letter, ingest_batch
from pipelines.settings import Settings
from pipelines.stats import StageStats
from pipelines.store import MilvusStore, StoredMemory, VectorStore
from schemas import DeadLetter, EmbeddedMemory, MemoryEvent

log = logging.getLogger(__name__)

EVENTS = "memory.events"
VALID = "memory.valid"
EMBEDDED = "memory.embedded"
DEADLETTER = "deadletter"


@dataclass
class Pipeline:
    """What a worker holds: the Faust app, its stage resources and its counters."""

    app: faust.App
    settings: Settings
    embedder: Embedder
    store: VectorStore
    stats: StageStats
    embed_pool: ThreadPoolExecutor
    store_pool: ThreadPoolExecutor


def _record(event: Any) -> RawRecord:
    msg = event.message
    return RawRecord(event.value, msg.key, msg.topic, msg.partition, msg.offset)


async def _all(futures: Iterable[Awaitable[Any]]) -> None:
    """Wait until Kafka acknowledged every message of the batch (acks=all)."""
    pending = list(futures)
    if pending:
        await asyncio.gather(*pending)


def create_app(
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    store: VectorStore | None = None,
) -> Pipeline:
    """Build the worker's Faust app with the ingest, embed and store agents and the web API."""
    if not settings.kafka_bootstrap_servers:
        raise ConfigurationError(
            "no Kafka broker: set KAFKA_BOOTSTRAP_SERVERS or start one with `argos broker start`"
        )
    brokers = [f"kafka://{b.strip()}" for b in settings.kafka_bootstrap_servers.split(",")]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=brokers,
        autodiscover=False,
        datadir=str(settings.data_dir / "faust"),
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        producer_acks=-1,
        producer_linger=0.005,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=max(settings.session_timeout / 10, 0.5),
        broker_rebalance_timeout=settings.session_timeout,
        broker_commit_interval=1.0,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        canonical_url=f"http://{settings.web_host}:{settings.web_port}",
    )
    emb = embedder or load_embedder(settings.embedder, settings.embed_threads, settings.embed_batch)
    vstore = store or MilvusStore(settings.milvus_target, settings.collection, emb.dim)
    pipe = Pipeline(
        app=app,
        settings=settings,
        embedder=emb,
        store=vstore,
        stats=StageStats(),
        embed_pool=ThreadPoolExecutor(1, thread_name_prefix="embed"),
        store_pool=ThreadPoolExecutor(1, thread_name_prefix="store"),
    )
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    parts = settings.topic_partitions
    events_t = app.topic(settings.topic(EVENTS), partitions=parts, **raw)
    valid_t = app.topic(settings.topic(VALID), partitions=parts, **raw)
    embedded_t = app.topic(settings.topic(EMBEDDED), partitions=parts, **raw)
    dlq_t = app.topic(settings.topic(DEADLETTER), partitions=parts, **raw)
    take_max, within = settings.take_max, settings.take_within
    stats = pipe.stats
    loop_now = time.time

    async def send_dead(items: Iterable[tuple[bytes | None, DeadLetter]]) -> list[Any]:
        futs = []
        for key, dl in items:
            futs.append(await dlq_t.send(key=key, value=dl.model_dump_json().encode()))
            stats.dead_lettered += 1
        return futs

    @app.agent(events_t, concurrency=1, name="argos.ingest")
    async def ingest(stream: faust.StreamT[bytes]) -> None:
        async for batch in stream.take_events(take_max, within=within):
            good, bad = ingest_batch([_record(e) for e in batch], loop_now())
            futs = [
                await valid_t.send(key=ev.agent_id.encode(), value=ev.to_json_bytes())
                for ev in good
            ]
            futs += await send_dead((rec.key, dl) for rec, dl in bad)
            await _all(futs)
            stats.ingested += len(batch)
            stats.valid += len(good)

    @app.agent(valid_t, concurrency=1, name="argos.embed")
    async def embed(stream: faust.StreamT[bytes]) -> None:
        loop = asyncio.get_running_loop()
        async for batch in stream.take_events(take_max, within=within):
            now = loop_now()
            events: list[MemoryEvent] = []
            broken: list[tuple[bytes | None, DeadLetter]] = []
            for e in batch:
                try:
                    events.append(MemoryEvent.model_validate_json(e.value))
                except ValidationError as exc:
                    err = InvalidEventError(f"not a valid memory event: {exc.errors()[0]['msg']}")
                    broken.append((e.message.key, dead_letter(_record(e), err, "embed", now)))
            embedded, refused = await loop.run_in_executor(
                pipe.embed_pool, embed_events, events, pipe.embedder, now
            )
            for ev, err in refused:
                rec = RawRecord(ev.to_json_bytes(), ev.agent_id.encode(), valid_t.get_topic_name())
                broken.append((rec.key, dead_letter(rec, err, "embed", now)))
            futs = [
                await embedded_t.send(
                    key=m.event.agent_id.encode(), value=m.model_dump_json().encode()
                )
                for m in embedded
            ]
            futs += await send_dead(broken)
            await _all(futs)
            stats.embedded += len(embedded)

    @app.agent(embedded_t, concurrency=1, name="argos.store")
    async def store_stage(stream: faust.StreamT[bytes]) -> None:
        loop = asyncio.get_running_loop()
        async for batch in stream.take_events(take_max, within=within):
            rows: list[StoredMemory] = []
            broken: list[tuple[bytes | None, DeadLetter]] = []
            for e in batch:
                try:
                    rows.append(StoredMemory.from_embedded(EmbeddedMemory.model_validate_json(e.value)))
                except (ValidationError, ValueError) as exc:
                    err = InvalidEventError(f"not a valid embedded memory: {exc}")
                    broken.append((e.message.key, dead_letter(_record(e), err, "store", loop_now())))
            t0 = time.perf_counter()
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(StoreUnavailableError),
                wait=wait_exponential(multiplier=0.2, max=10),
                before_sleep=lambda rs: _note_retry(stats, rs.outcome),
                reraise=True,
            ):
                with attempt:
                    await loop.run_in_executor(pipe.store_pool, pipe.store.upsert, rows)
            stats.last_store_latency_s = time.perf_counter() - t0
            await _all(await send_dead(broken))
            stats.stored += len(rows)
            stats.batches += 1

    from pipelines.web import register_routes

    register_routes(pipe)
    return pipe


def _note_retry(stats: StageStats, outcome: Any) -> None:
    stats.store_retries += 1
    log.warning("store unavailable, retrying: %s", outcome.exception() if outcome else "?")
