"""Simulated ArgOS-like agents: they move on a 2-D world, perceive, feel and act, and remember.

Deterministic for a given seed: the same seed gives the same events, ids and times, so the demo,
tests and benchmarks can count exactly what should come out of the pipeline. Every event carries
a ``theme:*`` tag: the ground-truth group used by the clustering quality benchmark.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from schemas import Emotion, MemoryEvent, MemoryType, Position

WORLD_SIZE = 100.0
START = datetime(2026, 1, 1, tzinfo=UTC)

PLACES = {
    "the river": (15.0, 20.0),
    "the old mill": (80.0, 15.0),
    "the market square": (50.0, 50.0),
    "the pine forest": (20.0, 80.0),
    "the quarry": (85.0, 85.0),
    "the watchtower": (60.0, 90.0),
}

# theme -> (episodic templates, semantic facts, procedural skill (name, steps), valence, arousal)
THEMES: dict[str, tuple[list[str], list[str], tuple[str, list[str]], float, float]] = {
    "food": (
        [
            "{me} gathered ripe berries near {place} with {other}",
            "{me} shared a loaf of bread with {other} at {place}",
            "{me} found the apple trees at {place} heavy with fruit",
            "{me} cooked fish over a fire at {place} while {other} watched",
        ],
        ["Berries grow thick near {place}", "Fish are easiest to catch at dawn near {place}"],
        ("gather food", ["walk to the bushes", "pick the ripe berries", "fill the basket"]),
        0.6,
        0.3,
    ),
    "danger": (
        [
            "{me} saw a wolf prowling near {place} and ran",
            "{me} heard {other} scream about a bear at {place}",
            "{me} was caught in a sudden storm at {place} and hid",
            "{me} slipped on loose rocks at {place} and hurt a leg",
        ],
        ["Wolves hunt near {place} after dark", "Storms come quickly over {place}"],
        ("escape a predator", ["stay calm", "back away slowly", "climb to high ground"]),
        -0.7,
        0.9,
    ),
    "trade": (
        [
            "{me} traded three pelts to {other} for iron tools at {place}",
            "{me} argued with {other} over the price of salt at {place}",
            "{me} sold woven baskets to travellers at {place}",
            "{me} bought a warm cloak from {other} at {place}",
        ],
        ["Salt fetches a good price at {place}", "{other} pays fairly for pelts"],
        ("strike a bargain", ["show the goods", "ask a high price", "meet halfway"]),
        0.2,
        0.5,
    ),
    "social": (
        [
            "{me} sang songs with {other} by the fire at {place}",
            "{me} comforted {other} who had lost a friend at {place}",
            "{me} met a stranger named {other} at {place} and talked for hours",
            "{me} celebrated a wedding with {other} at {place}",
        ],
        ["{other} is kind and can be trusted", "People gather at {place} in the evening"],
        ("make a friend", ["greet warmly", "share a story", "offer help"]),
        0.8,
        0.6,
    ),
    "craft": (
        [
            "{me} carved a wooden bowl at {place} while {other} sharpened knives",
            "{me} repaired the roof of the hut near {place}",
            "{me} forged a new axe head with {other} at {place}",
            "{me} wove a fishing net at {place}",
        ],
        ["Good clay can be dug at {place}", "Oak from {place} makes the strongest handles"],
        ("build a shelter", ["cut straight poles", "lash them together", "cover with bark"]),
        0.4,
        0.4,
    ),
}


@dataclass
class SimAgent:
    agent_id: str
    x: float
    y: float
    mood: float
    seq: int = 0


class Population:
    """A deterministic population of ``n_agents`` agents in ``namespace``."""

    def __init__(
        self, n_agents: int = 20, seed: int = 0, namespace: str = "sim", tick_seconds: float = 60.0
    ) -> None:
        if n_agents < 1:
            raise ValueError("n_agents must be >= 1")
        self.n_agents = n_agents
        self.seed = seed
        self.namespace = namespace
        self.tick_seconds = tick_seconds
        self._rng = random.Random(seed)
        self.agents = [
            SimAgent(
                f"agent-{i:04d}",
                self._rng.uniform(0, WORLD_SIZE),
                self._rng.uniform(0, WORLD_SIZE),
                self._rng.uniform(-0.2, 0.2),
            )
            for i in range(n_agents)
        ]
        self.tick = 0

    def _nearest_place(self, a: SimAgent) -> str:
        return min(PLACES, key=lambda p: math.dist(PLACES[p], (a.x, a.y)))

    def _step(self, a: SimAgent) -> None:
        tx, ty = PLACES[self._rng.choice(list(PLACES))]
        a.x = min(max(a.x + (tx - a.x) * 0.2 + self._rng.gauss(0, 2), 0.0), WORLD_SIZE)
        a.y = min(max(a.y + (ty - a.y) * 0.2 + self._rng.gauss(0, 2), 0.0), WORLD_SIZE)

    def _event(self, a: SimAgent) -> MemoryEvent:
        rng = self._rng
        theme = rng.choice(list(THEMES))
        episodes, facts, (skill, steps), valence, arousal = THEMES[theme]
        place = self._nearest_place(a)
        other = rng.choice([b.agent_id for b in self.agents if b is not a] or [a.agent_id])
        roll = rng.random()
        kind = (
            MemoryType.episodic
            if roll < 0.75
            else (MemoryType.semantic if roll < 0.92 else MemoryType.procedural)
        )
        fmt = {"me": a.agent_id, "other": other, "place": place}
        step_list: list[str] | None = None
        if kind is MemoryType.episodic:
            content = rng.choice(episodes).format(**fmt)
        elif kind is MemoryType.semantic:
            content = rng.choice(facts).format(**fmt)
        else:
            content = f"How to {skill} near {place}"
            step_list = list(steps)
        a.mood = 0.8 * a.mood + 0.2 * valence
        a.seq += 1
        return MemoryEvent(
            schema_version=1,
            memory_id=f"{self.namespace}:{a.agent_id}:{a.seq:08d}",
            agent_id=a.agent_id,
            namespace=self.namespace,
            type=kind,
            content=content,
            steps=step_list,
            importance=round(min(1.0, max(0.0, 0.3 + 0.5 * arousal + rng.gauss(0, 0.1))), 3),
            emotion=Emotion(
                valence=round(max(-1.0, min(1.0, a.mood + rng.gauss(0, 0.1))), 3),
                arousal=round(max(0.0, min(1.0, arousal + rng.gauss(0, 0.1))), 3),
            ),
            position=Position(x=round(a.x, 2), y=round(a.y, 2)),
            tags=[f"theme:{theme}", f"place:{place.removeprefix('the ').replace(' ', '-')}"],
            event_time=START + timedelta(seconds=self.tick * self.tick_seconds),
        )

    def events(self, n: int) -> Iterator[MemoryEvent]:
        """The next ``n`` events: each tick every agent moves, then one in turn remembers."""
        for _ in range(n):
            a = self.agents[self.tick % self.n_agents]
            if self.tick % self.n_agents == 0:
                for b in self.agents:
                    self._step(b)
            yield self._event(a)
            self.tick += 1


def theme_of(event: MemoryEvent) -> str:
    """The ground-truth theme of a simulated event."""
    return next(t.split(":", 1)[1] for t in event.tags if t.startswith("theme:"))


def malformed_events(n: int, seed: int = 0, namespace: str = "sim") -> Iterator[bytes]:
    """``n`` payloads the ingest stage must refuse, one of each kind in turn (deterministic)."""
    rng = random.Random(seed)
    good = next(Population(1, seed, namespace).events(1)).model_dump(mode="json")
    kinds = [
        lambda i: b"\xff\xfe not utf-8 " + str(i).encode(),
        lambda i: b"{not json " + str(i).encode(),
        lambda i: b"[1, 2, 3]",
        lambda i: _dumps({**good, "memory_id": f"bad-{i}", "schema_version": 99}),
        lambda i: _dumps({k: v for k, v in good.items() if k != "content"}),
        lambda i: _dumps({**good, "memory_id": f"bad-{i}", "importance": 1.5 + rng.random()}),
        lambda i: _dumps({**good, "memory_id": f"bad-{i}", "surprise": True}),
        lambda i: _dumps({**good, "memory_id": f"bad-{i}", "event_time": "yesterday"}),
    ]
    for i in range(n):
        yield kinds[i % len(kinds)](i)


def _dumps(obj: object) -> bytes:
    import json

    return json.dumps(obj).encode()
