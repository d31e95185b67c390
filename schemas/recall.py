"""Recall API contract: what an agent asks and what it gets back."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from schemas.memory_event import (
    Coordinate,
    EventTime,
    Identifier,
    MemoryType,
    Position,
    Tag,
    Text,
    _clean_line,
)

ClusterId = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_clean_line)]

RecallState = Literal["active", "consolidated", "archived"]
"""Lifecycle states a recall may return (decayed and deleted memories never are)."""


class Near(BaseModel):
    """A spatial filter: memories formed within ``radius`` of (x, y[, z]).

    Without ``z`` the distance is measured in the x-y plane; with ``z`` in 3-D, and memories
    without a z coordinate do not match. A memory exactly ``radius`` away matches.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, title="Near")

    x: Coordinate
    y: Coordinate
    z: Coordinate | None = None
    radius: float = Field(gt=0, description="Euclidean distance, in world units (> 0).")


class RecallWeights(BaseModel):
    """Score weights: total = relevance * cosine + recency * R + importance * importance."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, title="RecallWeights"
    )

    relevance: float = Field(1.0, ge=0, le=100)
    recency: float = Field(0.5, ge=0, le=100)
    importance: float = Field(0.3, ge=0, le=100)


class RecallRequest(BaseModel):
    """ "What do I remember that is like ``query``?" for one agent in one namespace."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, title="RecallRequest"
    )

    namespace: Identifier
    agent_id: Identifier
    query: Text
    k: int = Field(10, ge=1, le=100)
    types: list[MemoryType] | None = Field(None, description="Only these memory types.")
    event_time: EventTime | None = Field(
        None, description="The agent's simulation time now; the recall reinforces at that time."
    )
    since: EventTime | None = Field(
        None, description="Only memories whose event_time is at or after this."
    )
    until: EventTime | None = Field(
        None, description="Only memories whose event_time is at or before this."
    )
    states: list[RecallState] = Field(
        default_factory=lambda: ["active", "consolidated"],
        min_length=1,
        max_length=3,
        description="Lifecycle states to return; 'archived' needs include_archived.",
    )
    include_archived: bool = Field(
        False, description="Also return archived memories (they are left out otherwise)."
    )
    cluster_id: ClusterId | None = Field(None, description="Only members of this memory cluster.")
    tags: list[Tag] | None = Field(
        None, min_length=1, max_length=32, description="Only memories carrying all these tags."
    )
    near: Near | None = Field(None, description="Only memories formed near this position.")
    weights: RecallWeights | None = Field(
        None, description="Score weights for this recall; none = the worker's settings."
    )

    @model_validator(mode="after")
    def _consistent(self) -> RecallRequest:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError(
                f"since ({self.since.isoformat()}) must not be after until "
                f"({self.until.isoformat()})"
            )
        if len(set(self.states)) != len(self.states):
            raise ValueError(f"states has duplicates: {self.states}")
        if "archived" in self.states and not self.include_archived:
            raise ValueError("states names 'archived': set include_archived to true to get them")
        return self


class ScorePartsModel(BaseModel):
    """A hit's score explained: the raw parts; ``score`` is their weighted sum."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="ScoreParts")

    relevance: float = Field(description="Cosine similarity of the query and the memory.")
    recency: float = Field(description="Retention R = exp(-dt/S) at the recall's event time.")
    importance: float = Field(description="The memory's importance (0..1).")


class RecallHit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, title="RecallHit")

    memory_id: str
    agent_id: str
    namespace: str
    type: MemoryType
    content: str
    importance: float
    event_time: str
    score: float = Field(
        description="Ranking score: the weighted sum of parts when parts are given, else the "
        "cosine similarity of the query and the memory."
    )
    parts: ScorePartsModel | None = None
    state: RecallState | None = None
    cluster_id: str | None = None
    position: Position | None = None
    tags: list[str] | None = None


class RecallResponse(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, title="RecallResponse")

    namespace: str
    agent_id: str
    query: str
    hits: list[RecallHit]
    took_ms: float
    degraded: bool = Field(
        False,
        description="True while the vector store (L3) is unavailable: the answer comes from the "
        "worker's caches (L1, and L2, which holds every memory stored before the outage); "
        "memories published during the outage are not recallable until the store is back.",
    )
