"""Recall API contract: what an agent asks and what it gets back."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.memory_event import Identifier, MemoryType, Text


class RecallRequest(BaseModel):
    """ "What do I remember that is like ``query``?" for one agent in one namespace."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="RecallRequest")

    namespace: Identifier
    agent_id: Identifier
    query: Text
    k: int = Field(10, ge=1, le=100)
    types: list[MemoryType] | None = Field(None, description="Only these memory types.")
    event_time: AwareDatetime | None = Field(
        None, description="The agent's simulation time now; the recall reinforces at that time."
    )


class RecallHit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, title="RecallHit")

    memory_id: str
    agent_id: str
    namespace: str
    type: MemoryType
    content: str
    importance: float
    event_time: str
    score: float = Field(description="Cosine similarity of the query and the memory.")


class RecallResponse(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, title="RecallResponse")

    namespace: str
    agent_id: str
    query: str
    hits: list[RecallHit]
    took_ms: float
