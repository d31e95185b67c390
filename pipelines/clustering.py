"""Online micro-clustering of one agent's memories (cosine), with merge and split.

Seed: "find similar -> add to cluster or create; merge/split; update metrics". River's
clusterers have no public merge/split, so this is ours. Pure and deterministic: the same vectors
in the same order give the same clusters and the same change events (ids included), which is what
replay determinism needs.

- **join / create**: a memory joins the cluster whose centroid is most similar if that similarity
  is at least ``join_threshold``; otherwise it founds a new cluster.
- **merge**: after a change, a cluster whose centroid came within ``merge_threshold`` of another's
  absorbs it (the larger one survives; on a tie, the older id).
- **split**: a cluster of at least ``min_split_size`` members whose radius (mean cosine distance
  of members to the centroid) exceeds ``split_radius`` is cut in two by 2-means seeded with its
  two most distant members; the larger part keeps the id.

Every memory is in exactly one live cluster; merge and split preserve the member count.

State is compact: a cluster keeps the float32 **sum** of its members' unit vectors (the centroid
is its direction; for unit vectors the radius is exactly ``1 - |sum| / n``) and its member ids.
Member vectors are needed only to split; they are kept in a cache that is not part of the saved
state, and fetched through ``fetch`` (from the vector store) after a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ClusterParams:
    join_threshold: float = 0.55
    merge_threshold: float = 0.88
    split_radius: float = 0.45
    min_split_size: int = 8


@dataclass(frozen=True)
class ClusterChange:
    """One change of an agent's clusters (the payload of ``argos.clusters``)."""

    kind: str  # create | join | merge | split | remove
    agent_id: str
    cluster_id: str
    memory_id: str | None
    size: int
    radius: float
    stability: float
    ts: float
    related: tuple[str, ...] = ()  # merge: absorbed ids; split: the new cluster's id
    centroid: np.ndarray | None = field(default=None, compare=False, repr=False)


class SumDirection:
    """A cluster kept as the sum ``total`` of its members' vectors: its centroid is the sum's
    direction, computed once per value of ``total`` (every change replaces the array, never
    writes into it), since similarity scans ask every cluster for it on every memory."""

    total: np.ndarray

    def centroid(self) -> np.ndarray:
        cached = self.__dict__.get("_direction")
        total = self.total
        if cached is not None and cached[0] is total:
            return cached[1]
        norm = float(np.linalg.norm(total))
        direction = total / norm if norm > 0 else total
        direction.flags.writeable = False  # shared by every caller until total changes
        self.__dict__["_direction"] = (total, direction)
        return direction


@dataclass
class MicroCluster(SumDirection):
    cluster_id: str
    created_ts: float
    changed_ts: float
    total: np.ndarray
    members: list[str] = field(default_factory=list)
    # changes since this object was built (not saved): ``version`` counts every change,
    # ``rewritten`` is the version of the last one that did more than append members, so a
    # save tells what changed since the last without comparing member lists (clusters_delta)
    version: int = field(default=0, compare=False, repr=False)
    rewritten: int = field(default=0, compare=False, repr=False)

    def radius(self) -> float:
        """Mean cosine distance of the members to the centroid: ``1 - |sum| / n``."""
        if len(self.members) < 2:
            return 0.0
        r = 1.0 - float(np.linalg.norm(self.total)) / len(self.members)
        return float(min(max(r, 0.0), 2.0))  # float error can dip below 0


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    n = float(np.linalg.norm(v))
    if n == 0.0:
        raise ValueError("cannot cluster the zero vector")
    return (v / n).astype(np.float32)


Fetch = Callable[[list[str]], dict[str, np.ndarray]]
#: a vector's ``AgentClusters.scan``: the unit vector, the live clusters, their cosines to it
Scan = tuple[np.ndarray, list["MicroCluster"], np.ndarray]


class AgentClusters:
    """The micro-clusters of one agent."""

    def __init__(
        self, agent_id: str, params: ClusterParams | None = None, fetch: Fetch | None = None
    ) -> None:
        self.agent_id = agent_id
        self.params = params or ClusterParams()
        self.clusters: dict[str, MicroCluster] = {}
        self.where: dict[str, str] = {}  # memory_id -> cluster_id
        self.vectors: dict[str, np.ndarray] = {}  # cache for splits; not saved
        # (clusters, their sums, centroid matrix) of the last similarity scan; see _similarities
        self._matrix: tuple[list[MicroCluster], list[np.ndarray], np.ndarray] | None = None
        # cluster id -> (member ids, their vectors as rows, with room to grow); _member_matrix
        self._members: dict[str, tuple[list[str], np.ndarray]] = {}
        self.fetch = fetch
        self._next = 0

    def _new_id(self) -> str:
        self._next += 1
        return f"{self.agent_id}/c{self._next}"

    def stability(self, c: MicroCluster) -> float:
        """1 for a tight cluster, 0 at the split limit: how far it is from being cut."""
        return float(min(1.0, max(0.0, 1.0 - c.radius() / self.params.split_radius)))

    def _change(
        self, kind: str, c: MicroCluster, mid: str | None, ts: float, related: tuple[str, ...] = ()
    ) -> ClusterChange:
        return ClusterChange(
            kind,
            self.agent_id,
            c.cluster_id,
            mid,
            len(c.members),
            round(c.radius(), 6),
            round(self.stability(c), 6),
            ts,
            related,
            c.centroid().copy(),
        )

    def scan(self, vector: np.ndarray) -> Scan:
        """``vector`` as a unit vector, and every live cluster with its centroid's cosine to
        it: what ``nearest`` and then ``add`` of the same memory would each compute, to pass
        to both (valid until the clusters change)."""
        v = _unit(vector)
        return (v, *self._similarities(v))

    def add(
        self, memory_id: str, vector: np.ndarray, ts: float, scan: Scan | None = None
    ) -> list[ClusterChange]:
        """Place one memory; returns the changes it caused (none for a memory already placed).
        ``scan``: this vector's ``scan()``, taken since the clusters last changed."""
        if memory_id in self.where:
            return []
        v, cs, sims = scan if scan is not None else self.scan(vector)
        self.vectors[memory_id] = v
        best, best_sim = None, -2.0
        if cs:
            i = int(np.argmax(sims))  # the first of equals: the oldest
            best, best_sim = cs[i], float(sims[i])
        changes: list[ClusterChange] = []
        if best is not None and best_sim >= self.params.join_threshold:
            best.members.append(memory_id)
            best.total = (best.total + v).astype(np.float32)
            best.changed_ts = ts
            best.version += 1
            self.where[memory_id] = best.cluster_id
            changes.append(self._change("join", best, memory_id, ts))
            target = best
        else:
            target = MicroCluster(self._new_id(), ts, ts, v.copy(), [memory_id])
            self.clusters[target.cluster_id] = target
            self.where[memory_id] = target.cluster_id
            changes.append(self._change("create", target, memory_id, ts))
        changes += self._maybe_merge(target, ts)
        survivor = self.clusters.get(self.where[memory_id])
        if survivor is not None:
            changes += self._maybe_split(survivor, ts)
        return changes

    def remove(self, memory_id: str, ts: float) -> list[ClusterChange]:
        """Take a memory out (it decayed or was archived); an emptied cluster disappears.

        The cluster's sum is recomputed from the remaining members (in member order), so it
        depends only on who is left, never on when or in which batches members left: a late
        sweep gives the same bits as an on-time one. Needs the remaining members' vectors."""
        cid = self.where.pop(memory_id, None)
        if cid is None:
            return []
        c = self.clusters[cid]
        c.members.remove(memory_id)
        gone = self.vectors.pop(memory_id, None)
        c.changed_ts = ts
        c.version += 1
        c.rewritten = c.version
        if not c.members:
            del self.clusters[cid]
            return [ClusterChange("remove", self.agent_id, cid, memory_id, 0, 0.0, 0.0, ts)]
        vecs = self.member_vectors(c.members)
        if len(vecs) == len(c.members):
            c.total = _sum(vecs, c.members)
        elif gone is not None:  # some vectors unavailable: subtract (exact up to rounding)
            c.total = (c.total - gone).astype(np.float32)
        return [self._change("remove", c, memory_id, ts)]

    def nearest(
        self, vector: np.ndarray, clusters: int = 2, scan: Scan | None = None
    ) -> tuple[str, float] | None:
        """The most similar member among the ``clusters`` nearest clusters (cosine), or None.

        Used to spot near-duplicates. Equal vectors can differ in the last bits of a matrix
        product (the BLAS kernel rounds rows differently), so similarities within 1e-6 of the
        best are a tie, which goes to the smallest memory id. Vectorised: a Python loop over
        the members cost O(members) per new memory, the memory stage's largest cost at
        thousands of memories per cluster (``bench.growth``)."""
        v, cs, sims = scan if scan is not None else self.scan(vector)
        scans: list[tuple[list[str], np.ndarray]] = []
        for i in np.argsort(-sims, kind="stable")[:clusters]:  # on a tie, the older cluster
            ids, mat = self._member_matrix(cs[int(i)])
            if ids:
                scans.append((ids, mat @ v))
        if not scans:
            return None
        # the members within 1e-6 of the best of all (compared in float64: a Python float
        # against float32 would compare in float32); of those, the smallest id
        floor = np.float64(max(float(ms.max()) for _, ms in scans) - 1e-6)
        return min((ids[j], float(ms[j])) for ids, ms in scans for j in np.flatnonzero(ms >= floor))

    def _member_matrix(self, c: MicroCluster) -> tuple[list[str], np.ndarray]:
        """The members of ``c`` whose vectors are known and their vectors as rows. Kept per
        cluster and grown in place while members only join at the end (the common change), so
        a near-duplicate test does not restack a big cluster's vectors for every new memory."""
        members = c.members
        cached = self._members.get(c.cluster_id)
        if cached is not None:
            ids, buf = cached
            n = len(ids)
            if len(members) >= n and members[:n] == ids:
                new = members[n:]
                vecs = self.member_vectors(new) if new else {}
                if len(vecs) == len(new):
                    if new:
                        start = n
                        if n + len(new) > buf.shape[0]:  # double the room
                            grown = np.empty((2 * (n + len(new)), buf.shape[1]), np.float32)
                            grown[:n] = buf[:n]
                            buf, start = grown, 0
                        buf[n : n + len(new)] = np.stack([vecs[m] for m in new])
                        ids = ids + new
                        self._members[c.cluster_id] = (ids, buf)
                        self._point_at(ids, buf, start)
                    return ids, buf[: len(ids)]
        vecs = self.member_vectors(members)
        ids = [m for m in members if m in vecs]
        if not ids:
            return [], np.zeros((0, 0), np.float32)
        buf = np.stack([vecs[m] for m in ids]).astype(np.float32)
        if len(self._members) > 2 * len(self.clusters) + 8:  # forget clusters that are gone
            self._members = {k: v for k, v in self._members.items() if k in self.clusters}
        if len(ids) == len(members):  # cache only complete ones (missing vectors may come)
            self._members[c.cluster_id] = (ids, buf)
            self._point_at(ids, buf, 0)
        return ids, buf

    def _point_at(self, ids: list[str], buf: np.ndarray, start: int) -> None:
        """Keep each member's vector as a view of its row in the cluster's matrix from
        ``start`` on (the same float32 bits), so the matrix is the one copy: the memory's own
        array, or an older matrix once no view of it is left, is freed (~1.5 KB per memory at
        384 dimensions, ``bench.heap_census --bytes``)."""
        vectors = self.vectors
        for i in range(start, len(ids)):
            mid = ids[i]
            if mid in vectors:
                vectors[mid] = buf[i]

    def _similarities(self, v: np.ndarray) -> tuple[list[MicroCluster], np.ndarray]:
        """Every live cluster (creation order, so index order is age order) and its centroid's
        cosine to the unit vector ``v``, in one matrix product. The centroid matrix is kept: a
        cluster whose sum changed gets its row renewed, and the matrix is rebuilt when clusters
        come or go (both checked by identity, so no change can be missed)."""
        cs = list(self.clusters.values())
        cached = self._matrix
        if (
            cached is not None
            and len(cached[0]) == len(cs)
            and all(c is k for c, k in zip(cs, cached[0], strict=True))
        ):
            totals, mat = cached[1], cached[2]
            for i, c in enumerate(cs):  # the same clusters: renew the rows whose sum changed
                if c.total is not totals[i]:
                    mat[i], totals[i] = c.centroid(), c.total
        else:
            mat = np.stack([c.centroid() for c in cs]) if cs else np.zeros((0, v.shape[0]))
            cached = self._matrix = (cs, [c.total for c in cs], mat.astype(np.float32))
        return cs, cached[2] @ v

    def member_vectors(self, ids: list[str]) -> dict[str, np.ndarray]:
        missing = [i for i in ids if i not in self.vectors]
        if missing and self.fetch is not None:
            for mid, vec in self.fetch(missing).items():
                self.vectors[mid] = _unit(vec)
        return {i: self.vectors[i] for i in ids if i in self.vectors}

    def _maybe_merge(self, c: MicroCluster, ts: float) -> list[ClusterChange]:
        changes: list[ClusterChange] = []
        while True:
            cs, sims = self._similarities(c.centroid())
            partner = None
            others = [i for i, o in enumerate(cs) if o is not c]
            if others:
                cand = sims[others]
                top = float(cand.max())
                if top >= self.params.merge_threshold:  # the most similar; of equals, the newest
                    partner = cs[others[int(np.flatnonzero(cand == top)[-1])]]
            if partner is None:
                return changes
            keep, gone = sorted((c, partner), key=lambda k: (-len(k.members), _order(k)))
            keep.members.extend(gone.members)
            keep.total = (keep.total + gone.total).astype(np.float32)
            for mid in gone.members:
                self.where[mid] = keep.cluster_id
            keep.changed_ts = ts
            keep.version += 1  # members appended: still a prefix of what was saved
            del self.clusters[gone.cluster_id]
            changes.append(self._change("merge", keep, None, ts, (gone.cluster_id,)))
            c = keep

    def _maybe_split(self, c: MicroCluster, ts: float) -> list[ClusterChange]:
        p = self.params
        if len(c.members) < p.min_split_size or c.radius() <= p.split_radius:
            return []
        ids = list(c.members)
        vecs = self.member_vectors(ids)
        if len(vecs) < len(ids):
            return []  # some vectors are not available (yet): split on a later change
        mat = np.stack([vecs[i] for i in ids])
        sims = mat @ mat.T
        a, b = np.unravel_index(int(np.argmin(sims)), sims.shape)
        cents = mat[[a, b]]
        for _ in range(10):
            labels = np.argmax(mat @ cents.T, axis=1)
            if labels.min() == labels.max():
                return []
            new = np.stack([mat[labels == k].sum(axis=0) for k in (0, 1)])
            new /= np.linalg.norm(new, axis=1, keepdims=True)
            if np.allclose(new, cents):
                break
            cents = new
        big = 0 if (labels == 0).sum() >= (labels == 1).sum() else 1
        stay = [ids[i] for i in range(len(ids)) if labels[i] == big]
        moved = [ids[i] for i in range(len(ids)) if labels[i] != big]
        c.members = stay
        c.total = _sum(vecs, stay)
        part = MicroCluster(self._new_id(), ts, ts, _sum(vecs, moved), moved)
        self.clusters[part.cluster_id] = part
        for m in moved:
            self.where[m] = part.cluster_id
        c.changed_ts = ts
        c.version += 1
        c.rewritten = c.version
        return [
            self._change("split", c, None, ts, (part.cluster_id,)),
            self._change("create", part, None, ts, (c.cluster_id,)),
        ]


def _sum(vecs: dict[str, np.ndarray], ids: list[str]) -> np.ndarray:
    total = np.zeros_like(next(iter(vecs.values())))
    for i in ids:  # in member order, so the float32 rounding is reproducible
        total = (total + vecs[i]).astype(np.float32)
    return total


def _order(c: MicroCluster) -> tuple[int, str]:
    """Older clusters first (ids count up per agent)."""
    head, _, n = c.cluster_id.rpartition("/c")
    return (int(n) if n.isdigit() else 0, head)


def _b64(v: np.ndarray) -> str:
    import base64

    return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()


def cluster_state(c: MicroCluster) -> dict[str, object]:
    """One cluster as saved: its float32 sum (base64, exact) and member ids."""
    return {
        "id": c.cluster_id,
        "created": c.created_ts,
        "changed": c.changed_ts,
        "total": _b64(c.total),
        "members": c.members,
    }


def to_state(ac: AgentClusters) -> dict[str, object]:
    """A compact JSON-able snapshot of an agent's clusters, in creation order."""
    return {
        "agent_id": ac.agent_id,
        "next": ac._next,
        "clusters": [cluster_state(c) for c in ac.clusters.values()],
    }


# what a saved state last held of each cluster: (the cluster, its version, its member count);
# O(clusters), not O(members): the cluster's version counters tell what changed since
ClusterMarks = dict[str, tuple[MicroCluster, int, int]]


def cluster_marks(ac: AgentClusters) -> ClusterMarks:
    return {cid: (c, c.version, len(c.members)) for cid, c in ac.clusters.items()}


def clusters_delta(ac: AgentClusters, marks: ClusterMarks) -> dict[str, object]:
    """The clusters changed since ``marks`` (see ``pipelines.agent_log``): ``put`` in creation
    order (one that only gained members at the end carries just those, as ``add``), ``drop``."""
    put: list[dict[str, object]] = []
    for cid, c in ac.clusters.items():
        marked, version, count = marks.get(cid, (None, -1, 0))
        if marked is c and version == c.version:
            continue
        entry = cluster_state(c)
        if marked is c and c.rewritten <= version:  # only appended since
            del entry["members"]
            entry["add"] = c.members[count:]
        put.append(entry)
    drop = [cid for cid in marks if cid not in ac.clusters]
    return {"agent_id": ac.agent_id, "next": ac._next, "put": put, "drop": drop}


def from_state(
    state: dict[str, object], params: ClusterParams | None = None, fetch: Fetch | None = None
) -> AgentClusters:
    """Rebuild an ``AgentClusters`` from ``to_state`` output (vectors come back via ``fetch``)."""
    import base64

    ac = AgentClusters(str(state["agent_id"]), params, fetch)
    ac._next = int(state["next"])  # type: ignore[call-overload]
    for c in state["clusters"]:  # type: ignore[attr-defined]
        total = np.frombuffer(base64.b64decode(c["total"]), dtype="<f4").copy()
        mc = MicroCluster(
            c["id"], float(c["created"]), float(c["changed"]), total, list(c["members"])
        )
        for m in mc.members:
            ac.where[m] = mc.cluster_id
        ac.clusters[mc.cluster_id] = mc
    return ac


def summary(ac: AgentClusters) -> list[dict[str, object]]:
    """Metrics per live cluster: size, radius, stability, age (event time), last change."""
    return [
        {
            "cluster_id": c.cluster_id,
            "size": len(c.members),
            "radius": round(c.radius(), 6),
            "stability": round(ac.stability(c), 6),
            "created_ts": c.created_ts,
            "changed_ts": c.changed_ts,
        }
        for c in sorted(ac.clusters.values(), key=_order)
    ]
