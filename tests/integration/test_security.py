"""Observable and safe, on the real broker: one trace per memory event across every Kafka hop,
an audit record per operation (none twice), ciphertext at rest, tokens (401/403, 0 leaks across
namespaces), rate limits (429, dead letters at ingest), and fuzzed events and requests that
never crash a worker.

Recalls here go to the worker's own ``/recall`` (``recall_url=None``), whose counters the tests
read; the recall process each worker also runs (the client's default route) answers alike:
``test_recall_process.py``."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pipelines.client import MemoryClient, RecallError
from pipelines.crypto import is_encrypted
from pipelines.errors import PoisonEventError
from pipelines.ingest import validate
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher
from pipelines.simulation import Population
from schemas import AuditRecord, DeadLetter, LifecycleEvent
from tests.integration.kafka_utils import console_records, read_topic
from tests.unit.test_fuzz_inputs import deep, dumps, json_values, valid_events

pytestmark = pytest.mark.integration

NS, OTHER = "sec-a", "sec-b"
TOKENS = [
    {"token": "writer-token", "subject": "sim-writer", "namespaces": [NS], "publish": True},
    {"token": "reader-token", "subject": "sim-reader", "namespaces": [NS]},
    {"token": "other-token", "subject": "b-reader", "namespaces": [OTHER]},
]
RECALL_LIMIT = 4  # per agent per minute, so the test reaches 429 quickly


def _spans(path: Any) -> list[dict[str, Any]]:
    return [d for d in console_records(path) if "context" in d and "parent_id" in d and "name" in d]


def _audit_logs(path: Any) -> list[dict[str, Any]]:
    return [
        json.loads(d["body"]) for d in console_records(path) if d.get("event_name") == "argos.audit"
    ]


def _until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def test_traces_audit_ciphertext_tokens_and_limits(
    start_worker: Callable[..., WorkerProcess], tmp_path_factory: pytest.TempPathFactory
) -> None:
    data_dir = tmp_path_factory.mktemp("secure")
    otel_file = data_dir / "otel.jsonl"
    w = start_worker(
        data_dir=data_dir,
        extra_env={
            "ARGOS_TOKENS": json.dumps(TOKENS),
            "ARGOS_OTEL_EXPORTER": "console",
            "ARGOS_OTEL_CONSOLE_FILE": str(otel_file),
            "ARGOS_RATE_RECALL_AGENT": f"{RECALL_LIMIT}/minute",
            "OTEL_BSP_SCHEDULE_DELAY": "500",
            "OTEL_BLRP_SCHEDULE_DELAY": "500",
        },
    )
    prefix = w.env["ARGOS_TOPIC_PREFIX"]
    events_topic = prefix + ".memory.events"
    good = list(Population(3, seed=21, namespace=NS).events(30))
    # refused at ingest: no token (401) and a token without publish rights (403)
    no_token = list(Population(2, seed=22, namespace="sec-c").events(4))
    no_right = list(Population(2, seed=23, namespace="sec-d").events(4))

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with MemoryPublisher(
        w.bootstrap, events_topic, token="writer-token", tracer_provider=provider
    ) as pub:
        pub.publish_many(good)
    with MemoryPublisher(w.bootstrap, events_topic) as pub:
        pub.publish_many(no_token)
    with MemoryPublisher(w.bootstrap, events_topic, token="other-token") as pub:
        pub.publish_many(no_right)

    admin = MemoryClient(w.url, recall_url=None)  # /stats is open (probes and operators)
    admin.wait_counter("stored", len(good), timeout=180)
    admin.wait_counter("dead_lettered", len(no_token) + len(no_right), timeout=60)
    admin.wait_counter("clustered", len(good), timeout=120)

    # -- tokens: 401 without, 403 across namespaces (and nothing leaks), 200 with the right one
    agent = good[0].agent_id
    with pytest.raises(RecallError) as e401:
        MemoryClient(w.url, recall_url=None).recall(NS, agent, "the river")
    assert e401.value.status == 401
    with pytest.raises(RecallError) as e401b:
        MemoryClient(w.url, recall_url=None, token="not-a-token").recall(NS, agent, "the river")
    assert e401b.value.status == 401
    with pytest.raises(RecallError) as e403:
        MemoryClient(w.url, recall_url=None, token="other-token").recall(NS, agent, "the river")
    assert e403.value.status == 403 and "hits" not in str(e403.value.body)
    raw = httpx.get(
        f"{w.url}/clusters",
        params={"namespace": NS, "agent_id": agent},
        headers={"Authorization": "Bearer other-token"},
    )
    assert raw.status_code == 403
    reader = MemoryClient(w.url, recall_url=None, token="reader-token")
    # over the per-agent recall limit: 429 with the reason (never a silent drop)
    statuses = []
    hits = 0
    for _ in range(RECALL_LIMIT + 2):
        try:
            resp = reader.recall(NS, agent, "what happened near the river")
            assert all(h.memory_id.startswith(f"{NS}:") for h in resp.hits)  # 0 leaks
            hits += len(resp.hits)
            statuses.append(200)
        except RecallError as exc:
            statuses.append(exc.status)
            assert "recall rate limit" in str(exc.body)
    assert statuses == [200] * RECALL_LIMIT + [429, 429] and hits > 0
    denied_requests = 2 + 1 + 1 + 2  # two 401s, a 403 recall, a 403 /clusters, two 429s

    # -- the dead letters say why each refused event was refused
    dead = [
        DeadLetter.model_validate_json(r.value)  # type: ignore[attr-defined]
        for r in read_topic(w.bootstrap, prefix + ".deadletter", timeout=30)
    ]
    reasons = Counter(d.error for d in dead)
    assert reasons == {"UnauthenticatedError": len(no_token), "ForbiddenError": len(no_right)}

    # -- one trace per event: publish -> ingest_embed -> (memory, store), parent by parent
    publish = {s.attributes["argos.memory_id"]: s for s in exporter.get_finished_spans()}  # type: ignore[index]
    assert set(publish) == {e.memory_id for e in good}

    def chains_complete() -> bool:
        by_parent: dict[str, list[dict[str, Any]]] = {}
        for s in _spans(otel_file):
            by_parent.setdefault(s["parent_id"] or "", []).append(s)
        for span in publish.values():
            pid = f"0x{span.context.span_id:016x}"
            ingest = [s for s in by_parent.get(pid, []) if s["name"] == "argos.ingest_embed"]
            if len(ingest) != 1:
                return False
            kids = {s["name"] for s in by_parent.get(ingest[0]["context"]["span_id"], [])}
            if not {"argos.memory", "argos.store"} <= kids:
                return False
            if ingest[0]["context"]["trace_id"] != f"0x{span.context.trace_id:032x}":
                return False
        return True

    _until(chains_complete, 30, "every event's trace publish -> ingest -> memory + store")

    # -- audit: one record per operation, none twice, in Kafka and as OTel log records
    # (first, the memory stage has applied every recall's reinforcement: its transitions count)
    admin.wait_counter("lifecycle_inputs", len(good) + statuses.count(200), timeout=60)
    lifecycle = [
        LifecycleEvent.model_validate_json(r.value)  # type: ignore[attr-defined]
        for r in read_topic(w.bootstrap, prefix + ".memory.lifecycle", timeout=30)
    ]
    ops = len(lifecycle) + statuses.count(200) + denied_requests + len(no_token) + len(no_right)

    def audit_records() -> list[AuditRecord]:
        return [
            AuditRecord.model_validate_json(r.value)  # type: ignore[attr-defined]
            for r in read_topic(w.bootstrap, prefix + ".audit", timeout=30)
        ]

    _until(lambda: len(audit_records()) >= ops, 30, f"{ops} audit records")
    audit = audit_records()
    ids = [a.audit_id for a in audit]
    assert len(ids) == len(set(ids)) == ops, Counter(a.action for a in audit)
    actions = Counter(a.action for a in audit)
    assert actions["recall"] == statuses.count(200)
    assert actions["denied"] == denied_requests + len(no_token) + len(no_right)
    assert actions["create"] == sum(e.cause == "created" for e in lifecycle) > 0
    created = [a for a in audit if a.action == "create" and a.memory_id in publish]
    assert created and all(
        a.trace_id == f"{publish[a.memory_id].context.trace_id:032x}" for a in created
    )
    assert {a.outcome for a in audit if a.action == "denied"} == {"401", "403", "429"}
    # each denial names who was refused: the token's subject once known, else "anonymous"
    actors = Counter((a.namespace, a.outcome, a.actor) for a in audit if a.action == "denied")
    assert actors == {
        ("sec-c", "401", "anonymous"): len(no_token),
        ("sec-d", "403", "b-reader"): len(no_right),
        (NS, "401", "anonymous"): 2,
        (NS, "403", "b-reader"): 2,
        (NS, "429", "sim-reader"): 2,
    }
    # a recall's reinforcement travels in the recall's trace: the memory stage's span of each
    # access event joins it
    recall_traces = {f"0x{a.trace_id}" for a in audit if a.action == "recall" and a.detail["hits"]}
    assert len(recall_traces) == statuses.count(200)
    _until(
        lambda: (
            recall_traces
            <= {s["context"]["trace_id"] for s in _spans(otel_file) if s["name"] == "argos.memory"}
        ),
        30,
        "each recall's access event handled in the recall's trace",
    )
    _until(
        lambda: {r["audit_id"] for r in _audit_logs(otel_file)} == set(ids),
        30,
        "the same audit records as OTel log records",
    )

    # -- at rest: the state changelog is ciphertext, and so is every content in Milvus
    changelog = read_topic(w.bootstrap, f"{w.env['ARGOS_APP_ID']}-{prefix}-memory-changelog")
    values = [r.value for r in changelog if r.value is not None]  # type: ignore[attr-defined]
    assert values and all(is_encrypted(v) for v in values)  # tombstones aside
    assert w.stop() == 0
    from pymilvus import MilvusClient

    milvus = MilvusClient(uri=str(data_dir / "milvus.db"))
    try:
        milvus.load_collection("argos_memories")
        rows = milvus.query("argos_memories", filter="", output_fields=["content"], limit=1000)
    finally:
        milvus.close()
    assert rows and all(is_encrypted(r["content"]) for r in rows)
    assert not any(e.content in r["content"] for e in good for r in rows)


def _expected_dead(raw: bytes) -> bool:
    """Whether the pipeline must refuse ``raw``: invalid at ingest, or a brought vector that
    cannot be compared with the model's (wrong dimension, zero)."""
    try:
        ev = validate(raw)
    except PoisonEventError:
        return True
    emb = ev.embedding
    return emb is not None and (len(emb) != 384 or not any(emb))


@pytest.fixture(scope="module")
def fuzz_worker(start_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    return start_worker()


payloads = st.one_of(
    st.binary(max_size=200),
    json_values.map(dumps),
    st.builds(lambda d, k: deep(d, k).encode(), st.integers(30, 3000), st.sampled_from("[{")),
    valid_events().map(lambda e: json.dumps(e).encode()),
)


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(batch=st.lists(payloads, min_size=40, max_size=80))
def test_fuzzed_events_and_requests_never_crash_a_worker(
    fuzz_worker: WorkerProcess, batch: list[bytes]
) -> None:
    w = fuzz_worker
    client = MemoryClient(w.url, recall_url=None)
    before = client.stats()
    prefix = w.env["ARGOS_TOPIC_PREFIX"]
    with MemoryPublisher(w.bootstrap, prefix + ".memory.events") as pub:
        for raw in batch:
            pub.publish_raw(b"fuzz", raw)
    bad = [raw for raw in batch if _expected_dead(raw)]
    n_good = len(batch) - len(bad)
    client.wait_counter("ingested", before["ingested"] + len(batch), timeout=120)
    client.wait_counter("embedded", before["embedded"] + n_good, timeout=120)
    client.wait_counter("dead_lettered", before["dead_lettered"] + len(bad), timeout=60)
    # every bad event is dead-lettered with a reason, and no good one is
    dead = [
        DeadLetter.model_validate_json(r.value)  # type: ignore[attr-defined]
        for r in read_topic(w.bootstrap, prefix + ".deadletter", timeout=30)
    ]
    by_original = Counter(d.original() for d in dead)
    assert all(by_original[raw] >= 1 for raw in bad)
    assert all(d.reason.strip() for d in dead)
    # fuzzed recall requests: 400 with details, never a crash (500)
    for raw in batch[:20]:
        r = httpx.post(f"{w.url}/recall", content=raw, timeout=30)
        assert r.status_code in (200, 400), (r.status_code, r.text[:300])
    assert w.proc is not None and w.proc.poll() is None
    assert httpx.get(f"{w.url}/ready", timeout=10).status_code == 200
