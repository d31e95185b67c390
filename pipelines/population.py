"""Population-level clusters: the experiences many agents share, per namespace.

Consumes ``argos.clusters`` (one ``ClusterEvent`` per change of an agent's micro-clusters, each
with the cluster's size and float16 unit centroid after the change) and keeps, per namespace,
clusters of those agent clusters. Pure and deterministic: the same events in the same order give
the same population ids and the same float32 bits.

- an **agent cluster** (key ``agent_id|cluster_id``) has a weight (its size in memories) and a
  unit centroid; every live one (of at least ``min_size`` memories) is in exactly one population
  cluster;
- a **population cluster** (``pop1``, ``pop2``, ... in order of creation) keeps the float32 sum of
  its members' ``weight * centroid`` (its direction is the centroid, its weight the sum of the
  member sizes) and its member keys;
- on a change an agent cluster **stays** in its population cluster if its centroid is still
  within ``join_threshold`` (cosine) of that cluster's centroid, else it **leaves** and **joins**
  the most similar other one within ``join_threshold`` or **creates** a new one (ties: older id);
- population clusters whose centroids come within ``merge_threshold`` **merge** (the heavier one
  survives; on a tie, the older id); an emptied population cluster is **removed**.

Agent-side events map as follows: create/join/split/remove with ``size > 0`` update the agent
cluster; ``remove`` with ``size == 0`` drops it; ``merge`` drops the absorbed clusters named in
``related`` and updates the survivor; a split's new part arrives as its own ``create``.

>>> nc = NamespaceClusters("sim")
>>> def ev(agent: str, cid: str, vec: list[float]) -> ClusterEvent:
...     return ClusterEvent(kind="create", namespace="sim", agent_id=agent, cluster_id=cid,
...                         size=3, radius=0.0, stability=1.0, event_ts=0.0,
...                         centroid_f16=encode_centroid(np.array(vec)))
>>> [c.kind for c in nc.apply(ev("a", "a/c1", [1.0, 0.1, 0.0]))]
['create']
>>> [(c.kind, c.pop_id, c.n_agents) for c in nc.apply(ev("b", "b/c1", [1.0, 0.0, 0.1]))]
[('join', 'pop1', 2)]
>>> [(s["pop_id"], s["n_agents"], s["size"], s["shared"]) for s in summary(nc)]
[('pop1', 2, 6, True)]
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError

from pipelines.agent_log import dump_state
from pipelines.clustering import SumDirection
from pipelines.errors import InvalidEventError
from pipelines.spatial import Places
from schemas import ClusterEvent

if TYPE_CHECKING:
    from pipelines.ingest import RawRecord

KV = tuple[bytes | None, bytes]


@dataclass(frozen=True)
class PopulationParams:
    join_threshold: float = 0.75  # cosine of an agent cluster's centroid to a population centroid
    merge_threshold: float = 0.9  # cosine between two population centroids that merges them
    min_size: int = 1  # smaller agent clusters are tracked but belong to no population cluster
    cell: float = 10.0  # side of the grid cells (world units) of the agents' positions


@dataclass(frozen=True)
class PopulationChange:
    """One change of a namespace's population clusters (stats are after the change)."""

    kind: str  # create | join | leave | merge | remove
    pop_id: str
    key: str | None  # the agent cluster (agent_id|cluster_id) that created/joined/left
    n_agents: int
    size: int
    ts: float
    related: tuple[str, ...] = ()  # merge: the absorbed population cluster's id


@dataclass
class AgentCluster:
    agent_id: str
    cluster_id: str
    weight: int
    centroid: np.ndarray  # float32, unit
    pop_id: str | None = None
    f16: str | None = None  # the ``centroid_f16`` it was decoded from: what the state saves

    def saved_centroid(self) -> str:
        """The centroid as saved: its float16 source (half the bytes; ``decode_centroid`` gives
        back the same float32 bits), or the float32 vector when there is no source."""
        return self.f16 if self.f16 is not None else _b64(self.centroid)

    def contribution(self) -> np.ndarray:
        return (np.float32(self.weight) * self.centroid).astype(np.float32)


@dataclass
class PopCluster(SumDirection):
    pop_id: str
    total: np.ndarray  # float32 sum of the members' weight * centroid
    members: dict[str, None] = field(default_factory=dict)  # agent cluster keys, ordered
    weight: int = 0
    agents: dict[str, int] = field(default_factory=dict)  # agent_id -> its member clusters


def encode_centroid(v: np.ndarray) -> str:
    """A centroid for ``ClusterEvent.centroid_f16``: base64 of the little-endian float16 unit
    vector.

    >>> s = encode_centroid(np.array([3.0, 4.0]))
    >>> s, [round(float(x), 3) for x in decode_centroid(s)]
    ('zThmOg==', [0.6, 0.8])
    """
    return base64.b64encode(_unit(v).astype("<f2").tobytes()).decode()


def decode_centroid(s: str) -> np.ndarray:
    """The float32 unit vector of ``encode_centroid`` output; ``ValueError`` if it is not one."""
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"centroid is not base64: {exc}") from None
    if not raw or len(raw) % 2:
        raise ValueError(f"centroid has {len(raw)} bytes; want a non-empty float16 array")
    return _unit(np.frombuffer(raw, dtype="<f2"))


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    if v.ndim != 1 or not v.size or not np.all(np.isfinite(v)):
        raise ValueError("a centroid must be a non-empty finite vector")
    n = float(np.linalg.norm(v))
    if n == 0.0:
        raise ValueError("a centroid cannot be the zero vector")
    return (v / np.float32(n)).astype(np.float32)


def _pop_order(pop_id: str) -> int:
    return int(pop_id[3:])


class NamespaceClusters:
    """The population clusters of one namespace."""

    def __init__(self, namespace: str, params: PopulationParams | None = None) -> None:
        self.namespace = namespace
        self.params = params or PopulationParams()
        self.clusters: dict[str, AgentCluster] = {}  # agent_id|cluster_id -> agent cluster
        self.pops: dict[str, PopCluster] = {}  # in creation order (older first)
        self.dim: int | None = None
        self._next = 0
        # where each agent was last seen (the position on its latest cluster event): the
        # namespace-wide spatial index ``near`` reads
        self.places = Places(self.params.cell)
        self.by_agent: dict[str, dict[str, None]] = {}  # agent_id -> its agent cluster keys

    def apply(self, ev: ClusterEvent) -> list[PopulationChange]:
        """Apply one agent-cluster change; returns the population changes it caused.

        Raises ``ValueError`` (and changes nothing) for an event of another namespace or with a
        centroid that cannot be read or has the wrong dimension. A change that leaves an agent
        cluster exactly as it was changes nothing, so a redelivered event is harmless.
        """
        if ev.namespace != self.namespace:
            raise ValueError(f"event of namespace {ev.namespace!r} given to {self.namespace!r}")
        if ev.position is not None:
            self.places.see(ev.agent_id, ev.position.x, ev.position.y, ev.event_ts)
        vec: np.ndarray | None = None
        f16 = None
        if ev.size > 0 and ev.centroid_f16 is not None:
            f16 = ev.centroid_f16
            vec = decode_centroid(ev.centroid_f16)
            if self.dim is not None and vec.shape[0] != self.dim:
                raise ValueError(f"centroid has {vec.shape[0]} dimensions; want {self.dim}")
        changes: list[PopulationChange] = []
        touched: list[str] = []
        ts = ev.event_ts
        if ev.kind == "merge":
            for gone in ev.related:
                self._drop(f"{ev.agent_id}|{gone}", ts, changes, touched)
        key = f"{ev.agent_id}|{ev.cluster_id}"
        if ev.size == 0:
            self._drop(key, ts, changes, touched)
        else:
            if vec is None and key in self.clusters:  # no centroid sent: only the size changed
                vec, f16 = self.clusters[key].centroid, self.clusters[key].f16
            if vec is not None:  # an unknown cluster without a centroid cannot be placed
                self.dim = vec.shape[0]
                self._update(key, ev.agent_id, ev.cluster_id, ev.size, vec, ts, changes, touched)
                self.clusters[key].f16 = f16
        for pid in dict.fromkeys(touched):
            if pid in self.pops:
                self._maybe_merge(pid, ts, changes)
        return changes

    def _new_id(self) -> str:
        self._next += 1
        return f"pop{self._next}"

    def _change(
        self, kind: str, pop: PopCluster, key: str | None, ts: float, related: tuple[str, ...] = ()
    ) -> PopulationChange:
        return PopulationChange(kind, pop.pop_id, key, len(pop.agents), pop.weight, ts, related)

    def _update(
        self,
        key: str,
        agent_id: str,
        cluster_id: str,
        size: int,
        vec: np.ndarray,
        ts: float,
        changes: list[PopulationChange],
        touched: list[str],
    ) -> None:
        ac = self.clusters.get(key)
        if ac is None:
            ac = AgentCluster(agent_id, cluster_id, size, vec)
            self.clusters[key] = ac
            self.by_agent.setdefault(agent_id, {})[key] = None
        elif ac.weight == size and np.array_equal(ac.centroid, vec):
            return
        else:
            pop = self.pops[ac.pop_id] if ac.pop_id is not None else None
            if pop is not None:
                pop.total = (pop.total - ac.contribution()).astype(np.float32)
                pop.weight -= ac.weight
            ac.weight, ac.centroid = size, vec
            if pop is not None:
                pop.total = (pop.total + ac.contribution()).astype(np.float32)
                pop.weight += ac.weight
        if size < self.params.min_size:
            if ac.pop_id is not None:
                self._leave(key, ac, ts, changes, touched)
            return
        left: str | None = None
        if ac.pop_id is not None:
            pop = self.pops[ac.pop_id]
            if float(pop.centroid() @ vec) >= self.params.join_threshold:
                touched.append(pop.pop_id)  # stays; its centroid moved
                return
            left = ac.pop_id
            self._leave(key, ac, ts, changes, touched)
        best, best_sim = None, self.params.join_threshold
        for other in self.pops.values():  # creation order: on a tie the older one wins
            if other.pop_id == left:
                continue
            sim = float(other.centroid() @ vec)
            if sim >= best_sim and (best is None or sim > best_sim):
                best, best_sim = other, sim
        if best is None:
            best = PopCluster(self._new_id(), np.zeros_like(vec))
            self.pops[best.pop_id] = best
            kind = "create"
        else:
            kind = "join"
        best.total = (best.total + ac.contribution()).astype(np.float32)
        best.weight += ac.weight
        best.members[key] = None
        best.agents[agent_id] = best.agents.get(agent_id, 0) + 1
        ac.pop_id = best.pop_id
        changes.append(self._change(kind, best, key, ts))
        touched.append(best.pop_id)

    def _leave(
        self,
        key: str,
        ac: AgentCluster,
        ts: float,
        changes: list[PopulationChange],
        touched: list[str],
    ) -> None:
        if ac.pop_id is None:
            return
        pop = self.pops[ac.pop_id]
        ac.pop_id = None
        del pop.members[key]
        pop.weight -= ac.weight
        pop.total = (pop.total - ac.contribution()).astype(np.float32)
        n = pop.agents[ac.agent_id] - 1
        if n:
            pop.agents[ac.agent_id] = n
        else:
            del pop.agents[ac.agent_id]
        changes.append(self._change("leave", pop, key, ts))
        if not pop.members:
            del self.pops[pop.pop_id]
            changes.append(self._change("remove", pop, None, ts))
        else:
            touched.append(pop.pop_id)

    def _drop(
        self, key: str, ts: float, changes: list[PopulationChange], touched: list[str]
    ) -> None:
        ac = self.clusters.pop(key, None)
        if ac is None:
            return
        keys = self.by_agent[ac.agent_id]
        del keys[key]
        if not keys:
            del self.by_agent[ac.agent_id]
        if ac.pop_id is not None:
            self._leave(key, ac, ts, changes, touched)

    def _maybe_merge(self, pid: str, ts: float, changes: list[PopulationChange]) -> None:
        c = self.pops[pid]
        while True:
            cc = c.centroid()
            partner, best = None, self.params.merge_threshold
            for other in self.pops.values():  # creation order: on a tie the older one wins
                if other is c:
                    continue
                sim = float(other.centroid() @ cc)
                if sim >= best and (partner is None or sim > best):
                    partner, best = other, sim
            if partner is None:
                return
            keep, gone = sorted((c, partner), key=lambda p: (-p.weight, _pop_order(p.pop_id)))
            keep.total = (keep.total + gone.total).astype(np.float32)
            keep.weight += gone.weight
            for k in gone.members:
                keep.members[k] = None
                self.clusters[k].pop_id = keep.pop_id
            for agent, n in gone.agents.items():
                keep.agents[agent] = keep.agents.get(agent, 0) + n
            del self.pops[gone.pop_id]
            changes.append(self._change("merge", keep, None, ts, (gone.pop_id,)))
            c = keep


def summary(nc: NamespaceClusters) -> list[dict[str, object]]:
    """Per population cluster: size, agents, cohesion; the largest first (then by id).

    ``cohesion`` is the weighted mean cosine of the members' centroids to the population centroid
    (``|sum| / weight``); ``shared`` means at least two distinct agents are in it.
    """
    rows: list[dict[str, object]] = []
    for p in sorted(nc.pops.values(), key=lambda p: (-p.weight, _pop_order(p.pop_id))):
        cohesion = float(np.linalg.norm(p.total)) / p.weight if p.weight else 0.0
        rows.append(
            {
                "pop_id": p.pop_id,
                "n_agents": len(p.agents),
                "n_agent_clusters": len(p.members),
                "size": p.weight,
                "cohesion": round(min(1.0, max(-1.0, cohesion)), 6),
                "shared": len(p.agents) >= 2,
                "agents": sorted(p.agents)[:20],
            }
        )
    return rows


def near(nc: NamespaceClusters, x: float, y: float, radius: float) -> dict[str, Any]:
    """What the agents near (x, y) share: the agents last seen within ``radius`` (nearest
    first) and, per population cluster that holds any of their clusters, their part of it (the
    largest first). Reads only the grid cells the circle touches and those agents' clusters.

    ``touched_agents`` is how many agents the grid made it look at (of ``agents_placed``).
    """
    if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(radius) and radius >= 0):
        raise ValueError("x, y and radius must be finite numbers, radius >= 0")
    found, touched = nc.places.near(x, y, radius)
    parts: dict[str, dict[str, Any]] = {}
    for agent, _, _ in found:
        for key in nc.by_agent.get(agent, ()):
            ac = nc.clusters[key]
            if ac.pop_id is None:
                continue
            part = parts.setdefault(ac.pop_id, {"agents": {}, "size": 0, "n_agent_clusters": 0})
            part["agents"][agent] = None
            part["size"] += ac.weight
            part["n_agent_clusters"] += 1
    clusters = [
        {
            "pop_id": pid,
            "n_agents_near": len(part["agents"]),
            "size_near": part["size"],
            "n_agent_clusters_near": part["n_agent_clusters"],
            "n_agents": len(nc.pops[pid].agents),
            "size": nc.pops[pid].weight,
            "shared_near": len(part["agents"]) >= 2,
            "agents_near": list(part["agents"])[:20],
        }
        for pid, part in parts.items()
    ]
    clusters.sort(key=lambda c: (-c["size_near"], _pop_order(c["pop_id"])))
    return {
        "x": x,
        "y": y,
        "radius": radius,
        "agents": [
            {
                "agent_id": a,
                "distance": d,
                "x": nc.places.at[a][0],
                "y": nc.places.at[a][1],
                "seen_ts": ts,
            }
            for a, d, ts in found
        ],
        "clusters": clusters,
        "agents_placed": len(nc.places),
        "touched_agents": touched,
    }


def _b64(v: np.ndarray) -> str:
    return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()


def _unb64(s: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), dtype="<f4").astype(np.float32)


def to_state(nc: NamespaceClusters) -> dict[str, Any]:
    """A JSON-able snapshot, exact (float32 arrays as base64) and in iteration order, so that
    ``from_state`` continues with identical behaviour."""
    return {
        "namespace": nc.namespace,
        "next": nc._next,
        "dim": nc.dim,
        "clusters": [
            [k, ac.agent_id, ac.cluster_id, ac.weight, ac.saved_centroid(), ac.pop_id]
            for k, ac in nc.clusters.items()
        ],
        "pops": [
            {"id": p.pop_id, "total": _b64(p.total), "members": list(p.members)}
            for p in nc.pops.values()
        ],
        "places": nc.places.rows(),
    }


def from_state(state: dict[str, Any], params: PopulationParams | None = None) -> NamespaceClusters:
    """Rebuild a ``NamespaceClusters`` from ``to_state`` output."""
    nc = NamespaceClusters(str(state["namespace"]), params)
    nc._next = int(state["next"])
    nc.dim = None if state["dim"] is None else int(state["dim"])
    for key, agent, cid, weight, centroid, pop_id in state["clusters"]:
        nc.clusters[key] = _saved_cluster(agent, cid, int(weight), centroid, pop_id, nc.dim)
        nc.by_agent.setdefault(agent, {})[key] = None
    nc.places = Places.from_rows(nc.params.cell, state.get("places", []))  # older states: none
    for p in state["pops"]:
        pop = PopCluster(p["id"], _unb64(p["total"]))
        for key in p["members"]:
            ac = nc.clusters[key]
            pop.members[key] = None
            pop.weight += ac.weight
            pop.agents[ac.agent_id] = pop.agents.get(ac.agent_id, 0) + 1
        nc.pops[pop.pop_id] = pop
    return nc


def _saved_cluster(
    agent: str, cid: str, weight: int, centroid: str, pop_id: str | None, dim: int | None
) -> AgentCluster:
    """An agent cluster from its saved row: the centroid is its float16 source (decoded as when
    it arrived) or, in states saved before that, the float32 vector itself."""
    if dim is not None and len(centroid) == 4 * ((2 * dim + 2) // 3):  # base64 of dim float16
        return AgentCluster(agent, cid, weight, decode_centroid(centroid), pop_id, centroid)
    return AgentCluster(agent, cid, weight, _unb64(centroid), pop_id)


def population_batch(
    records: Sequence[RawRecord],
    states: dict[bytes, bytes | None],
    params: PopulationParams,
    now: float,
    cache: MutableMapping[bytes, tuple[bytes, NamespaceClusters]] | None = None,
) -> tuple[dict[bytes, bytes], list[KV], dict[str, int]]:
    """Apply a batch of ``argos.clusters`` records to their namespaces' population clusters.

    ``states`` maps each namespace (encoded) to its stored state (JSON of ``to_state``), or None.
    Unreadable records and events that cannot be applied become dead letters. Returns the new
    states of the touched namespaces, the dead letters, and counts: ``events`` applied and
    population changes per kind. ``cache`` (kept by the caller between batches) holds each
    namespace's live clusters with the state bytes they were saved as: a namespace whose stored
    state is still those bytes is not parsed again (its state grows with every agent cluster).
    """
    from pipelines.stage_batches import _dead  # here: stage_batches may import this module

    loaded: dict[bytes, NamespaceClusters] = {}
    dead: list[KV] = []
    counts: dict[str, int] = {}
    for rec in records:
        try:
            ev = ClusterEvent.model_validate_json(rec.value or b"")
        except (ValidationError, ValueError) as exc:
            err = InvalidEventError(f"not a valid cluster event: {str(exc)[:500]}")
            dead.append(_dead(rec, err, "population", now))
            continue
        key = ev.namespace.encode()
        if key not in loaded:
            raw = states.get(key)
            hit = cache.get(key) if cache is not None and raw else None
            if hit is not None and hit[0] == raw:
                loaded[key] = hit[1]
            else:
                loaded[key] = (
                    from_state(json.loads(raw), params)
                    if raw
                    else NamespaceClusters(ev.namespace, params)
                )
        try:
            changes = loaded[key].apply(ev)
        except ValueError as exc:
            err = InvalidEventError(f"cannot place cluster event: {str(exc)[:500]}")
            dead.append(_dead(rec, err, "population", now))
            continue
        counts["events"] = counts.get("events", 0) + 1
        for ch in changes:
            counts[ch.kind] = counts.get(ch.kind, 0) + 1
    new_states = {k: dump_state(to_state(nc)) for k, nc in loaded.items()}
    if cache is not None:
        for k, nc in loaded.items():
            cache[k] = (new_states[k], nc)
    return new_states, dead, counts
