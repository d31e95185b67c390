"""The Faust application: thin stream wrappers around the pure stage cores.

``create_app(settings)`` builds everything and starts nothing. Each stage is one Faust agent with
``concurrency=1`` (faust-streaming #606: higher concurrency can commit past an in-flight message)
that takes batches with ``take_events`` and finishes all its writes (produce acks, Milvus upserts)
before the batch ends, because Faust acks the batch's offsets as soon as the loop body returns --
and also when it raises. So the bodies never raise: bad events are dead-lettered, a store outage
is retried with backoff until it recovers (which pauses the stream: backpressure, not loss), and
anything unexpected ends the process before the batch is acked (``exit_unacked``).

Stages: ``argos.ingest_embed`` (events -> embedded + dead letters), then two consumers of the
embedded topic: ``argos.memory`` (with the access topic: each agent's lifecycle, micro-clusters,
near-duplicates and consolidation in one table -> ``argos.memory.lifecycle``, ``argos.clusters``,
derived semantic memories, deletes and archive moves) and ``argos.store`` (Milvus upserts);
``argos.population`` (namespace-wide clusters from ``argos.clusters``); and ``argos.analytics``
(River models over memories, recalls, lifecycle and cluster events -> ``argos.analytics.*``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Container, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat
from typing import Any, NoReturn

import faust
from cachetools import LRUCache
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from pipelines.access import AccessPolicy
from pipelines.agent_log import AgentIndex, agent_of
from pipelines.analytics import Analytics, AnalyticsParams, analytics_batch
from pipelines.audit import denied_record, emit, from_value, to_kv
from pipelines.crypto import Keyring, is_encrypted
from pipelines.embed import Embedder, load_embedder
from pipelines.errors import (
    ConfigurationError,
    DecryptionError,
    RejectedError,
    StoreUnavailableError,
)
from pipelines.ingest import RawRecord, header
from pipelines.live_feed import LiveFeed
from pipelines.memory_state import MemoryParams
from pipelines.partition_load import PartitionLoad
from pipelines.population import PopulationParams, population_batch
from pipelines.publisher import TOKEN_HEADER
from pipelines.rate_limit import RateLimits
from pipelines.recall import RecallService
from pipelines.recall_routes import RecallRoutes
from pipelines.runtime import stage_pool
from pipelines.settings import Settings
from pipelines.stage_batches import (
    BatchOut,
    MemoryOut,
    batch_trace,
    drop_forgotten,
    ingest_and_embed,
    memory_batch,
    parse_embedded,
    split_at_gaps,
)
from pipelines.stall_watch import StallWatch
from pipelines.stats import (
    GcPauses,
    LatencyWindow,
    OperationLatency,
    StageStats,
    TimedStore,
)
from pipelines.store import MilvusStore, StoredMemory, VectorStore, rows_from_bytes
from pipelines.telemetry import Telemetry, setup_telemetry
from pipelines.topics_admin import STATE_MAX_BYTES, TABLES
from schemas.analytics import MetricEvent
from schemas.audit import AuditRecord

log = logging.getLogger(__name__)

EVENTS = "memory.events"
EMBEDDED = "memory.embedded"
CLUSTERS = "clusters"
ACCESS = "memory.access"
LIFECYCLE = "memory.lifecycle"
DEADLETTER = "deadletter"
PREDICTIONS = "analytics.predictions"
METRICS = "analytics.metrics"
AUDIT = "audit"
LATENCY_METRICS_EVERY_S = 5.0  # publish -> stored quantiles onto argos.analytics.metrics


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
    memory_pool: ThreadPoolExecutor  # memory-stage batch functions
    analytics_pool: ThreadPoolExecutor
    archive: VectorStore
    memory_params: MemoryParams
    population_params: PopulationParams
    recall: RecallService
    analytics: Any = None
    memory_table: Any = None
    agents: AgentIndex | None = None  # where each agent's snapshot and deltas are in it
    population_table: Any = None
    hot_table: Any = None
    analytics_table: Any = None
    partition_load: PartitionLoad | None = None  # hot-partition detection (events topic)
    gc_pauses: GcPauses | None = None  # the worker process's garbage-collector time
    feed: LiveFeed = field(default_factory=LiveFeed)  # what the stages just did (dashboard)
    dashboard: Any = None  # set by pipelines.dashboard.register_dashboard
    store_down_since: float | None = None  # wall time the vector store stopped answering
    store_error: str | None = None  # why its last call failed, while it is down (/stats)
    # called (from another thread) once a restarted Milvus Lite child answers: the store
    # stage writes its last rows again (set by create_app)
    milvus_restarted: Callable[[], None] = lambda: None
    # rolling quantiles: publish -> stored (Kafka record time of the event to its store batch)
    # and recall (HTTP request in to response out)
    ns_latency: dict[str, LatencyWindow] = field(default_factory=dict)
    latency: dict[str, LatencyWindow] = field(
        default_factory=lambda: {"publish_to_stored": LatencyWindow(), "recall": LatencyWindow()}
    )
    ops: OperationLatency = field(default_factory=OperationLatency)  # latency by operation
    access_topic: str = ""
    audit_topic: str = ""
    keyring: Keyring | None = None
    telemetry: Telemetry | None = None
    policy: AccessPolicy | None = None
    limits: RateLimits | None = None
    recall_mirror: Any = None  # pipelines.recall_mirror.RecallMirror (ARGOS_RECALL_PORT)
    # other workers' recall processes, where their agents' recalls are routed
    recall_routes: RecallRoutes = field(default_factory=RecallRoutes)
    # (stage, topic, partition) -> the next offset that stage will read (for the lag gauge)
    positions: dict[tuple[str, str, int], int] | None = None
    # stage -> (topic, partition) -> the offset it expects next from Kafka (``take``)
    next_offsets: dict[str, dict[tuple[str, int], int]] = field(default_factory=dict)

    def system(self) -> dict[str, float]:
        """This worker process's resources and caches (``/stats`` ``system``, OTel gauges)."""
        import resource

        rs = self.recall.stats()
        l1 = rs["l1"]["results"]
        looked = l1["hits"] + l1["misses"]
        rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            with open("/proc/self/statm") as f:
                rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            rss = rss_kb * 1024
        return {
            "rss_bytes": float(rss),
            "max_rss_bytes": float(rss_kb * 1024),
            "cpu_seconds": time.process_time(),
            "threads": float(threading.active_count()),
            "l1_result_hit_rate": l1["hits"] / looked if looked else 0.0,
            "l1_bytes": float(self.recall.cache.nbytes()),
            "l2_rows": float(rs["l2_rows"]),
            "l2_bytes": float(rs["l2_bytes"]),
            "uptime_s": time.time() - self.stats.started_ts,
            **self._partition_gauges(),
            **(self.gc_pauses.summary() if self.gc_pauses is not None else {}),
        }

    def _partition_gauges(self) -> dict[str, float]:
        if self.partition_load is None:
            return {}
        r = self.partition_load.report()
        return {
            "partition_skew": float(r["skew"]),
            "hot_partitions": float(len(r["hot_partitions"])),
            "suggested_partitions": float(r["suggested_partitions"]),
            "events_rate": float(r["total_rate"]),
        }

    def lag(self) -> dict[tuple[str, int], int]:
        """Records not yet processed per source partition (by the slowest stage)."""
        from faust.types import TP

        low: dict[tuple[str, int], int] = {}
        for (_, topic, part), pos in list((self.positions or {}).items()):
            low[(topic, part)] = min(low.get((topic, part), pos), pos)
        out: dict[tuple[str, int], int] = {}
        for (topic, part), pos in low.items():
            try:
                high = self.app.consumer.highwater(TP(topic, part))
            except Exception:  # noqa: S112 - no metadata yet (starting, rebalancing)
                continue
            if high is not None:
                out[(topic, part)] = max(0, int(high) - pos)
        return out

    def note_store(self, down_since: float | None) -> None:
        """The vector store went away (the wall time it was first noticed) or answers again
        (None). The recall process hears of it at once, so its answers are marked
        ``degraded`` from the moment the worker's own are."""
        if (self.store_down_since is None) == (down_since is None):
            return
        self.store_down_since = down_since
        if down_since is None:
            self.store_error = None
        if self.recall_mirror is not None:
            self.recall_mirror.push_state()

    def owned_partitions(self) -> frozenset[int]:
        """The partitions whose agents this worker owns and serves now (none while it
        rebalances or recovers its tables)."""
        app, table = self.app, self.memory_table
        recovery = getattr(app.tables, "recovery", None)
        if table is None or app.rebalancing or (recovery is not None and recovery.in_recovery):
            return frozenset()
        name = table.changelog_topic.get_topic_name()
        return frozenset(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == name)

    def partition_owners(self) -> dict[int, str]:
        """Partition -> the URL of the worker that owns its agents now (every worker's, from
        the group's assignment; empty while this worker rebalances)."""
        table = self.memory_table
        if table is None or self.app.rebalancing:
            return {}
        name = table.changelog_topic.get_topic_name()
        return {
            p: str(url).rstrip("/")
            for url, topics in self.app.assignor.table_metadata(name).items()
            for p in topics.get(name, ())
        }

    def hot_rows(self, namespace: str, agent_id: str) -> list[StoredMemory]:
        """An agent's rows in the L2 table (``hot_values``, decoded)."""
        return rows_from_bytes(self.hot_values(namespace, agent_id))

    def hot_values(
        self, namespace: str, agent_id: str, besides: Container[str] = ()
    ) -> list[bytes]:
        """An agent's rows in the L2 table as stored (``StoredMemory.to_bytes``; one scan of
        the keys this worker holds), but for the memory ids in ``besides`` (rows never
        change: a caller that holds some need not have them read and decrypted again). Not
        decoded: the recall process decodes a warm answer's rows itself, off the worker."""
        if self.hot_table is None:
            return []
        prefix = hot_key(namespace, agent_id, "")
        n = len(prefix)
        values = []
        for key in [k for k in list(self.hot_table.data.keys()) if k.startswith(prefix)]:
            if besides and key[n:].decode() in besides:
                continue
            raw = self.state(self.hot_table, key)
            if raw is not None:
                values.append(raw)
        return values

    def latency_of(self, namespace: str) -> LatencyWindow:
        """The publish -> stored window of one namespace (kept for the metrics topic)."""
        return self.ns_latency.setdefault(namespace, LatencyWindow())

    def latency_metrics(self) -> list[tuple[bytes, bytes]]:
        """Each namespace's publish -> stored quantiles as ``argos.analytics.metrics``
        records (kind ``quantiles``, wall-clock milliseconds over the last 2,000 events)."""
        out = []
        for ns, w in sorted(self.ns_latency.items()):
            q = w.summary()
            values = {k: float(v) for k, v in q.items() if k != "n" and v is not None}
            if values:
                m = MetricEvent(
                    namespace=ns,
                    name="latency.publish_to_stored_ms",
                    kind="quantiles",
                    values=values,
                    n=int(q["n"] or 0),
                    event_ts=time.time(),
                )
                out.append((ns.encode(), m.model_dump_json().encode()))
        return out

    def hot_rows_by_id(
        self, namespace: str, agent_id: str, memory_ids: list[str]
    ) -> list[StoredMemory]:
        """Some of an agent's rows by memory id (those it holds): read through the L1 records
        cache (rows never change; a memory that leaves the live states is dropped from it) to
        the L2 table."""
        cache = self.recall.cache
        rows = []
        for mid in memory_ids:
            row = cache.get_record(namespace, mid)
            if row is None:
                raw = self.state(self.hot_table, hot_key(namespace, agent_id, mid))
                if raw is None:
                    continue
                row = StoredMemory.from_bytes(raw)
                cache.put_record(row)
            rows.append(row)
        return rows

    def take(
        self, stage: str, events: Sequence[Any]
    ) -> tuple[list[RawRecord], list[Any], dict[tuple[str, int], int]]:
        """A batch of ``events`` as the records ``stage`` may handle now: each partition's
        records up to its first gap (``split_at_gaps``). The events left out get one more
        reference, so they are never acknowledged (their offsets are not committed); they
        come again after ``read_again``. Returns the records, the events kept (in order) and
        the partitions to read again."""
        from faust.types import TP

        committed = self.app.consumer._committed_offset

        def committed_of(topic: str, partition: int) -> int | None:
            return committed.get(TP(topic, partition))

        records = [_record(e) for e in events]
        nxt = self.next_offsets.setdefault(stage, {})
        keep, cut, again = split_at_gaps(records, nxt, committed_of)
        if not cut:
            return keep, list(events), again
        left = set(cut)
        for i in cut:
            events[i].message.incref()
        return keep, [e for i, e in enumerate(events) if i not in left], again

    async def read_again(self, stage: str, again: dict[tuple[str, int], int]) -> None:
        """Seek each partition back to the offset ``stage`` expects next (records were skipped
        or dropped before it); every stage reading the topic gets them again (idempotently)."""
        from faust.types import TP

        for (topic, partition), offset in sorted(again.items()):
            log.warning(
                "%s: records of %s/%d were skipped from offset %d: reading again from there",
                stage,
                topic,
                partition,
                offset,
            )
            self.stats.gaps_read_again += 1
            try:
                await self.app.consumer.seek(TP(topic, partition), offset)
            except Exception as exc:  # noqa: BLE001 - e.g. revoked meanwhile: its next owner
                # reads it from the committed offset, which the held records keep behind them
                log.warning("%s: could not seek %s/%d: %r", stage, topic, partition, exc)

    def forget_partitions(self, revoked: Iterable[Any]) -> None:
        """Partitions taken away: what the stages expected of them no longer holds (another
        worker may read them on; when they come back, the committed offset is the baseline)."""
        gone = {(tp.topic, tp.partition) for tp in revoked}
        for nxt in self.next_offsets.values():
            for tp in gone & nxt.keys():
                del nxt[tp]

    def note_positions(self, stage: str, records: Iterable[RawRecord]) -> None:
        if self.positions is None:
            self.positions = {}
        for r in records:
            if r.partition is not None and r.offset is not None:
                k = (stage, r.topic, r.partition)
                self.positions[k] = max(self.positions.get(k, 0), r.offset + 1)

    async def audit(self, rec: AuditRecord) -> None:
        """An audit record of a request: an OTel log now, and on ``argos.audit`` (queued, not
        awaited: a recall must not wait for Kafka's ack)."""
        if self.telemetry is not None:
            emit(self.telemetry.logger, rec)
        key, value = to_kv(rec)
        await self.app.producer.send(self.audit_topic, key, value, None, None, None)

    async def deny(
        self,
        exc: RejectedError,
        actor: str,
        namespace: str,
        agent_id: str | None,
        trace_id: str | None = None,
    ) -> None:
        """Count and audit a request refused by policy (401/403/429)."""
        self.stats.denied += 1
        await self.audit(
            denied_record(
                actor,
                namespace,
                agent_id,
                exc.http_status,
                exc.reason,
                trace_id,
                time.time(),
                uuid.uuid4().hex,
            )
        )

    def agent_state(self, agent: bytes) -> dict[str, Any] | None:
        """An agent's memory-stage state (snapshot and deltas merged), or None."""
        saved = self.agents.saved(agent) if self.agents is not None else None
        return saved.state() if saved is not None else None

    def state(self, table: Any, key: bytes) -> bytes | None:
        """A table value in plaintext. Values recovered from a changelog are encrypted (see
        ``_state_records``); each is decrypted once and kept so in the worker's memory."""
        if table is None:
            return None
        raw = table.get(key)
        if raw is not None and is_encrypted(raw):
            if self.keyring is None:
                raise DecryptionError(
                    f"{table.name} holds encrypted state and no keys are configured "
                    "(set ARGOS_ENCRYPTION_KEYS or ARGOS_ENCRYPTION_KEYS_FILE)"
                )
            raw = self.keyring.decrypt_bytes(raw, aad=_state_aad(table, key))
            table.data[key] = raw
        return raw


def _record(event: Any) -> RawRecord:
    msg = event.message
    headers = msg.headers
    if isinstance(headers, dict):
        headers = list(headers.items())
    return RawRecord(
        event.value,
        msg.key,
        msg.topic,
        msg.partition,
        msg.offset,
        list(headers or []) or None,
        msg.timestamp,
    )


PUBLISHED_HEADER = "argos-published-ms"


def published_header(rec: RawRecord) -> list[tuple[str, bytes]]:
    """The event's publish time (its Kafka record time), carried to the embedded record so the
    store stage can measure publish -> stored."""
    if rec.timestamp is None:
        return []
    return [(PUBLISHED_HEADER, str(int(rec.timestamp * 1000)).encode())]


def hot_key(namespace: str, agent_id: str, memory_id: str) -> bytes:
    """Key of one memory in the L2 table (namespace and agent first, so an agent's rows share
    a prefix; NUL cannot occur in identifiers)."""
    return f"{namespace}\x00{agent_id}\x00{memory_id}".encode()


def _state_aad(table: Any, key: bytes) -> bytes:
    return table.name.encode() + b"|" + key


Record = tuple[int | None, bytes | None, bytes | None, list[tuple[str, bytes]] | None]


async def send_records(producer: Any, topic: str, records: Iterable[Record]) -> list[Any]:
    """Hand ``(partition or None, key, value, headers or None)`` records to aiokafka's
    ``producer`` as record batches, one open batch per partition (``create_batch`` /
    ``send_batch``); a None partition is the one ``send`` would give the key (the producer's
    own partitioner). Order within a partition is kept. Returns the delivery futures, one per
    batch (await them before acking what the records came from).

    A future per batch instead of a ``send`` per record (or Faust's ``send_soon`` and its
    buffer, for changelogs): about half the producer's CPU per record, at ~7 records out per
    event (``bench.throughput --checkout``)."""
    batches: dict[int, Any] = {}
    futures: list[Any] = []
    route = None
    for part, key, value, headers in records:
        if part is None:
            if route is None:  # the topic's partitions, once per call (send looks them up)
                await producer.client._wait_on_metadata(topic)
                meta = producer._metadata
                every = sorted(meta.partitions_for_topic(topic))
                up = list(meta.available_partitions_for_topic(topic))
                route = partial(producer._partitioner, all_partitions=every, available=up)
            part = route(key)
        batch = batches.get(part)
        if batch is None:
            batch = batches[part] = producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            futures.append(await producer.send_batch(batch, topic, partition=part))
            batch = batches[part] = producer.create_batch()  # full: a new one, which takes
            batch.append(key=key, value=value, timestamp=None, headers=headers)  # any record
    for part, batch in batches.items():
        futures.append(await producer.send_batch(batch, topic, partition=part))
    return futures


def _state_records(
    table: Any,
    states: dict[bytes, bytes | None],
    keyring: Keyring | None,
    partition: int | None = None,
) -> list[Record]:
    """Write table keys; returns their changelog records (send them with ``send_records``).
    Writing ``table.data`` does not reach the changelog, so a crash could keep effects already
    applied (store deletes, sent records) while losing the state that made them: await the
    deliveries before any effect. With a keyring the changelog (the state at rest) is
    encrypted; the worker's memory keeps the plaintext. ``partition`` overrides the key's: the
    L2 table's keys (one per memory) live in their agent's partition, so they are recovered by
    the worker that owns the agent. A None value deletes the key (a tombstone)."""
    out: list[Record] = []
    for key, value in states.items():
        part = table.partition_for_key(key) if partition is None else partition
        if value is None:
            out.append((part, key, None, None))
            table.data.pop(key, None)
            continue
        sealed = keyring.encrypt_bytes(value, _state_aad(table, key)) if keyring else value
        out.append((part, key, sealed, None))
        table.data[key] = value
    return out


def _agent_partition_records(
    table: Any,
    writes: Iterable[tuple[bytes, bytes, bytes | None]],
    keyring: Keyring | None,
    partitions: int,
) -> list[Record]:
    """``_state_records`` for keys that live in their agent's partition, not their own (the
    L2 rows and the memory table's deltas): ``writes`` are (agent key, table key, value or
    None)."""
    by_part: dict[int, dict[bytes, bytes | None]] = {}
    for agent, key, value in writes:
        by_part.setdefault(partition_of(agent, partitions), {})[key] = value
    out: list[Record] = []
    for part, batch in by_part.items():
        out += _state_records(table, batch, keyring, part)
    return out


def stall_report(probe: dict[str, Any]) -> str:
    """What every thread and asyncio task is doing, and the ingest stage's pipeline (chunks in
    flight, whether its finisher still runs): what a stalled partition is waiting on."""
    import sys
    import threading
    import traceback

    lines = []
    inflight, finisher = probe.get("inflight"), probe.get("finisher")
    if inflight is not None:
        lines.append(f"ingest chunks queued: {inflight.qsize()}")
    if finisher is not None:
        lines.append(f"ingest finisher done: {finisher.done()}")
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        lines.append(f"--- thread {names.get(ident, ident)}")
        lines += [x.rstrip() for x in traceback.format_stack(frame)[-8:]]

    def first(obj: Any, *names: str) -> Any:
        """The first of ``obj``'s attributes ``names`` that is set (coroutines, generators and
        async generators name their frame and what they await differently)."""
        return next((v for n in names if (v := getattr(obj, n, None)) is not None), None)

    for task in asyncio.all_tasks():
        where, coro = [], task.get_coro()
        while coro is not None and len(where) < 30:  # the await chain, outermost first
            frame = first(coro, "cr_frame", "gi_frame", "ag_frame")
            if frame is not None:
                where.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
            coro = first(coro, "cr_await", "gi_yieldfrom", "ag_await")
        lines.append(f"--- task {task.get_name()}: {' > '.join(where)}")
    return "\n".join(lines)


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
    archive: VectorStore | None = None,
) -> Pipeline:
    """Build the worker: Faust app, the four stage agents (ingest+embed, cluster, lifecycle,
    store), their tables and the web API. Starts nothing."""
    if not settings.kafka_bootstrap_servers:
        raise ConfigurationError(
            "no Kafka broker: set KAFKA_BOOTSTRAP_SERVERS or start one with `argos broker start`"
        )
    brokers = [f"kafka://{b.strip()}" for b in settings.kafka_bootstrap_servers.split(",")]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=brokers,
        # ARGOS_KAFKA_SECURITY_PROTOCOL & co.: SASL and/or TLS, None for PLAINTEXT
        broker_credentials=settings.faust_broker_credentials(),
        autodiscover=False,
        datadir=str(settings.data_dir / "faust"),
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        # Faust's assignor balances actives only without standby replicas: with them it keeps
        # every worker up to ceil(partitions / workers), so a joining worker may get nothing
        table_standby_replicas=settings.standby_replicas,
        producer_acks=-1,
        producer_linger=0.005,
        producer_max_batch_size=1024 * 1024,  # embedded records are ~2 KB: few large requests
        # an agent's saved memory state grows with its memories and clusters; its changelog
        # topic accepts up to STATE_MAX_BYTES (see topics_admin)
        producer_max_request_size=STATE_MAX_BYTES,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=max(settings.session_timeout / 10, 0.5),
        broker_rebalance_timeout=settings.session_timeout,
        broker_commit_interval=1.0,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_bind or settings.web_host,
        canonical_url=f"http://{settings.web_host}:{settings.web_port}",
    )
    emb = embedder or load_embedder(settings.embedder, settings.embed_threads, settings.embed_batch)
    keyring = Keyring.from_settings(settings)
    tel = setup_telemetry(settings)
    ops = OperationLatency(tel.record_operation_latency)
    vstore = TimedStore(
        store or MilvusStore(settings.milvus_target, settings.collection, emb.dim, keyring),
        ops,
        "milvus",
    )
    archive_store = TimedStore(
        archive
        or MilvusStore(settings.milvus_target, settings.archive_collection, emb.dim, keyring),
        ops,
        "milvus.archive",
    )
    policy = AccessPolicy.from_settings(settings)
    limits = RateLimits.from_settings(settings)
    pipe = Pipeline(
        ops=ops,
        telemetry=tel,
        policy=policy,
        limits=limits,
        app=app,
        settings=settings,
        embedder=emb,
        store=vstore,
        stats=StageStats(),
        embed_pool=stage_pool("embed", settings.stage_thread_nice),
        store_pool=stage_pool("store", settings.stage_thread_nice),
        memory_pool=stage_pool("memory", settings.stage_thread_nice),
        analytics_pool=stage_pool("analytics", settings.stage_thread_nice),
        archive=archive_store,
        keyring=keyring,
        memory_params=settings.memory_params(),
        recall=RecallService.from_settings(
            settings,
            emb,
            vstore,
            archive_store,
            state_of=lambda key: pipe.agent_state(key),
            rows_of=lambda ns, agent: pipe.hot_rows(ns, agent),
        ),
        population_params=PopulationParams(
            join_threshold=settings.population_join,
            merge_threshold=settings.population_merge,
            cell=settings.population_cell,
        ),
    )
    raw = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    parts = settings.topic_partitions
    events_t = app.topic(settings.source_topic(), partitions=parts, **raw)
    embedded_t = app.topic(settings.topic(EMBEDDED), partitions=parts, **raw)
    embedded_name, dlq_name = embedded_t.get_topic_name(), settings.topic(DEADLETTER)
    clusters_name = settings.topic(CLUSTERS)

    def state_table(name: str) -> Any:
        """Per-agent state, recovered from its changelog after a restart. Written from inside
        take_events, so use_partitioner=True (else Faust raises, restarts the agent with the
        offsets already committed, and events are lost). Keyed by agent_id like the source
        topics, so the changelog partition matches the source partition."""
        return app.Table(
            f"{settings.topic_prefix}-{name}",
            key_type=bytes,
            value_type=bytes,
            partitions=parts,
            use_partitioner=True,
            extra_topic_configs={"max.message.bytes": str(STATE_MAX_BYTES)},
        )

    memory_table = pipe.memory_table = state_table(TABLES[0])
    # each agent's state is a snapshot and deltas (pipelines.agent_log); the index of its keys
    # follows the stage's writes and is rebuilt after a changelog recovery filled the table
    agents = pipe.agents = AgentIndex(
        lambda: memory_table.keys(), lambda key: pipe.state(memory_table, key)
    )
    recover_batch = memory_table.apply_changelog_batch

    def apply_changelog_batch(batch: Any) -> None:
        recover_batch(batch)
        agents.invalidate()

    memory_table.apply_changelog_batch = apply_changelog_batch
    population_table = pipe.population_table = state_table(TABLES[1])
    # L2 of recall: every stored row (vector included), one key per memory in its agent's
    # partition, so the owner of an agent recovers its hot rows from the changelog (no Milvus
    # read at warm-up, and the rows move with the partition on a rebalance)
    hot_table = pipe.hot_table = state_table(TABLES[2])

    async def save_hot(items: dict[tuple[str, str, str], bytes | None]) -> None:
        """Write (row bytes) or delete (None) L2 rows, keyed (namespace, agent, memory id)."""
        writes = (
            (agent.encode(), hot_key(ns, agent, mid), value)
            for (ns, agent, mid), value in items.items()
        )
        with pipe.ops.timed("l2.write"):  # until the changelog has every row
            await save_states(
                hot_table, _agent_partition_records(hot_table, writes, pipe.keyring, parts)
            )

    async def save_agents(writes: dict[bytes, bytes | None]) -> None:
        """The memory stage's table writes (each agent's delta or snapshot and tombstones),
        each in its agent's partition, durably; then the index knows them."""
        records = _agent_partition_records(
            memory_table, ((agent_of(k), k, v) for k, v in writes.items()), pipe.keyring, parts
        )
        agents.note(writes)
        with pipe.ops.timed("state.write"):  # until the changelog has every value
            await save_states(memory_table, records)

    access_name, lifecycle_name = settings.topic(ACCESS), settings.topic(LIFECYCLE)
    pipe.access_topic = access_name
    audit_name = pipe.audit_topic = settings.topic(AUDIT)
    tel.observe_lag(pipe.lag)
    tel.observe_system(pipe.system)
    # New memories and recalls, in one stream, so each agent's memory is one state.
    memory_src = app.topic(embedded_name, access_name, partitions=parts, **raw)
    clusters_t = app.topic(clusters_name, partitions=parts, **raw)
    take_max, within, chunk = settings.take_max, settings.take_within, settings.embed_chunk
    # the publish -> recallable path (ingest+embed, store) batches on a shorter clock
    path_within = settings.recallable_take_within
    stats = pipe.stats

    def store_retrying() -> AsyncRetrying:
        """Retry a store call while Milvus is unavailable, with backoff and no limit: the
        stream waits (backpressure) rather than acking what was not written."""
        return AsyncRetrying(
            retry=retry_if_exception_type(StoreUnavailableError),
            wait=wait_exponential(multiplier=0.2, max=10),
            before_sleep=lambda rs: _note_retry(pipe, rs.outcome),
            reraise=True,
        )

    def producer() -> Any:
        return app.producer._ensure_producer()  # aiokafka's (Faust's wraps its send)

    async def produce(
        topic: str,
        items: Iterable[tuple[bytes | None, bytes]],
        headers: list[list[tuple[str, bytes]]] | None = None,
    ) -> list[Any]:
        """Hand records to the producer (``headers[i]`` with record i: the trace context),
        batched per partition (``send_records``); returns the delivery futures (await before
        acking)."""
        hs = headers if headers is not None else repeat(None)
        return await send_records(
            producer(),
            topic,
            ((None, k, v, h or None) for (k, v), h in zip(items, hs, strict=headers is not None)),
        )

    async def save_states(table: Any, records: list[Record]) -> None:
        """Table changelog records (``_state_records``), delivered."""
        await _all(await send_records(producer(), table.changelog_topic.get_topic_name(), records))

    def admit(rec: RawRecord, ev: Any) -> None:
        """Ingest's policy: the event's token may publish to its namespace (401/403), and the
        agent and namespace are under their rate limits (429)."""
        principal = policy.check_publish_token(header(rec, TOKEN_HEADER), ev.namespace, ev.agent_id)
        try:
            limits.check_ingest(ev.namespace, ev.agent_id)
        except RejectedError as exc:
            exc.actor = principal.subject
            raise

    def timed(records: list[RawRecord], now: float) -> tuple[BatchOut, list[Any], list[Any]]:
        """One chunk through ingest + embed, a span per record (child of its publish span);
        returns the batch, the trace headers of each forward record and the denials' audit."""
        t0 = time.perf_counter()
        try:
            with tel.batch_spans("argos.ingest_embed", records) as spans:
                out = ingest_and_embed(records, pipe.embedder, now, admit)
                heads = [spans.headers(i) + published_header(records[i]) for i in out.forward_src]
                audits = []
                for i, actor, ns, agent, status, why in out.denied:
                    spans.fail(i, why)
                    r = records[i]
                    rid = f"{r.topic}/{r.partition}/{r.offset}"
                    a = denied_record(actor, ns, agent, status, why, spans.trace_id(i), now, rid)
                    emit(tel.logger, a)
                    audits.append(to_kv(a))
            return out, heads, audits
        finally:
            dt = time.perf_counter() - t0
            stats.embed_busy_s += dt
            tel.record_stage_latency("ingest_embed", dt)

    probe: dict[str, Any] = {}  # the ingest stage's pipeline, for the stall watchdog's report

    @app.on_partitions_revoked.connect
    async def forget_revoked(sender: Any, revoked: Any, **_: Any) -> None:
        pipe.forget_partitions(revoked)

    @app.agent(events_t, concurrency=1, name="argos.ingest_embed")
    async def ingest_embed(stream: faust.StreamT[bytes]) -> None:
        """Ingest and embed in one agent (a Kafka hop between them would cost more loop time
        than validation itself), pipelined: while the model embeds one chunk, the stream
        already gathers the next, so the model never waits for Faust to refill a batch.

        Each chunk's acks are deferred (one extra reference on every message, released only
        after the chunk's records are acknowledged by Kafka), so ``take_events`` returning does
        not make an offset committable: a crash re-delivers every chunk still in flight."""
        loop = asyncio.get_running_loop()
        inflight: asyncio.Queue[tuple[list[Any], list[RawRecord], asyncio.Future[Any]]] = (
            asyncio.Queue(maxsize=2)
        )

        async def finish_in_order() -> None:
            while True:
                events, records, fut = await inflight.get()
                try:
                    out, heads, audits = await fut
                    futs = await produce(embedded_name, out.forward, heads)
                    futs += await produce(dlq_name, out.dead)
                    futs += await produce(audit_name, audits)
                    await _all(futs)
                except Exception as exc:
                    exit_unacked("ingest_embed", exc)
                for e in events:
                    e.ack()  # releases the extra reference: now safe to commit
                stats.valid += out.valid
                stats.embedded += len(out.forward)
                stats.dead_lettered += len(out.dead)
                stats.denied += len(out.denied)
                stats.ingested += len(events)
                tel.count_events("ingest_embed", "ok", len(out.forward))
                tel.count_deadletters("ingest", "refused", len(out.dead))
                pipe.note_positions("ingest_embed", records)
                if pipe.partition_load is not None:
                    keys: dict[int, list[bytes]] = {}
                    for r in records:
                        if r.partition is not None and r.key is not None:
                            keys.setdefault(r.partition, []).append(r.key)
                    for part, part_keys in keys.items():
                        pipe.partition_load.note_keys(part, part_keys)

        finisher = asyncio.ensure_future(finish_in_order())
        probe.update(inflight=inflight, finisher=finisher)
        try:
            async for batch in stream.take_events(chunk, within=path_within):
                if finisher.done():
                    finisher.result()  # re-raise: crash before anything else is acked
                records, events, again = pipe.take("ingest_embed", batch)
                if again:
                    await pipe.read_again("ingest_embed", again)
                if not events:
                    continue
                for e in events:
                    e.message.incref()
                if not stats.first_event_ts:
                    stats.first_event_ts = time.time()
                fut = loop.run_in_executor(pipe.embed_pool, timed, records, time.time())
                await inflight.put((events, records, fut))
        finally:
            finisher.cancel()

    agent_cache: LRUCache[bytes, Any] = LRUCache(settings.memory_cache_agents)
    # namespace -> source partition -> [latest event time, wall time it last delivered]
    marks: dict[str, dict[int, list[float]]] = {}
    swept: dict[str, float] = {}  # namespace -> watermark of the last sweep

    # (stage, source topic) pairs whose read positions the stages note: what reaches the
    # memory stage (see ``pending``), and with the store stage all the watchdog watches
    upstream = (
        ("memory", embedded_name),
        ("memory", access_name),
        ("ingest_embed", settings.source_topic()),
    )

    def highwater(topic: str, p: int, unknown: float | None = None) -> float | None:
        """The consumer's high-water mark of ``topic``/``p`` (None when it has none yet);
        ``unknown`` when the consumer cannot say (not assigned, no metadata)."""
        from faust.types import TP

        try:
            return app.consumer.highwater(TP(topic, p))
        except Exception:  # noqa: BLE001 - not assigned or no metadata yet
            return unknown

    def pending(p: int) -> bool:
        """Whether partition ``p`` has records still to reach the memory stage, by the
        consumer's high-water marks (unknown counts as pending): embedded or access records it
        has not read, or published events the ingest stage has not embedded yet (the same
        agents, keyed alike; after a restart the ingest stage has a backlog to re-embed, and
        the memory stage, caught up with what is embedded so far, must not take the quiet for
        the end of the partition)."""
        for stage, topic in upstream:
            high = highwater(topic, p, unknown=math.inf)  # unknown: assume records are coming
            if high is not None and high > (pipe.positions or {}).get((stage, topic, p), 0):
                return True
        return False

    def watermark(ns: str, owned: set[int], now: float) -> float:
        """The namespace's event-time watermark on this worker: the least of its partitions'
        latest event times (a partition that lags holds it back), ignoring partitions idle for
        ``partition_idle_s`` that have nothing pending (the memory stage has read up to their
        end: a partition whose records are merely slow to arrive, e.g. on a loaded machine or
        right after a restart, still holds the watermark back), minus the allowed lateness. A
        partition not heard from yet counts as -inf until it idles out."""
        per = marks.setdefault(ns, {})
        for p in owned:
            per.setdefault(p, [-math.inf, now])
        live = [m[0] for p, m in per.items() if p in owned]
        busy = [
            m[0]
            for p, m in per.items()
            if p in owned and (now - m[1] <= settings.partition_idle_s or pending(p))
        ]
        low = min(busy) if busy else max(live, default=-math.inf)
        return low - settings.watermark_lateness_s

    settled: set[bytes] = set()  # agents whose last outbox this process saw go out
    scanned: list[frozenset[int]] = [frozenset()]  # partitions already scanned for outboxes

    def extra_keys() -> tuple[dict[str, float], list[bytes]]:
        """Agents to load beside this batch's: after an assignment, every agent of the new
        partitions (their last effects may have been cut off by a crash); and, when a
        namespace's watermark moved a sweep interval, every agent of this worker's partitions,
        to settle silent ones up to it."""
        owned = {tp.partition for tp in app.consumer.assignment() if tp.topic == embedded_name}
        now = time.time()
        due = {}
        for ns in marks:
            w = watermark(ns, owned, now)
            if w - swept.get(ns, -math.inf) >= settings.sweep_every_s:
                due[ns] = w
        fresh = frozenset(owned) - scanned[0]
        if not due and not fresh:
            return {}, []
        swept.update(due)
        scanned[0] = frozenset(owned)
        wanted = owned if due else fresh
        keys = [k for k in agents.agents() if partition_of(k, parts) in wanted]
        return due, keys

    def memory_work(
        records: list[RawRecord], states: dict[bytes, Any], sweep: dict[str, float], now: float
    ) -> MemoryOut:
        """One memory-stage batch in the worker thread, a span per record; its audit records
        go out as OTel logs here (and to ``argos.audit`` from the stage)."""
        t0 = time.perf_counter()
        with tel.batch_spans("argos.memory", records) as spans:
            out = memory_batch(
                records,
                states,
                pipe.memory_params,
                embedded_name,
                now,
                pipe.store,
                pipe.embedder.name,
                sweep,
                agent_cache,
                settled,
                [spans.trace_id(i) for i in range(len(records))],
                pipe.hot_rows_by_id,
                settings.state_deltas,
            )
        for _, value in out.audit:
            emit(tel.logger, from_value(value))
        tel.record_stage_latency("memory", time.perf_counter() - t0)
        return out

    @app.agent(memory_src, concurrency=1, name="argos.memory")
    async def memory_stage(stream: faust.StreamT[bytes]) -> None:
        """Each agent's memory on event time: lifecycle (created -> active, recalls reinforce,
        forgotten memories decay out of the hot collection, consolidated ones are archived),
        micro-clusters, near-duplicates and distillation into semantic memories."""
        loop = asyncio.get_running_loop()
        async for batch in stream.take_events(take_max, within=within):
            records, _, again = pipe.take("memory", batch)
            if again:
                await pipe.read_again("memory", again)
            if not records:
                continue
            keys = {r.key for r in records if r.key is not None}
            try:
                sweep, extra = extra_keys()
                states = {k: agents.saved(k) for k in keys | set(extra)}
                out = await loop.run_in_executor(
                    pipe.memory_pool, memory_work, records, states, sweep, time.time()
                )
                # first, durably: the L2 rows of the memories kept, then the state that names
                # them (the store stage reads it, see there), so a restart finds every row its
                # state refers to and the state that made every effect below
                await save_hot({(ns, a, mid): row for ns, a, mid, row in out.hot_rows})
                await save_agents(out.states)
                await apply_store_work(loop, out)
                await loop.run_in_executor(pipe.memory_pool, pipe.recall.learned, out)
                futs = await produce(lifecycle_name, out.lifecycle)
                futs += await produce(clusters_name, out.clusters)
                futs += await produce(embedded_name, out.derived)
                futs += await produce(dlq_name, out.dead)
                futs += await produce(audit_name, out.audit)
                await _all(futs)
            except Exception as exc:
                exit_unacked("memory", exc)
            pipe.note_positions("memory", records)
            if log.isEnabledFor(logging.INFO):
                log.info("memory batch: %s", batch_trace(records, states, settled, out))
            if pipe.feed.subscribers:  # the raw JSON records: watchers parse what they show
                for _, value in out.lifecycle:
                    pipe.feed.publish("lifecycle", {"json": value})
                for _, value in out.clusters:
                    pipe.feed.publish("cluster", {"json": value})
            tel.count_events("memory", "ok", len(records) - len(out.dead))
            settled.update(states)
            now = time.time()
            for (ns, p), clock in out.clocks.items():
                mark = marks.setdefault(ns, {}).setdefault(p, [-math.inf, now])
                mark[0], mark[1] = max(mark[0], clock), now
            stats.note_memory_batch(out)

    async def apply_store_work(loop: asyncio.AbstractEventLoop, out: MemoryOut) -> None:
        """Forgotten memories leave the hot collection; archived ones move to the archive."""
        for ns, mids in sorted(_by_namespace(out.archive).items()):
            async for attempt in store_retrying():
                with attempt:
                    await loop.run_in_executor(pipe.store_pool, archive_move, ns, mids)
        for ns, mids in sorted(_by_namespace(out.forget).items()):
            async for attempt in store_retrying():
                with attempt:
                    await loop.run_in_executor(pipe.store_pool, pipe.store.delete, ns, mids)
        if out.archive or out.forget:
            pipe.note_store(None)
        if out.forget:  # and from L2 (archived rows stay there, recallable on request)
            await save_hot(
                {
                    (ns, agent, mid): None
                    for (ns, mid), agent in zip(out.forget, out.forget_agents, strict=True)
                }
            )

    def store_through(rows: list[StoredMemory]) -> None:
        """Upsert into Milvus, then into the hot recall index (recallable once stored)."""
        pipe.store.upsert(rows)
        pipe.recall.stored(rows)

    def archive_move(ns: str, mids: list[str]) -> None:
        rows = pipe.store.get(ns, mids)
        pipe.archive.upsert(rows)
        pipe.store.delete(ns, mids)

    # each namespace's live population clusters with the state bytes they were saved as
    population_cache: LRUCache[bytes, Any] = LRUCache(64)

    @app.agent(clusters_t, concurrency=1, name="argos.population")
    async def population_stage(stream: faust.StreamT[bytes]) -> None:
        """Namespace-wide clusters: agents' cluster centroids grouped across agents (the topic
        is keyed by namespace, so one worker sees a namespace's changes in order)."""
        loop = asyncio.get_running_loop()
        async for batch in stream.take_events(take_max, within=within):
            records = [_record(e) for e in batch]
            keys = {r.key for r in records if r.key is not None}
            try:
                states = {k: pipe.state(population_table, k) for k in keys}
                new_states, dead, counts = await loop.run_in_executor(
                    pipe.memory_pool,
                    population_batch,
                    records,
                    states,
                    pipe.population_params,
                    time.time(),
                    population_cache,
                )
                await save_states(
                    population_table, _state_records(population_table, new_states, pipe.keyring)
                )
                await _all(await produce(dlq_name, dead))
            except Exception as exc:
                exit_unacked("population", exc)
            stats.population_inputs += len(records)
            stats.dead_lettered += len(dead)
            for kind, n in counts.items():
                stats.population_kinds[kind] = stats.population_kinds.get(kind, 0) + n

    if settings.analytics:
        pipe.analytics_table = state_table(TABLES[3])
        register_analytics(
            pipe, embedded_name, access_name, lifecycle_name, clusters_name, produce, save_states
        )

    metrics_name = settings.topic(METRICS)

    @app.timer(interval=LATENCY_METRICS_EVERY_S)
    async def latency_metrics() -> None:
        """Each namespace's publish -> stored quantiles onto ``argos.analytics.metrics``
        (what changed since the last tick; nothing when no event was stored)."""
        fresh = {ns: w.n for ns, w in pipe.ns_latency.items()}
        items = [
            kv
            for kv in pipe.latency_metrics()
            if fresh.get(kv[0].decode()) != reported.get(kv[0].decode())
        ]
        reported.update(fresh)
        if items:
            await _all(await produce(metrics_name, items))

    reported: dict[str, int] = {}

    watch = StallWatch(settings.stall_s)
    pipe.partition_load = PartitionLoad(
        parts, settings.partition_target_rate, settings.hot_partition_ratio
    )
    watched = (*upstream, ("store", embedded_name))

    @app.timer(interval=min(5.0, settings.stall_s / 2))
    async def stall_watch() -> None:
        """Partitions with records waiting and no progress for ``stall_s``: logged with the
        consumer's view of them, and put back into the fetcher when Faust left them out. Also
        tells the hot-partition detector which partitions this worker owns."""
        from faust.types import TP

        consumer = app.consumer
        try:
            assigned = set(consumer.assignment())
        except Exception:  # noqa: BLE001 - not started or rebalancing: next tick
            return
        if pipe.partition_load is not None:
            source = settings.source_topic()
            owned = {tp.partition for tp in assigned if tp.topic == source}
            pipe.partition_load.tick(time.monotonic(), owned)
        seen: dict[tuple[str, int], tuple[float | None, int]] = {}
        for stage, topic in watched:
            for tp in (tp for tp in assigned if tp.topic == topic):
                high = highwater(topic, tp.partition)
                read = (pipe.positions or {}).get((stage, topic, tp.partition))
                if read is None:
                    read = consumer._committed_offset.get(tp) or 0
                key = (f"{stage}:{topic}", tp.partition)
                seen[key] = (high, read)
        for name, part in watch.observe(time.monotonic(), seen):
            stage, topic = name.split(":", 1)
            tp = TP(topic, part)
            active = consumer._active_partitions or set()
            log.warning(
                "partition %s/%d stalled for %s: high-water %s, read %s; active=%s paused=%s "
                "buffered=%s flow=%s recovery=%s",
                topic,
                part,
                stage,
                seen[(name, part)][0],
                seen[(name, part)][1],
                tp in active,
                tp in consumer._paused_partitions,
                tp in consumer._buffered_partitions,
                consumer.flow_active,
                app.in_recovery,
            )
            stats.stalled_partitions += 1
            if stats.stalled_partitions == 1 or stats.stalled_partitions % 50 == 0:
                log.warning("stall report:\n%s", stall_report(probe))
            if tp not in active and not app.in_recovery:
                consumer._buffered_partitions.discard(tp)
                consumer._paused_partitions.discard(tp)
                consumer._get_active_partitions().add(tp)
                stats.stall_resumed += 1
            elif not app.in_recovery and consumer.flow_active:
                # fetching, yet nothing arrives: records fetched and dropped before delivery
                # (the consumer's position is past them); read again from the stage's
                want = pipe.next_offsets.get(stage, {}).get((topic, part))
                high = seen[(name, part)][0]
                if want is not None and high is not None and high > want:
                    await pipe.read_again(stage, {(topic, part): want})
                    stats.stall_rewound += 1

    # each agent's forgotten memory ids with the sequence number of the state they were read from
    forgotten_cache: LRUCache[bytes, Any] = LRUCache(settings.memory_cache_agents)
    # the rows written last, written again when a Milvus Lite child process restarts (see
    # Pipeline.milvus_restarted): a killed one may lose its last acknowledged writes
    recent_rows: deque[StoredMemory] = deque(maxlen=settings.store_resend_rows)

    async def resend_recent() -> None:
        rows = list(recent_rows)
        live: list[StoredMemory] = []
        owners = {r.agent_id.encode() for r in rows}
        async for attempt in store_retrying():
            with attempt:
                # as in the stage: read what was forgotten and queue the upsert in one loop
                # step, so a delete decided after this read is queued after this upsert
                live = drop_forgotten(
                    rows, {k: pipe.agents.saved(k) for k in owners}, forgotten_cache
                )
                await loop_of_store[0].run_in_executor(pipe.store_pool, pipe.store.upsert, live)
        stats.resent_after_restart += len(live)
        log.warning("milvus-lite restarted: wrote the last %d stored rows again", len(live))

    loop_of_store: list[asyncio.AbstractEventLoop] = []

    def milvus_restarted() -> None:
        """From the supervisor's thread, once a restarted Milvus Lite answers."""
        if loop_of_store and recent_rows:
            asyncio.run_coroutine_threadsafe(resend_recent(), loop_of_store[0])

    pipe.milvus_restarted = milvus_restarted

    @app.agent(embedded_t, concurrency=1, name="argos.store")
    async def store_stage(stream: faust.StreamT[bytes]) -> None:
        loop = asyncio.get_running_loop()
        loop_of_store[:] = [loop]
        async for batch in stream.take_events(take_max, within=path_within):
            t0 = time.perf_counter()
            records, _, again = pipe.take("store", batch)
            if again:
                await pipe.read_again("store", again)
            if not records:
                continue
            store_spans = tel.batch_spans("argos.store", records)  # closed once stored
            store_spans.__enter__()
            try:
                src: list[int] = []
                rows, dead = await loop.run_in_executor(
                    pipe.store_pool, parse_embedded, records, time.time(), src
                )
                sent = {  # (namespace, memory id) -> publish time, for publish -> stored
                    (r.namespace, r.memory_id): int(h) / 1000.0
                    for r, i in zip(rows, src, strict=True)
                    if (h := header(records[i], PUBLISHED_HEADER)) is not None
                }
                owners = {r.agent_id.encode() for r in rows}
                async for attempt in store_retrying():
                    with attempt:
                        # read the lifecycle table and queue the upsert in one loop step: the
                        # store pool runs jobs in order, so a decay written after this read
                        # queues its delete after this upsert
                        live = drop_forgotten(
                            rows, {k: pipe.agents.saved(k) for k in owners}, forgotten_cache
                        )
                        await loop.run_in_executor(pipe.store_pool, store_through, live)
                        if live:  # a write reached the store: it is back
                            pipe.note_store(None)
                if settings.milvus_lite_process:
                    recent_rows.extend(live)
                stats.skipped_decayed += len(rows) - len(live)
                await _all(await produce(dlq_name, dead))
            except Exception as exc:
                exit_unacked("store", exc)
            store_spans.__exit__(None, None, None)
            if pipe.feed.subscribers:  # rows as stored (vector included: in-process only)
                for r in live:
                    pipe.feed.publish("memory", {"row": r})
            done = time.time()
            for (ns, _), t_pub in sent.items():
                pipe.latency["publish_to_stored"].note(done - t_pub)
                pipe.latency_of(ns).note(done - t_pub)
                tel.record_stage_latency("publish_to_stored", done - t_pub)

            pipe.note_positions("store", records)
            tel.count_events("store", "ok", len(rows))
            tel.record_stage_latency("store", time.perf_counter() - t0)
            stats.last_store_latency_s = time.perf_counter() - t0
            stats.store_busy_s += stats.last_store_latency_s
            stats.last_stored_ts = time.time()
            stats.dead_lettered += len(dead)
            stats.stored += len(rows)
            stats.batches += 1

    from pipelines.dashboard import register_dashboard
    from pipelines.web import register_routes

    register_routes(pipe)
    register_dashboard(pipe)
    return pipe


def register_analytics(
    pipe: Pipeline,
    embedded_name: str,
    access_name: str,
    lifecycle_name: str,
    clusters_name: str,
    produce: Any,
    save_states: Any,
) -> None:
    """The ``argos.analytics`` agent (``ARGOS_ANALYTICS=false`` leaves it out); ``produce``
    and ``save_states`` send records and table changelog records (``create_app``'s)."""
    settings, app, stats = pipe.settings, pipe.app, pipe.stats
    raw = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    parts, take_max, within = settings.topic_partitions, settings.take_max, settings.take_within
    dlq_name = settings.topic(DEADLETTER)
    table = pipe.analytics_table
    pipe.analytics = Analytics(AnalyticsParams())
    restored: list[bytes] = []  # the assignment key the models were looked up for
    # learnt since the last checkpoint, and the key (partitions) it was learnt under
    dirty: dict[str, tuple[bytes, int] | None] = {"key": None}

    def models_key() -> tuple[bytes, int] | None:
        """The models' key: this worker's partitions of the stream (the models learnt from
        them), kept in the changelog partition of the lowest one, so whoever is assigned the
        same partitions after a restart recovers them."""
        owned = sorted(
            tp.partition for tp in app.consumer.assignment() if tp.topic == embedded_name
        )
        return (",".join(map(str, owned)).encode(), owned[0]) if owned else None

    def restore() -> None:
        """Once per assignment: the checkpointed models for these partitions, if any."""
        found = models_key()
        if found is None or (restored and restored[-1] == found[0]):
            return
        restored.append(found[0])
        raw = pipe.state(table, found[0])
        if raw is not None:
            try:
                pipe.analytics = Analytics.from_bytes(raw)
                stats.analytics_restored = True
            except (ValueError, EOFError) as exc:
                log.warning("analytics checkpoint unreadable (%s): starting fresh", exc)

    analytics_topics = {
        "embedded": embedded_name,
        "access": access_name,
        "lifecycle": lifecycle_name,
        "clusters": clusters_name,
    }
    analytics_src = app.topic(*analytics_topics.values(), partitions=parts, **raw)
    predictions_name, metrics_name = settings.topic(PREDICTIONS), settings.topic(METRICS)

    @app.agent(analytics_src, concurrency=1, name="argos.analytics")
    async def analytics_stage(stream: faust.StreamT[bytes]) -> None:
        """River models learning one event at a time from memories, recalls and lifecycle
        transitions; predictions and metrics go to ``argos.analytics.*``. The models are
        checkpointed every ``analytics_checkpoint_s`` into a changelog-recovered table
        (``<prefix>-analytics``, sealed at rest when keys are set), keyed by the partitions
        they learnt from."""
        loop = asyncio.get_running_loop()
        async for batch in stream.take_events(take_max, within=within):
            records = [_record(e) for e in batch]
            try:
                restore()
                preds, mets, dead = await loop.run_in_executor(
                    pipe.analytics_pool,
                    analytics_batch,
                    records,
                    pipe.analytics,
                    analytics_topics,
                    time.time(),
                )
                futs = await produce(predictions_name, preds)
                futs += await produce(metrics_name, mets)
                futs += await produce(dlq_name, dead)
                await _all(futs)
                dirty["key"] = models_key()
            except Exception as exc:
                exit_unacked("analytics", exc)
            stats.analytics_inputs += len(records)
            stats.predictions += len(preds)
            stats.metrics += len(mets)
            stats.dead_lettered += len(dead)

    async def checkpoint() -> None:
        """The models as learnt so far into the table, when they learnt anything since the
        last checkpoint. ``to_bytes`` runs on the analytics thread, which serialises it with the
        batches, so the checkpoint is always the state between two batches."""
        key, dirty["key"] = dirty["key"], None
        if key is None:
            return
        blob = await asyncio.get_running_loop().run_in_executor(
            pipe.analytics_pool, pipe.analytics.to_bytes
        )
        await save_states(table, _state_records(table, {key[0]: blob}, pipe.keyring, key[1]))

    prefetch_pool = ThreadPoolExecutor(1, thread_name_prefix="prefetch")
    owned_parts: list[set[int]] = [set()]

    def owns(namespace: str, agent_id: str) -> bool:
        return partition_of(agent_id.encode(), parts) in owned_parts[0]

    pipe.recall.owns = owns

    async def prefetch() -> None:
        """Warm the agents the recall-probability model expects to be recalled soon, and rank
        the hot index's evictions by it (``RecallService.prefetch``); with a recall process,
        send them to it as well (``RecallMirror.prefetch``)."""
        loop = asyncio.get_running_loop()
        try:
            owned_parts[0] = {
                tp.partition for tp in app.consumer.assignment() if tp.topic == embedded_name
            }
            expected = await loop.run_in_executor(
                pipe.analytics_pool, pipe.analytics.expected_recalls
            )
            await loop.run_in_executor(
                prefetch_pool, pipe.recall.prefetch, expected, settings.prefetch_agents
            )
            if pipe.recall_mirror is not None:  # and into the recall process, unasked
                await loop.run_in_executor(
                    prefetch_pool, pipe.recall_mirror.prefetch, expected, settings.prefetch_agents
                )
        except Exception as exc:  # noqa: BLE001 - a cache warm-up: the next tick tries again
            log.warning("prefetch failed: %r", exc)

    if settings.prefetch_s > 0:
        app.timer(interval=settings.prefetch_s, name="argos.recall.prefetch")(prefetch)

    # A timer, not the stream: the last batch before a quiet spell is checkpointed too.
    app.timer(interval=settings.analytics_checkpoint_s, name="argos.analytics.checkpoint")(
        checkpoint
    )

    @app.on_before_shutdown.connect
    async def checkpoint_on_stop(app: Any, **_: Any) -> None:
        """A clean stop keeps everything learnt (a SIGKILL loses at most one interval)."""
        await checkpoint()


def exit_unacked(stage: str, exc: BaseException) -> NoReturn:
    """An unexpected error inside a batch: end the process at once, before Faust acks the batch.

    ``take_events`` acks a batch when its loop body exits, even by an exception, so letting the
    error propagate would commit offsets of events that were never written (and Faust would
    only log the crashed agent). Exiting here leaves them uncommitted: a restarted worker
    processes them again, and idempotent writes make that safe.
    """
    log.critical("stage %s failed; exiting without acking its batch", stage, exc_info=exc)
    logging.shutdown()
    os._exit(70)


def _note_retry(pipe: Pipeline, outcome: Any) -> None:
    """A store call failed and will be retried: count it, and mark the worker degraded (recall
    answers from its caches) until a store call succeeds again."""
    pipe.stats.store_retries += 1
    error = outcome.exception() if outcome else None
    pipe.store_error = str(error)[:500] if error else "?"  # e.g. "... No space left on device"
    if pipe.store_down_since is None:
        pipe.note_store(time.time())
    log.warning("store unavailable, retrying: %s", pipe.store_error)


def _by_namespace(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ns, mid in pairs:
        out.setdefault(ns, []).append(mid)
    return out


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as Faust's producer and the
    publishers use) gives ``key``."""
    from kafka.partitioner.default import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions
