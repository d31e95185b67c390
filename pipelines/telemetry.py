"""OpenTelemetry for the pipeline: traces across Kafka hops, metrics, and the audit log.

``setup_telemetry(settings)`` builds a private ``Telemetry`` (its own tracer, meter and logger
providers; global only with ``set_global=True``). Trace context travels between stages in the
Kafka headers as W3C ``traceparent``/``tracestate``: a stage extracts its parent from a record's
headers and forwards its own span's headers with what it publishes, so one memory's way through
publish -> ingest -> embed -> store is one trace.

Stages work on batches in worker threads, where no ambient context exists, so ``batch_spans``
starts one span per record, each the child of that record's upstream span::

    with tel.batch_spans("argos.embed", records) as spans:
        for i, rec in enumerate(records):
            out_headers = spans.headers(i)  # forward: the next stage's span is a child of it
"""

from __future__ import annotations

import atexit
import base64
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from time import perf_counter, time_ns
from typing import IO, TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry._logs import Logger as OtelLogger
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    ConsoleLogRecordExporter,
    InMemoryLogRecordExporter,
    LogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.sdk.util import ns_to_iso_str
from opentelemetry.trace import (
    INVALID_SPAN_ID,
    INVALID_TRACE_ID,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from pipelines.settings import Settings

log = logging.getLogger(__name__)

INSTRUMENTATION = "argos"
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_TRACE_HEADERS = (TRACEPARENT, TRACESTATE)

# Semantic-convention attribute names (messaging, Kafka).
MESSAGING_SYSTEM = "messaging.system"
MESSAGING_DESTINATION = "messaging.destination.name"
MESSAGING_PARTITION = "messaging.destination.partition.id"
MESSAGING_OFFSET = "messaging.kafka.offset"

# Latency buckets in seconds (the SDK's default buckets suit milliseconds).
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

_PROPAGATOR = TraceContextTextMapPropagator()
_ROOT = Context()
_TRACEPARENT_RE = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")

Headers = Sequence[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None]
LagCallback = Callable[[], Mapping[tuple[str, int], int]]


# --------------------------------------------------------------------------- trace context


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("ascii", "replace")
    return value if isinstance(value, str) else None


def _fast_parent(traceparent: str) -> Context | None:
    """The common case (version 00, no tracestate) without the propagator's overhead; same
    acceptance rules. None: let the propagator decide."""
    if len(traceparent) != 55 or not traceparent.startswith("00-"):
        return None
    if _TRACEPARENT_RE.fullmatch(traceparent) is None:
        return _ROOT
    trace_id = int(traceparent[3:35], 16)
    span_id = int(traceparent[36:52], 16)
    if trace_id == INVALID_TRACE_ID or span_id == INVALID_SPAN_ID:
        return _ROOT
    sc = SpanContext(trace_id, span_id, True, TraceFlags(int(traceparent[53:55], 16)))
    return trace.set_span_in_context(NonRecordingSpan(sc), _ROOT)


def extract_context(headers: Headers | None) -> Context:
    """The trace context carried by Kafka headers; a fresh root context when they carry none,
    or a malformed one (never raises)."""
    if not headers:
        return _ROOT
    carrier: dict[str, str] = {}
    try:
        items = headers.items() if isinstance(headers, Mapping) else headers
        for item in items:
            k, v = item
            if isinstance(k, bytes):
                k = k.decode("ascii", "replace")
            if isinstance(k, str) and k.lower() in _TRACE_HEADERS:
                s = _text(v)
                if s is not None:
                    carrier[k.lower()] = s.strip()
        parent = carrier.get(TRACEPARENT)
        if parent is None:
            return _ROOT
        if TRACESTATE not in carrier:
            fast = _fast_parent(parent)
            if fast is not None:
                return fast
        return _PROPAGATOR.extract(carrier, context=_ROOT)
    except Exception:  # noqa: BLE001 - a bad header must never fail a record
        return _ROOT


def _span_headers(span: Span) -> list[tuple[str, bytes]]:
    sc = span.get_span_context()
    if not sc.is_valid:
        return []
    if sc.trace_state:
        return inject_headers(trace.set_span_in_context(span, _ROOT))
    tp = f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{sc.trace_flags:02x}"
    return [(TRACEPARENT, tp.encode("ascii"))]


def inject_headers(span_or_context: Span | Context | None = None) -> list[tuple[str, bytes]]:
    """Kafka headers (``traceparent``, and ``tracestate`` when there is one) that make the
    reader's span a child of ``span_or_context`` (default: the current span). Empty when there is
    no valid span."""
    if isinstance(span_or_context, Span):
        return _span_headers(span_or_context)
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=span_or_context)
    return [(k, v.encode("ascii")) for k, v in carrier.items()]


def merge_headers(
    headers: Iterable[tuple[str, bytes]] | None, trace_headers: Iterable[tuple[str, bytes]]
) -> list[tuple[str, bytes]]:
    """``headers`` without any trace-context header, plus ``trace_headers`` (what to forward)."""
    kept = [(k, v) for k, v in headers or () if k.lower() not in _TRACE_HEADERS]
    kept.extend(trace_headers)
    return kept


def trace_id_hex(span: Span) -> str:
    """The span's trace id as 32 lowercase hex digits (``0`` * 32 for an invalid span)."""
    return format(span.get_span_context().trace_id, "032x")


def span_id_hex(span: Span) -> str:
    """The span's id as 16 lowercase hex digits."""
    return format(span.get_span_context().span_id, "016x")


# --------------------------------------------------------------------------- batch spans


class BatchSpans(Sequence[Span]):
    """The spans of one batch, one per record, in record order."""

    __slots__ = ("_spans",)

    def __init__(self, spans: list[Span]) -> None:
        self._spans = spans

    def __len__(self) -> int:
        return len(self._spans)

    def __getitem__(self, i: int) -> Span:  # type: ignore[override]
        return self._spans[i]

    def __iter__(self) -> Iterator[Span]:
        return iter(self._spans)

    def headers(self, i: int) -> list[tuple[str, bytes]]:
        """Headers to forward with what record ``i`` becomes on the next topic."""
        return _span_headers(self._spans[i])

    def trace_id(self, i: int) -> str:
        """Record ``i``'s trace id, 32 hex digits."""
        return trace_id_hex(self._spans[i])

    def fail(self, i: int, reason: str | BaseException) -> None:
        """Mark record ``i``'s span ERROR (e.g. it went to the dead-letter topic)."""
        span = self._spans[i]
        if isinstance(reason, BaseException):
            span.record_exception(reason)
            reason = f"{type(reason).__name__}: {reason}"
        span.set_status(Status(StatusCode.ERROR, str(reason)[:500]))


# --------------------------------------------------------------------------- telemetry


class Telemetry:
    """Tracer, meter, audit logger and the pipeline's metric instruments, on private providers."""

    def __init__(
        self,
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
        logger_provider: LoggerProvider,
        *,
        closeables: Sequence[IO[str]] = (),
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.logger_provider = logger_provider
        self.tracer: Tracer = tracer_provider.get_tracer(INSTRUMENTATION)
        self.meter: Meter = meter_provider.get_meter(INSTRUMENTATION)
        self.logger: OtelLogger = logger_provider.get_logger("argos.audit")
        self._closeables = list(closeables)
        self._closed = False
        self._lock = threading.Lock()
        self._lag_callbacks: list[LagCallback] = []
        self._lag_gauge: Any = None

        m = self.meter
        self.events = m.create_counter(
            "argos.events", unit="{event}", description="Events a stage handled, by outcome."
        )
        self.deadletters = m.create_counter(
            "argos.deadletters", unit="{event}", description="Events sent to the dead-letter topic."
        )
        self.stage_latency = m.create_histogram(
            "argos.stage.latency",
            unit="s",
            description="Time a stage spent on a batch or record.",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS_S,
        )
        self.recall_latency = m.create_histogram(
            "argos.recall.latency",
            unit="s",
            description="Time to answer one recall request.",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS_S,
        )
        self.operation_latency = m.create_histogram(
            "argos.operation.latency",
            unit="s",
            description="Time of one operation on a store (Milvus calls, state-table writes).",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS_S,
        )

    # -- metrics

    def count_events(self, stage: str, outcome: str, n: int = 1) -> None:
        """``argos.events`` += n {stage, outcome}."""
        if n:
            self.events.add(n, {"stage": stage, "outcome": outcome})

    def count_deadletters(self, stage: str, reason_kind: str, n: int = 1) -> None:
        """``argos.deadletters`` += n {stage, reason_kind}."""
        if n:
            self.deadletters.add(n, {"stage": stage, "reason_kind": reason_kind})

    def record_stage_latency(self, stage: str, seconds: float) -> None:
        self.stage_latency.record(seconds, {"stage": stage})

    def record_recall_latency(self, seconds: float) -> None:
        self.recall_latency.record(seconds)

    def record_operation_latency(self, operation: str, seconds: float) -> None:
        self.operation_latency.record(seconds, {"operation": operation})

    @contextmanager
    def time_stage(self, stage: str) -> Iterator[None]:
        """Record the block's wall time in ``argos.stage.latency`` {stage} (also on error)."""
        t0 = perf_counter()
        try:
            yield
        finally:
            self.record_stage_latency(stage, perf_counter() - t0)

    def observe_lag(self, callback: LagCallback) -> None:
        """Report ``argos.consumer.lag`` {topic, partition} from ``callback()`` at each collection
        (``{(topic, partition): lag}``). Several callbacks may be registered; a failing one is
        logged and skipped."""
        with self._lock:
            self._lag_callbacks.append(callback)
            if self._lag_gauge is None:
                self._lag_gauge = self.meter.create_observable_gauge(
                    "argos.consumer.lag",
                    callbacks=[self._observe_lag],
                    unit="{message}",
                    description="Messages between the committed offset and the log end.",
                )

    def observe_system(self, callback: Callable[[], Mapping[str, float]]) -> None:
        """Report ``argos.system.<name>`` gauges (memory, CPU, cache hit rates, ...) from
        ``callback()`` at each collection; a failing callback is logged and skipped."""

        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            try:
                values = callback()
            except Exception:  # noqa: BLE001 - a metric must not fail the collection
                log.warning("system metrics callback failed", exc_info=True)
                return []
            return [Observation(float(v), {"argos.metric": k}) for k, v in values.items()]

        self.meter.create_observable_gauge(
            "argos.system",
            callbacks=[observe],
            description="Per-worker system metrics, one series per argos.metric: rss_bytes, "
            "cpu_seconds, cache hit rates, hot-index rows and bytes, uptime.",
        )

    def _observe_lag(self, _options: CallbackOptions) -> Iterable[Observation]:
        out: list[Observation] = []
        for cb in list(self._lag_callbacks):
            try:
                lags = cb()
            except Exception:  # noqa: BLE001 - a metric must not fail the collection
                log.warning("consumer lag callback failed", exc_info=True)
                continue
            for (topic, partition), lag in lags.items():
                where = {MESSAGING_DESTINATION: topic, MESSAGING_PARTITION: str(partition)}
                out.append(Observation(int(lag), where))
        return out

    # -- traces

    @contextmanager
    def batch_spans(
        self,
        stage: str,
        records: Iterable[Any],
        attrs: Callable[[Any], Mapping[str, Any]] | None = None,
        *,
        kind: SpanKind = SpanKind.CONSUMER,
    ) -> Iterator[BatchSpans]:
        """One span named ``stage`` per record, each a child of the context in that record's
        ``headers`` (a root span when it has none), with the Kafka attributes and ``attrs(rec)``.
        All end on exit; an exception marks them all ERROR and propagates."""
        tracer = self.tracer
        start = time_ns()
        spans: list[Span] = []
        for rec in records:
            a: dict[str, Any] = {MESSAGING_SYSTEM: "kafka"}
            topic = getattr(rec, "topic", None)
            if topic is not None:
                a[MESSAGING_DESTINATION] = topic
            partition = getattr(rec, "partition", None)
            if partition is not None:
                a[MESSAGING_PARTITION] = str(partition)
            offset = getattr(rec, "offset", None)
            if offset is not None:
                a[MESSAGING_OFFSET] = offset
            if attrs is not None:
                a.update((k, v) for k, v in attrs(rec).items() if v is not None)
            spans.append(
                tracer.start_span(
                    stage,
                    context=extract_context(getattr(rec, "headers", None)),
                    kind=kind,
                    attributes=a,
                    start_time=start,
                    record_exception=False,
                    set_status_on_exception=False,
                )
            )
        batch = BatchSpans(spans)
        try:
            yield batch
        except BaseException as exc:
            status = Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:500])
            for s in spans:
                s.record_exception(exc)
                s.set_status(status)
            raise
        finally:
            end = time_ns()
            for s in spans:
                s.end(end_time=end)

    @contextmanager
    def span(
        self,
        name: str,
        headers: Headers | None = None,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        **attrs: Any,
    ) -> Iterator[Span]:
        """A span for one operation (a recall request), current inside the block. Its parent is
        the context in ``headers`` when given (a root span if they carry none), else the current
        span. An exception is recorded, sets ERROR, and propagates."""
        ctx = extract_context(headers) if headers is not None else None
        with self.tracer.start_as_current_span(
            name,
            context=ctx,
            kind=kind,
            attributes={k: v for k, v in attrs.items() if v is not None},
        ) as s:
            yield s

    # -- lifecycle

    def force_flush(self, timeout_millis: int = 10_000) -> None:
        self.tracer_provider.force_flush(timeout_millis)
        self.meter_provider.force_flush(timeout_millis)
        self.logger_provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Flush and shut down all providers (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self.shutdown)
        for provider in (self.tracer_provider, self.logger_provider, self.meter_provider):
            try:
                provider.force_flush()
                provider.shutdown()
            except Exception:  # noqa: BLE001 - shutting down: report, go on with the others
                name = type(provider).__name__
                log.warning("telemetry shutdown of %s failed", name, exc_info=True)
        for f in self._closeables:
            try:
                f.close()
            except OSError:
                pass


# --------------------------------------------------------------------------- setup


def _queue_size(env_prefix: str) -> int:
    """The batch processor's queue: the OTel variable when set, else 32768 (the SDK's 2048
    drops spans at a few thousand records a second)."""
    raw = os.environ.get(f"{env_prefix}_MAX_QUEUE_SIZE")
    try:
        return max(1, int(raw)) if raw else 32768
    except ValueError:
        return 32768


def _mode(settings: Settings | None) -> str:
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return "otlp"
    return settings.otel_exporter if settings is not None else "none"


def _json_line(item: Any) -> str:
    """Console exporters write JSON Lines (one compact object per line: greppable, parseable)."""
    return item.to_json(indent=None) + "\n"


@lru_cache(maxsize=1024)
def _iso(ns: int) -> str:
    """``ns_to_iso_str``, remembered: a batch's spans share their start and end times."""
    return ns_to_iso_str(ns)


_RESOURCES: dict[int, tuple[Resource, str]] = {}


def _resource_json(resource: Resource) -> str:
    """A resource's JSON, once per resource object (``Resource.__hash__`` encodes it each
    time, so the object's identity is the key; it is kept, so the id is never reused)."""
    hit = _RESOURCES.get(id(resource))
    if hit is None or hit[0] is not resource:
        hit = _RESOURCES[id(resource)] = (resource, json.dumps(json.loads(resource.to_json())))
    return hit[1]


def _context(ctx: SpanContext) -> dict[str, str]:
    return {
        "trace_id": f"0x{ctx.trace_id:032x}",
        "span_id": f"0x{ctx.span_id:016x}",
        "trace_state": repr(ctx.trace_state),
    }


def _attributes(attributes: Any) -> dict[str, Any] | None:
    return dict(attributes) if attributes is not None else None


def _span_line(span: ReadableSpan) -> str:
    """``_json_line`` for a span, the same text as ``ReadableSpan.to_json(indent=None)``, in a
    third of its time (profiled: the SDK's version was a tenth of a busy worker's GIL time):
    the resource (one per process) is encoded once, not per span, and the timestamps a batch
    of spans shares are formatted once."""
    status: dict[str, str] = {"status_code": span.status.status_code.name}
    if span.status.description:
        status["description"] = span.status.description
    head = json.dumps(
        {
            "name": span.name,
            "context": _context(span.context) if span.context else None,
            "kind": str(span.kind),
            "parent_id": f"0x{span.parent.span_id:016x}" if span.parent is not None else None,
            "start_time": _iso(span.start_time) if span.start_time else None,
            "end_time": _iso(span.end_time) if span.end_time else None,
            "status": status,
            "attributes": _attributes(span.attributes),
            "events": [
                {
                    "name": e.name,
                    "timestamp": _iso(e.timestamp),
                    "attributes": _attributes(e.attributes),
                }
                for e in span.events
            ],
            "links": [
                {"context": _context(k.context), "attributes": _attributes(k.attributes)}
                for k in span.links
            ],
        }
    )
    return f'{head[:-1]}, "resource": {_resource_json(span.resource)}}}\n'


class _BytesEncoder(json.JSONEncoder):
    """The SDK log exporter's encoder: bytes bodies and attributes as base64."""

    def default(self, o: Any) -> Any:
        if isinstance(o, bytes):
            return base64.b64encode(o).decode()
        return super().default(o)


def _log_line(record: Any) -> str:
    """``_json_line`` for a log record (an audit record: one per recall and per transition),
    the same text as ``ReadableLogRecord.to_json(indent=None)`` with the resource encoded once
    per process instead of once per record."""
    rec = record.log_record
    fields = {
        "body": rec.body,
        "severity_number": rec.severity_number.value if rec.severity_number is not None else None,
        "severity_text": rec.severity_text,
        "attributes": dict(rec.attributes) if bool(rec.attributes) else None,
        "dropped_attributes": record.dropped_attributes,
        "timestamp": ns_to_iso_str(rec.timestamp) if rec.timestamp is not None else None,
        "observed_timestamp": ns_to_iso_str(rec.observed_timestamp),
        "trace_id": f"0x{rec.trace_id:032x}" if rec.trace_id is not None else "",
        "span_id": f"0x{rec.span_id:016x}" if rec.span_id is not None else "",
        "trace_flags": rec.trace_flags,
    }
    head = json.dumps(fields, cls=_BytesEncoder)
    tail = json.dumps({"event_name": rec.event_name or ""})
    return f'{head[:-1]}, "resource": {_resource_json(record.resource)}, {tail[1:]}\n'


def setup_telemetry(
    settings: Settings | None,
    service_name: str = "argos-worker",
    *,
    span_exporter: SpanExporter | None = None,
    log_exporter: LogRecordExporter | None = None,
    metric_reader: MetricReader | None = None,
    set_global: bool = False,
) -> Telemetry:
    """Build a ``Telemetry`` for ``service_name``.

    Per signal, an exporter passed here wins; otherwise OTLP/HTTP when
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set or ``settings.otel_exporter == "otlp"``, console
    (``settings.otel_console_file``, appended, else stdout) for ``"console"``, nothing for
    ``"none"`` (or ``settings=None``). In-memory exporters get synchronous processors (tests see
    spans at once), the others batch in a background thread. ``set_global`` also installs the
    providers as the process-wide ones.
    """
    mode = _mode(settings)
    resource = Resource.create({SERVICE_NAME: service_name})
    closeables: list[IO[str]] = []

    console_out: IO[str] | None = None

    def console() -> IO[str]:
        nonlocal console_out
        if console_out is None:
            path = settings.otel_console_file if settings is not None else None
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                console_out = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
                closeables.append(console_out)
            else:
                console_out = sys.stdout
        return console_out

    if span_exporter is None and mode == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter()
    elif span_exporter is None and mode == "console":
        span_exporter = ConsoleSpanExporter(
            service_name=service_name, out=console(), formatter=_span_line
        )
    if log_exporter is None and mode == "otlp":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

        log_exporter = OTLPLogExporter()
    elif log_exporter is None and mode == "console":
        log_exporter = ConsoleLogRecordExporter(out=console(), formatter=_log_line)
    if metric_reader is None and mode == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        metric_reader = PeriodicExportingMetricReader(OTLPMetricExporter())
    elif metric_reader is None and mode == "console":
        metric_reader = PeriodicExportingMetricReader(
            ConsoleMetricExporter(out=console(), formatter=_json_line)
        )

    # nothing exports spans: keep trace context (ids still propagate and name audit records)
    # but record nothing, so "off" costs ~nothing per record
    sampler = ALWAYS_OFF if span_exporter is None else None
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False, sampler=sampler)
    if span_exporter is not None:
        if isinstance(span_exporter, InMemorySpanExporter):
            tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
        else:
            tracer_provider.add_span_processor(
                BatchSpanProcessor(span_exporter, max_queue_size=_queue_size("OTEL_BSP"))
            )
    logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    if log_exporter is not None:
        if isinstance(log_exporter, InMemoryLogRecordExporter):
            logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
        else:
            logger_provider.add_log_record_processor(
                BatchLogRecordProcessor(log_exporter, max_queue_size=_queue_size("OTEL_BLRP"))
            )
    meter_provider = MeterProvider(
        metric_readers=[metric_reader] if metric_reader is not None else [],
        resource=resource,
        shutdown_on_exit=False,
    )
    if set_global:
        from opentelemetry import metrics
        from opentelemetry._logs import set_logger_provider

        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        set_logger_provider(logger_provider)

    tel = Telemetry(tracer_provider, meter_provider, logger_provider, closeables=closeables)
    atexit.register(tel.shutdown)
    return tel


__all__ = [
    "LATENCY_BUCKETS_S",
    "BatchSpans",
    "Telemetry",
    "extract_context",
    "inject_headers",
    "merge_headers",
    "setup_telemetry",
    "span_id_hex",
    "trace_id_hex",
]
