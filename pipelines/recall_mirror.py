"""The worker's side of the recall process (``ARGOS_RECALL_PORT``; see ``pipelines.recall_server``).

``RecallMirror`` starts ``python -m pipelines.recall_server`` with one end of a socket pair,
restarts it if it exits, and keeps it fed:

- each write-through of the worker's ``RecallService`` (its ``on_write`` hook), sent in the
  order the worker applied them, before the stage that wrote goes on (so before a store batch
  counts as stored);
- each warm request answered with the agent's rows (packed: ``warm_answer``) and
  memory-stage state, read and sent under the same lock as the
  writes, so the process applies them in order with them; ``None`` when this worker does not
  own the agent; the agents the analytics expect to be recalled soon are sent unasked, with
  the forecast that ranks the process's evictions (``prefetch``), so their first recall
  there finds them warm;
- the partitions this worker owns, which worker owns each of the others (the process routes
  their recalls there: ``pipelines.recall_routes``), and whether Milvus is away, whenever
  they change.

Writes made before a (re)started process says it is up are not sent: every agent is cold in a
new process, and its first recall warms it from the worker's tables, which hold them. A write
the process does not take within ``SEND_TIMEOUT_S`` (it hangs) ends it; it is started again.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from pipelines.milvus_server import _die_with_parent
from pipelines.recall import RecallService
from pipelines.stats import LatencyWindow
from pipelines.store import RowFields, StoredMemory, rows_from_bytes, rows_from_fields

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 10
# (namespace, agent, memory ids the caller holds) -> the agent's other rows in the L2 table,
# as stored (``StoredMemory.to_bytes``; ``Pipeline.hot_values``)
RowsBesides = Callable[[str, str, Collection[str]], list[bytes]]
# a warm answer's rows: those the worker's index holds (fields, one matrix of vectors), and
# the L2 table's others as stored
WarmRows = tuple[list[RowFields], np.ndarray, list[bytes]]


class RecallMirror:
    """Starts, feeds and supervises a worker's recall process."""

    def __init__(
        self,
        service: RecallService,
        rows_of: RowsBesides,
        owned: Callable[[], frozenset[int]],
        partitions: int,
        store_down: Callable[[], float | None] = lambda: None,
        owners: Callable[[], dict[int, str]] = dict,
    ) -> None:
        from pipelines.app import partition_of

        self.service, self.rows_of, self.owned = service, rows_of, owned
        self.partitions, self.store_down, self.owners = partitions, store_down, owners
        self._partition_of = partition_of
        self.proc: subprocess.Popen[bytes] | None = None
        self.conn: Connection | None = None
        self.url: str | None = None
        self._up = threading.Event()
        self._lock = threading.Lock()  # one sender at a time; snapshots read under it
        self._state_lock = threading.Lock()  # push_state runs from the supervisor and stages
        self._stopping = threading.Event()
        self._last: tuple[frozenset[int], float | None, dict[int, str]] | None = None
        self._served = False  # the current process said it serves
        self.starts = self.sent = self.not_sent = self.warms = self.prefetched = 0
        self._pushed: set[tuple[str, str]] = set()  # agents sent unasked to this process
        # a warm answer's parts: reading the rows and state, pickling and sending them
        self.warm_latency = {"read": LatencyWindow(), "send": LatencyWindow()}

    # -- process ----------------------------------------------------------------------------

    def start(self) -> RecallMirror:
        """Start the process and its supervisor; returns at once (``is_up`` says when it
        serves)."""
        self._spawn()
        self.service.on_write = self.send
        threading.Thread(target=self._supervise, name="recall-supervisor", daemon=True).start()
        return self

    def _spawn(self) -> None:
        mine, theirs = socket.socketpair()
        mine.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", SEND_TIMEOUT_S, 0))
        fd = theirs.fileno()
        # a process started again listens where the first one did (ARGOS_RECALL_PORT 0: the
        # port the OS picked for it), so the URL the worker's /ready names stays the same
        port = {"ARGOS_RECALL_PORT": self.url.rsplit(":", 1)[1]} if self.url else {}
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "pipelines.recall_server", "--fd", str(fd)],
            env={**os.environ, **port},
            pass_fds=(fd,),
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - a signal setting, no threads touched
        )
        theirs.close()
        conn = Connection(mine.detach())
        with self._lock:
            self.conn, self._last, self._served = conn, None, False
            self._up.clear()
            self._pushed.clear()  # a new process holds no agent
        self.starts += 1
        threading.Thread(
            target=self._serve_requests, args=(conn,), name="recall-requests", daemon=True
        ).start()

    def is_up(self) -> bool:
        return self._up.is_set()

    def wait_up(self, timeout: float = 120.0) -> bool:
        return self._up.wait(timeout)

    def _supervise(self) -> None:
        backoff = 0.0  # grows while the process keeps exiting before it serves
        while not self._stopping.wait(0.2):
            proc = self.proc
            if proc is not None and proc.poll() is not None:
                backoff = min(30.0, backoff * 2 or 1.0) if not self._served else 0.0
                log.warning(
                    "recall process exited with %s: starting it again in %.0f s",
                    proc.returncode,
                    backoff,
                )
                if self._stopping.wait(backoff):
                    return
                if not self._served:  # it never served: its port may be taken now, so the
                    self.url = None  # OS picks the next one (unless ARGOS_RECALL_PORT names one)
                self._spawn()
                continue
            self.push_state()

    def push_state(self) -> None:
        """Send the process what changed of the worker's state (the partitions it owns,
        whether Milvus is away, the owners of the others). The supervisor calls it every
        0.2 s; the worker also calls it the moment the store goes away or comes back, so
        that a recall answered after the worker noticed is marked ``degraded``."""
        if not self.is_up():
            return
        with self._state_lock:
            now = (self.owned(), self.store_down(), self.owners())
            if now == self._last:
                return
            if self._last is not None and now[0] != self._last[0]:
                self._pushed.clear()  # the process drops agents of partitions gone
            self._last = now
            self.send(("owned", self.partitions, now[0]))
            self.send(("store_down", now[1]))
            self.send(("owners", now[2]))

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self.service.on_write = None
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        with self._lock:
            if self.conn is not None:
                self.conn.close()
                self.conn = None

    # -- the feed ---------------------------------------------------------------------------

    def send(self, msg: tuple[Any, ...]) -> None:
        """Send one message (a write-through, state) if the process is up."""
        with self._lock:
            self._send_locked(msg)

    def _send_locked(self, msg: tuple[Any, ...]) -> None:
        if self.conn is None or not self._up.is_set():
            self.not_sent += 1
            return
        try:
            self.conn.send(msg)
            self.sent += 1
        except OSError as exc:  # it hangs or died: end it, the supervisor starts a new one
            log.warning("recall process did not take a message (%r): restarting it", exc)
            self._up.clear()
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()

    def _serve_requests(self, conn: Connection) -> None:
        """The process's messages: "up" once it serves, "warm?" for an agent's rows."""
        try:
            while True:
                msg = conn.recv()
                if msg[0] == "up":
                    self.url = msg[1]
                    self._served = True
                    self._up.set()
                    log.info("recall process serving on %s", self.url)
                elif msg[0] == "warm?":
                    try:
                        self._answer_warm(msg[1], msg[2])
                    except Exception:  # answered "not here": the process asks the worker
                        log.exception("recall process: warming %s/%s failed", msg[1], msg[2])
                        self.send(("warm", msg[1], msg[2], None, None))
        except (EOFError, OSError):
            self._up.clear()

    def _answer_warm(self, namespace: str, agent_id: str) -> None:
        with self._lock:  # read and send in one step: writes before it are before it
            t0 = time.perf_counter()
            mine = self._partition_of(agent_id.encode(), self.partitions) in self.owned()
            msg = warm_answer(self.service, self.rows_of, namespace, agent_id, mine)
            t1 = time.perf_counter()
            self._send_locked(msg)
            self.warm_latency["read"].note(t1 - t0)
            self.warm_latency["send"].note(time.perf_counter() - t1)
            self.warms += 1

    def prefetch(self, expected: Mapping[tuple[str, str], float], limit: int = 8) -> int:
        """Act on the analytics' forecast in the process (``expected``: each agent's expected
        recalls soon, ``Analytics.expected_recalls``): its hot index evicts the agents
        expected least first, as the worker's does; and up to ``limit`` of this worker's
        agents expected most (``RecallService.most_expected``) are sent as warm answers it did
        not ask for, each once per process (again after a change of the partitions owned), so
        their first recall there does not wait for one. The process loads an agent it does
        not hold warm yet. Returns the agents sent."""
        if not self.is_up():
            return 0
        self.send(("priorities", dict(expected)))
        sent = 0
        for key in self.service.most_expected(expected):
            if sent >= limit or not self.is_up():
                break
            if key in self._pushed:
                continue
            self._answer_warm(*key)
            self._pushed.add(key)
            sent += 1
        self.prefetched += sent
        return sent

    def stats(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "up": self.is_up(),
            "pid": self.proc.pid if self.proc is not None else None,
            "starts": self.starts,
            "sent": self.sent,
            "not_sent": self.not_sent,
            "warms": self.warms,
            "prefetched": self.prefetched,
            "warm_answer": {k: w.summary() for k, w in self.warm_latency.items()},
        }


def warm_answer(
    service: RecallService, rows_of: RowsBesides, namespace: str, agent_id: str, mine: bool
) -> tuple[Any, ...]:
    """The answer to the recall process's request to warm an agent: its rows and memory-stage
    state, or no rows (None) when this worker does not own it. The rows are those this
    worker's index holds and the L2 table's others: a row the store stage wrote through may
    reach the L2 table later (the memory stage writes it there), and the process skipped it
    while the agent was cold there. Rows never change, so the table is read only for the rows
    the index lacks (one scan of its keys; reading and decrypting a row costs more than
    finding it); when the index holds the agent warm (all its rows, and every write since),
    its rows alone: no scan at all.

    The rows travel as ``WarmRows``: the index's as their fields and one matrix, the
    table's as stored (bytes, decoded by the process). Tuples, one array and bytes pickle
    ~10x faster than an object and an array per row (``rows_of_answer`` reads them)."""
    if not mine:
        return ("warm", namespace, agent_id, None, None)
    index = service.index
    with index.locked():  # no eviction between the two
        fields, vectors = index.agent_fields(namespace, agent_id)
        complete = index.is_warm(namespace, agent_id)
    values = [] if complete else rows_of(namespace, agent_id, {f[0] for f in fields})
    rows: WarmRows = (fields, vectors, values)
    return ("warm", namespace, agent_id, rows, service.agent_state(namespace, agent_id))


def rows_of_answer(rows: WarmRows) -> list[StoredMemory]:
    """A warm answer's rows (``warm_answer``) as ``StoredMemory`` rows."""
    fields, vectors, values = rows
    return rows_from_fields(fields, vectors) + rows_from_bytes(values)
