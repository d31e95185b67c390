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
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
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
MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects the event parser reads (a v1 event needs 3)."""
MAX_COORDINATE = 1e12
"""Largest absolute position coordinate: far beyond any world, small enough that squared
distances stay finite."""
MAX_EMBEDDING_VALUE = 1e6
"""Largest absolute value in a brought embedding: its float32 norm stays finite."""

# C0 controls except \t \n \r, DEL, C1 controls, and lone surrogates (not valid Unicode: they
# cannot be encoded as UTF-8, so they would fail later, in a sink, instead of here).
_BAD_TEXT_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_BAD_LINE_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _describe(ch: str) -> str:
    kind = "a lone surrogate" if "\ud800" <= ch <= "\udfff" else "a control character"
    return f"{kind} (U+{ord(ch):04X})"


def _clean_text(value: str) -> str:
    """Text (content, steps, query): no control characters but tab, newline, carriage return."""
    bad = _BAD_TEXT_CHARS.search(value)
    if bad is not None:
        raise ValueError(f"must not contain {_describe(bad.group())} (at index {bad.start()})")
    return value


def _clean_line(value: str) -> str:
    """A one-line string (tags, cluster ids): no control characters at all."""
    bad = _BAD_LINE_CHARS.search(value)
    if bad is not None:
        raise ValueError(f"must not contain {_describe(bad.group())} (at index {bad.start()})")
    return value


def _utc_representable(value: datetime) -> datetime:
    """An aware datetime whose UTC instant is a ``datetime`` too (years 1..9999 in UTC)."""
    try:
        value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("must lie between years 1 and 9999 in UTC") from None
    return value


Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$"),
]
"""ASCII letters, digits and ``._:@/-`` (so never a control character)."""
Tag = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, strip_whitespace=True),
    AfterValidator(_clean_line),
]
Text = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_CONTENT_CHARS, pattern=r"\S"),
    AfterValidator(_clean_text),
]
EventTime = Annotated[AwareDatetime, AfterValidator(_utc_representable)]
"""RFC 3339 with an offset; its instant must be representable in UTC."""
Coordinate = Annotated[float, Field(ge=-MAX_COORDINATE, le=MAX_COORDINATE)]
EmbeddingValue = Annotated[float, Field(ge=-MAX_EMBEDDING_VALUE, le=MAX_EMBEDDING_VALUE)]


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

    x: Coordinate
    y: Coordinate
    z: Coordinate | None = None


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
    event_time: EventTime = Field(
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
    embedding: list[EmbeddingValue] | None = Field(
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


def _printable(part: object, limit: int = 64) -> str:
    """A location part (a field name, or any key a client sent) safe to put in a reason: at most
    ``limit`` characters, with control characters and lone surrogates escaped."""
    text = str(part)
    if len(text) > limit:
        text = text[:limit] + "..."
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        loc = ".".join(_printable(p) for p in err["loc"]) or "event"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"?', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(raw: bytes) -> int:
    """How deeply arrays and objects nest in JSON text (brackets inside strings do not count).

    Linear in the input and without recursion, so it can run before ``json.loads`` (whose
    recursion is what a deeply nested input attacks). Malformed text gets a number too; the
    parser then says what is wrong with it.

    >>> json_depth(b'{"a": [1, {"b": "[[["}]}')
    3
    >>> json_depth(b'"just a string"')
    0
    """
    # A string always matches (an unterminated one runs to the end), so this is one pass.
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for b in brackets:
        if b == 0x5B or b == 0x7B:  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
        elif depth:
            depth -= 1
    return deepest


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key[:64]!r} in an object")
            seen.add(key)
    return obj


def parse_memory_event(raw: bytes | str | dict[str, Any]) -> MemoryEvent:
    """Parse and validate one memory event.

    Raises ``ValueError`` (or its subclass ``SchemaVersionError``) whose message is the reason,
    suitable for a dead-letter record.
    """
    if isinstance(raw, dict):
        data: Any = raw
    else:
        if isinstance(raw, str):
            try:
                raw = raw.encode()
            except UnicodeEncodeError as exc:
                raise ValueError(
                    f"event is not valid Unicode: {exc.reason} at index {exc.start}"
                ) from None
        if len(raw) > MAX_EVENT_BYTES:
            raise ValueError(f"event is {len(raw)} bytes; the limit is {MAX_EVENT_BYTES}")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"event is not UTF-8: {exc.reason} at byte {exc.start}") from None
        # Counting opening brackets is an upper bound on the depth, and cheap: most events have
        # a few, and only those with many are scanned.
        if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and (
            (depth := json_depth(raw)) > MAX_JSON_DEPTH
        ):
            raise ValueError(
                f"event JSON is nested too deeply: {depth} levels; the limit is {MAX_JSON_DEPTH}"
            )
        try:
            data = json.loads(
                text, parse_constant=_reject_constant, object_pairs_hook=_object_without_duplicates
            )
        except RecursionError:  # not reachable after json_depth; kept as a guard
            raise ValueError("event JSON is nested too deeply") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"event is not JSON: {exc.msg} at line {exc.lineno}") from None
        except ValueError as exc:  # a constant, a duplicate key, an integer too long to read
            raise ValueError(f"event is not acceptable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"event must be a JSON object, got {type(data).__name__}")
    version = data.get("schema_version")
    if version is None:
        raise SchemaVersionError("schema_version is missing")
    if isinstance(version, bool) or version not in SUPPORTED_SCHEMA_VERSIONS:
        raise SchemaVersionError(
            f"unsupported schema_version {_printable(repr(version))}; "
            f"supported: {list(SUPPORTED_SCHEMA_VERSIONS)}"
        )
    try:
        return MemoryEvent.model_validate(data)
    except ValidationError as exc:
        raise ValueError(_reason(exc)) from None


def utc_iso(ts: datetime) -> str:
    """RFC 3339 text of an aware datetime."""
    return ts.isoformat().replace("+00:00", "Z")
