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

DEFAULT_TIME_WEIGHT = 0.1
"""Score bonus of a memory formed in a preferred period: about the spread of cosine scores
between the 1st and the 10th hit of a typical query (chosen a priori; LoCoMo, ``bench/locomo.py``,
evidence recall@10 0.472 -> 0.494 with it)."""
MAX_TIME_WEIGHT = 1.0
DEFAULT_TIME_SLACK_S = 14 * 86400.0
"""Memories formed up to two weeks after a preferred period also get the bonus: they often tell
of it ("last week I ...")."""
MAX_TIME_SLACK_S = 366 * 86400.0


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
    """Score weights: total = relevance * cosine + recency * R + importance * importance
    + lexical * BM25 (scaled to the best candidate's)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, title="RecallWeights"
    )

    relevance: float = Field(1.0, ge=0, le=100)
    recency: float = Field(0.5, ge=0, le=100)
    importance: float = Field(0.3, ge=0, le=100)
    lexical: float = Field(
        0.4,
        ge=0,
        le=100,
        description="Weight of the query's BM25 over the agent's memories, scaled to the best "
        "candidate's (0..1).",
    )


class TimePreference(BaseModel):
    """A soft preference for memories formed in a period of event time (not a filter).

    ``weight`` is added to the score of every memory whose event time lies in
    ``[since, until + slack_s]`` (an omitted bound is open); the hit's ``parts.time`` says
    whether it got the bonus. Without ``since`` and ``until`` it only sets the weight and the
    slack of the period the query names (``RecallRequest.time_hints``).
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, title="TimePreference"
    )

    since: EventTime | None = Field(
        None, description="Start of the preferred period (event time, inclusive)."
    )
    until: EventTime | None = Field(
        None, description="End of the preferred period (event time, inclusive; + slack_s)."
    )
    weight: float = Field(
        DEFAULT_TIME_WEIGHT,
        ge=0,
        le=MAX_TIME_WEIGHT,
        description="Score bonus of a memory in the period (0..1; cosine is in -1..1).",
    )
    slack_s: float = Field(
        DEFAULT_TIME_SLACK_S,
        ge=0,
        le=MAX_TIME_SLACK_S,
        description="Seconds after until that still count (memories formed shortly after a "
        "period often tell of it); 0 for exact bounds.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> TimePreference:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError(
                f"prefer.since ({self.since.isoformat()}) must not be after prefer.until "
                f"({self.until.isoformat()})"
            )
        return self

    @property
    def has_period(self) -> bool:
        """Whether it names a period itself (else the query's, with ``time_hints``)."""
        return self.since is not None or self.until is not None


class RecallRequest(BaseModel):
    """ "What do I remember that is like ``query``?" for one agent in one namespace.

    Time preference: ``prefer`` with ``since``/``until`` favours memories of that period;
    otherwise, with ``time_hints`` (the default), a period the query names ("in May 2023",
    "on 7 May 2023", "in 2022", "in June": the most recent June at the recall's event time, or
    at the agent's clock) is favoured the same way, with ``prefer``'s weight and slack when
    given. Both are soft: a score bonus (``parts.time``), never a filter. ``time_hints`` is on
    by default because it changes nothing unless the query names a period (the ranking is
    computed exactly as without it) and, where one is named, its prototype raised LoCoMo evidence
    recall@10 (0.472 -> 0.494, never below plain dense retrieval on a conversation;
    ``bench/locomo.py``); set it to false for a ranking that ignores what the query says of time.
    """

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
    prefer: TimePreference | None = Field(
        None,
        description="Favour memories formed in a period (a score bonus, not a filter); without "
        "since/until, the weight and slack of the period the query names.",
    )
    time_hints: bool = Field(
        True,
        description="Favour memories of a period the query names ('in May 2023', 'on 7 May "
        "2023', 'in 2022', 'in June'), unless prefer gives one; false: never read the query "
        "for one.",
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
        if self.prefer is not None and not self.prefer.has_period and not self.time_hints:
            raise ValueError(
                "prefer has no since or until and time_hints is false: nothing to prefer "
                "(give prefer.since and/or prefer.until, or turn time_hints on)"
            )
        return self


class ScorePartsModel(BaseModel):
    """A hit's score explained: the raw parts; ``score`` is their weighted sum."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="ScoreParts")

    relevance: float = Field(description="Cosine similarity of the query and the memory.")
    recency: float = Field(description="Retention R = exp(-dt/S) at the recall's event time.")
    importance: float = Field(description="The memory's importance (0..1).")
    time: float | None = Field(
        None,
        description="1 when the memory lies in the recall's preferred period (then the "
        "preference's weight is in the score), else 0; null when the recall preferred none.",
    )
    lexical: float | None = Field(
        None,
        description="The query's BM25 over the agent's memories, divided by the best "
        "candidate's (0..1); null when the search weighed no words.",
    )


class PreferredPeriod(BaseModel):
    """The period a recall favoured: from the request's ``prefer``, or named by the query."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="PreferredPeriod")

    source: Literal["request", "query"]
    since: str | None = Field(description="First event time (RFC 3339); null: open.")
    until: str | None = Field(description="Last event time (RFC 3339), before slack_s; null: open.")
    weight: float
    slack_s: float
    text: str | None = Field(None, description="The words of the query that named the period.")


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
    preferred: PreferredPeriod | None = Field(
        None, description="The period favoured (see RecallRequest.prefer/time_hints); null: none."
    )
    cached: bool = Field(
        False,
        description="True when the answer came from the worker's L1 result cache: the same "
        "request was answered before and none of the agent's memories changed since "
        "(took_ms is then the lookup's time).",
    )
    degraded: bool = Field(
        False,
        description="True while the vector store (L3) is unavailable: the answer comes from the "
        "worker's caches (L1, and L2, which holds every memory stored before the outage); "
        "memories published during the outage are not recallable until the store is back.",
    )
