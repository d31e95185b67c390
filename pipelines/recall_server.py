"""The recall process: a worker's recalls answered by a process of its own (``ARGOS_RECALL_PORT``).

A worker is one Python process: its event loop and its stages (embed, memory, store,
analytics) share one GIL, and a recall answered there waits for it behind whatever the stages
are doing (the GIL convoy: ``bench/gil_convoy.py``). With ``ARGOS_RECALL_PORT`` set, the worker
(``pipelines.recall_mirror``) starts this process, which serves ``POST /recall`` on that port
with a hot index of its own, and feeds it through a socket pair:

- every write-through of the worker's recall index (rows stored, lives and clusters learnt,
  near-duplicates forgotten), in the order the worker applied them;
- an agent's rows and memory-stage state when this process asks to warm it (the same data the
  worker's own ``RecallService.warm`` reads: its L2 table and its memory table);
- the partitions the worker owns and which worker owns each of the others: a recall of an
  agent it does not own goes to the owner's recall process, or the owner's ``/recall`` if it
  has none (``pipelines.recall_routes``; to this worker's ``/recall``, which routes it, while
  the owner is not known); and whether Milvus is away (answers are then marked degraded).

Read-your-writes: a recall first applies every message already in the socket. The worker
sends a row before its store batch counts as stored, so a memory is recallable here as soon as
the worker reports it stored, as in the worker's own index.

The rest of a recall is the worker's: token and namespace checks (401/403), rate limits (429,
counted per process), the L1 caches, the access event each recall publishes (kafka-python,
with the recall's trace context) and the audit record (``argos.audit`` and an OTel log). Spans
and logs go to ``<console file>-recall`` when the worker writes them to a file.

The process dies with the worker (``PR_SET_PDEATHSIG``, and end of file on the socket); the
worker starts it again, empty, if it exits (agents are warmed again on demand).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from aiohttp import ClientSession, web
from opentelemetry.trace import SpanKind, set_span_in_context

from pipelines.audit import denied_record, emit, recall_record, to_kv
from pipelines.errors import RejectedError, StoreUnavailableError
from pipelines.recall import RecallService
from pipelines.recall_mirror import rows_of_answer
from pipelines.recall_routes import ROUTED_HEADER, RecallRoutes, recall_headers
from pipelines.runtime import RecallSwitching, freeze_start_up, tune_process
from pipelines.settings import Settings
from pipelines.stats import LatencyWindow
from pipelines.telemetry import inject_headers, setup_telemetry
from schemas import RecallRequest
from schemas.recall import RecallResponse

log = logging.getLogger(__name__)

WARM_TIMEOUT_S = 60.0


class RemoteRecallService(RecallService):
    """A ``RecallService`` whose agents are warmed by the worker: ``warm`` asks for the
    agent's rows and state and waits until the reader has applied them (in the socket's
    order, after every write the worker sent before)."""

    def __init__(self, *args: Any, ask: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ask = ask  # (namespace, agent) -> None: sends the request
        self._waiting: dict[tuple[str, str], threading.Event] = {}
        self._waiting_lock = threading.Lock()

    def warm(self, namespace: str, agent_id: str) -> None:
        if self.index.is_warm(namespace, agent_id):
            return
        key = (namespace, agent_id)
        with self._waiting_lock:
            ev = self._waiting.get(key)
            first = ev is None
            if first:
                ev = self._waiting[key] = threading.Event()
        assert ev is not None  # noqa: S101 - set just above
        if first:
            self._ask(namespace, agent_id)
        if not ev.wait(WARM_TIMEOUT_S):
            with self._waiting_lock:
                self._waiting.pop(key, None)
            raise StoreUnavailableError(
                f"the worker did not send {namespace}/{agent_id} in {WARM_TIMEOUT_S:.0f} s"
            )

    def tracks(self, namespace: str, agent_id: str) -> bool:
        """Whether writes of this agent matter here: it is warm, or a warm request for it is
        on its way (writes sent before the answer come before it; later ones, after)."""
        return (namespace, agent_id) in self._waiting or self.index.is_warm(namespace, agent_id)

    def loaded(
        self,
        namespace: str,
        agent_id: str,
        rows: Sequence[Any] | None,
        state: dict[str, Any] | None,
    ) -> bool:
        """The worker's answer to a warm request, or a warm it sent unasked (its prefetch):
        apply it, then wake whoever waits. No rows (None): the worker does not own the agent
        (any more); it stays cold here. An agent already warm here is not loaded again (every
        write since its warm came in the feed). Returns whether someone asked for it."""
        if rows is not None and not self.index.is_warm(namespace, agent_id):
            self.load(namespace, agent_id, rows, state)
        with self._waiting_lock:
            ev = self._waiting.pop((namespace, agent_id), None)
        if ev is not None:
            ev.set()
        return ev is not None


class Replica:
    """What the worker's feed keeps in the recall process: the service's index (written in
    the worker's order), the partitions the worker owns, whether Milvus is away."""

    def __init__(self, service: RemoteRecallService, partitions: int) -> None:
        from pipelines.app import partition_of

        self.service, self.partitions = service, partitions
        self._partition_of = partition_of
        self.owned: frozenset[int] = frozenset()
        self.owners: dict[int, str] = {}  # partition -> the worker that owns it (its URL)
        self.store_down_since: float | None = None
        self.counters = {
            "messages": 0,
            "dropped_agents": 0,
            "rows_skipped": 0,
            "warms_unasked": 0,  # warm answers the worker sent before a recall asked
        }
        self.warm_load = LatencyWindow()  # applying a warm answer (rows decoded and indexed)

    def owns(self, agent_id: str) -> bool:
        return self._partition_of(agent_id.encode(), self.partitions) in self.owned

    def owner_of(self, agent_id: str) -> str | None:
        """The URL of the worker that owns this agent, as the worker last said (None: not
        known, e.g. while it rebalances)."""
        return self.owners.get(self._partition_of(agent_id.encode(), self.partitions))

    def _tracked(
        self, items: Sequence[Any], agent_of: Callable[[Any], tuple[str, str]]
    ) -> list[Any]:
        """The items about agents this process tracks (``RemoteRecallService.tracks``)."""
        known: dict[tuple[str, str], bool] = {}
        out = []
        for item in items:
            key = agent_of(item)
            keep = known.get(key)
            if keep is None:
                keep = known[key] = self.service.tracks(*key)
            if keep:
                out.append(item)
        return out

    def apply(self, msg: tuple[Any, ...]) -> None:
        """One message of the worker's feed (see ``pipelines.recall_mirror``): writes of the
        agents it tracks, warm answers, ownership and whether Milvus is away."""
        kind = msg[0]
        self.counters["messages"] += 1
        if kind == "stored":  # only the agents held here: a cold one gets all when warmed
            rows = self._tracked(msg[1], lambda r: (r.namespace, r.agent_id))
            if rows:
                self.service.index.upsert(rows)
            self.counters["rows_skipped"] += len(msg[1]) - len(rows)
        elif kind == "learned":
            lives = self._tracked(msg[1], lambda life: (life[0], life[1]))
            members = self._tracked(msg[2], lambda m: (m[0], m[1]))
            self.service.apply_lives(lives, members, msg[3])
        elif kind == "warm":  # rows as stored (None: not the worker's agent)
            t0 = time.perf_counter()
            rows = None if msg[3] is None else rows_of_answer(msg[3])
            if not self.service.loaded(msg[1], msg[2], rows, msg[4]):
                self.counters["warms_unasked"] += 1
            self.warm_load.note(time.perf_counter() - t0)
        elif kind == "owned":  # agents of partitions gone elsewhere leave the index
            self.partitions, self.owned = msg[1], msg[2]
            self.counters["dropped_agents"] += self.service.index.drop_agents(
                lambda ns, agent: self.owns(agent)
            )
        elif kind == "priorities":  # the analytics' forecast: evict the least expected first
            self.service.index.set_priorities(msg[1])
        elif kind == "owners":
            self.owners = dict(msg[1])
        elif kind == "store_down":
            self.store_down_since = msg[1]
        else:
            log.warning("recall process: unknown message %r", kind)


class RecallServer:
    """The recall process's state: its index, its feed from the worker, its HTTP API."""

    def __init__(self, settings: Settings, conn: Connection) -> None:
        from kafka import KafkaProducer

        from pipelines.access import AccessPolicy
        from pipelines.app import ACCESS, AUDIT
        from pipelines.embed import load_embedder
        from pipelines.rate_limit import RateLimits

        self.settings, self.conn = settings, conn
        emb = load_embedder(settings.embedder, 1, settings.embed_batch)
        self.service = RemoteRecallService.from_settings(
            settings, emb, None, None, state_of=lambda key: None, ask=self._ask_warm
        )
        emb.embed_many(["warm up the model before the first recall"] * 2)
        self.policy = AccessPolicy.from_settings(settings)
        self.limits = RateLimits.from_settings(settings)
        console = settings.otel_console_file
        if console is not None:
            console = console.with_name(f"{console.stem}-recall{console.suffix}")
        self.tel = setup_telemetry(
            settings.model_copy(update={"otel_console_file": console}), "argos-recall"
        )
        self.producer = KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
            linger_ms=5,
            acks="all",
            **settings.kafka_client_options(),
        )
        self.access_topic = settings.topic(ACCESS)
        self.audit_topic = settings.topic(AUDIT)
        self.worker_url = f"http://{settings.web_host}:{settings.web_port}"
        self.routes = RecallRoutes()  # other workers' recall processes
        self.switching = RecallSwitching(
            settings.switch_interval_ms / 1000.0, settings.recall_switch_interval_ms / 1000.0
        )
        # the whole handler, and its parts: applying the feed first, the recall function;
        # the audit record and access event, sent after the response; and an agent's warm
        # (asking the worker until its answer is applied; "warm_load" in /stats: applying it)
        self.latency = {
            k: LatencyWindow() for k in ("recall", "drain", "search", "publish", "warm")
        }
        self.counters = {
            "recalls": 0,
            "answered": 0,
            "forwarded": 0,
            "denied": 0,
            "access_send_failures": 0,
        }
        self.replica = Replica(self.service, settings.topic_partitions)
        self._recv_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._warm_pool = ThreadPoolExecutor(2, thread_name_prefix="warm")
        self._http: ClientSession | None = None

    # -- the feed from the worker ------------------------------------------------------------

    def _ask_warm(self, namespace: str, agent_id: str) -> None:
        with self._send_lock:
            self.conn.send(("warm?", namespace, agent_id))

    def drain(self) -> None:
        """Apply every message already in the socket (a recall calls this first)."""
        with self._recv_lock:
            while self.conn.poll(0):
                self.replica.apply(self.conn.recv())

    def read_forever(self) -> None:
        """The reader thread: apply messages as they come; the worker gone ends the process."""
        try:
            while True:
                if self.conn.poll(0.05):
                    self.drain()
        except (EOFError, OSError):
            log.warning("recall process: the worker closed the socket; exiting")
        except Exception:
            log.exception("recall process: applying the worker's feed failed; exiting")
        os._exit(1)

    # -- HTTP -----------------------------------------------------------------------------------

    def _audit(self, rec: Any, context: Any = None) -> None:
        emit(self.tel.logger, rec, context)
        key, value = to_kv(rec)
        self.producer.send(self.audit_topic, key=key, value=value)

    def _refused(self, exc: RejectedError, actor: str, ns: str, agent: str, tid: str) -> Any:
        self.counters["denied"] += 1
        self._audit(
            denied_record(
                actor, ns, agent, exc.http_status, exc.reason, tid, time.time(), uuid.uuid4().hex
            )
        )
        resp = web.json_response(
            {"error": exc.reason, "status": exc.http_status}, status=exc.http_status
        )
        if exc.http_status == 401:
            resp.headers["WWW-Authenticate"] = "Bearer"
        return resp

    async def recall(self, request: web.Request) -> web.StreamResponse:
        t0 = time.perf_counter()
        with self.switching, self.tel.span("argos.recall", kind=SpanKind.SERVER) as span:
            resp = await self._recall(request, span)
        self.tel.record_recall_latency(time.perf_counter() - t0)
        self.latency["recall"].note(time.perf_counter() - t0)
        return resp

    async def _recall(self, request: web.Request, span: Any) -> web.StreamResponse:
        from pydantic import ValidationError

        from pipelines.web import invalid_recall

        body = await request.read()
        try:
            req = RecallRequest.model_validate_json(body)
        except ValidationError as exc:
            return web.json_response(invalid_recall(exc), status=400)
        self.counters["recalls"] += 1
        span.set_attribute("argos.namespace", req.namespace)
        span.set_attribute("argos.agent_id", req.agent_id)
        tid = f"{span.get_span_context().trace_id:032x}"
        auth = request.headers.get("Authorization")
        actor = "anonymous"
        try:
            principal = self.policy.authenticate(auth)
            actor = principal.subject
            self.policy.authorize_read(principal, req.namespace, req.agent_id)
        except RejectedError as exc:
            return self._refused(exc, actor, req.namespace, req.agent_id, tid)
        routed = request.headers.get(ROUTED_HEADER) is not None
        if not self.replica.owns(req.agent_id):  # the owner answers it (and counts its limits)
            return await self._forward(body, auth, req.agent_id, routed)
        try:
            self.limits.check_recall(req.namespace, req.agent_id)
        except RejectedError as exc:
            return self._refused(exc, actor, req.namespace, req.agent_id, tid)
        t0 = time.perf_counter()
        self.drain()  # read-your-writes: whatever the worker stored before this request
        t1 = time.perf_counter()
        self.latency["drain"].note(t1 - t0)
        try:
            if self.service.index.warm_rows(req.namespace, req.agent_id) is None:
                loop = asyncio.get_running_loop()
                t1 = time.perf_counter()
                await loop.run_in_executor(
                    self._warm_pool, self.service.warm, req.namespace, req.agent_id
                )
                self.latency["warm"].note(time.perf_counter() - t1)
                if self.service.index.warm_rows(req.namespace, req.agent_id) is None:
                    # the worker no longer owns it: the worker answers or routes it
                    return await self._forward(body, auth, req.agent_id, routed)
            t1 = time.perf_counter()
            resp = self.service.recall(req)
            self.latency["search"].note(time.perf_counter() - t1)
        except StoreUnavailableError as exc:
            return web.json_response({"error": f"recall unavailable: {exc}"}, status=503)
        if self.replica.store_down_since is not None:
            resp = resp.model_copy(update={"degraded": True})
        self.counters["answered"] += 1
        # the audit record and the access event once the response is out (the next loop
        # step): neither changes the answer, and their ~1-7 ms would delay it
        asyncio.get_running_loop().call_soon(self._after, req, resp, actor, tid, span)
        return web.Response(
            body=resp.model_dump_json().encode(), content_type="application/json", charset="utf-8"
        )

    def _after(
        self, req: RecallRequest, resp: RecallResponse, actor: str, tid: str, span: Any
    ) -> None:
        """The audit record (its log linked to the recall's span), and the access event that
        reinforces what was found (with the recall's trace context)."""
        from pipelines.web import access_event

        t0 = time.perf_counter()
        when = req.event_time.timestamp() if req.event_time else time.time()
        mids = [h.memory_id for h in resp.hits]
        self._audit(
            recall_record(
                actor, req.namespace, req.agent_id, mids, tid, when, time.time(), uuid.uuid4().hex
            ),
            set_span_in_context(span),
        )
        if resp.hits:
            fut = self.producer.send(
                self.access_topic,
                key=req.agent_id.encode(),
                value=access_event(req, resp).model_dump_json().encode(),
                headers=inject_headers(span) or None,
            )
            fut.add_errback(lambda _exc: self._count_failure())
        self.latency["publish"].note(time.perf_counter() - t0)

    def _count_failure(self) -> None:
        self.counters["access_send_failures"] += 1

    async def _forward(
        self, body: bytes, auth: str | None, agent_id: str, routed: bool
    ) -> web.StreamResponse:
        """A recall of an agent this worker does not own: to the owner's recall process (or
        its ``/recall``) when the worker said who owns it, else to the worker's ``/recall``,
        which routes it. One already routed here goes to the worker marked routed: answered
        there (one hop, as in the worker)."""
        self.counters["forwarded"] += 1
        if self._http is None:
            self._http = ClientSession()
        owner = None if routed else self.replica.owner_of(agent_id)
        if owner is not None and owner != self.worker_url:
            text, status = await self.routes.post(self._http, owner, body, auth)
            return web.Response(body=text, status=status, content_type="application/json")
        headers = recall_headers(auth, routed)
        async with self._http.post(f"{self.worker_url}/recall", data=body, headers=headers) as r:
            text = await r.read()
            return web.Response(body=text, status=r.status, content_type="application/json")

    async def stats(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {
                **self.counters,
                **self.replica.counters,
                "owned_partitions": sorted(self.replica.owned),
                "routes": self.routes.stats(),
                "recall": self.service.stats(),
                "latency": {
                    **{k: w.summary() for k, w in self.latency.items()},
                    "warm_load": self.replica.warm_load.summary(),
                },
            }
        )

    async def ready(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"ready": True, "owned_partitions": len(self.replica.owned)})

    async def serve(self, bind: str, port: int, host: str) -> None:
        """Listen on ``bind``:``port`` (0: a port the OS picks) and tell the worker it serves
        at ``host``:``port``."""
        for topic in (self.access_topic, self.audit_topic):  # metadata now, not at a recall
            self.producer.partitions_for(topic)
        app = web.Application()
        app.router.add_post("/recall", self.recall)
        app.router.add_get("/stats", self.stats)
        app.router.add_get("/ready", self.ready)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, bind, port).start()
        port = int(runner.addresses[0][1])  # the one the OS picked, for port 0
        threading.Thread(target=self.read_forever, name="recall-feed", daemon=True).start()
        with self._send_lock:
            self.conn.send(("up", f"http://{host}:{port}"))
        log.info("recall process serving on http://%s:%d", host, port)
        stop = asyncio.Event()  # SIGTERM from the worker; its end of the socket ends it too
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()
        if self._http is not None:
            await self._http.close()
        self.producer.flush(10)  # the last access events and audit records
        self.producer.close(10)
        self.tel.shutdown()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True, help="the socket to the worker")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s recall-process %(name)s: %(message)s"
    )
    settings = Settings()
    tune_process(settings)  # the worker's switch interval, BLAS threads and GC thresholds
    server = RecallServer(settings, Connection(args.fd))
    freeze_start_up(settings)  # what loading made (the model, modules) is never scanned again
    bind = settings.web_bind or settings.web_host
    asyncio.run(server.serve(bind, settings.recall_port, settings.web_host))


if __name__ == "__main__":  # pragma: no cover - started by pipelines.recall_mirror
    main()
