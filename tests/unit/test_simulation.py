from __future__ import annotations

from pipelines.simulation import THEMES, Population, theme_of
from schemas import MemoryType, parse_memory_event


def test_same_seed_same_events() -> None:
    a = [e.model_dump() for e in Population(7, seed=42).events(100)]
    b = [e.model_dump() for e in Population(7, seed=42).events(100)]
    c = [e.model_dump() for e in Population(7, seed=43).events(100)]
    assert a == b and a != c


def test_events_are_valid_varied_and_ordered_in_event_time() -> None:
    evs = list(Population(10, seed=1, namespace="w").events(500))
    assert len({e.memory_id for e in evs}) == 500
    assert {e.type for e in evs} == set(MemoryType)
    assert {theme_of(e) for e in evs} == set(THEMES)
    assert all(parse_memory_event(e.to_json_bytes()) == e for e in evs)
    times = [e.event_time for e in evs]
    assert times == sorted(times)
    assert all(0 <= e.position.x <= 100 and 0 <= e.position.y <= 100 for e in evs if e.position)
