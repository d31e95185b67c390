"""One dashboard over several workers: the pure parts of gathering what each worker holds.

Each worker holds the agents of its partitions. The worker serving a page asks the others (its
peers, from Faust's partition assignment) for their share and merges the answers here:

- points: column payloads (``pipelines.dashboard.columns``) concatenated, their code tables
  (agents, clusters) remapped, then sampled to the limit by the same rule every worker samples
  with (``sample_order``), so the merged sample is the one a single worker holding everything
  would have sent;
- live items: a peer's new memories travel with their vectors (float16), so the serving worker
  projects them with its own projection like its own memories;
- counters: sums over the workers (each counts only its own partitions' work).

>>> a = {"n": 1, "total": 1, "x": [0.5], "agent": [0], "agents": ["ann"], "cluster": [-1],
...      "clusters": [], "memory_id": ["m1"]}
>>> b = {"n": 2, "total": 2, "x": [1.0, 2.0], "agent": [0, 1], "agents": ["bea", "ann"],
...      "cluster": [0, 0], "clusters": ["c9"], "memory_id": ["m2", "m3"]}
>>> m = merge_points([a, b], limit=10)
>>> m["total"], m["memory_id"], [m["agents"][i] for i in m["agent"]], m["cluster"]
(3, ['m1', 'm2', 'm3'], ['ann', 'bea', 'ann'], [-1, 0, 0])
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from pipelines.hot_index import sample_order
from pipelines.store import StoredMemory

# The columns with one value per point (``pipelines.dashboard.columns``), and the code columns
# with the table they index.
POINT_COLUMNS = (
    "x",
    "y",
    "wx",
    "wy",
    "memory_id",
    "agent",
    "cluster",
    "type",
    "state",
    "content",
    "event_ts",
)
CODED = {"agent": "agents", "cluster": "clusters"}
SUMMED = (
    "ingested",
    "stored",
    "dead_lettered",
    "recalls",
    "denied",
    "decayed",
    "archived",
    "derived",
    "strengthened",
    "cluster_changes",
    "lifecycle_events",
    "predictions",
    "lag_total",
    "hot_rows",
    "feed_dropped",
)


def merge_points(payloads: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    """Points payloads of several workers as one, sampled to ``limit`` like one worker would.

    Per-point columns are concatenated; ``agent``/``cluster`` codes are remapped into merged
    ``agents``/``clusters`` tables; ``total`` is summed; ``world_agents`` concatenated; other
    keys (view, projection, tables like ``types``) come from the first payload.
    """
    if not payloads:
        raise ValueError("no payloads to merge")
    first = payloads[0]
    per_point = [k for k in POINT_COLUMNS if k in first]
    out: dict[str, Any] = {k: v for k, v in first.items() if k not in per_point}
    for k in per_point:
        out[k] = []
    tables: dict[str, dict[Any, int]] = {t: {} for t in CODED.values()}
    for p in payloads:
        if p["n"] != len(p["memory_id"]):
            raise ValueError("a points payload whose n is not its number of memory ids")
        remap = {}
        for code, table in CODED.items():
            names = tables[table]
            remap[code] = [names.setdefault(v, len(names)) for v in p.get(table, [])]
        for k in per_point:
            col = p[k]
            if k in remap:
                col = [remap[k][c] if c >= 0 else -1 for c in col]
            out[k].extend(col)
    for table, names in tables.items():
        out[table] = list(names)
    out["total"] = sum(int(p.get("total", p["n"])) for p in payloads)
    if any("world_agents" in p for p in payloads):
        out["world_agents"] = sorted(
            (a for p in payloads for a in p.get("world_agents", [])), key=lambda a: a["agent_id"]
        )
    keep = sample_order(out["memory_id"], limit).tolist()
    if len(keep) < len(out["memory_id"]):
        for k in per_point:
            out[k] = [out[k][i] for i in keep]
    out["n"] = len(out["memory_id"])
    return out


def encode_vectors(vectors: np.ndarray) -> str:
    """(n, dim) vectors as base64 of little-endian float16 (half the bytes; a projection to two
    dimensions does not need more)."""
    return base64.b64encode(np.asarray(vectors, dtype="<f2").tobytes()).decode("ascii")


def decode_vectors(text: str, dim: int) -> np.ndarray:
    """The inverse of ``encode_vectors``: (n, dim) float32."""
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    if len(raw) % (2 * dim):
        raise ValueError(f"{len(raw)} bytes are not rows of {dim} float16 values")
    return np.frombuffer(raw, dtype="<f2").reshape(-1, dim).astype(np.float32)


def row_to_wire(row: StoredMemory) -> dict[str, Any]:
    """What a peer sends of a new memory for another worker's page (vector as float16)."""
    return {
        "memory_id": row.memory_id,
        "agent_id": row.agent_id,
        "namespace": row.namespace,
        "type": row.type,
        "content": row.content,
        "importance": row.importance,
        "event_ts": row.event_ts,
        "event_time": row.event_time,
        "position": row.extra.get("position"),
        "vector": encode_vectors(np.asarray(row.vector, dtype=np.float32)[None, :]),
    }


def row_from_wire(item: Mapping[str, Any], dim: int) -> StoredMemory:
    """The memory a peer sent (``row_to_wire``), as the live feed carries it."""
    vec = decode_vectors(str(item["vector"]), dim)
    if len(vec) != 1:
        raise ValueError("a memory on the wire carries exactly one vector")
    pos = item.get("position")
    return StoredMemory(
        memory_id=str(item["memory_id"]),
        agent_id=str(item["agent_id"]),
        namespace=str(item["namespace"]),
        type=str(item["type"]),
        content=str(item["content"]),
        importance=float(item["importance"]),
        event_ts=float(item["event_ts"]),
        event_time=str(item["event_time"]),
        vector=vec[0],
        extra={"position": pos} if pos else {},
    )


def sum_counters(local: dict[str, Any], peers: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The live panel's counters over every worker: counts summed, lag per partition merged
    (each partition is one worker's), ``workers`` how many answered. Rates are left to the
    caller (they are differences of these sums)."""
    out = dict(local)
    out["lag"] = dict(local.get("lag") or {})
    n = 1
    for p in peers:
        n += 1
        for k in SUMMED:
            v = p.get(k)
            if isinstance(v, int | float) and not (isinstance(v, float) and math.isnan(v)):
                out[k] = out.get(k, 0) + v
        out["lag"].update(p.get("lag") or {})
    out["workers"] = n
    return out


def merge_held(maps: Iterable[Mapping[str, Mapping[str, int]]]) -> dict[str, dict[str, int]]:
    """namespace -> agent -> memories over workers (an agent is one worker's; during a
    rebalance two may report it: the larger count is kept)."""
    out: dict[str, dict[str, int]] = {}
    for held in maps:
        for ns, agents in held.items():
            mine = out.setdefault(ns, {})
            for agent, n in agents.items():
                mine[agent] = max(mine.get(agent, 0), int(n))
    return out
