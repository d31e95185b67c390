"""Event contracts of ArgOS Memory Stream.

Pydantic models per topic, the topic registry, and the JSON Schema files exported from the models
(``schemas/json/``) for agents written in other languages. This package imports nothing else from
the project.
"""

from schemas.audit import AuditRecord
from schemas.clusters import ClusterEvent
from schemas.deadletter import DeadLetter
from schemas.embedded import EmbeddedMemory
from schemas.lifecycle import AccessEvent, LifecycleEvent
from schemas.memory_event import (
    SUPPORTED_SCHEMA_VERSIONS,
    Emotion,
    MemoryEvent,
    MemoryType,
    Position,
    SchemaVersionError,
    parse_memory_event,
)
from schemas.recall import RecallHit, RecallRequest, RecallResponse
from schemas.topics import TOPICS, Topic

__all__ = [
    "SUPPORTED_SCHEMA_VERSIONS",
    "TOPICS",
    "AccessEvent",
    "AuditRecord",
    "ClusterEvent",
    "DeadLetter",
    "EmbeddedMemory",
    "Emotion",
    "LifecycleEvent",
    "MemoryEvent",
    "MemoryType",
    "Position",
    "RecallHit",
    "RecallRequest",
    "RecallResponse",
    "SchemaVersionError",
    "Topic",
    "parse_memory_event",
]
