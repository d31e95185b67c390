"""Audit records: deterministic ids, lifecycle mapping, OTel log emission, topic encoding."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from pydantic import ValidationError

from pipelines.audit import (
    audit_id,
    denied_record,
    emit,
    from_lifecycle,
    from_value,
    recall_record,
    to_kv,
)
from pipelines.settings import Settings
from pipelines.telemetry import Telemetry, setup_telemetry, trace_id_hex
from schemas.audit import AuditRecord
from schemas.lifecycle import LifecycleEvent

TRACE = "0af7651916cd43dd8448eb211c80319c"
NOW = 1_700_000_100.5


def lifecycle(from_state: str, to_state: str, cause: str | None, **kw: Any) -> LifecycleEvent:
    base: dict[str, Any] = {
        "namespace": "ns",
        "agent_id": "agent-1",
        "memory_id": "m-1",
        "from_state": from_state,
        "to_state": to_state,
        "event_ts": 1_700_000_000.25,
        "retention": 0.5,
        "stability_s": 3600.0,
        "recalls": 2,
        "cause": cause,
    }
    base.update(kw)
    return LifecycleEvent(**base)


@pytest.fixture
def tel_logs() -> Iterator[tuple[Telemetry, InMemoryLogRecordExporter]]:
    logs = InMemoryLogRecordExporter()
    tel = setup_telemetry(Settings(otel_exporter="none"), log_exporter=logs)
    yield tel, logs
    tel.shutdown()


# ------------------------------------------------------------------ ids


def test_audit_id_is_deterministic_hex() -> None:
    a = audit_id("create", "ns", "agent-1", "m-1", "x")
    assert a == audit_id("create", "ns", "agent-1", "m-1", "x")
    assert len(a) == 32 and int(a, 16) >= 0 and a == a.lower()


def test_audit_id_distinct_for_distinct_operations() -> None:
    base = ("create", "ns", "agent-1", "m-1", "x")
    variants = [
        ("recall", "ns", "agent-1", "m-1", "x"),
        ("create", "ns2", "agent-1", "m-1", "x"),
        ("create", "ns", "agent-2", "m-1", "x"),
        ("create", "ns", "agent-1", "m-2", "x"),
        ("create", "ns", "agent-1", "m-1", "y"),
        ("create", "ns", "agent-1", None, "x"),
        ("create", "ns", "agent-1", "None", "x"),
        ("create", "ns", None, "m-1", "x"),
        # no separator ambiguity: moving text between fields changes the id
        ("create", "ns|agent-1", "", "m-1", "x"),
    ]
    ids = {audit_id(*base)} | {audit_id(*v) for v in variants}
    assert len(ids) == len(variants) + 1


# ------------------------------------------------------------------ lifecycle


@pytest.mark.parametrize(
    ("from_state", "to_state", "cause", "action", "actor"),
    [
        ("created", "active", "created", "create", "agent-1"),
        ("active", "decayed", "clock", "delete", "system"),
        ("decayed", "deleted", "clock", "delete", "system"),
        ("consolidated", "archived", "clock", "archive", "system"),
        ("active", "consolidated", "recall", "transition", "system"),
        ("active", "consolidated", "cluster", "transition", "system"),
        ("active", "active", "duplicate", "transition", "system"),
    ],
)
def test_from_lifecycle_action_mapping(
    from_state: str, to_state: str, cause: str, action: str, actor: str
) -> None:
    ev = lifecycle(from_state, to_state, cause)
    rec = from_lifecycle(ev, TRACE, NOW)
    assert rec.action == action
    assert rec.outcome == to_state
    assert rec.actor == actor
    assert (rec.namespace, rec.agent_id, rec.memory_id) == ("ns", "agent-1", "m-1")
    assert rec.trace_id == TRACE
    assert rec.event_ts == ev.event_ts and rec.audit_ts == NOW
    assert rec.detail["from_state"] == from_state and rec.detail["cause"] == cause
    assert rec.detail["retention"] == 0.5 and rec.detail["recalls"] == 2


def test_from_lifecycle_replay_gives_the_same_id() -> None:
    ev = lifecycle("active", "decayed", "clock")
    first = from_lifecycle(ev, TRACE, NOW)
    replayed = from_lifecycle(
        LifecycleEvent.model_validate_json(ev.model_dump_json()), None, NOW + 60
    )
    assert replayed.audit_id == first.audit_id  # trace and wall clock differ: same operation
    others = [
        lifecycle("active", "decayed", "clock", event_ts=1_700_000_000.5),
        lifecycle("active", "consolidated", "recall"),
        lifecycle("active", "decayed", "clock", memory_id="m-2"),
        lifecycle("active", "active", "duplicate", related=["dup-1"]),
        lifecycle("active", "active", "duplicate", related=["dup-2"]),
    ]
    ids = {first.audit_id} | {from_lifecycle(e, None, NOW).audit_id for e in others}
    assert len(ids) == len(others) + 1


# ------------------------------------------------------------------ recall, denied


def test_recall_record() -> None:
    rec = recall_record("svc-token", "ns", "agent-1", ["m-1", "m-2"], TRACE, 1.5, NOW, "req-9")
    assert rec.action == "recall" and rec.outcome == "ok"
    assert rec.memory_id is None and rec.actor == "svc-token"
    assert rec.detail["hits"] == 2 and rec.detail["memory_ids"] == "m-1,m-2"
    assert rec.event_ts == 1.5 and rec.audit_ts == NOW
    again = recall_record("svc-token", "ns", "agent-1", ["m-1", "m-2"], None, 1.5, NOW + 1, "req-9")
    assert again.audit_id == rec.audit_id
    other = recall_record("svc-token", "ns", "agent-1", [], None, 1.5, NOW, "req-10")
    assert other.audit_id != rec.audit_id and other.detail["hits"] == 0


def test_denied_record() -> None:
    rec = denied_record("intruder", "ns", None, 403, "x" * 900, TRACE, NOW, "req-1")
    assert rec.action == "denied" and rec.outcome == "403"
    assert rec.detail["status"] == 403 and len(str(rec.detail["reason"])) == 500
    assert rec.event_ts == NOW and rec.agent_id is None
    assert denied_record("", "ns", None, 401, "no token", None, NOW, "r").actor == "anonymous"
    limited = denied_record("intruder", "ns", None, 429, "rate", None, NOW, "req-1")
    assert limited.audit_id != rec.audit_id


# ------------------------------------------------------------------ emit


def test_emit_sends_a_log_record_with_the_fields(
    tel_logs: tuple[Telemetry, InMemoryLogRecordExporter],
) -> None:
    tel, logs = tel_logs
    rec = from_lifecycle(lifecycle("active", "archived", "clock"), TRACE, NOW)
    emit(tel.logger, rec)
    (out,) = logs.get_finished_logs()
    lr = out.log_record
    assert AuditRecord.model_validate_json(lr.body) == rec
    attrs = dict(lr.attributes)
    assert attrs["argos.audit.audit_id"] == rec.audit_id
    assert attrs["argos.audit.action"] == "archive"
    assert attrs["argos.audit.outcome"] == "archived"
    assert attrs["argos.audit.namespace"] == "ns"
    assert attrs["argos.audit.memory_id"] == "m-1"
    assert attrs["argos.audit.trace_id"] == TRACE
    assert attrs["argos.audit.detail.retention"] == 0.5
    assert attrs["argos.audit.detail.cause"] == "clock"
    assert lr.severity_number is SeverityNumber.INFO
    assert lr.event_name == "argos.audit"
    assert lr.timestamp == int(NOW * 1e9)


def test_emit_denied_is_warn_and_drops_none_attributes(
    tel_logs: tuple[Telemetry, InMemoryLogRecordExporter],
) -> None:
    tel, logs = tel_logs
    emit(tel.logger, denied_record("x", "ns", None, 401, "no token", None, NOW, "r"))
    (out,) = logs.get_finished_logs()
    assert out.log_record.severity_number is SeverityNumber.WARN
    attrs = dict(out.log_record.attributes)
    assert "argos.audit.agent_id" not in attrs and "argos.audit.trace_id" not in attrs
    assert attrs["argos.audit.outcome"] == "401"


def test_emit_inside_a_span_links_the_log_to_it(
    tel_logs: tuple[Telemetry, InMemoryLogRecordExporter],
) -> None:
    tel, logs = tel_logs
    with tel.span("argos.recall") as span:
        rec = recall_record("t", "ns", "a", ["m"], trace_id_hex(span), 1.0, NOW, "r1")
        emit(tel.logger, rec)
    (out,) = logs.get_finished_logs()
    assert out.log_record.trace_id == span.get_span_context().trace_id
    assert out.log_record.span_id == span.get_span_context().span_id


# ------------------------------------------------------------------ the record


def test_audit_record_json_round_trip_and_topic_kv() -> None:
    rec = recall_record("t", "ns-é", "a", ["m-1"], TRACE, 1.0, NOW, "r1")
    rec = rec.model_copy(update={"detail": {**rec.detail, "cached": True, "score": 0.25}})
    key, value = to_kv(rec)
    assert key == "ns-é".encode()
    assert json.loads(value)["audit_id"] == rec.audit_id
    back = from_value(value)
    assert back == rec
    assert back.detail["cached"] is True and back.detail["score"] == 0.25
    assert AuditRecord.model_validate(rec.model_dump()) == rec


def test_audit_record_is_strict() -> None:
    rec = from_lifecycle(lifecycle("active", "decayed", "clock"), None, NOW)
    with pytest.raises(ValidationError):
        rec.action = "create"  # type: ignore[misc]  # frozen
    data = rec.model_dump()
    for bad in (
        {"extra": 1},
        {"action": "steal"},
        {"trace_id": "xyz"},
        {"audit_id": "short"},
        {"detail": {"nested": {"a": 1}}},
    ):
        with pytest.raises(ValidationError):
            AuditRecord.model_validate({**data, **bad})


def test_audit_record_json_schema() -> None:
    schema = AuditRecord.model_json_schema()
    assert schema["title"] == "AuditRecord"
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert set(schema["required"]) >= {"audit_id", "actor", "namespace", "action", "outcome"}
    assert all(p.get("description") for p in props.values())
    assert set(props["action"]["enum"]) == {
        "create",
        "recall",
        "transition",
        "delete",
        "archive",
        "denied",
        "reencrypt",
    }
