"""Telemetry: W3C trace context in Kafka headers, per-record batch spans, metrics, setup."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from pipelines import telemetry as tm
from pipelines.settings import Settings
from pipelines.telemetry import (
    Telemetry,
    extract_context,
    inject_headers,
    merge_headers,
    setup_telemetry,
    trace_id_hex,
)

NONE = Settings(otel_exporter="none")


@dataclass(frozen=True)
class Rec:
    """Like ``pipelines.ingest.RawRecord``, with headers."""

    value: bytes | None
    key: bytes | None = None
    topic: str = "argos.memory.events"
    partition: int | None = None
    offset: int | None = None
    headers: list[tuple[str, bytes]] | None = None


@dataclass
class Rig:
    tel: Telemetry
    spans: InMemorySpanExporter
    logs: InMemoryLogRecordExporter
    metrics: InMemoryMetricReader

    def finished(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if name is None or s.name == name]


@pytest.fixture
def rig() -> Iterator[Rig]:
    spans, logs, metrics = (
        InMemorySpanExporter(),
        InMemoryLogRecordExporter(),
        InMemoryMetricReader(),
    )
    tel = setup_telemetry(
        NONE, "argos-test", span_exporter=spans, log_exporter=logs, metric_reader=metrics
    )
    yield Rig(tel, spans, logs, metrics)
    tel.shutdown()


def parent_of(ctx: Any) -> trace.SpanContext:
    return trace.get_current_span(ctx).get_span_context()


# ------------------------------------------------------------------ headers


def test_inject_extract_round_trip_keeps_trace_and_parent_span(rig: Rig) -> None:
    with rig.tel.span("argos.publish", kind=SpanKind.PRODUCER) as span:
        headers = inject_headers(span)
        current = inject_headers()  # the current span, same thing inside the block
    assert current == headers
    assert [k for k, _ in headers] == ["traceparent"]
    assert all(isinstance(v, bytes) for _, v in headers)
    sc = span.get_span_context()
    got = parent_of(extract_context(headers))
    assert got.is_valid and got.is_remote
    assert (got.trace_id, got.span_id) == (sc.trace_id, sc.span_id)
    assert got.trace_flags.sampled


def test_tracestate_travels_both_ways(rig: Rig) -> None:
    with rig.tel.span("root") as span:
        sc = span.get_span_context()
    state = TraceState([("vendor", "v1"), ("other", "x")])
    remote = trace.NonRecordingSpan(
        trace.SpanContext(sc.trace_id, sc.span_id, True, sc.trace_flags, state)
    )
    headers = inject_headers(remote)
    assert dict(headers)["tracestate"] == b"vendor=v1,other=x"
    got = parent_of(extract_context(headers))
    assert got.trace_id == sc.trace_id and got.span_id == sc.span_id
    assert got.trace_state.get("vendor") == "v1"


VALID = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize(
    "value",
    [
        VALID,
        VALID[:-2] + b"00",
        b"00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",  # upper case: invalid
        b"00-00000000000000000000000000000000-b7ad6b7169203331-01",
        b"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        b"00-0af7651916cd43dd8448eb211c8031_c-b7ad6b7169203331-01",
        b"01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",  # future version
        b"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    ],
)
def test_fast_path_agrees_with_the_propagator(value: bytes) -> None:
    ours = parent_of(extract_context([("traceparent", value)]))
    ref = parent_of(TraceContextTextMapPropagator().extract({"traceparent": value.decode()}))
    assert (ours.is_valid, ours.trace_id, ours.span_id, ours.trace_flags) == (
        ref.is_valid,
        ref.trace_id,
        ref.span_id,
        ref.trace_flags,
    )


@pytest.mark.parametrize(
    "headers",
    [
        None,
        [],
        [("other", b"x")],
        [("traceparent", b"garbage")],
        [("traceparent", b"\xff\xfe\x00")],
        [("traceparent", None)],
        [("traceparent", b"")],
        [(b"traceparent", 12345)],
        [("traceparent",)],  # not a pair
        [("traceparent", b"00-00000000000000000000000000000000-0000000000000000-00")],
        {"traceparent": b"nope"},
    ],
)
def test_malformed_headers_give_a_root_context(rig: Rig, headers: Any) -> None:
    ctx = extract_context(headers)
    assert not parent_of(ctx).is_valid
    with rig.tel.span("argos.recall", headers=headers):
        pass
    (span,) = rig.finished()
    assert span.parent is None


def test_header_keys_and_mappings_are_accepted() -> None:
    tid = int(VALID[3:35], 16)
    for headers in ([(b"traceparent", VALID)], [("TraceParent", VALID)], {"traceparent": VALID}):
        assert parent_of(extract_context(headers)).trace_id == tid


def test_merge_headers_replaces_only_the_trace_context() -> None:
    old = [("traceparent", b"old"), ("content-type", b"json"), ("tracestate", b"a=b")]
    new = [("traceparent", VALID)]
    assert merge_headers(old, new) == [("content-type", b"json"), ("traceparent", VALID)]
    assert merge_headers(None, new) == new


def test_trace_id_hex_is_32_lowercase_hex(rig: Rig) -> None:
    with rig.tel.span("x") as span:
        pass
    hx = trace_id_hex(span)
    assert len(hx) == 32 and int(hx, 16) == span.get_span_context().trace_id
    assert hx == hx.lower()
    assert trace_id_hex(trace.INVALID_SPAN) == "0" * 32


# ------------------------------------------------------------------ batch spans


def test_batch_spans_one_child_span_per_record(rig: Rig) -> None:
    with rig.tel.span("argos.publish", kind=SpanKind.PRODUCER) as up1:
        h1 = inject_headers(up1)
    with rig.tel.span("argos.publish", kind=SpanKind.PRODUCER) as up2:
        h2 = inject_headers(up2)
    records = [
        Rec(b"a", topic="argos.memory.events", partition=1, offset=10, headers=h1),
        Rec(b"b", topic="argos.memory.events", partition=2, offset=20, headers=h2),
        Rec(b"c", partition=3, offset=30),  # no headers: a root span
    ]
    with rig.tel.batch_spans("argos.ingest", records, lambda r: {"argos.size": len(r.value)}) as s:
        assert len(s) == 3
        trace_ids = [s.trace_id(i) for i in range(3)]
    done = rig.finished("argos.ingest")
    assert len(done) == 3
    by_offset = {sp.attributes["messaging.kafka.offset"]: sp for sp in done}
    for up, off in ((up1, 10), (up2, 20)):
        sp = by_offset[off]
        assert sp.parent is not None and sp.parent.span_id == up.get_span_context().span_id
        assert sp.context.trace_id == up.get_span_context().trace_id
    assert by_offset[30].parent is None
    assert by_offset[30].context.trace_id not in {
        up1.get_span_context().trace_id,
        up2.get_span_context().trace_id,
    }
    assert trace_ids == [format(by_offset[o].context.trace_id, "032x") for o in (10, 20, 30)]
    sp = by_offset[20]
    assert sp.kind is SpanKind.CONSUMER
    assert sp.attributes["messaging.system"] == "kafka"
    assert sp.attributes["messaging.destination.name"] == "argos.memory.events"
    assert sp.attributes["messaging.destination.partition.id"] == "2"
    assert sp.attributes["argos.size"] == 1
    assert all(x.status.status_code is StatusCode.UNSET for x in done)
    assert all(x.end_time is not None and x.end_time >= x.start_time for x in done)


def test_publish_embed_store_chain_is_one_trace(rig: Rig) -> None:
    tel = rig.tel
    publish_headers = []
    for i in range(4):
        with tel.span("argos.publish", kind=SpanKind.PRODUCER, agent=f"a{i}") as p:
            publish_headers.append(inject_headers(p))
    raw = [Rec(b"e", offset=i, headers=h) for i, h in enumerate(publish_headers)]
    with tel.batch_spans("argos.embed", raw) as spans:
        embedded = [
            Rec(b"v", topic="argos.memory.embedded", offset=i, headers=spans.headers(i))
            for i in range(len(raw))
        ]
        embed_trace_ids = [spans.trace_id(i) for i in range(len(raw))]
    with tel.batch_spans("argos.store", embedded):
        pass

    pubs = rig.finished("argos.publish")
    embeds = {s.attributes["messaging.kafka.offset"]: s for s in rig.finished("argos.embed")}
    stores = {s.attributes["messaging.kafka.offset"]: s for s in rig.finished("argos.store")}
    assert len(pubs) == len(embeds) == len(stores) == 4
    for i, pub in enumerate(pubs):
        embed, store = embeds[i], stores[i]
        trace_ids = {pub.context.trace_id, embed.context.trace_id, store.context.trace_id}
        assert trace_ids == {pub.context.trace_id}, "one trace per memory"
        assert embed.parent.span_id == pub.context.span_id
        assert store.parent.span_id == embed.context.span_id
        assert store.attributes["messaging.destination.name"] == "argos.memory.embedded"
        assert embed_trace_ids[i] == format(pub.context.trace_id, "032x")
    assert len({p.context.trace_id for p in pubs}) == 4, "memories do not share traces"


def test_exception_inside_marks_all_spans_error_and_propagates(rig: Rig) -> None:
    records = [Rec(b"x", offset=i) for i in range(3)]
    with pytest.raises(RuntimeError, match="store down"):
        with rig.tel.batch_spans("argos.store", records):
            raise RuntimeError("store down")
    done = rig.finished("argos.store")
    assert len(done) == 3
    for sp in done:
        assert sp.status.status_code is StatusCode.ERROR
        assert "store down" in (sp.status.description or "")
        assert [e.name for e in sp.events] == ["exception"]
        assert sp.end_time is not None


def test_fail_marks_only_that_record(rig: Rig) -> None:
    records = [Rec(b"x", offset=i) for i in range(3)]
    with rig.tel.batch_spans("argos.ingest", records) as spans:
        spans.fail(1, ValueError("bad json"))
        spans.fail(2, "schema_version 2")
    done = {s.attributes["messaging.kafka.offset"]: s for s in rig.finished()}
    assert done[0].status.status_code is StatusCode.UNSET
    assert done[1].status.status_code is StatusCode.ERROR
    assert "bad json" in done[1].status.description and done[1].events[0].name == "exception"
    assert done[2].status.description == "schema_version 2"


def test_empty_batch_makes_no_spans(rig: Rig) -> None:
    with rig.tel.batch_spans("argos.embed", []) as spans:
        assert len(spans) == 0
    assert rig.finished() == []


def test_span_records_errors_and_nests(rig: Rig) -> None:
    with pytest.raises(KeyError):
        with rig.tel.span("argos.recall", namespace="ns", agent_id=None) as outer:
            with rig.tel.span("argos.recall.search") as inner:
                assert inner.get_span_context().trace_id == outer.get_span_context().trace_id
            raise KeyError("x")
    recall = rig.finished("argos.recall")[0]
    search = rig.finished("argos.recall.search")[0]
    assert search.parent.span_id == recall.context.span_id
    assert recall.status.status_code is StatusCode.ERROR
    assert dict(recall.attributes) == {"namespace": "ns"}  # None attributes left out


# ------------------------------------------------------------------ metrics


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out.setdefault(m.name, []).extend(m.data.data_points)
    return out


def test_metrics_are_recorded(rig: Rig) -> None:
    tel = rig.tel
    tel.count_events("embed", "ok", 5)
    tel.count_events("embed", "ok", 2)
    tel.count_events("embed", "deadletter")
    tel.count_events("embed", "ok", 0)
    tel.count_deadletters("ingest", "InvalidEventError", 3)
    tel.record_stage_latency("store", 0.004)
    with tel.time_stage("store"):
        pass
    tel.record_recall_latency(0.02)
    lag = {("argos.memory.events", 0): 7, ("argos.memory.events", 1): 0}
    tel.observe_lag(lambda: lag)
    tel.observe_lag(lambda: 1 / 0)  # a broken callback is skipped, the others still report

    got = points(rig.metrics)
    events = {tuple(sorted(p.attributes.items())): p.value for p in got["argos.events"]}
    assert events == {
        (("outcome", "ok"), ("stage", "embed")): 7,
        (("outcome", "deadletter"), ("stage", "embed")): 1,
    }
    (dl,) = got["argos.deadletters"]
    assert dl.value == 3 and dict(dl.attributes) == {
        "stage": "ingest",
        "reason_kind": "InvalidEventError",
    }
    (st,) = got["argos.stage.latency"]
    assert st.count == 2 and dict(st.attributes) == {"stage": "store"}
    assert 0.004 <= st.sum < 1.0
    assert tuple(st.explicit_bounds) == tm.LATENCY_BUCKETS_S  # seconds buckets, not ms
    (rc,) = got["argos.recall.latency"]
    assert rc.count == 1 and rc.sum == pytest.approx(0.02)
    lags = {
        (
            p.attributes["messaging.destination.name"],
            p.attributes["messaging.destination.partition.id"],
        ): p.value
        for p in got["argos.consumer.lag"]
    }
    assert lags == {("argos.memory.events", "0"): 7, ("argos.memory.events", "1"): 0}


# ------------------------------------------------------------------ setup


def test_exporter_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert tm._mode(Settings(otel_exporter="console")) == "console"
    assert tm._mode(Settings(otel_exporter="otlp")) == "otlp"
    assert tm._mode(NONE) == "none"
    assert tm._mode(None) == "none"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert tm._mode(NONE) == "otlp"


def test_none_exports_nothing_but_still_propagates(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    tel = setup_telemetry(NONE)
    try:
        with tel.span("argos.publish") as p:
            h = inject_headers(p)
        with tel.batch_spans("argos.embed", [Rec(b"x", headers=h)]) as spans:
            assert spans.trace_id(0) == trace_id_hex(p)
            forwarded = parent_of(extract_context(spans.headers(0)))
            assert forwarded.span_id == spans[0].get_span_context().span_id
        tel.count_events("embed", "ok")
        tel.logger.emit(body="audit")
    finally:
        tel.shutdown()
    tel.shutdown()  # idempotent
    assert capsys.readouterr().out == ""  # nothing went to the console


def test_console_without_file_writes_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    tel = setup_telemetry(Settings(otel_exporter="console"))
    with tel.span("argos.stdout.check"):
        pass
    tel.shutdown()
    assert "argos.stdout.check" in capsys.readouterr().out


def test_console_appends_to_the_configured_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    out = tmp_path / "otel" / "console.jsonl"
    out.parent.mkdir()
    out.write_text("earlier\n")
    tel = setup_telemetry(Settings(otel_exporter="console", otel_console_file=out), "argos-x")
    with tel.span("argos.console.check") as span:
        pass
    tel.count_events("embed", "ok")
    tel.shutdown()
    text = out.read_text()
    assert text.startswith("earlier\n")
    assert "argos.console.check" in text and trace_id_hex(span) in text
    assert "argos.events" in text
    assert '"service.name": "argos-x"' in text


def test_global_providers_only_when_asked() -> None:
    before = trace.get_tracer_provider()
    tel = setup_telemetry(NONE, span_exporter=InMemorySpanExporter())
    try:
        assert trace.get_tracer_provider() is before
        assert tel.tracer_provider is not before
    finally:
        tel.shutdown()


def test_log_records_carry_the_service_name(rig: Rig) -> None:
    rig.tel.logger.emit(body=json.dumps({"k": 1}))
    (rec,) = rig.logs.get_finished_logs()
    assert rec.resource.attributes["service.name"] == "argos-test"


def test_system_gauges_report_each_named_value() -> None:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    tel = setup_telemetry(None, metric_reader=reader)
    tel.observe_system(lambda: {"rss_bytes": 123.0, "l1_result_hit_rate": 0.5})
    data = reader.get_metrics_data()
    points = {
        p.attributes["argos.metric"]: p.value
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "argos.system"
        for p in m.data.data_points
    }
    assert points == {"rss_bytes": 123.0, "l1_result_hit_rate": 0.5}
    tel.shutdown()


def test_console_span_lines_are_the_sdk_format(rig: Rig) -> None:
    """The console exporter's fast formatter writes exactly ``ReadableSpan.to_json`` (compact):
    roots and children, links, events, an exception, an error status with quotes and non-ASCII,
    sequence attributes, a trace state, a batch's shared timestamps, two resources."""
    ts = TraceState([("vendor", "v1")])
    parent_headers = [("traceparent", b"00-" + b"ab" * 16 + b"-" + b"cd" * 8 + b"-01")]
    parent_headers.append(("tracestate", ts.to_header().encode()))
    recs = [Rec(b"{}", partition=0, offset=5), Rec(b"{}", partition=1, headers=parent_headers)]
    with rig.tel.batch_spans("argos.fmt", recs, lambda r: {"tags": ("a", "b"), "w": 0.5}) as spans:
        spans.fail(0, ValueError('bad "input"\nline é'))
    with rig.tel.span("argos.fmt.one", kind=SpanKind.SERVER, agent="a-1", n=3) as s:
        s.add_event("hit", {"k": 1})
        s.add_link(spans[1].get_span_context(), {"why": "batch"})
    out = rig.finished("argos.fmt") + rig.finished("argos.fmt.one")
    second = InMemorySpanExporter()
    other = setup_telemetry(NONE, "argos-other", span_exporter=second)
    with other.span("argos.fmt.other"):
        pass
    out += list(second.get_finished_spans())
    assert len(out) == 4
    for span in out:
        assert tm._span_line(span) == span.to_json(indent=None) + "\n"
    assert json.loads(tm._span_line(out[-1]))["resource"]["attributes"]["service.name"] == (
        "argos-other"
    )
    other.shutdown()


def test_console_log_lines_are_the_sdk_format(rig: Rig) -> None:
    """The console exporter's log formatter writes exactly ``ReadableLogRecord.to_json``
    (compact): a record inside a span and one outside, attributes or none, a bytes body,
    non-ASCII, a severity, two resources."""
    with rig.tel.span("argos.logfmt"):
        rig.tel.logger.emit(body=json.dumps({"k": 'é "q"'}), attributes={"a": 1, "t": ("x",)})
    rig.tel.logger.emit(body=b"\x00raw", severity_text="WARN")
    rig.tel.logger.emit(body="plain")
    out = list(rig.logs.get_finished_logs())
    second = InMemoryLogRecordExporter()
    other = setup_telemetry(NONE, "argos-other", log_exporter=second)
    other.logger.emit(body="from another service")
    out += list(second.get_finished_logs())
    assert len(out) == 4
    for rec in out:
        assert tm._log_line(rec) == rec.to_json(indent=None) + "\n"
    assert json.loads(tm._log_line(out[-1]))["resource"]["attributes"]["service.name"] == (
        "argos-other"
    )
    other.shutdown()
