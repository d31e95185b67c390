"""Audit records: build them from what the pipeline does, emit them as OTel logs, and key them
for the ``argos.audit`` topic. Pure helpers: no I/O beyond the logger passed in.

Ids are deterministic, so an operation audited again after a crash replay has the same
``audit_id`` and consumers dedupe by it: nothing is audited twice.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from opentelemetry._logs import Logger as OtelLogger
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context

from schemas.audit import AuditAction, AuditRecord
from schemas.lifecycle import LifecycleEvent

ATTR_PREFIX = "argos.audit."
EVENT_NAME = "argos.audit"
_FLAT_FIELDS = (
    "audit_id",
    "actor",
    "namespace",
    "agent_id",
    "memory_id",
    "action",
    "outcome",
    "trace_id",
    "event_ts",
    "audit_ts",
)


def audit_id(
    action: str,
    namespace: str,
    agent_id: str | None,
    memory_id: str | None,
    discriminator: str,
) -> str:
    """The stable id of one audited operation: blake2b-128 of its parts, 32 hex digits.

    >>> a = audit_id("recall", "ns", "a1", None, "req-1")
    >>> len(a), a == audit_id("recall", "ns", "a1", None, "req-1")
    (32, True)
    >>> a == audit_id("recall", "ns", "a1", None, "req-2")
    False
    """
    # JSON of a list: unambiguous (no separator collisions, None distinct from "None").
    parts = json.dumps([action, namespace, agent_id, memory_id, discriminator], ensure_ascii=False)
    return hashlib.blake2b(parts.encode("utf-8"), digest_size=16).hexdigest()


def lifecycle_action(ev: LifecycleEvent) -> AuditAction:
    """created -> create; to decayed/deleted -> delete; to archived -> archive; else transition."""
    if ev.cause == "created" or ev.from_state == "created" or ev.to_state == "created":
        return "create"
    if ev.to_state in ("decayed", "deleted"):
        return "delete"
    if ev.to_state == "archived":
        return "archive"
    return "transition"


def from_lifecycle(ev: LifecycleEvent, trace_id: str | None, now: float) -> AuditRecord:
    """The audit record of one lifecycle event (actor: the agent for a creation, else 'system')."""
    action = lifecycle_action(ev)
    disc = "|".join(
        (ev.from_state, ev.to_state, repr(float(ev.event_ts)), ev.cause or "", ",".join(ev.related))
    )
    detail: dict[str, str | int | float | bool | None] = {
        "from_state": ev.from_state,
        "to_state": ev.to_state,
        "cause": ev.cause,
        "retention": ev.retention,
        "stability_s": ev.stability_s,
        "recalls": ev.recalls,
    }
    if ev.related:
        detail["related"] = ",".join(ev.related)
    return AuditRecord(
        audit_id=audit_id(action, ev.namespace, ev.agent_id, ev.memory_id, disc),
        actor=ev.agent_id if action == "create" else "system",
        namespace=ev.namespace,
        agent_id=ev.agent_id,
        memory_id=ev.memory_id,
        action=action,
        outcome=ev.to_state,
        trace_id=trace_id,
        event_ts=ev.event_ts,
        audit_ts=now,
        detail=detail,
    )


def recall_record(
    actor: str,
    namespace: str,
    agent_id: str | None,
    memory_ids: list[str],
    trace_id: str | None,
    event_ts: float,
    now: float,
    request_id: str,
) -> AuditRecord:
    """The audit record of one answered recall: which memories were read (``detail.hits``,
    ``detail.memory_ids`` comma-joined)."""
    return AuditRecord(
        audit_id=audit_id("recall", namespace, agent_id, None, request_id),
        actor=actor,
        namespace=namespace,
        agent_id=agent_id,
        memory_id=None,
        action="recall",
        outcome="ok",
        trace_id=trace_id,
        event_ts=event_ts,
        audit_ts=now,
        detail={
            "request_id": request_id,
            "hits": len(memory_ids),
            "memory_ids": ",".join(memory_ids),
        },
    )


def denied_record(
    actor: str,
    namespace: str,
    agent_id: str | None,
    status: int,
    reason: str,
    trace_id: str | None,
    now: float,
    request_id: str,
) -> AuditRecord:
    """The audit record of a refused request (outcome: the HTTP status, e.g. '403')."""
    return AuditRecord(
        audit_id=audit_id("denied", namespace, agent_id, None, f"{request_id}|{status}"),
        actor=actor or "anonymous",
        namespace=namespace,
        agent_id=agent_id,
        memory_id=None,
        action="denied",
        outcome=str(status),
        trace_id=trace_id,
        event_ts=now,
        audit_ts=now,
        detail={"request_id": request_id, "status": status, "reason": reason[:500]},
    )


def attributes(rec: AuditRecord) -> dict[str, Any]:
    """The record as flat OTel attributes: ``argos.audit.<field>`` and
    ``argos.audit.detail.<key>`` (None values left out: OTel attributes cannot hold them)."""
    out: dict[str, Any] = {}
    for name in _FLAT_FIELDS:
        v = getattr(rec, name)
        if v is not None:
            out[ATTR_PREFIX + name] = v
    for k, v in rec.detail.items():
        if v is not None:
            out[f"{ATTR_PREFIX}detail.{k}"] = v
    return out


def emit(tel_logger: OtelLogger, rec: AuditRecord, context: Context | None = None) -> None:
    """Send ``rec`` as an OTel log record: body = its JSON, attributes = :func:`attributes`,
    severity INFO (WARN for ``denied``). ``context`` (default: the current one) links the log to
    its span."""
    denied = rec.action == "denied"
    tel_logger.emit(
        timestamp=int(rec.audit_ts * 1e9),
        observed_timestamp=time.time_ns(),
        context=context,
        severity_number=SeverityNumber.WARN if denied else SeverityNumber.INFO,
        severity_text="WARN" if denied else "INFO",
        body=rec.model_dump_json(),
        attributes=attributes(rec),
        event_name=EVENT_NAME,
    )


def to_kv(rec: AuditRecord) -> tuple[bytes, bytes]:
    """Key (namespace, UTF-8) and value (JSON) of ``rec`` for the ``argos.audit`` topic."""
    return rec.namespace.encode("utf-8"), rec.model_dump_json().encode("utf-8")


def from_value(value: bytes) -> AuditRecord:
    """Parse an ``argos.audit`` record value."""
    return AuditRecord.model_validate_json(value)
