"""One agent's memory in one namespace: lifecycle, micro-clusters, near-duplicates and
consolidation as a single deterministic state machine.

They are one state because they act on each other: a decayed or archived memory leaves its
cluster; a memory inside a stable cluster consolidates, and the cluster is distilled into a
derived **semantic memory**; a near-duplicate strengthens the memory it copies instead of
becoming a second one. Keeping them in one place, driven by each agent's events in order, makes
the outcome depend only on the events -- never on batch boundaries or wall-clock time:

- every clock-driven transition (decay, archive) is stamped with the event time it falls due
  (``lifecycle.due``), and a removal from a cluster recomputes the cluster from who is left, so
  settling late (a namespace watermark sweep) or on time gives the same states and events;
- an event first settles everything due before its own time, then applies itself.

Derived semantic memories get their life here, when they are derived; the record goes out on
the embedded topic (so it is stored like any other memory) and, when it comes back, is already
known. They are not clustered or de-duplicated again.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from pipelines.clustering import (
    AgentClusters,
    ClusterChange,
    ClusterMarks,
    ClusterParams,
    cluster_marks,
    clusters_delta,
    from_state,
    to_state,
)
from pipelines.consolidation import keywords, summary_text
from pipelines.lifecycle import (
    LifecycleParams,
    MemoryLife,
    MemoryState,
    advance,
    due,
    on_created,
    on_recalled,
)
from schemas import Emotion, LifecycleEvent, MemoryEvent, MemoryType, Position

LIVE = (MemoryState.active, MemoryState.consolidated)
GONE = (MemoryState.decayed, MemoryState.deleted, MemoryState.archived)  # not in the hot store

Lookup = Callable[[list[str]], dict[str, Any]]  # memory ids -> stored rows (.vector, .content)


@dataclass(frozen=True)
class MemoryParams:
    """Everything the memory stage decides with (see the settings table in the README)."""

    lifecycle: LifecycleParams = field(default_factory=LifecycleParams)
    clusters: ClusterParams = field(default_factory=ClusterParams)
    duplicate_threshold: float = 0.97  # cosine to a live memory that makes a near-duplicate
    stable_size: int = 6  # a cluster this big ...
    stable_min: float = 0.5  # ... this stable (0..1) ...
    stable_age_s: float = 6 * 3600.0  # ... and this old (event time) consolidates its members
    rederive_growth: float = 2.0  # distil again once the cluster grew this many times
    representatives: int = 3  # episodes quoted in a derived semantic memory


@dataclass
class Effects:
    """What applying events produced, in order."""

    transitions: list[LifecycleEvent] = field(default_factory=list)
    cluster: list[ClusterChange] = field(default_factory=list)
    forget: list[str] = field(default_factory=list)  # delete from the hot store
    archive: list[str] = field(default_factory=list)  # move to the archive collection
    derived: list[tuple[MemoryEvent, np.ndarray]] = field(default_factory=list)
    new_semantic: int = 0  # derived memories that are new (the rest re-distil an earlier one)
    lives: dict[str, MemoryLife] = field(default_factory=dict)  # every life that changed
    strengthened: int = 0
    # memory id -> where it formed, for the cluster events it causes (not saved: the population
    # stage's namespace-wide spatial index reads it from those events)
    positions: dict[str, Position] = field(default_factory=dict)


@dataclass
class Marks:
    """What the last saved state of an agent held (see ``AgentMemory.mark``); the lives and
    near-duplicates changed since, the agent keeps itself (``_changed``, ``_new_dups``)."""

    derived: dict[str, list[Any]]
    clusters: ClusterMarks


class AgentMemory:
    """The memory of one agent in one namespace."""

    def __init__(
        self,
        namespace: str,
        agent_id: str,
        params: MemoryParams | None = None,
        lookup: Lookup | None = None,
    ) -> None:
        self.namespace, self.agent_id = namespace, agent_id
        self.p = params or MemoryParams()
        self.lookup = lookup
        self.clock = 0.0  # the latest event time of this agent (its own watermark)
        self.next_due = math.inf  # earliest clock-driven transition
        self.lives: dict[str, MemoryLife] = {}
        # memory id -> when its next clock-driven move falls due (lives that have one), kept with
        # every change of a life so the earliest is a min over floats, not a model run per life
        self._due_at: dict[str, float] = {}
        # (due time, memory id) for every value _due_at took (stale ones dropped when seen),
        # so the earliest due time is a heap top, not a min over every life
        self._due_heap: list[tuple[float, str]] = []
        # lives and near-duplicates added or replaced since the last mark (what a delta saves),
        # in the order of their first change (a new id's place in the saved state)
        self._changed: dict[str, None] = {}
        self._new_dups: dict[str, None] = {}
        self.dups: dict[str, str] = {}  # near-duplicate id -> the memory it strengthened
        self.derived: dict[str, list[Any]] = {}  # cluster id -> [semantic id, size when derived]
        self.texts: dict[str, str] = {}  # content cache for distillation; not saved
        self.clusters = AgentClusters(agent_id, self.p.clusters, self._vectors)

    # -- inputs -------------------------------------------------------------------------------

    def on_memory(self, ev: MemoryEvent, vector: np.ndarray, fx: Effects) -> None:
        """A new memory (from the embedded topic). Known ids (redeliveries) change nothing."""
        t, mid = ev.event_ts, ev.memory_id
        self.clock = max(self.clock, t)
        if mid in self.lives or mid in self.dups:
            return
        self.settle(t, fx)
        scan = None  # computed once for the near-duplicate test and the placement
        if ev.derived_from is None and self.clusters.clusters:
            scan = self.clusters.scan(vector)
            near = self.clusters.nearest(vector, scan=scan)
            orig = self.lives.get(near[0]) if near else None
            if (
                near
                and orig
                and orig.state in LIVE
                and orig.kind == ev.type.value
                and near[1] >= self.p.duplicate_threshold
            ):
                self.dups[mid] = orig.memory_id
                self._new_dups[mid] = None
                fx.forget.append(mid)
                fx.strengthened += 1
                self._reinforce(orig, t, False, fx, cause="duplicate", related=[mid])
                return
        self._create(mid, ev.type.value, ev.importance, ev.emotion.arousal, t, fx)
        self.texts[mid] = ev.content
        if ev.derived_from is None:
            if ev.position is not None:
                fx.positions[mid] = ev.position
            fx.cluster += self.clusters.add(mid, vector, t, scan)  # no cluster changed since
            self._consolidate_cluster(self.clusters.where.get(mid), t, fx)

    def on_access(self, memory_ids: list[str], ts: float, success: bool, fx: Effects) -> None:
        """The agent recalled (or used) these memories at event time ``ts``."""
        self.clock = max(self.clock, ts)
        self.settle(ts, fx)
        for mid in memory_ids:
            life = self.lives.get(mid)
            if life is not None and life.state in LIVE:
                self._reinforce(life, ts, success, fx, cause=None, related=[])

    def settle(self, now: float, fx: Effects) -> None:
        """Apply every clock-driven transition due by ``now``, each at its own due time."""
        if now < self.next_due:
            return
        pending = []
        taken: set[str] = set()
        heap, due_at = self._due_heap, self._due_at
        while heap and heap[0][0] <= now:
            at, mid = heapq.heappop(heap)
            if due_at.get(mid) != at or mid in taken:
                continue  # stale (the life moved since) or a repeat of one taken
            taken.add(mid)
            d = due(self.lives[mid], self.p.lifecycle)
            assert d is not None  # noqa: S101 - _due_at holds only lives with one
            pending.append((d[0], mid, d[1]))
        for when, mid, to in sorted(pending):
            old = self.lives[mid]
            self._move(old, old.to(to), when, fx, "clock", [])
            cid = self.clusters.where.get(mid)
            fx.cluster += self.clusters.remove(mid, when)
            if cid is not None and cid not in self.clusters.clusters:
                self.derived.pop(cid, None)
            (fx.forget if to is MemoryState.decayed else fx.archive).append(mid)
        exact = self._exact_due()
        self.next_due = math.inf if exact is None else exact

    # -- transitions --------------------------------------------------------------------------

    def _move(
        self,
        old: MemoryLife,
        new: MemoryLife,
        ts: float,
        fx: Effects,
        cause: str | None,
        related: list[str],
    ) -> None:
        self.lives[new.memory_id] = new
        self._changed[new.memory_id] = None
        fx.lives[new.memory_id] = new
        d = due(new, self.p.lifecycle)
        if d is not None:
            self.next_due = min(self.next_due, d[0])
            self._due_at[new.memory_id] = d[0]
            self._push_due(d[0], new.memory_id)
        else:
            self._due_at.pop(new.memory_id, None)
        if cause is None and old.state is new.state:
            return  # a plain recall: the access topic already tells it
        fx.transitions.append(
            LifecycleEvent(
                namespace=self.namespace,
                agent_id=self.agent_id,
                memory_id=new.memory_id,
                from_state=old.state.value,
                to_state=new.state.value,
                event_ts=ts,
                retention=round(new.retention(self.p.lifecycle, ts), 6),
                stability_s=new.stability(self.p.lifecycle),
                recalls=new.recalls,
                cause=cause,  # type: ignore[arg-type]
                related=related,
            )
        )

    def _create(
        self, mid: str, kind: str, importance: float, arousal: float, t: float, fx: Effects
    ) -> None:
        life = on_created(mid, kind, importance, arousal, t)
        self._move(MemoryLife(mid, kind, importance, arousal), life, t, fx, "created", [])

    def _reinforce(
        self,
        life: MemoryLife,
        ts: float,
        success: bool,
        fx: Effects,
        cause: str | None,
        related: list[str],
    ) -> None:
        new = on_recalled(life, ts, success)
        self._move(life, new, ts, fx, cause, related)
        moved = advance(new, self.p.lifecycle, ts)
        if moved.state is not new.state:  # recalled often enough: consolidated
            self._move(new, moved, ts, fx, "recall", [])

    def _consolidate_cluster(self, cid: str | None, t: float, fx: Effects) -> None:
        """A big, tight, old cluster consolidates its active members and is distilled."""
        c = self.clusters.clusters.get(cid) if cid else None
        p = self.p
        if (
            c is None
            or len(c.members) < p.stable_size
            or self.clusters.stability(c) < p.stable_min
            or t - c.created_ts < p.stable_age_s
        ):
            return
        previous = self.derived.get(c.cluster_id)
        if previous is None or len(c.members) >= previous[1] * p.rederive_growth:
            sem_id = self._derive(c.cluster_id, t, fx)
        else:
            sem_id = previous[0]
        for mid in c.members:
            life = self.lives.get(mid)
            if life is not None and life.state is MemoryState.active:
                consolidated = life.to(MemoryState.consolidated)
                self._move(life, consolidated, t, fx, "cluster", [c.cluster_id, sem_id])

    def _derive(self, cid: str, t: float, fx: Effects) -> str:
        """Distil cluster ``cid`` into a semantic memory (centroid, keywords, representative
        episodes, ``derived_from`` its members); returns its id."""
        c = self.clusters.clusters[cid]
        cent = c.centroid().astype(np.float32)
        vecs = self.clusters.member_vectors(c.members)
        ranked = sorted(c.members, key=lambda m: (-float(vecs[m] @ cent) if m in vecs else 2, m))
        texts = self._texts(ranked[:50])
        sample = [texts[m] for m in ranked[:50] if m in texts]
        lives = [self.lives[m] for m in c.members if m in self.lives]
        sem_id = f"sem:{cid}"
        if len(sem_id) > 128:
            sem_id = "sem:" + hashlib.sha256(cid.encode()).hexdigest()[:40]
        importance = round(sum(x.importance for x in lives) / max(len(lives), 1), 6)
        arousal = round(sum(x.arousal for x in lives) / max(len(lives), 1), 6)
        ev = MemoryEvent(
            schema_version=1,
            memory_id=sem_id,
            agent_id=self.agent_id,
            namespace=self.namespace,
            type=MemoryType.semantic,
            content=summary_text(keywords(sample), sample[: self.p.representatives]),
            importance=importance,
            emotion=Emotion(arousal=arousal),
            tags=["derived"],
            derived_from=ranked[:256],
            event_time=datetime.fromtimestamp(t, UTC),
        )
        fx.derived.append((ev, cent))
        self.derived[cid] = [sem_id, len(c.members)]
        if sem_id in self.lives:
            if self.lives[sem_id].state in LIVE:  # distilled again: reinforced
                self._reinforce(self.lives[sem_id], t, False, fx, cause=None, related=[])
        else:
            self._create(sem_id, "semantic", importance, arousal, t, fx)
            fx.new_semantic += 1
        return sem_id

    # -- lookups ------------------------------------------------------------------------------

    def _vectors(self, ids: list[str]) -> dict[str, np.ndarray]:
        rows = self.lookup(ids) if self.lookup else {}
        for mid, row in rows.items():
            self.texts.setdefault(mid, row.content)
        return {mid: row.vector for mid, row in rows.items()}

    def _texts(self, ids: list[str]) -> dict[str, str]:
        missing = [i for i in ids if i not in self.texts]
        if missing:
            self._vectors(missing)
        return {i: self.texts[i] for i in ids if i in self.texts}

    # -- state --------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "clock": self.clock,
            "due": self._exact_due(),
            "m": {mid: _dump_life(life) for mid, life in self.lives.items()},
            "dups": self.dups,
            "derived": self.derived,
            "clusters": to_state(self.clusters),
        }

    def mark(self) -> Marks:
        """A state saved now holds everything: forget what changed before, and keep what is
        needed to tell what changes next (``delta_since``). O(clusters), not O(memories)."""
        self._changed.clear()
        self._new_dups.clear()
        return Marks(dict(self.derived), cluster_marks(self.clusters))

    def delta_since(self, marks: Marks) -> dict[str, Any]:
        """This namespace's part of a delta (see ``pipelines.agent_log``): what changed since
        the state ``marks`` describes (this agent's last ``mark``; an agent never saved has
        ``Marks({}, {})`` and everything changed since it was built)."""
        return {
            "clock": self.clock,
            "due": self._exact_due(),
            "m": {mid: _dump_life(self.lives[mid]) for mid in self._changed},
            "dups": {k: self.dups[k] for k in self._new_dups},
            "derived": {k: v for k, v in self.derived.items() if marks.derived.get(k) != v},
            "derived_drop": [k for k in marks.derived if k not in self.derived],
            "clusters": clusters_delta(self.clusters, marks.clusters),
        }

    def _exact_due(self) -> float | None:
        """The earliest clock-driven transition (``next_due`` in memory is a lower bound)."""
        heap, due_at = self._due_heap, self._due_at
        while heap and due_at.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)  # stale: that life moved since
        return heap[0][0] if heap else None

    def _push_due(self, at: float, mid: str) -> None:
        heap = self._due_heap
        if len(heap) > 2 * len(self._due_at) + 64:  # mostly stale: rebuild from _due_at
            heap[:] = [(a, m) for m, a in self._due_at.items()]
            heapq.heapify(heap)
        else:
            heapq.heappush(heap, (at, mid))

    @classmethod
    def from_state(
        cls,
        namespace: str,
        agent_id: str,
        state: dict[str, Any],
        params: MemoryParams | None = None,
        lookup: Lookup | None = None,
    ) -> AgentMemory:
        am = cls(namespace, agent_id, params, lookup)
        am.clock = float(state["clock"])
        am.next_due = math.inf if state["due"] is None else float(state["due"])
        am.lives = {mid: load_life(mid, raw) for mid, raw in state["m"].items()}
        am._due_at = {
            mid: d[0] for mid, life in am.lives.items() if (d := due(life, am.p.lifecycle))
        }
        am._due_heap = [(at, mid) for mid, at in am._due_at.items()]
        heapq.heapify(am._due_heap)
        am.dups = dict(state["dups"])
        am.derived = {k: list(v) for k, v in state["derived"].items()}
        am.clusters = from_state(state["clusters"], am.p.clusters, am._vectors)
        return am


def forgotten_ids(state: dict[str, Any]) -> set[str]:
    """Ids of a saved agent state that must not be (or stay) in the hot store: gone lives and
    near-duplicates (read straight from the state: no clusters rebuilt)."""
    gone = {mid for mid, raw in state["m"].items() if raw[0] in {s.value for s in GONE}}
    return gone | set(state["dups"])


def index_fields(life: MemoryLife, p: LifecycleParams) -> tuple[str, float, float, int]:
    """What the hot recall index keeps of a life: state, stability S, reinforced at, recalls."""
    return life.state.value, life.stability(p), life.reinforced_ts, life.recalls


def _dump_life(life: MemoryLife) -> tuple[Any, ...]:
    """A life as saved (a JSON array). A tuple, not a list: the stage keeps the saved state of
    the agents it caches, and a tuple of numbers and strings leaves the garbage collector's
    care at its first collection, where a list stays tracked (one more object per memory for
    every full collection to visit)."""
    return (
        life.state.value,
        life.kind,
        life.importance,
        life.arousal,
        life.recalls,
        life.reinforced_ts,
        life.uses,
    )


def load_life(memory_id: str, raw: Sequence[Any]) -> MemoryLife:
    state, kind, importance, arousal, recalls, reinforced, uses = raw
    return MemoryLife(
        memory_id, kind, importance, arousal, MemoryState(state), recalls, reinforced, uses
    )
