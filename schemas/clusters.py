"""Cluster change events on ``argos.clusters``: one per create, join, merge, split, remove."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.memory_event import Position


class ClusterEvent(BaseModel):
    """A change of one agent's memory micro-clusters."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="ClusterEvent")

    schema_version: Literal[1] = 1
    kind: Literal["create", "join", "merge", "split", "remove"]
    namespace: str
    agent_id: str
    cluster_id: str
    memory_id: str | None = Field(None, description="The memory that joined, founded or left.")
    size: int = Field(ge=0)
    radius: float = Field(description="Mean cosine distance of members to the centroid.")
    stability: float = Field(ge=0, le=1, description="1 = tight; 0 = at the split limit.")
    event_ts: float = Field(description="Event time (POSIX s) of the memory that caused it.")
    related: list[str] = Field(
        default_factory=list, description="merge: the absorbed cluster ids; split: the new one."
    )
    centroid_f16: str | None = Field(
        None,
        description="The cluster's unit centroid after the change: base64 of little-endian "
        "float16 (absent when the cluster emptied). Population aggregation reads it.",
    )
    position: Position | None = Field(
        None,
        description="Where the agent was when the memory that caused the change formed (its "
        "memory event's position; absent when it had none or no memory caused the change). "
        "The population stage's namespace-wide spatial index reads it.",
    )
