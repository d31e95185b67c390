"""HTTP API on the worker (Faust web): recall, stats, readiness."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from faust import web
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from pipelines.access import Principal
from pipelines.audit import recall_record
from pipelines.clustering import from_state, summary
from pipelines.errors import ForbiddenError, RejectedError, StoreUnavailableError
from pipelines.openapi import openapi
from pipelines.population import NamespaceClusters
from pipelines.population import from_state as population_from_state
from pipelines.population import near as population_near
from pipelines.population import summary as population_summary
from pipelines.recall_routes import ROUTED_HEADER
from pipelines.runtime import RecallSwitching
from pipelines.telemetry import inject_headers
from schemas import AccessEvent, RecallRequest, RecallResponse

if TYPE_CHECKING:
    from pipelines.app import Pipeline


T = TypeVar("T")


class Coalesced:
    """Runs a blocking call in ``pool`` at most once per key at a time: a caller that asks
    while that key's call runs gets its answer instead of queueing another. A store count in
    Milvus Lite scans every row (~40 s at 400k memories with a namespace filter); a client
    whose read timed out and asked again queued count after count behind the first, each
    holding Milvus Lite's server (how a 400k ``bench.growth`` phase ended, 2026-11-29)."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.pool = pool
        self.running: dict[Hashable, asyncio.Future[Any]] = {}
        self.joined = 0  # callers answered by a call already running

    async def run(self, key: Hashable, fn: Callable[..., T], *args: Any) -> T:
        fut = self.running.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)
            self.running[key] = fut

            def done(_: asyncio.Future[Any], key: Hashable = key, fut: Any = fut) -> None:
                if self.running.get(key) is fut:
                    del self.running[key]

            fut.add_done_callback(done)
        else:
            self.joined += 1
        # shielded: a caller that goes away (its request cancelled) leaves the others theirs
        return await asyncio.shield(fut)


def invalid_recall(exc: ValidationError) -> dict[str, Any]:
    """The 400 body of a recall request that is not a valid ``RecallRequest``."""
    errs = [
        {"loc": ".".join(map(str, e["loc"])), "msg": e["msg"]}
        for e in exc.errors(include_url=False)
    ]
    return {"error": "invalid recall request", "details": errs}


def access_event(req: RecallRequest, resp: RecallResponse) -> AccessEvent:
    """Who recalled what: the event a recall publishes (the memory stage reinforces it)."""
    return AccessEvent(
        namespace=req.namespace,
        agent_id=req.agent_id,
        memory_ids=[h.memory_id for h in resp.hits],
        event_ts=req.event_time.timestamp() if req.event_time else None,
        query=req.query,
    )


def register_routes(pipe: Pipeline) -> None:
    app = pipe.app
    recall_pool = ThreadPoolExecutor(1, thread_name_prefix="recall")
    counts = Coalesced(ThreadPoolExecutor(1, thread_name_prefix="count"))

    tel, policy, limits = pipe.telemetry, pipe.policy, pipe.limits
    recall_routes = pipe.recall_routes
    # a shorter GIL switch interval while a recall is answered (the GIL convoy, see runtime)
    switching = RecallSwitching(
        pipe.settings.switch_interval_ms / 1000.0, pipe.settings.recall_switch_interval_ms / 1000.0
    )
    assert tel is not None and policy is not None and limits is not None  # noqa: S101

    async def admit(
        request: web.Request, namespace: str, agent_id: str, span: Any, rate: bool = True
    ) -> Principal:
        """The caller's token may read this agent's memories (401/403) and, when ``rate``,
        the agent and namespace are under their recall limits (429). A refusal is audited
        and raised."""
        actor = "anonymous"
        try:
            principal = policy.authenticate(request.headers.get("Authorization"))
            actor = principal.subject
            policy.authorize_read(principal, namespace, agent_id)
            if rate:
                limits.check_recall(namespace, agent_id)
            return principal
        except RejectedError as exc:
            tid = f"{span.get_span_context().trace_id:032x}" if span else None
            await pipe.deny(exc, actor, namespace, agent_id, tid)
            raise

    def refused(view: web.View, exc: RejectedError) -> web.Response:
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
        resp = view.json({"error": exc.reason, "status": exc.http_status}, status=exc.http_status)
        for k, v in (headers or {}).items():
            resp.headers[k] = v
        return resp

    def forward_headers(request: web.Request) -> dict[str, str]:
        auth = request.headers.get("Authorization")
        return {"Authorization": auth} if auth else {}

    async def routed(request: web.Request, key: str, body: bytes | None, table: Any = None) -> Any:
        """The owner's answer when another worker owns ``key`` of ``table`` (default: the agent
        ``key`` of the memory table, whose memories, hot index and state live there; the
        population table's keys are namespaces), else None: answer here. One hop only (the
        header marks it). A recall goes to the owner's recall process when it has one."""
        table = pipe.memory_table if table is None else table
        if request.headers.get(ROUTED_HEADER) or table is None:
            return None
        try:
            owner = app.router.key_store(table.name, key.encode())
        except KeyError:  # no assignment yet (starting or rebalancing)
            return None
        here = app.conf.canonical_url  # a yarl URL, like ``owner``
        if (owner.host, owner.port) == (here.host, here.port):
            return None
        if request.path == "/recall" and body is not None:
            out, status = await recall_routes.post(
                app.http_client,
                str(owner.with_path("")),
                body,
                request.headers.get("Authorization"),
            )
            pipe.stats.routed += 1
            return out.decode(), status
        url = owner.with_path(request.path).with_query(request.query)
        headers = {
            ROUTED_HEADER: "1",
            "Content-Type": "application/json",
            **forward_headers(request),
        }
        async with app.http_client.request(
            request.method, str(url), data=body, headers=headers
        ) as resp:
            text = await resp.text()
            pipe.stats.routed += 1
            return text, resp.status

    def note_access_sent(fut: Any) -> None:
        if fut.cancelled() or fut.exception() is not None:
            pipe.stats.access_send_failures += 1

    @app.page("/recall")
    class RecallView(web.View):
        """POST a RecallRequest as JSON; get a RecallResponse (routed to the agent's owner)."""

        async def post(self, request: web.Request, **kwargs: Any) -> web.Response:
            t0 = time.perf_counter()
            with switching, tel.span("argos.recall", kind=SpanKind.SERVER) as span:
                resp = await self._recall(request, span)
            tel.record_recall_latency(time.perf_counter() - t0)
            pipe.latency["recall"].note(time.perf_counter() - t0)
            return resp

        async def _recall(self, request: web.Request, span: Any) -> web.Response:
            body = await self.read_request_content(request)
            try:
                req = RecallRequest.model_validate_json(body)
            except ValidationError as exc:
                return self.json(invalid_recall(exc), status=400)
            span.set_attribute("argos.namespace", req.namespace)
            span.set_attribute("argos.agent_id", req.agent_id)
            here = request.headers.get(ROUTED_HEADER) is not None
            try:  # limits count where the recall is answered (once, even when routed)
                principal = await admit(request, req.namespace, req.agent_id, span, rate=here)
            except RejectedError as exc:
                return refused(self, exc)
            forwarded = await routed(request, req.agent_id, body)
            if forwarded is not None:
                text, status = forwarded
                return self.text(text, content_type="application/json", status=status)
            if not here:
                try:
                    limits.check_recall(req.namespace, req.agent_id)
                except RejectedError as exc:
                    tid = f"{span.get_span_context().trace_id:032x}"
                    await pipe.deny(exc, principal.subject, req.namespace, req.agent_id, tid)
                    return refused(self, exc)
            loop = asyncio.get_running_loop()
            rows = pipe.recall.index.warm_rows(req.namespace, req.agent_id)
            try:
                if rows is not None and rows <= pipe.settings.recall_inline_rows:
                    resp = pipe.recall.recall(req)  # small and warm: here, no thread hand-off
                else:
                    resp = await loop.run_in_executor(recall_pool, pipe.recall.recall, req)
            except StoreUnavailableError as exc:
                return self.json({"error": f"vector store unavailable: {exc}"}, status=503)
            if pipe.store_down_since is not None:  # answered from L1/L2 while L3 is away
                resp = resp.model_copy(update={"degraded": True})
            await pipe.audit(
                recall_record(
                    principal.subject,
                    req.namespace,
                    req.agent_id,
                    [h.memory_id for h in resp.hits],
                    f"{span.get_span_context().trace_id:032x}",
                    req.event_time.timestamp() if req.event_time else time.time(),
                    time.time(),
                    uuid.uuid4().hex,
                )
            )
            if resp.hits:  # a recall reinforces what it found (the memory stage listens)
                access = access_event(req, resp)
                # queued, not awaited: waiting for Kafka's ack (linger + acks=all) would add
                # ~8 ms to every recall; a crash in that moment loses one reinforcement
                # with the recall's trace context: the memory stage's span, and the audit of
                # any transition the reinforcement causes, join the recall's trace
                fut = await app.producer.send(
                    pipe.access_topic,
                    req.agent_id.encode(),
                    access.model_dump_json().encode(),
                    None,
                    None,
                    inject_headers(span) or None,
                )
                fut.add_done_callback(note_access_sent)
                pipe.stats.recalls += 1
            # pydantic's JSON as is (no parse and dump again through Faust's encoder)
            out = self.bytes(resp.model_dump_json().encode(), content_type="application/json")
            out.charset = "utf-8"  # type: ignore[attr-defined]
            return out

    @app.page("/openapi.json")
    class OpenAPIView(web.View):
        """The HTTP API described as OpenAPI 3.1 (schemas from the pydantic models)."""

        async def get(self, request: web.Request, **kwargs: Any) -> web.Response:
            return self.json(openapi())

    @app.page("/stats")
    class StatsView(web.View):
        """Stage counters of this worker; with ``?count=1`` also how many memories the hot and
        the archive collections hold (of ``?namespace=``): queries on Milvus, poll sparingly."""

        async def get(self, request: web.Request, **kwargs: Any) -> web.Response:
            namespace = request.query.get("namespace")
            body: dict[str, Any] = {
                **pipe.stats.as_dict(),
                "embedder": pipe.embedder.name,
                "recall": pipe.recall.stats(),
                "lag": {f"{t}/{p}": n for (t, p), n in sorted(pipe.lag().items())},
                "system": pipe.system(),
                "operations": pipe.ops.summary(),
                "partition_load": pipe.partition_load.report() if pipe.partition_load else None,
                "recall_process": pipe.recall_mirror.stats() if pipe.recall_mirror else None,
                "recall_routes": recall_routes.stats(),
                "latency": {k: w.summary() for k, w in pipe.latency.items()},
                "store_down_s": (
                    time.time() - pipe.store_down_since if pipe.store_down_since else None
                ),
                "store_error": pipe.store_error,  # the last failure's message while it is down
                "counts_joined": counts.joined,  # ?count=1 asks answered by a running count
            }
            if request.query.get("count") in ("1", "true"):
                try:  # one count per namespace at a time: a repeated ask joins it
                    body["store_count"] = await counts.run(
                        ("hot", namespace), pipe.store.count, namespace
                    )
                    body["archive_count"] = await counts.run(
                        ("archive", namespace), pipe.archive.count, namespace
                    )
                except StoreUnavailableError as exc:
                    return self.json({"error": str(exc), **body}, status=503)
                body["namespace"] = namespace
            return self.json(body)

    @app.page("/clusters")
    class ClustersView(web.View):
        """GET ?namespace=&agent_id=: that agent's live clusters with their metrics (from the
        table on this worker; routing to the owning worker comes with multi-worker recall)."""

        async def get(self, request: web.Request, **kwargs: Any) -> web.Response:
            ns, agent = request.query.get("namespace"), request.query.get("agent_id")
            if not ns or not agent:
                return self.json({"error": "namespace and agent_id are required"}, status=400)
            try:
                await admit(request, ns, agent, None, rate=False)
            except RejectedError as exc:
                return refused(self, exc)
            forwarded = await routed(request, agent, None)
            if forwarded is not None:
                text, status = forwarded
                return self.text(text, content_type="application/json", status=status)
            saved = pipe.agent_state(agent.encode())
            state = saved.get(ns) if saved else None
            clusters = summary(from_state(state["clusters"])) if state else []
            return self.json({"namespace": ns, "agent_id": agent, "clusters": clusters})

    @app.page("/population")
    class PopulationView(web.View):
        """GET ?namespace=: the namespace-wide clusters (shared experiences across agents), from
        the namespace's owner (routed there, like a recall to an agent's owner). With ``x``,
        ``y`` and ``radius`` as well: the agents last seen within ``radius`` of (x, y) and their
        part of each population cluster, from the namespace's spatial index (only nearby
        cells)."""

        async def get(self, request: web.Request, **kwargs: Any) -> web.Response:
            ns = request.query.get("namespace")
            if not ns:
                return self.json({"error": "namespace is required"}, status=400)
            where = [request.query.get(k) for k in ("x", "y", "radius")]
            if any(v is not None for v in where):
                try:  # population_near checks the values (finite, radius >= 0)
                    if any(v is None for v in where):
                        raise ValueError("x, y and radius go together")
                    x, y, radius = (float(v) for v in where)  # type: ignore[arg-type]
                except ValueError as exc:
                    return self.json({"error": str(exc)}, status=400)
            actor = "anonymous"
            try:
                principal = policy.authenticate(request.headers.get("Authorization"))
                actor = principal.subject
                if not principal.in_namespace(ns):
                    raise ForbiddenError(f"{principal.subject!r} may not use namespace {ns!r}")
            except RejectedError as exc:
                await pipe.deny(exc, actor, ns, None)
                return refused(self, exc)
            forwarded = await routed(request, ns, None, pipe.population_table)
            if forwarded is not None:
                text, status = forwarded
                return self.text(text, content_type="application/json", status=status)
            raw = pipe.state(pipe.population_table, ns.encode())
            nc = (
                population_from_state(json.loads(raw), pipe.population_params)
                if raw
                else NamespaceClusters(ns, pipe.population_params)
            )
            if where[0] is not None:
                try:
                    return self.json({"namespace": ns, **population_near(nc, x, y, radius)})
                except ValueError as exc:
                    return self.json({"error": str(exc)}, status=400)
            return self.json({"namespace": ns, "clusters": population_summary(nc)})

    @app.page("/ready")
    class ReadyView(web.View):
        """200 once the worker has its partitions assigned, is not rebalancing, and has
        recovered its tables from their changelogs (state, L2, models): "recovered", not
        "port open"."""

        async def get(self, request: web.Request, **kwargs: Any) -> web.Response:
            assigned = len(app.consumer.assignment()) if app.consumer else 0
            recovery = getattr(app.tables, "recovery", None)
            recovering = bool(recovery is not None and recovery.in_recovery)
            mirror = pipe.recall_mirror  # the recall process, when there is one, serves too
            recall_up = mirror is None or mirror.is_up()
            ready = assigned > 0 and not app.rebalancing and not recovering and recall_up
            body = {
                "ready": ready,
                "assigned_partitions": assigned,
                "rebalancing": app.rebalancing,
                "recovering": recovering,
                "recall_url": mirror.url if mirror is not None else None,
            }
            return self.json(body, status=200 if ready else 503)
