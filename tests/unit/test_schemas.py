from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import schemas
from schemas import MemoryEvent, SchemaVersionError, parse_memory_event
from schemas.export import EXPORTS, JSON_DIR, render

GOOD = {
    "schema_version": 1,
    "memory_id": "m-1",
    "agent_id": "agent-1",
    "namespace": "world",
    "type": "episodic",
    "content": "I saw a fox by the river",
    "event_time": "2026-01-01T10:00:00+00:00",
}


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_committed_json_schema_matches_model(name: str) -> None:
    committed = (JSON_DIR / name).read_text()
    assert committed == render(EXPORTS[name]), f"run `python -m schemas.export` ({name})"


def test_public_api_is_locked() -> None:
    assert sorted(schemas.__all__) == sorted(
        [
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
    )


def test_good_event_parses_with_defaults() -> None:
    ev = parse_memory_event(json.dumps(GOOD).encode())
    assert ev.importance == 0.5 and ev.emotion.valence == 0.0 and ev.tags == []
    assert ev.event_ts == 1767261600.0


@pytest.mark.parametrize("version", [0, 2, "1", None, True, 1.5])
def test_unknown_schema_version_rejected_with_reason(version: object) -> None:
    data = {**GOOD, "schema_version": version}
    with pytest.raises(SchemaVersionError, match="schema_version"):
        parse_memory_event(data)


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"importance": 1.01}, "importance"),
        ({"emotion": {"valence": -2}}, "emotion.valence"),
        ({"content": "   "}, "content"),
        ({"content": "x" * 9000}, "content"),
        ({"event_time": "2026-01-01T10:00:00"}, "event_time"),
        ({"agent_id": "has space"}, "agent_id"),
        ({"steps": ["a"]}, "procedural"),
        ({"embedding": []}, "embedding"),
        ({"importance": float("nan")}, "importance"),
        ({"extra_field": 1}, "extra_field"),
    ],
)
def test_bad_fields_rejected_with_the_field_named(patch: dict[str, object], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_memory_event({**GOOD, **patch})


def test_bytes_errors_are_reasons() -> None:
    with pytest.raises(ValueError, match="not UTF-8"):
        parse_memory_event(b"\xff\xfe")
    with pytest.raises(ValueError, match="not JSON"):
        parse_memory_event(b"{")
    with pytest.raises(ValueError, match="JSON object"):
        parse_memory_event(b"[]")
    with pytest.raises(ValueError, match="limit"):
        parse_memory_event(b" " * 70_000)
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_memory_event(b"[" * 20_000 + b"]" * 20_000)


def test_procedural_steps_allowed() -> None:
    ev = parse_memory_event({**GOOD, "type": "procedural", "steps": ["a", "b"]})
    assert ev.steps == ["a", "b"]


@given(st.binary(max_size=300))
def test_any_bytes_either_parse_or_raise_value_error(raw: bytes) -> None:
    try:
        ev = parse_memory_event(raw)
    except ValueError as exc:
        assert str(exc)
    else:
        assert isinstance(ev, MemoryEvent)


def test_round_trip_through_json() -> None:
    ev = parse_memory_event(GOOD)
    assert parse_memory_event(ev.to_json_bytes()) == ev


def test_pipelines_public_api_is_locked() -> None:
    import pipelines

    assert sorted(pipelines.__all__) == sorted(
        [
            "ArgosError",
            "ConfigurationError",
            "Embedder",
            "EmbedderUnavailableError",
            "HashingEmbedder",
            "InMemoryStore",
            "InvalidEventError",
            "MemoryClient",
            "MemoryPublisher",
            "MilvusStore",
            "OnnxMiniLM",
            "PoisonEventError",
            "Population",
            "RecallError",
            "RetryableError",
            "SchemaVersionUnsupported",
            "Settings",
            "StoreUnavailableError",
            "TorchMiniLM",
            "VectorStore",
            "load_embedder",
        ]
    )
    assert all(hasattr(pipelines, name) for name in pipelines.__all__)
