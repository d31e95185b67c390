"""Memory event v1: what an agent publishes to ``argos.memory.events``.

The memory model comes from the ArgOS seed: episodic (an event: when, where, who, emotion),
semantic (a concept or fact) and procedural (an action sequence or skill) memories.

>>> e = parse_memory_event(b'{"schema_version": 1, "memory_id": "m-1", "agent_id": "a-1",'
...     b' "namespace": "world", "type": "episodic", "content": "saw a fox",'
...     b' "event_time": "2026-01-01T00:00:00Z"}')
>>> (e.agent_id, e.type.value, e.importance)
('a-1', 'episodic', 0.5)
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

SUPPORTED_SCHEMA_VERSIONS: tuple[int, ...] = (1,)
MAX_EVENT_BYTES = 64 * 1024
MAX_CONTENT_CHARS = 8192
MAX_EMBEDDING_DIM = 4096

Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$"),
]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
Text = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_CONTENT_CHARS, pattern=r"\S"),
]


class SchemaVersionError(ValueError):
    """The event names a ``schema_version`` this build does not understand."""


class MemoryType(StrEnum):
    """The three memory systems of the ArgOS seed."""

    episodic = "episodic"
    semantic = "semantic"
    procedural = "procedural"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Emotion(_Frozen):
    """The agent's affect when the memory formed (circumplex model)."""

    valence: float = Field(0.0, ge=-1.0, le=1.0, description="Unpleasant (-1) to pleasant (1).")
    arousal: float = Field(0.0, ge=0.0, le=1.0, description="Calm (0) to excited (1).")


class Position(_Frozen):
    """Where in the simulated world the memory formed."""

    x: float
    y: float
    z: float | None = None


class MemoryEvent(_Frozen):
    """One memory, as published by an agent (schema v1)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
        title="MemoryEvent",
        json_schema_extra={"$id": "https://argos.dev/schemas/memory_event.v1.json"},
    )

    schema_version: Literal[1] = Field(description="Contract version; only 1 exists.")
    memory_id: Identifier = Field(description="Client-made id; the idempotency key of the memory.")
    agent_id: Identifier = Field(description="The agent that owns the memory; the Kafka key.")
    namespace: Identifier = Field(description="The world or tenant; recall never crosses it.")
    type: MemoryType
    content: Text = Field(description="What is remembered, as text.")
    steps: list[Text] | None = Field(
        None, max_length=64, description="Procedural memories only: the action sequence."
    )
    importance: float = Field(0.5, ge=0.0, le=1.0)
    emotion: Emotion = Field(default_factory=Emotion)
    position: Position | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    event_time: AwareDatetime = Field(
        description="Simulation time (RFC 3339 with offset); all lifecycle logic runs on it."
    )
    derived_from: list[Identifier] | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="A memory distilled from others (e.g. a semantic memory consolidated from a "
        "cluster of episodes): the ids of its sources. Such memories are not clustered or "
        "de-duplicated again.",
    )
    embedding: list[float] | None = Field(
        None,
        min_length=1,
        max_length=MAX_EMBEDDING_DIM,
        description="Optional vector the agent brings; must match the pipeline's model dimension.",
    )

    @model_validator(mode="after")
    def _steps_only_for_procedural(self) -> MemoryEvent:
        if self.steps is not None and self.type is not MemoryType.procedural:
            raise ValueError("steps are allowed only on procedural memories")
        return self

    @property
    def event_ts(self) -> float:
        """Event time as POSIX seconds."""
        return self.event_time.timestamp()

    def to_json_bytes(self) -> bytes:
        """The event as sent: fields the agent left out stay out (so a consumer can tell a
        default importance from one the agent gave)."""
        return self.model_dump_json(exclude_none=True, exclude_unset=True).encode()


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def parse_memory_event(raw: bytes | str | dict[str, Any]) -> MemoryEvent:
    """Parse and validate one memory event.

    Raises ``ValueError`` (or its subclass ``SchemaVersionError``) whose message is the reason,
    suitable for a dead-letter record.
    """
    if isinstance(raw, dict):
        data: Any = raw
    else:
        if isinstance(raw, str):
            raw = raw.encode()
        if len(raw) > MAX_EVENT_BYTES:
            raise ValueError(f"event is {len(raw)} bytes; the limit is {MAX_EVENT_BYTES}")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"event is not UTF-8: {exc.reason} at byte {exc.start}") from None
        try:
            data = json.loads(text)
        except RecursionError:
            raise ValueError("event JSON is nested too deeply") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"event is not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise ValueError(f"event must be a JSON object, got {type(data).__name__}")
    version = data.get("schema_version")
    if version is None:
        raise SchemaVersionError("schema_version is missing")
    if isinstance(version, bool) or version not in SUPPORTED_SCHEMA_VERSIONS:
        raise SchemaVersionError(
            f"unsupported schema_version {version!r}; supported: {list(SUPPORTED_SCHEMA_VERSIONS)}"
        )
    try:
        return MemoryEvent.model_validate(data)
    except ValidationError as exc:
        raise ValueError(_reason(exc)) from None


def utc_iso(ts: datetime) -> str:
    """RFC 3339 text of an aware datetime."""
    return ts.isoformat().replace("+00:00", "Z")
