"""Batch functions the stream agents run in worker threads: pure cores + (de)serialisation.

They take raw Kafka records and return ready-to-send ``(key, value)`` byte pairs, so the event
loop only moves bytes (every microsecond of Python on the loop is a microsecond the model waits
for the GIL on a 2-core machine).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from pipelines import agent_log
from pipelines.agent_log import OFFSETS, OUTBOX, SEQ, Saved, private
from pipelines.audit import from_lifecycle
from pipelines.embed import Embedder
from pipelines.embed_stage import embed_events
from pipelines.errors import InvalidEventError, RejectedError
from pipelines.ingest import Guard, RawRecord, dead_letter, ingest_batch
from pipelines.memory_state import (
    AgentMemory,
    Effects,
    Lookup,
    Marks,
    MemoryParams,
    forgotten_ids,
    index_fields,
)
from pipelines.store import StoredMemory, VectorStore
from schemas import AccessEvent, ClusterEvent, EmbeddedMemory, MemoryEvent

KV = tuple[bytes | None, bytes]
log = logging.getLogger(__name__)


@dataclass
class BatchOut:
    """What one batch produced: records for the next topic, dead letters, counts."""

    forward: list[KV] = field(default_factory=list)
    dead: list[KV] = field(default_factory=list)
    valid: int = 0
    # index (into the batch's records) of the record each forward record came from
    forward_src: list[int] = field(default_factory=list)
    # records refused by policy (401/403/429 at ingest), for the audit trail
    # (index, actor, namespace, agent, HTTP status, reason)
    denied: list[tuple[int, str, str, str, int, str]] = field(default_factory=list)


def _dead(rec: RawRecord, err: InvalidEventError, stage: str, now: float) -> KV:
    """A dead letter for ``rec``, ready to send (keyed like the original)."""
    return (rec.key, dead_letter(rec, err, stage, now).model_dump_json().encode())


def ingest_and_embed(
    records: Sequence[RawRecord], embedder: Embedder, now: float, guard: Guard | None = None
) -> BatchOut:
    """Validate raw events (bad ones -> dead letters), admit them (``guard``: rights and rate
    limits; refused ones -> dead letters), embed the good ones in one model call."""
    out = BatchOut()
    where = {id(r): i for i, r in enumerate(records)}
    denied: list[tuple[RawRecord, MemoryEvent, RejectedError]] = []

    def admit(rec: RawRecord, ev: MemoryEvent) -> None:
        try:
            if guard is not None:
                guard(rec, ev)
        except RejectedError as exc:
            denied.append((rec, ev, exc))
            raise

    pairs, bad = ingest_batch(records, now, admit)
    out.valid = len(pairs) + len(denied)
    for rec, dl in bad:
        out.dead.append((rec.key, dl.model_dump_json().encode()))
    for rec, ev, exc in denied:
        out.denied.append(
            (where[id(rec)], exc.actor, ev.namespace, ev.agent_id, exc.http_status, exc.reason)
        )
    source = {id(ev): rec for rec, ev in pairs}
    embedded, refused = embed_events([ev for _, ev in pairs], embedder, now)
    for ev, err in refused:
        out.dead.append(_dead(source[id(ev)], err, "embed", now))
    for m in embedded:
        out.forward.append((m.event.agent_id.encode(), m.model_dump_json().encode()))
        # the event object passes through unchanged (pydantic keeps model instances)
        out.forward_src.append(where[id(source[id(m.event)])])
    return out


def parse_embedded(
    records: Sequence[RawRecord], now: float, sources: list[int] | None = None
) -> tuple[list[StoredMemory], list[KV]]:
    """Embedded-topic records -> store rows; anything unreadable -> dead letters. ``sources``,
    when given, receives the index of each row's record."""
    rows: list[StoredMemory] = []
    dead: list[KV] = []
    for i, rec in enumerate(records):
        try:
            rows.append(
                StoredMemory.from_embedded(EmbeddedMemory.model_validate_json(rec.value or b""))
            )
            if sources is not None:
                sources.append(i)
        except (ValidationError, ValueError) as exc:
            err = InvalidEventError(f"not a valid embedded memory: {str(exc)[:500]}")
            dead.append(_dead(rec, err, "store", now))
    return rows, dead


@dataclass
class MemoryOut:
    """What one memory-stage batch produced (records ready to send, store work, counts)."""

    states: dict[bytes, bytes] = field(default_factory=dict)
    lifecycle: list[KV] = field(default_factory=list)
    clusters: list[KV] = field(default_factory=list)  # keyed by namespace
    derived: list[KV] = field(default_factory=list)  # embedded records, keyed by agent
    audit: list[KV] = field(default_factory=list)  # one audit record per transition
    # (namespace, agent, memory id, StoredMemory bytes) of the memories kept: the L2 table's rows,
    # written before the state that names them, so a recovered state never names a missing row
    hot_rows: list[tuple[str, str, str, bytes]] = field(default_factory=list)
    forget: list[tuple[str, str]] = field(default_factory=list)  # (namespace, id) off the hot store
    forget_agents: list[str] = field(default_factory=list)  # the agent of each ``forget`` entry
    archive: list[tuple[str, str]] = field(default_factory=list)  # (namespace, id) to the archive
    dead: list[KV] = field(default_factory=list)
    # (namespace, source partition) -> the latest event time among this batch's records
    clocks: dict[tuple[str, int], float] = field(default_factory=dict)
    inputs: int = 0
    memories: int = 0  # embedded records among the inputs
    strengthened: int = 0
    # for the worker's hot recall index (not sent anywhere):
    # (namespace, agent, memory id, state, stability S, reinforced at, recalls) of changed lives
    lives: list[tuple[str, str, str, str, float, float, int]] = field(default_factory=list)
    # (namespace, agent, memory id, cluster id or None) of memories whose cluster changed
    members: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    derived_count: int = 0  # new semantic memories
    rederived_count: int = 0  # semantic memories distilled again (same id, new content)
    replayed: int = 0  # agents whose cut-off effects were sent again
    skipped: int = 0  # records redelivered after a crash whose effect the state already holds
    cluster_kinds: dict[str, int] = field(default_factory=dict)
    lifecycle_kinds: dict[str, int] = field(default_factory=dict)


def memory_batch(
    records: Sequence[RawRecord],
    states: Mapping[bytes, Saved | None],
    params: MemoryParams,
    embedded_topic: str,
    now: float,
    store: VectorStore | None = None,
    model: str = "derived",
    sweep: dict[str, float] | None = None,
    cache: MutableMapping[bytes, Any] | None = None,
    settled: Container[bytes] | None = None,
    traces: Sequence[str | None] | None = None,
    rows: RowsFor | None = None,
    deltas: bool = True,
) -> MemoryOut:
    """New memories (embedded topic) and recalls (access topic) through each agent's memory
    (``pipelines.memory_state``): lifecycle, clusters, near-duplicates, consolidation.

    ``states`` maps agent keys to what the memory table holds for them (``agent_log.Saved``:
    a snapshot and deltas; logically namespace -> ``to_state``), or None; it may hold agents
    this batch does not touch: those are settled up to ``sweep[namespace]`` (the namespace
    watermark), so silent agents still decay when the world's clock moves on. ``out.states``
    are the table writes: per agent it touched, one delta of what changed, or a new snapshot
    (and tombstones of the deltas it folds in; see ``pipelines.agent_log``).
    ``store`` answers for member vectors and texts a split, a near-duplicate test or a
    distillation needs and this process has not seen (after a restart). ``cache`` (a bounded
    mapping the caller keeps between batches) holds the live ``AgentMemory`` objects with the
    sequence number of the value they were saved as, so an agent whose table value is unchanged
    is neither parsed again nor stripped of its vector cache. ``settled`` names the agents whose
    last outbox this process knows went out; for every other agent in ``states`` the saved
    outbox (see ``OUTBOX``) is sent again -- pass None to never replay. ``traces`` holds the
    trace id of each record (its span): the audit record of a transition a record caused names
    it. ``rows`` reads an agent's stored rows by id (the worker's L2 table, durable before the
    store stage's offsets are committed); without it, ``store`` is asked. ``deltas=False``
    writes every touched agent's whole state (the layout before deltas, for comparison).
    """
    loaded: dict[bytes, dict[str, AgentMemory]] = {}
    raw_states: dict[bytes, dict[str, Any]] = {}  # logical states as loaded (see load)
    marks: dict[bytes, dict[str, Marks]] = {}  # what the table holds of each live namespace
    out = MemoryOut(inputs=len(records))
    fxs: dict[tuple[bytes, str], Effects] = {}

    def load(key: bytes) -> None:
        if key in loaded:
            return
        saved = states.get(key)
        hit = cache.get(key) if cache is not None and saved else None
        if hit is not None and saved is not None and hit[0] == saved.seq:
            # what we saved last: reuse the live objects (namespaces they hold are current;
            # the logical state is current for the others and for outbox and offsets)
            raw_states[key], loaded[key], marks[key] = hit[1], hit[2], hit[3]
        else:
            raw_states[key] = dict(saved.state()) if saved else {}
            loaded[key], marks[key] = {}, {}

    def memory(key: bytes, ns: str, agent: str) -> tuple[AgentMemory, Effects]:
        load(key)
        by_ns = loaded[key]
        if ns not in by_ns:
            saved = raw_states[key].get(ns)
            lookup = _lookup(store, ns, agent, rows)
            by_ns[ns] = (
                AgentMemory.from_state(ns, agent, saved, params, lookup)
                if saved
                else AgentMemory(ns, agent, params, lookup)
            )
            marks[key][ns] = by_ns[ns].mark() if saved else Marks({}, {})
        return by_ns[ns], fxs.setdefault((key, ns), Effects())

    offsets: dict[bytes, dict[str, list[int]]] = {}  # agent -> topic -> [partition, offset]
    trace_of: dict[str, str] = {}  # memory id -> trace id of the record that brought it

    def applied(key: bytes, rec: RawRecord) -> bool:
        """Whether the agent's saved state already holds this record's effect (a redelivery:
        the state is made durable before the source offsets are committed), so each record
        acts on the state exactly once."""
        load(key)
        mine = offsets.setdefault(key, dict(raw_states[key].get(OFFSETS, {})))
        seen = mine.get(rec.topic)
        if rec.offset is None or rec.partition is None:
            return False
        if seen is not None and seen[0] == rec.partition and rec.offset <= seen[1]:
            return True
        mine[rec.topic] = [rec.partition, rec.offset]
        return False

    for i, rec in enumerate(records):
        try:
            if rec.topic == embedded_topic:
                m = EmbeddedMemory.model_validate_json(rec.value or b"")
                ev = m.event
                ts, ns = ev.event_ts, ev.namespace
                if applied(ev.agent_id.encode(), rec):
                    out.skipped += 1
                else:
                    am, fx = memory(ev.agent_id.encode(), ns, ev.agent_id)
                    am.on_memory(ev, m.vector(), fx)
                    out.memories += 1
                    if ev.memory_id in am.lives:  # kept (not a near-copy): its L2 row
                        row = StoredMemory.from_embedded(m)
                        out.hot_rows.append((ns, ev.agent_id, ev.memory_id, row.to_bytes()))
                    if traces is not None and (tid := traces[i]):
                        trace_of[ev.memory_id] = tid
            else:
                a = AccessEvent.model_validate_json(rec.value or b"")
                am, fx = memory(a.agent_id.encode(), a.namespace, a.agent_id)
                ts, ns = (am.clock if a.event_ts is None else a.event_ts), a.namespace
                if applied(a.agent_id.encode(), rec):
                    out.skipped += 1
                else:
                    am.on_access(a.memory_ids, ts, a.outcome == "success", fx)
            part = (ns, rec.partition)
            out.clocks[part] = max(out.clocks.get(part, ts), ts)
        except (ValidationError, ValueError) as exc:
            err = InvalidEventError(f"not a valid memory-stage input: {str(exc)[:500]}")
            out.dead.append(_dead(rec, err, "memory", now))
    for key, saved in sorted(states.items()):  # silent agents: settle to the watermark
        if not sweep or not saved:
            continue
        load(key)
        names = {ns for ns in raw_states[key] if not private(ns)} | set(loaded[key])
        for ns in sorted(names):
            if ns not in sweep:
                continue
            live = loaded[key].get(ns)
            if live is not None:  # next_due: a lower bound (settling early changes nothing)
                agent, due_at = live.agent_id, live.next_due
            else:
                st = raw_states[key][ns]
                agent, due_at = st["clusters"]["agent_id"], st["due"]
            if due_at is not None and due_at <= sweep[ns]:
                am, fx = memory(key, ns, agent)
                am.settle(sweep[ns], fx)
    boxes: dict[bytes, dict[str, list[Any]]] = {}
    if settled is not None:  # effects a crash may have cut off: send them again
        for key, saved in sorted(states.items()):
            if saved and key not in settled:
                load(key)
                box = raw_states[key].get(OUTBOX)
                if box:
                    _send(out, box, key)
                    boxes[key] = box
                    out.replayed += 1
    for (key, ns), fx in sorted(fxs.items()):
        box = boxes.setdefault(key, {})
        _send(out, _collect(key, ns, fx, model, now, box, out, trace_of), key)
        _index_updates(out, ns, loaded[key][ns], fx, params)
    for key in sorted({k for k, _ in fxs}):  # save the agents this batch touched
        merged = raw_states[key]
        if boxes.get(key):
            merged[OUTBOX] = boxes[key]
        else:
            merged.pop(OUTBOX, None)
        if offsets.get(key):
            merged[OFFSETS] = offsets[key]
        _save_agent(key, states.get(key), merged, loaded[key], marks[key], out, deltas)
        if cache is not None:
            cache[key] = (merged[SEQ], merged, loaded[key], marks[key])
    return out


def _save_agent(
    key: bytes,
    saved: Saved | None,
    merged: dict[str, Any],
    live: dict[str, AgentMemory],
    marks: dict[str, Marks],
    out: MemoryOut,
    deltas: bool = True,
) -> None:
    """One agent's table writes for this batch into ``out.states``: a delta of what changed
    since ``marks`` (what the table holds), or a snapshot when the deltas have grown past it.
    ``merged`` holds the outbox and offsets to save (and the saved state of namespaces not
    live here); ``marks`` and ``merged[SEQ]`` are brought up to date."""
    seq = (saved.seq if saved else 0) + 1
    value = b""
    if deltas:
        delta: dict[str, Any] = {k: merged[k] for k in (OUTBOX, OFFSETS) if k in merged}
        for ns, am in live.items():
            delta[ns] = am.delta_since(marks[ns])
        value = agent_log.encode(seq, delta)
    if not deltas or agent_log.should_snapshot(saved, len(value)):
        full = {k: v for k, v in merged.items() if k != SEQ}
        for ns, am in live.items():
            full[ns] = am.to_state()
            merged[ns] = full[ns]  # the logical state, for namespaces loaded from it later
        out.states[key] = agent_log.encode(seq, full)
        for old in (saved.delta_keys + saved.stale) if saved else []:
            out.states[old] = None
    else:
        out.states[agent_log.delta_key(key, seq)] = value
    merged[SEQ] = seq
    for ns, am in live.items():
        marks[ns] = am.mark()


def _collect(
    key: bytes,
    ns: str,
    fx: Effects,
    model: str,
    now: float,
    box: dict[str, list[Any]],
    out: MemoryOut,
    trace_of: dict[str, str],
) -> dict[str, list[Any]]:
    """One agent's effects as records and store work, appended to its outbox ``box``; returns
    just these (to send), counting them in ``out``."""
    from pipelines.population import encode_centroid

    new: dict[str, list[Any]] = {
        "lifecycle": [],
        "clusters": [],
        "derived": [],
        "forget": [],
        "archive": [],
        "audit": [],
    }
    for t in fx.transitions:
        new["lifecycle"].append([key.decode(), t.model_dump_json()])
        rec = from_lifecycle(t, trace_of.get(t.memory_id), now)
        new["audit"].append([ns, rec.model_dump_json()])
        out.lifecycle_kinds[t.to_state] = out.lifecycle_kinds.get(t.to_state, 0) + 1
    for ch in fx.cluster:
        ev = ClusterEvent(
            kind=ch.kind,  # type: ignore[arg-type]
            namespace=ns,
            agent_id=ch.agent_id,
            cluster_id=ch.cluster_id,
            memory_id=ch.memory_id,
            size=ch.size,
            radius=ch.radius,
            stability=ch.stability,
            event_ts=ch.ts,
            related=list(ch.related),
            centroid_f16=encode_centroid(ch.centroid) if ch.centroid is not None else None,
            position=fx.positions.get(ch.memory_id) if ch.memory_id else None,
        )
        new["clusters"].append([ns, ev.model_dump_json()])
        out.cluster_kinds[ch.kind] = out.cluster_kinds.get(ch.kind, 0) + 1
    for ev, vec in fx.derived:
        new["derived"].append(
            [key.decode(), EmbeddedMemory.build(ev, vec, model, now).model_dump_json()]
        )
    new["forget"] = [[ns, mid] for mid in fx.forget]
    new["archive"] = [[ns, mid] for mid in fx.archive]
    out.strengthened += fx.strengthened
    out.derived_count += fx.new_semantic
    out.rederived_count += len(fx.derived) - fx.new_semantic
    for name, items in new.items():
        if items:
            box.setdefault(name, []).extend(items)
    return new


def _index_updates(
    out: MemoryOut, ns: str, am: AgentMemory, fx: Effects, params: MemoryParams
) -> None:
    """What the hot recall index must learn from one agent's effects: changed lives, and the
    cluster of each memory whose cluster changed, as the batch left it: the one memory of a
    join, a new cluster or a removal; every member of a merge or split (they move many at
    once). Before, every member of every touched cluster was sent, so one join to a cluster
    of N cost O(N) here, in the hot index and on the pipe to the recall process: the memory
    stage's cost grew with the agent's memories (``bench.growth``)."""
    agent = am.agent_id
    for mid, life in fx.lives.items():
        out.lives.append((ns, agent, mid, *index_fields(life, params.lifecycle)))
    moved: set[str] = set()
    whole: set[str] = set()  # clusters whose members may all have moved
    for ch in fx.cluster:
        if ch.kind in ("join", "create", "remove") and ch.memory_id and not ch.related:
            moved.add(ch.memory_id)
        else:
            whole.add(ch.cluster_id)
            whole.update(ch.related)
    clusters = am.clusters
    for cid in whole:
        c = clusters.clusters.get(cid)
        if c is not None:
            moved.update(c.members)
    out.members += [(ns, agent, mid, clusters.where.get(mid)) for mid in sorted(moved)]


def _send(out: MemoryOut, box: dict[str, list[Any]], agent: bytes) -> None:
    """Queue an outbox's records and store work (of ``agent``) on ``out``."""
    out.lifecycle += [(k.encode(), v.encode()) for k, v in box.get("lifecycle", [])]
    out.clusters += [(k.encode(), v.encode()) for k, v in box.get("clusters", [])]
    out.derived += [(k.encode(), v.encode()) for k, v in box.get("derived", [])]
    out.audit += [(k.encode(), v.encode()) for k, v in box.get("audit", [])]
    out.forget += [(ns, mid) for ns, mid in box.get("forget", [])]
    out.forget_agents += [agent.decode()] * len(box.get("forget", []))
    out.archive += [(ns, mid) for ns, mid in box.get("archive", [])]


# (namespace, agent, memory ids) -> the stored rows found
RowsFor = Callable[[str, str, list[str]], list[StoredMemory]]


def _lookup(
    store: VectorStore | None,
    namespace: str,
    agent: str = "",
    rows: RowsFor | None = None,
    wait_s: float = 60.0,
) -> Lookup | None:
    """Stored rows by id (the memory stage asks only for live members of its clusters, which
    the store stage writes). The store stage consumes the same records beside the memory stage
    and may lag, e.g. just after a restart, so missing rows are asked again for up to
    ``wait_s``: a decision made without a member's vector could differ from an uninterrupted
    run's."""
    if store is None and rows is None:
        return None

    def get(want: list[str]) -> list[StoredMemory]:
        if rows is not None:
            return rows(namespace, agent, want)
        assert store is not None  # noqa: S101 - checked above
        return store.get(namespace, want)

    def lookup(ids: list[str]) -> dict[str, StoredMemory]:
        import time

        found: dict[str, StoredMemory] = {}
        deadline = time.monotonic() + wait_s
        while True:
            want = [i for i in ids if i not in found]
            found.update({m.memory_id: m for m in get(want)})
            if len(found) == len(ids):
                return found
            if time.monotonic() >= deadline:
                log.warning("%d rows of %s not in the store", len(ids) - len(found), namespace)
                return found
            time.sleep(0.1)

    return lookup


def drop_forgotten(
    rows: Sequence[StoredMemory],
    states: Mapping[bytes, Saved | None],
    cache: MutableMapping[bytes, tuple[int, set[tuple[str, str]]]] | None = None,
) -> list[StoredMemory]:
    """Rows whose memory the memory stage has not already forgotten (decayed, archived or
    near-duplicate), by its table (``states``: agent -> what the table holds). A redelivered or
    late store of a memory must not bring it back into the hot collection after the memory
    stage removed it. ``cache`` (kept between batches) holds each agent's forgotten ids with
    the sequence number of the value they were read from, so an unchanged state is not read
    again."""
    gone: set[tuple[str, str]] = set()
    for key, saved in states.items():
        if saved is None:
            continue
        hit = cache.get(key) if cache is not None else None
        if hit is not None and hit[0] == saved.seq:
            gone |= hit[1]
            continue
        base = agent_log.seq_of(saved.snapshot) if saved.snapshot else 0
        if hit is not None and base <= hit[0] < saved.seq:
            # read up to a delta after the snapshot: only the newer deltas can add (a
            # forgotten memory never comes back: decayed, archived and deleted are final)
            mine = set(hit[1])
            for seq, value in saved.deltas:
                if seq > hit[0]:
                    mine |= forgotten_in(agent_log.body(value))
        else:
            mine = forgotten_in(saved.state())
        if cache is not None:
            cache[key] = (saved.seq, mine)
        gone |= mine
    return [r for r in rows if (r.namespace, r.memory_id) not in gone]


def forgotten_in(state: Mapping[str, Any]) -> set[tuple[str, str]]:
    """``(namespace, memory_id)`` of every forgotten memory in an agent's logical state (or
    in a delta: the lives it changed and the near-duplicates it added)."""
    gone: set[tuple[str, str]] = set()
    for ns, st in state.items():
        if not private(ns):
            gone.update((ns, mid) for mid in forgotten_ids(st))
    return gone


def batch_trace(
    records: Sequence[RawRecord],
    states: Mapping[bytes, Saved | None],
    settled: Container[bytes],
    out: MemoryOut,
) -> str:
    """One memory-stage batch in a log line (the worker logs it at INFO): the source offsets it
    read per topic and partition, the agents whose saved outbox it could replay, and the
    memories it created, folded as near-duplicates or removed from the store."""
    import json

    spans: dict[str, list[int]] = {}
    for r in records:
        if r.partition is None or r.offset is None:
            continue
        span = spans.setdefault(f"{r.topic.rsplit('.', 1)[-1]}/{r.partition}", [r.offset, r.offset])
        span[0], span[1] = min(span[0], r.offset), max(span[1], r.offset)
    created, duplicates = [], []
    for _, value in out.lifecycle:
        t = json.loads(value)
        if t.get("cause") == "duplicate":
            duplicates += t.get("related", [])
        elif t.get("from_state") == "created":
            created.append(t["memory_id"])
    fresh = sorted(k.decode() for k, raw in states.items() if raw and k not in settled)
    return json.dumps(
        {
            "offsets": spans,
            "skipped": out.skipped,
            "unsettled": fresh,
            "replayed": out.replayed,
            "created": created,
            "duplicates": duplicates,
            "forget": [mid for _, mid in out.forget],
        },
        separators=(",", ":"),
    )


def split_at_gaps(
    records: Sequence[RawRecord],
    nxt: MutableMapping[tuple[str, int], int],
    committed: Callable[[str, int], int | None],
) -> tuple[list[RawRecord], list[int], dict[tuple[str, int], int]]:
    """A stage's batch cut at the first gap of each topic partition.

    Kafka offsets of these topics are contiguous (no transactions, no compaction), so a record
    whose offset is past the one a stage expects next (``nxt[(topic, partition)]``: just after
    the last it took, or ``committed(topic, partition)`` before its first) means the consumer
    skipped records it never delivered (seen with faust-streaming around rebalances: fetched
    records dropped while a partition was paused, and the gap later marked acknowledged).
    Handling the later records would let an agent's saved offsets pass the skipped ones, losing
    them for good. So each partition's records from its first gap on are left out; the caller
    keeps them unacknowledged and reads the partition again from the returned offset. A record
    below the expected offset (a redelivery) is kept: the stages are idempotent. ``nxt`` is
    updated with the records kept.

    Returns the records to handle, the indexes of those left out, and per partition with a gap
    the offset to read again from.

    >>> r = lambda p, o: RawRecord(b"", None, "t", p, o)
    >>> nxt = {("t", 0): 5}
    >>> keep, cut, again = split_at_gaps([r(0, 5), r(0, 6), r(1, 9), r(0, 8), r(0, 9)], nxt,
    ...                                  lambda t, p: None)
    >>> [(x.partition, x.offset) for x in keep], cut, again, nxt
    ([(0, 5), (0, 6), (1, 9)], [3, 4], {('t', 0): 7}, {('t', 0): 7, ('t', 1): 10})
    """
    keep: list[RawRecord] = []
    cut: list[int] = []
    again: dict[tuple[str, int], int] = {}
    for i, rec in enumerate(records):
        if rec.partition is None or rec.offset is None:
            keep.append(rec)
            continue
        tp = (rec.topic, rec.partition)
        if tp in again:
            cut.append(i)
            continue
        want = nxt[tp] if tp in nxt else committed(*tp)
        if want is not None and rec.offset > want:
            again[tp] = want
            cut.append(i)
            continue
        keep.append(rec)
        nxt[tp] = rec.offset + 1 if want is None else max(want, rec.offset + 1)
    return keep, cut, again
