"""Memory lifecycle core: legal states, the forgetting curve, and when a memory moves on.

States (from the ArgOS seed)::

    created ──> active ──> consolidated ──> archived
                   │
                   └────> decayed ──> deleted

Everything runs on **event time** (the simulation clock carried by events), never on the wall
clock, so replaying the same events gives the same states.

Retention follows a forgetting curve ``R = exp(-dt / S)``: ``dt`` is the event time since the
memory was last reinforced (formed or recalled) and ``S`` its stability in seconds. Stability
grows with importance and emotional intensity and with every recall (the spacing effect), so a
stronger memory always forgets more slowly -- unlike MemoryBank's published ``exp(-t / 5*S)``,
which Python reads as ``exp(-t*S/5)`` and so makes its strongest memories fade fastest.

>>> p = LifecycleParams()
>>> weak = stability(p, "episodic", importance=0.1, arousal=0.0, recalls=0)
>>> strong = stability(p, "episodic", importance=0.9, arousal=0.8, recalls=3)
>>> retention(3600.0, strong) > retention(3600.0, weak)
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

from pipelines.errors import ArgosError


class MemoryState(StrEnum):
    created = "created"
    active = "active"
    consolidated = "consolidated"
    decayed = "decayed"
    archived = "archived"
    deleted = "deleted"


LEGAL: dict[MemoryState, frozenset[MemoryState]] = {
    MemoryState.created: frozenset({MemoryState.active}),
    MemoryState.active: frozenset({MemoryState.consolidated, MemoryState.decayed}),
    MemoryState.consolidated: frozenset({MemoryState.archived}),
    MemoryState.decayed: frozenset({MemoryState.deleted}),
    MemoryState.archived: frozenset(),
    MemoryState.deleted: frozenset(),
}


class IllegalTransitionError(ArgosError):
    """A lifecycle move the state machine does not allow (a bug, never silently ignored)."""


def check_transition(src: MemoryState, dst: MemoryState) -> MemoryState:
    """Return ``dst`` if ``src -> dst`` is legal, else raise ``IllegalTransitionError``.

    >>> check_transition(MemoryState.active, MemoryState.decayed)
    <MemoryState.decayed: 'decayed'>
    >>> check_transition(MemoryState.decayed, MemoryState.active)
    Traceback (most recent call last):
    ...
    pipelines.lifecycle.IllegalTransitionError: decayed -> active is not a legal transition
    """
    if dst not in LEGAL[src]:
        raise IllegalTransitionError(f"{src.value} -> {dst.value} is not a legal transition")
    return dst


@dataclass(frozen=True)
class LifecycleParams:
    """The lifecycle model's parameters (all times in event-time seconds)."""

    base_stability: float = 6 * 3600.0
    type_factor_episodic: float = 1.0
    type_factor_semantic: float = 4.0
    type_factor_procedural: float = 3.0
    importance_weight: float = 2.0
    arousal_weight: float = 1.0
    recall_growth: float = 0.8
    decay_threshold: float = 0.05
    consolidate_recalls: int = 3
    archive_idle: float = 30 * 24 * 3600.0


def stability(
    p: LifecycleParams, kind: str, importance: float, arousal: float, recalls: int
) -> float:
    """Stability ``S`` (seconds): type x (1 + w_i*importance + w_a*arousal) x growth^recalls.

    Monotone non-decreasing in importance, arousal and recalls (weights are non-negative).
    """
    type_factor = {
        "episodic": p.type_factor_episodic,
        "semantic": p.type_factor_semantic,
        "procedural": p.type_factor_procedural,
    }[kind]
    boost = 1.0 + p.importance_weight * importance + p.arousal_weight * arousal
    return p.base_stability * type_factor * boost * (1.0 + p.recall_growth) ** recalls


def retention(dt: float, s: float) -> float:
    """``R = exp(-dt / S)``, with ``dt`` clamped at 0 (an out-of-order event never raises R)."""
    return math.exp(-max(dt, 0.0) / s)


@dataclass(frozen=True)
class MemoryLife:
    """Lifecycle state of one memory."""

    memory_id: str
    kind: str
    importance: float
    arousal: float
    state: MemoryState = MemoryState.created
    recalls: int = 0
    reinforced_ts: float = 0.0
    uses: int = 0  # successful uses of a procedural memory (each reinforces like a recall)

    def stability(self, p: LifecycleParams) -> float:
        return stability(p, self.kind, self.importance, self.arousal, self.recalls + self.uses)

    def retention(self, p: LifecycleParams, now: float) -> float:
        return retention(now - self.reinforced_ts, self.stability(p))

    def to(self, dst: MemoryState) -> MemoryLife:
        return replace(self, state=check_transition(self.state, dst))


def on_created(
    memory_id: str, kind: str, importance: float, arousal: float, ts: float
) -> MemoryLife:
    """A new memory: created, then at once active (both moves are reported)."""
    return MemoryLife(memory_id, kind, importance, arousal, reinforced_ts=ts).to(MemoryState.active)


def on_recalled(life: MemoryLife, ts: float, success: bool = False) -> MemoryLife:
    """A recall (or a near-duplicate event) reinforces: one more recall, clock restarts.

    ``success``: a procedural memory was used and it worked -- reinforced once more (a skill
    that works is practised). Recalling a decayed, archived or deleted memory does not revive it;
    the recall is counted.
    """
    uses = life.uses + (1 if success and life.kind == "procedural" else 0)
    return replace(
        life, recalls=life.recalls + 1, uses=uses, reinforced_ts=max(life.reinforced_ts, ts)
    )


def due(life: MemoryLife, p: LifecycleParams) -> tuple[float, MemoryState] | None:
    """When the clock alone moves this memory on, and where to: an active memory decays when
    ``R`` reaches the threshold (``t = reinforced + S * ln(1/threshold)``); a consolidated one is
    archived after ``archive_idle``. None when no clock-driven move is left.

    Transitions are stamped with this time, not with the moment a worker noticed, so a replay
    or a late sweep gives the same events.

    >>> life = on_created("m", "episodic", 0.0, 0.0, 0.0)
    >>> t, to = due(life, LifecycleParams(base_stability=100.0, decay_threshold=math.exp(-2)))
    >>> (round(t, 9), to.value)
    (200.0, 'decayed')
    """
    if life.state is MemoryState.active:
        return life.reinforced_ts + life.stability(p) * math.log(1.0 / p.decay_threshold), (
            MemoryState.decayed
        )
    if life.state is MemoryState.consolidated:
        return life.reinforced_ts + p.archive_idle, MemoryState.archived
    return None


def advance(
    life: MemoryLife, p: LifecycleParams, now: float, in_stable_cluster: bool = False
) -> MemoryLife:
    """Move a memory along as the world's clock reaches ``now`` (at most one step per call).

    - active and its decay time (see ``due``) reached -> decayed;
    - active and recalled ``consolidate_recalls`` times or inside a stable cluster -> consolidated;
    - consolidated and idle (no reinforcement) for ``archive_idle`` -> archived.
    """
    when = due(life, p)
    if when is not None and now >= when[0]:
        return life.to(when[1])
    if life.state is MemoryState.active and (
        life.recalls >= p.consolidate_recalls or in_stable_cluster
    ):
        return life.to(MemoryState.consolidated)
    return life
