"""The recall process's copy of a worker's recall index (pure logic, no processes): fed the
worker's write-throughs and warm snapshots as pickled messages, in order, it answers every
recall as the worker's own service does, and drops agents whose partitions left."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from pipelines.app import partition_of
from pipelines.embed import load_embedder
from pipelines.memory_state import MemoryParams
from pipelines.recall_cache import RecallCache
from pipelines.recall_mirror import rows_of_answer, warm_answer
from pipelines.recall_server import RemoteRecallService, Replica
from pipelines.scoring import ScoreWeights
from pipelines.stage_batches import MemoryOut
from schemas import RecallRequest
from tests.unit.test_recall_service import NS, agent_rows, service_over

PARTS = 4


def pair() -> tuple[Any, Replica, dict[str, list[Any]], list[tuple[Any, ...]]]:
    """A worker's service over an L2 table (``l2``), and a replica fed its messages (each
    pickled and unpickled, as over the socket); ``sent``: what the worker sent."""
    l2: dict[str, list[Any]] = {}
    worker = service_over(l2)
    sent: list[tuple[Any, ...]] = []

    def rows_besides(ns: str, agent: str, have: Any) -> list[bytes]:  # as Pipeline.hot_values
        return [r.to_bytes() for r in worker.rows_of(ns, agent) if r.memory_id not in have]

    def answer_warm(ns: str, agent: str) -> None:  # the worker's side of a warm request
        feed(warm_answer(worker, rows_besides, ns, agent, True))

    replica_service = RemoteRecallService(
        load_embedder("hashing"),
        None,
        None,
        MemoryParams(),
        ScoreWeights(),
        RecallCache(results_bytes=1 << 20, records_bytes=1 << 20, embeddings_bytes=1 << 20),
        state_of=lambda key: None,
        ask=answer_warm,
    )
    replica = Replica(replica_service, PARTS)

    def feed(msg: tuple[Any, ...]) -> None:
        sent.append(msg)
        replica.apply(pickle.loads(pickle.dumps(msg)))  # noqa: S301 - our own bytes

    worker.on_write = feed
    feed(("owned", PARTS, frozenset(range(PARTS))))
    return worker, replica, l2, sent


def ranked(resp: Any) -> list[tuple[str, float]]:
    return [(h.memory_id, round(h.score, 6)) for h in resp.hits]


def test_the_replica_answers_as_the_worker_through_writes_and_lives() -> None:
    emb = load_embedder("hashing")
    worker, replica, l2, sent = pair()
    l2["ann"] = agent_rows(emb, "ann", 30)
    worker.stored(l2["ann"][:20])  # stored before the replica ever saw ann: cold there
    ask = RecallRequest(namespace=NS, agent_id="ann", query="the river crossing", k=10)
    assert ranked(replica.service.recall(ask)) == ranked(worker.recall(ask))
    assert replica.service.index.is_warm(NS, "ann")  # warmed from the worker's L2 rows
    assert replica.warm_load.n == 1  # timed (the recall process's /stats "warm_load")
    # written after the warm: through the feed only
    worker.stored(l2["ann"][20:])
    out = MemoryOut()
    out.lives = [(NS, "ann", "ann-3", "decayed", 1.0, 0.0, 0)]
    out.members = [(NS, "ann", "ann-4", "c-1")]
    out.forget = [(NS, "ann-5")]
    worker.learned(out)
    for q in ("the river crossing number 3", "river crossing 25", "number 5"):
        req = ask.model_copy(update={"query": q, "k": 30})
        got, want = replica.service.recall(req), worker.recall(req)
        assert ranked(got) == ranked(want)
        assert {"ann-3", "ann-5"}.isdisjoint(h.memory_id for h in got.hits)  # never returned
    assert [h.cluster_id for h in replica.service.recall(ask).hits if h.memory_id == "ann-4"] in (
        [],
        ["c-1"],
    )
    assert [m[0] for m in sent].count("warm") == 1
    assert replica.counters["rows_skipped"] == 20  # the first 20 only: ann was cold then


def test_rows_written_while_cold_come_with_the_warm_even_before_the_l2_table_has_them() -> None:
    emb = load_embedder("hashing")
    worker, replica, l2, sent = pair()
    rows = agent_rows(emb, "bob", 12)
    l2["bob"] = rows[:8]  # the memory stage has not written the last 4 to the L2 table yet
    worker.stored(rows)  # the store stage wrote all 12 through; bob is cold in the replica
    assert replica.counters["rows_skipped"] == 12
    ask = RecallRequest(namespace=NS, agent_id="bob", query="the river crossing", k=20)
    got = replica.service.recall(ask)
    assert {h.memory_id for h in got.hits} == {r.memory_id for r in rows}
    assert ranked(got) == ranked(worker.recall(ask))
    # each row once: those the worker's index holds are not read from the table again
    warm = next(m for m in sent if m[0] == "warm")
    assert sorted(r.memory_id for r in rows_of_answer(warm[3])) == sorted(r.memory_id for r in rows)


def test_a_warm_reads_from_the_table_only_the_rows_the_index_lacks() -> None:
    emb = load_embedder("hashing")
    worker, _, l2, _ = pair()
    rows = agent_rows(emb, "dee", 10)
    l2["dee"] = rows  # in the table: all 10 (after a restart, say)
    worker.stored(rows[6:])  # the worker's index holds the last 4 (written through), cold
    asked: list[set[str]] = []

    def rows_besides(ns: str, agent: str, have: Any) -> list[bytes]:
        asked.append(set(have))
        return [r.to_bytes() for r in l2[agent] if r.memory_id not in have]

    msg = warm_answer(worker, rows_besides, NS, "dee", True)
    assert asked == [{r.memory_id for r in rows[6:]}]
    got = rows_of_answer(msg[3])  # 4 from the index, 6 from the table (as stored)
    assert len(msg[3][0]) == 4 and len(msg[3][2]) == 6
    assert sorted(r.memory_id for r in got) == sorted(r.memory_id for r in rows)
    by_id = {r.memory_id: r for r in rows}
    for r in got:  # the same rows, vectors at unit length either way
        want = by_id[r.memory_id]
        assert (r.content, r.importance, r.event_ts, r.extra) == (
            want.content,
            want.importance,
            want.event_ts,
            want.extra,
        )
        unit = want.vector / np.linalg.norm(want.vector)
        assert np.allclose(r.vector / np.linalg.norm(r.vector), unit, atol=1e-6)


def test_agents_of_partitions_gone_leave_and_a_warm_without_rows_stays_cold() -> None:
    emb = load_embedder("hashing")
    worker, replica, l2, _ = pair()
    agents = [f"a{i}" for i in range(8)]
    for a in agents:
        l2[a] = agent_rows(emb, a, 3)
        worker.stored(l2[a])
        replica.service.warm(NS, a)
    keep = {partition_of(agents[0].encode(), PARTS)}
    replica.apply(("owned", PARTS, frozenset(keep)))
    for a in agents:
        mine = partition_of(a.encode(), PARTS) in keep
        assert replica.owns(a) is mine
        assert replica.service.index.is_warm(NS, a) is mine
    gone = next(a for a in agents if not replica.owns(a))
    replica.apply(("warm", NS, gone, None, None))  # the worker does not own it (any more)
    assert not replica.service.index.is_warm(NS, gone)


def test_an_unknown_message_is_ignored_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    _, replica, _, _ = pair()
    n = replica.counters["messages"]
    replica.apply(("no-such-kind",))
    assert replica.counters["messages"] == n + 1
    assert "unknown message" in caplog.text


def test_an_agent_warm_in_the_worker_is_sent_from_its_index_without_the_l2_scan() -> None:
    emb = load_embedder("hashing")
    worker, replica, l2, _ = pair()
    l2["cy"] = agent_rows(emb, "cy", 6)
    worker.stored(l2["cy"])
    ask = RecallRequest(namespace=NS, agent_id="cy", query="the river crossing", k=10)
    want = ranked(worker.recall(ask))  # the worker's index holds cy warm now
    scans: list[str] = []
    rows_of = worker.rows_of
    worker.rows_of = lambda ns, agent: scans.append(agent) or rows_of(ns, agent)
    l2["cy"] = []  # were the table read, the replica would miss every row
    assert ranked(replica.service.recall(ask)) == want and scans == []


def test_a_warm_sent_unasked_makes_the_agent_warm_once_and_answers_as_the_worker() -> None:
    """The worker's prefetch sends an agent's warm answer before any recall asks
    (``RecallMirror.prefetch``): the replica loads it, counts it unasked, answers as the
    worker without asking; sent again while warm, it is not loaded twice."""
    emb = load_embedder("hashing")
    worker, replica, l2, sent = pair()
    l2["eve"] = agent_rows(emb, "eve", 8)
    worker.stored(l2["eve"])  # cold in the replica: skipped
    pushed = warm_answer(worker, lambda ns, a, have: [r.to_bytes() for r in l2[a]], NS, "eve", True)
    replica.apply(pickle.loads(pickle.dumps(pushed)))  # noqa: S301 - our own bytes
    assert replica.service.index.is_warm(NS, "eve")
    assert replica.counters["warms_unasked"] == 1
    version = replica.service.index.version(NS, "eve")
    replica.apply(pickle.loads(pickle.dumps(pushed)))  # noqa: S301 - again: already warm
    assert replica.counters["warms_unasked"] == 2
    assert replica.service.index.version(NS, "eve") == version  # not loaded again
    ask = RecallRequest(namespace=NS, agent_id="eve", query="the river crossing", k=10)
    assert ranked(replica.service.recall(ask)) == ranked(worker.recall(ask))
    assert [m[0] for m in sent].count("warm") == 0  # the replica never asked


def test_the_forecast_sent_by_the_worker_ranks_the_replicas_evictions() -> None:
    """``("priorities", expected)`` (sent with each prefetch): past its memory bound the
    replica's index drops the agents expected to be recalled least, not the least recent."""
    emb = load_embedder("hashing")
    worker, replica, l2, _ = pair()
    index = replica.service.index
    for agent in ("ann", "bob", "cy"):  # ann is the least recently used
        l2[agent] = agent_rows(emb, agent, 20)
        worker.stored(l2[agent])
        replica.service.warm(NS, agent)
    replica.apply(("priorities", {(NS, "ann"): 3.0, (NS, "bob"): 0.1, (NS, "cy"): 1.0}))
    index.max_bytes = int(index.nbytes() * 1.2)  # room for three agents, not four
    l2["dee"] = agent_rows(emb, "dee", 20)
    worker.stored(l2["dee"])
    replica.service.warm(NS, "dee")
    assert [index.is_warm(NS, a) for a in ("ann", "bob", "cy", "dee")] == [True, False, True, True]


def test_the_worker_state_reaches_the_replica_once_per_change_and_marks_the_store_away() -> None:
    """``RecallMirror.push_state`` over a real pipe: the first push sends the partitions, the
    store's state and the owners; an unchanged state sends nothing; the store going away (the
    worker calls it the moment it notices) and coming back each reach the replica."""
    from multiprocessing import Pipe

    from pipelines.recall_mirror import RecallMirror

    worker, replica, _, _ = pair()
    down: list[float | None] = [None]
    mirror = RecallMirror(
        worker,
        lambda ns, agent, have: [],
        lambda: frozenset({0, 1}),
        PARTS,
        lambda: down[0],
        lambda: {2: "http://other:1"},
    )
    mine, theirs = Pipe()
    mirror.conn = mine
    mirror.push_state()  # not up yet: nothing sent
    assert not theirs.poll() and mirror.not_sent == 0
    mirror._up.set()

    def received() -> list[tuple[Any, ...]]:
        out = []
        while theirs.poll():
            out.append(theirs.recv())
            replica.apply(out[-1])
        return out

    mirror.push_state()
    assert [m[0] for m in received()] == ["owned", "store_down", "owners"]
    assert replica.owned == frozenset({0, 1}) and replica.owners == {2: "http://other:1"}
    assert replica.store_down_since is None
    mirror.push_state()
    assert received() == []  # nothing changed, nothing sent
    down[0] = 1234.5
    mirror.push_state()
    received()
    assert replica.store_down_since == 1234.5
    down[0] = None
    mirror.push_state()
    received()
    assert replica.store_down_since is None
    assert mirror.sent == 9
