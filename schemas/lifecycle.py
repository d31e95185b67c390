"""Lifecycle contracts: recalls that reinforce memories, and the state transitions that follow."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

State = Literal["created", "active", "consolidated", "decayed", "archived", "deleted"]


class AccessEvent(BaseModel):
    """``argos.memory.access``: an agent recalled these memories (reinforces them)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="AccessEvent")

    schema_version: Literal[1] = 1
    namespace: str
    agent_id: str
    memory_ids: list[str] = Field(max_length=100)
    event_ts: float | None = Field(
        None, description="Simulation time of the recall (POSIX s); none = the agent's clock."
    )
    query: str | None = None
    outcome: Literal["success", "failure"] | None = Field(
        None,
        description="The agent used what it recalled (a procedure) and it worked or not; a "
        "success reinforces a procedural memory once more.",
    )


class LifecycleEvent(BaseModel):
    """``argos.memory.lifecycle``: one memory moved from one state to another, or (with
    ``from_state == to_state`` and ``cause="duplicate"``) was strengthened by a near-duplicate."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="LifecycleEvent")

    schema_version: Literal[1] = 1
    namespace: str
    agent_id: str
    memory_id: str
    from_state: State
    to_state: State
    event_ts: float = Field(description="The event time (agent's clock) of the transition.")
    retention: float = Field(ge=0, le=1, description="R = exp(-dt/S) at the transition.")
    stability_s: float = Field(gt=0, description="Stability S in event-time seconds.")
    recalls: int = Field(ge=0)
    cause: Literal["created", "clock", "recall", "cluster", "duplicate"] | None = Field(
        None,
        description="Why: created; clock (retention or idleness on event time); recall "
        "(recalled often); cluster (inside a stable cluster); duplicate (a near-copy arrived).",
    )
    related: list[str] = Field(
        default_factory=list,
        description="duplicate: the near-copy's memory id (not stored); consolidated by cluster: "
        "the cluster id and the derived semantic memory id.",
    )
