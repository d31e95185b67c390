"""Each agent's memory-stage state in the memory table: a snapshot and the deltas since.

Rewriting an agent's whole state (every life, every cluster with its members) per batch costs
O(memories) of JSON and changelog bytes per batch, and ``json.dumps`` of megabytes holds the GIL
that recalls need. So a batch writes one small **delta** per agent it touched (the lives and
clusters that changed, the head fields, its outbox and source offsets); once the deltas add up
to more than the snapshot, the whole state is written as the new **snapshot** and the deltas are
deleted. Bytes written per batch follow what changed, amortised (a snapshot of N bytes is written
only after at least N bytes of deltas).

Keys: the snapshot under the agent key itself (so a state saved before deltas existed loads as a
snapshot), delta ``n`` under ``agent NUL n`` (NUL cannot occur in identifiers). Every value
starts with its sequence number (``@n`` and a newline, then the JSON); deltas at or below the
snapshot's are stale (a crash between a snapshot and the tombstones of the deltas it folded in)
and ignored. Each batch writes one value per agent (a delta, or a snapshot followed by
tombstones that may be lost harmlessly), so a crash leaves every agent at a batch boundary.

The logical state (what ``merge`` rebuilds, what ``AgentMemory.to_state`` gives per namespace) is
``{namespace: {clock, due, m, dups, derived, clusters}, _outbox, _offsets, _seq}`` (``_seq``
only in memory, from the value's head). A delta holds
per namespace ``clock``, ``due``, ``m`` (changed lives), ``dups`` (new near-duplicates),
``derived`` / ``derived_drop``, and ``clusters``: ``agent_id``, ``next``, ``put`` (changed
clusters; one that only gained members at the end carries them as ``add``) and ``drop``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

SEP = b"\x00"
SEQ = "_seq"
OUTBOX = "_outbox"  # the last batch's effects (see ``stage_batches``)
OFFSETS = "_offsets"  # the last source offset applied per topic
DELTAS_MAX = 256  # deltas per agent before a snapshot, whatever their size
SNAPSHOT_MIN = 32 * 1024  # deltas may add up to this much before a small snapshot is rewritten


_STATE_JSON = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def dump_state(obj: Any) -> bytes:
    """A state's JSON, compact and with sorted keys. orjson, not ``json.dumps``: several times
    faster, and the memory and population stages write a state per agent or namespace per
    batch. States hold finite numbers only (orjson would write NaN as null); a type it cannot
    write raises, as ``json.dumps`` would. ``json.loads`` reads both writers' output."""
    return orjson.dumps(obj, option=_STATE_JSON)


def encode(seq: int, obj: dict[str, Any]) -> bytes:
    """A snapshot or delta value: its sequence number, then the JSON."""
    return b"@%d\n" % seq + dump_state(obj)


def seq_of(value: bytes) -> int:
    """A value's sequence number without parsing it (0 for a state saved before deltas)."""
    if value[:1] != b"@":
        return 0
    return int(value[1 : value.index(b"\n")])


def body(value: bytes) -> dict[str, Any]:
    if value[:1] != b"@":
        return json.loads(value)
    return json.loads(value[value.index(b"\n") + 1 :])


def delta_key(agent: bytes, seq: int) -> bytes:
    return agent + SEP + seq.to_bytes(8, "big")


def agent_of(key: bytes) -> bytes:
    """The agent key of a snapshot or delta key."""
    return key.split(SEP, 1)[0]


def is_delta(key: bytes) -> bool:
    return SEP in key


def private(key: str) -> bool:
    """Whether a key of a state is bookkeeping (outbox, offsets, sequence), not a namespace."""
    return key.startswith("_")


@dataclass
class Saved:
    """What the table holds for one agent: its snapshot and the deltas written after it."""

    snapshot: bytes | None
    deltas: list[tuple[int, bytes]] = field(default_factory=list)  # ascending, > snapshot's
    stale: list[bytes] = field(default_factory=list)  # delta keys a snapshot folded in
    delta_keys: list[bytes] = field(default_factory=list)  # the keys of ``deltas``
    _state: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def seq(self) -> int:
        """The sequence number of the latest value (0 for none, or a pre-delta state)."""
        if self.deltas:
            return self.deltas[-1][0]
        return seq_of(self.snapshot) if self.snapshot else 0

    @property
    def log_bytes(self) -> int:
        return sum(len(v) for _, v in self.deltas)

    def state(self) -> dict[str, Any]:
        """The logical state (parsed and merged once; do not modify it)."""
        if self._state is None:
            st = body(self.snapshot) if self.snapshot else {}
            st[SEQ] = seq_of(self.snapshot) if self.snapshot else 0
            for seq, d in self.deltas:
                merge(st, body(d), seq)
            self._state = st
        return self._state


def merge(state: dict[str, Any], delta: dict[str, Any], seq: int) -> dict[str, Any]:
    """Apply ``delta`` (number ``seq``) to the logical ``state`` in place (and return it)."""
    state[SEQ] = seq
    for key in (OUTBOX, OFFSETS):  # the latest batch's, or none
        if key in delta:
            state[key] = delta[key]
        else:
            state.pop(key, None)
    for ns, d in delta.items():
        if private(ns):
            continue
        base = state.setdefault(
            ns,
            {
                "clock": 0.0,
                "due": None,
                "m": {},
                "dups": {},
                "derived": {},
                "clusters": {"agent_id": d["clusters"]["agent_id"], "next": 0, "clusters": []},
            },
        )
        base["clock"], base["due"] = d["clock"], d["due"]
        base["m"].update(d["m"])
        base["dups"].update(d["dups"])
        for cid in d["derived_drop"]:
            base["derived"].pop(cid, None)
        base["derived"].update(d["derived"])
        cl, dc = base["clusters"], d["clusters"]
        cl["agent_id"], cl["next"] = dc["agent_id"], dc["next"]
        # cluster order is creation order (ids count up; new ones come last), which the
        # clusterer's tie-breaks depend on: a dict keeps it (an update stays in place)
        by_id = {c["id"]: c for c in cl["clusters"]}
        for cid in dc["drop"]:
            by_id.pop(cid, None)
        for c in dc["put"]:
            if "add" in c:
                old = by_id[c["id"]]
                c = {k: v for k, v in c.items() if k != "add"} | {
                    "members": old["members"] + c["add"]
                }
            by_id[c["id"]] = c
        cl["clusters"] = list(by_id.values())
    return state


class AgentIndex:
    """The delta keys of every agent in a table, so finding an agent's state costs no scan.

    Kept in step with the stage's own writes (``note``); anything else that fills the table
    (changelog recovery after a restart or a rebalance) must call ``invalidate``, and the next
    use scans the keys once."""

    def __init__(self, keys: Callable[[], Iterable[bytes]], read: Callable[[bytes], Any]) -> None:
        self._keys, self._read = keys, read
        self._deltas: dict[bytes, dict[int, bytes]] | None = None

    def invalidate(self) -> None:
        self._deltas = None

    def _index(self) -> dict[bytes, dict[int, bytes]]:
        if self._deltas is None:
            idx: dict[bytes, dict[int, bytes]] = {}
            for key in list(self._keys()):
                if is_delta(key):
                    agent, _, seq = key.partition(SEP)
                    idx.setdefault(agent, {})[int.from_bytes(seq, "big")] = key
            self._deltas = idx
        return self._deltas

    def note(self, writes: Mapping[bytes, bytes | None]) -> None:
        """Keys the stage just wrote (None: deleted)."""
        idx = self._index()
        for key, value in writes.items():
            if not is_delta(key):
                continue
            agent, _, seq = key.partition(SEP)
            if value is None:
                mine = idx.get(agent)
                if mine is not None:
                    mine.pop(int.from_bytes(seq, "big"), None)
                    if not mine:
                        del idx[agent]
            else:
                idx.setdefault(agent, {})[int.from_bytes(seq, "big")] = key

    def agents(self) -> list[bytes]:
        """Every agent with a state (each has a snapshot: its first write is one)."""
        return [k for k in list(self._keys()) if not is_delta(k)]

    def saved(self, agent: bytes) -> Saved | None:
        snapshot = self._read(agent)
        mine = self._index().get(agent, {})
        if snapshot is None and not mine:
            return None
        base = seq_of(snapshot) if snapshot else 0
        out = Saved(snapshot)
        for seq in sorted(mine):
            key = mine[seq]
            if seq <= base:
                out.stale.append(key)
                continue
            value = self._read(key)
            if value is not None:
                out.deltas.append((seq, value))
                out.delta_keys.append(key)
        return out


def saved_from(table: Mapping[bytes, bytes | None]) -> dict[bytes, Saved | None]:
    """Every agent's ``Saved`` from a plain mapping of table keys (tests, tools)."""
    index = AgentIndex(lambda: [k for k, v in table.items() if v is not None], table.get)
    return {agent: index.saved(agent) for agent in index.agents()}


def should_snapshot(saved: Saved | None, delta_len: int) -> bool:
    """Whether this batch writes a snapshot: the first state, or deltas past the snapshot."""
    if saved is None or saved.snapshot is None:
        return True
    if len(saved.deltas) + 1 >= DELTAS_MAX:
        return True
    return saved.log_bytes + delta_len > max(len(saved.snapshot), SNAPSHOT_MIN)
