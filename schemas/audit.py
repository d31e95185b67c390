"""Audit record: what ``argos.audit`` (and the OTel log) holds for every audited operation."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AuditAction = Literal["create", "recall", "transition", "delete", "archive", "denied", "reencrypt"]
DetailValue = str | int | float | bool | None


class AuditRecord(BaseModel):
    """One audited operation on memory: who did what to which memory, with what outcome.

    ``audit_id`` is deterministic (a hash of the operation), so an operation audited again after a
    crash replay has the same id and consumers dedupe by it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, title="AuditRecord")

    audit_id: str = Field(
        pattern=r"^[0-9a-f]{32}$",
        description="Deterministic id of the operation (blake2b-128, hex); the dedupe key.",
    )
    actor: str = Field(
        min_length=1, description="Who: the access token's subject, the agent id, or 'system'."
    )
    namespace: str = Field(description="The namespace the operation touched.")
    agent_id: str | None = Field(None, description="The agent whose memory it is, if one.")
    memory_id: str | None = Field(None, description="The memory, when one memory is concerned.")
    action: AuditAction = Field(
        description="create, recall, transition, delete (decayed or deleted), archive, denied "
        "(refused request) or reencrypt (key rotation)."
    )
    outcome: str = Field(
        description="Result: 'ok', the lifecycle state reached (e.g. 'decayed'), or the HTTP "
        "status of a refusal ('401', '403', '429')."
    )
    trace_id: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{32}$",
        description="W3C trace id (32 hex digits) of the operation's trace, if traced.",
    )
    event_ts: float = Field(
        description="Event time of the operation (POSIX s; the agent's clock where it has one)."
    )
    audit_ts: float = Field(description="Wall-clock POSIX seconds when the record was made.")
    detail: dict[str, DetailValue] = Field(
        default_factory=dict,
        description="Flat extra facts (hits, reason, retention, ...): scalar values only.",
    )
