"""The dashboard (the seed's MemoryVisualizer) on the worker's web server.

``register_dashboard(pipe)`` adds these routes (Faust web, beside ``pipelines.web``):

- ``GET /dashboard``: the page (``dashboard/dist/index.html``, built with ``npm run build`` in
  ``dashboard/``: one JS and one CSS bundle, nothing fetched from elsewhere at run time).
- ``GET /dashboard/static/<file>``: the built bundles (404 with how to build them when missing).
- ``GET /dashboard/api/namespaces``, ``/api/agents?namespace=``: what this worker holds.
- ``GET /dashboard/api/points?namespace=&agent_id=&view=embedding|world&limit=``: the memories
  as points, sampled on the server to ``limit`` (default 5,000, at most 100,000; the same
  memories on every call, see ``HotIndex.snapshot``), in columns: ``x``/``y`` (the incremental
  projection of the embeddings, ``pipelines.projection``), ``wx``/``wy`` (world position, null
  where unknown), ``memory_id``, ``agent`` (index into ``agents``), ``cluster`` (into
  ``clusters``; -1 none), ``type`` (into ``types``), ``state`` (into ``states``), ``content``
  (a snippet) and ``event_ts``. ``view=world`` leaves out memories without a position and adds
  the agents' latest positions.
- ``GET /dashboard/api/events?namespace=&agent_id=``: Server-Sent Events from the worker's
  ``LiveFeed``: ``memories`` (new points, projected, same columns), ``lifecycle`` (transitions),
  ``clusters`` (create/join/merge/split/remove), ``projection`` (the basis moved: fetch the
  points again) and ``counters`` every second (events/s, stored/s, lag, dead letters, ...).
  The subscription ends when the client goes away.
- ``GET /dashboard/api/analytics?namespace=``: the analytics stage's current model scores beside
  their baselines and its metrics snapshot, read from the worker's own models (no new consumer).

Tokens: the recall API's policy (``pipelines.access``). A browser's ``EventSource`` cannot send
headers, so the dashboard routes also take the token as ``?token=`` (a URL ends up in history
and proxy logs: serve the dashboard over TLS and give it a read-only token). Page and API answer
401 without a valid token and 403 for a namespace or agent the token does not cover (JSON like
the recall API's, an HTML page for ``/dashboard``); refusals are counted and audited. A token
restricted to agents sees only those agents' memories and events. The static bundles hold no
data and are served without a token.

With several workers, any worker serves the whole picture: it asks its peers (the other members
of the consumer group, from Faust's partition assignment) for their share, with the caller's
token and the ``X-Argos-Routed`` header (a peer answers for itself only): namespaces and agents
are merged, points are projected by each peer in the serving worker's basis (sent along; a
serving worker that holds little of a namespace first learns its projection from the peers'
sample) and merged and sampled like one worker's, and the event stream relays each peer's live
feed (``GET /dashboard/api/feed``, newline-delimited JSON, new memories with float16 vectors so
the serving worker projects them itself) with counters summed over the workers
(``counters.workers``). A peer that does not answer leaves the picture partial: ``unanswered``
lists it. The analytics panel shows the serving worker's models (each learns from its own
partitions).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp
import numpy as np
from aiohttp import web as aioweb
from faust import web
from yarl import URL

from pipelines.access import Principal
from pipelines.dashboard_gather import (
    decode_vectors,
    encode_vectors,
    merge_held,
    merge_points,
    row_from_wire,
    row_to_wire,
    sample_order,
    sum_counters,
)
from pipelines.errors import ForbiddenError, RejectedError
from pipelines.hot_index import STATE_NAMES, TYPE_CODES
from pipelines.projection import IncrementalProjection, agent_positions, project_with, world_xy
from pipelines.recall_routes import ROUTED_HEADER

if TYPE_CHECKING:
    from pipelines.app import Pipeline
    from pipelines.live_feed import Subscription

log = logging.getLogger(__name__)

DIST_ENV = "ARGOS_DASHBOARD_DIST"
"""Environment variable: another folder of built dashboard files (default ``dashboard/dist``)."""
DEFAULT_DIST = Path(__file__).resolve().parent.parent / "dashboard" / "dist"
BUILD_HINT = (
    "the dashboard is not built: run `make dashboard` "
    "(or `cd dashboard && npm ci && npm run build`)"
)
DEFAULT_LIMIT = 5000
MAX_LIMIT = 100_000
LEARN_SAMPLE = 4096  # rows a namespace's projection first learns from (a stable sample)
SNIPPET = 160  # characters of content sent per point
TICK_S = 0.25  # the event stream sends what arrived at most this often
COUNTERS_S = 1.0
MAX_ITEMS_PER_TICK = 5000
AGENTS_TTL_S = 5.0
PEER_TIMEOUT_S = 30.0  # a peer's share of the points (it may warm agents from Milvus first)
PEER_RETRY_S = 2.0  # a peer's live feed that broke is opened again after this
TYPES = list(TYPE_CODES)
STATES = list(STATE_NAMES)
_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
CONTENT_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".map": "application/json",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
}
# Debian's Chromium and the flags the browser test and the benchmark run it with (headless, no
# sandbox: root in CI; nothing reaches the network)
CHROMIUM = os.environ.get("ARGOS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    ),
}


def dist_dir() -> Path:
    """Where the built page and bundles are (``ARGOS_DASHBOARD_DIST`` or ``dashboard/dist``)."""
    return Path(os.environ.get(DIST_ENV) or DEFAULT_DIST)


def dashboard_url(base_url: str, namespace: str | None = None, token: str | None = None) -> str:
    """The page's address on a worker (``argos dashboard`` and the demo print or open it).

    >>> dashboard_url("http://127.0.0.1:6066/", "w1", "t0k")
    'http://127.0.0.1:6066/dashboard?namespace=w1&token=t0k'
    """
    query = {k: v for k, v in (("namespace", namespace), ("token", token)) if v}
    return base_url.rstrip("/") + "/dashboard" + (f"?{urlencode(query)}" if query else "")


def snippet(text: str, n: int = SNIPPET) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _round(a: np.ndarray, digits: int = 5) -> list[float | None]:
    """JSON numbers (NaN -> null)."""
    out = np.round(np.asarray(a, dtype=np.float64), digits).tolist()
    return [None if math.isnan(v) else v for v in out]


def _codes(values: list[Any]) -> tuple[list[int], list[Any]]:
    """Values as indexes into their distinct values (in first-seen order); None -> -1."""
    names: dict[Any, int] = {}
    codes = []
    for v in values:
        if v is None:
            codes.append(-1)
            continue
        c = names.get(v)
        if c is None:
            c = names[v] = len(names)
        codes.append(c)
    return codes, list(names)


def columns(snap: dict[str, Any], xy: np.ndarray | None) -> dict[str, Any]:
    """The points payload (column per field) of a snapshot, with its projected coordinates."""
    n = len(snap["memory_id"])
    wxy, known = world_xy(snap["position"])
    agent, agents = _codes(snap["agent_id"])
    cluster, clusters = _codes(snap["cluster_id"])
    wx = np.where(known, wxy[:, 0], np.nan) if n else np.zeros(0)
    wy = np.where(known, wxy[:, 1], np.nan) if n else np.zeros(0)
    xy = np.zeros((n, 2), dtype=np.float32) if xy is None else xy
    return {
        "n": n,
        "x": _round(xy[:, 0]),
        "y": _round(xy[:, 1]),
        "wx": _round(wx, 3),
        "wy": _round(wy, 3),
        "memory_id": list(snap["memory_id"]),
        "agent": agent,
        "agents": agents,
        "cluster": cluster,
        "clusters": clusters,
        "type": [TYPES.index(t) for t in snap["type"]],
        "types": TYPES,
        "state": [STATES.index(s) for s in snap["state"]],
        "states": STATES,
        "content": [snippet(c) for c in snap["content"]],
        "event_ts": _round(snap["event_ts"], 3),
    }


def _take(snap: dict[str, Any], keep: np.ndarray) -> dict[str, Any]:
    """The rows ``keep`` (indexes or a mask) of a snapshot."""
    idx = np.flatnonzero(keep) if keep.dtype == bool else keep
    out: dict[str, Any] = {"total": snap["total"]}
    for k, v in snap.items():
        if k == "total":
            continue
        out[k] = v[idx] if isinstance(v, np.ndarray) else [v[i] for i in idx.tolist()]
    return out


def _concat(snaps: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"total": sum(s["total"] for s in snaps)}
    for k in ("memory_id", "agent_id", "type", "state", "cluster_id", "content"):
        out[k] = [x for s in snaps for x in s[k]]
    for k in ("event_ts", "position", "vector"):
        out[k] = np.concatenate([s[k] for s in snaps])
    return out


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class Dashboard:
    """What the dashboard routes share: a projection per namespace, and one thread for their
    numpy work (so the worker's event loop never runs it)."""

    def __init__(self, pipe: Pipeline) -> None:
        self.pipe = pipe
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="dashboard")
        self.projections: dict[str, IncrementalProjection] = {}
        self._held: tuple[float, dict[str, dict[str, int]]] = (-math.inf, {})
        self._warmed: dict[str, set[str]] = {}
        self.streams = 0
        self.stopping = False

    # -- what this worker holds (its L2 table: every stored row of its partitions) -------------

    def held(self) -> dict[str, dict[str, int]]:
        """namespace -> agent -> memories, from the keys of the L2 table (cached a few s)."""
        at, cached = self._held
        if time.monotonic() - at < AGENTS_TTL_S:
            return cached
        table = self.pipe.hot_table
        out: dict[str, dict[str, int]] = {}
        if table is not None:
            for key in list(table.data.keys()):
                ns, agent, _ = bytes(key).decode("utf-8", "replace").split("\x00", 2)
                agents = out.setdefault(ns, {})
                agents[agent] = agents.get(agent, 0) + 1
        self._held = (time.monotonic(), out)
        return out

    def warm(self, namespace: str) -> None:
        """Load the namespace's agents into the hot index (after a restart only those recalled
        since are there); each agent once per process."""
        done = self._warmed.setdefault(namespace, set())
        for agent in sorted(self.held().get(namespace, {})):
            if agent not in done:
                self.pipe.recall.warm(namespace, agent)
                done.add(agent)

    def warm_projection(self, namespace: str) -> IncrementalProjection:
        self.warm(namespace)
        return self.projection(namespace)

    def projection(self, namespace: str) -> IncrementalProjection:
        """The namespace's projection. It learns a stable sample of what the worker holds
        (``LEARN_SAMPLE`` rows) while it has learnt less than half of that, then every new
        memory the event streams see."""
        index = self.pipe.recall.index
        proj = self.projections.get(namespace)
        if proj is None:
            proj = self.projections[namespace] = IncrementalProjection(index.dim)
        held = sum(self.held().get(namespace, {}).values())
        if proj.n < 2 or proj.n < min(LEARN_SAMPLE, held) // 2:
            seed = index.snapshot(namespace, limit=LEARN_SAMPLE)
            if seed["memory_id"]:  # rows learnt before are skipped (by id)
                proj.learn(seed["vector"], seed["memory_id"])
        return proj

    # -- payloads (in the dashboard thread) -----------------------------------------------------

    def points(
        self,
        namespace: str,
        agents: list[str] | None,
        limit: int,
        view: str,
        basis: tuple[np.ndarray, np.ndarray] | None = None,
        vectors: bool = False,
    ) -> dict[str, Any]:
        """The points payload of what this worker holds. ``basis``: project in another
        worker's view (a peer's request) instead of this worker's projection; ``vectors``: no
        projection, the rows' vectors instead (float16, for a peer's projection to learn)."""
        self.warm(namespace)
        index = self.pipe.recall.index
        proj = self.projection(namespace) if basis is None and not vectors else None
        project: Any = (
            None
            if vectors
            else proj.project
            if proj is not None
            else (lambda v: project_with(basis, v))
        )
        if agents is None:
            snap = index.snapshot(namespace, limit=limit, project=project)
        else:
            parts = [index.snapshot(namespace, a, limit=limit, project=project) for a in agents]
            snap = _concat(parts) if parts else index.snapshot("\x00", project=project)
            snap = _take(snap, sample_order(snap["memory_id"], limit))
        total = snap["total"]
        extra: dict[str, Any] = {}
        if view == "world":
            _, known = world_xy(snap["position"])
            snap = _take(snap, known)
            extra["world_agents"] = [
                {"agent_id": a, "x": x, "y": y, "event_ts": ts}
                for a, (x, y, ts) in sorted(
                    agent_positions(snap["agent_id"], snap["position"], snap["event_ts"]).items()
                )
            ]
        out = {
            "namespace": namespace,
            "view": view,
            "total": total,
            "limit": limit,
            "projection": proj.state() if proj is not None else None,
            **columns(snap, None if vectors else snap["vector"]),
            **extra,
        }
        if vectors:
            out["vectors"] = encode_vectors(snap["vector"]) if len(snap["vector"]) else ""
        return out

    def learn_from(self, namespace: str, payloads: list[dict[str, Any]]) -> None:
        """Teach the namespace's projection the peers' samples (``points(vectors=True)``)."""
        proj = self.projection(namespace)
        for p in payloads:
            if p.get("vectors"):
                vecs = decode_vectors(p["vectors"], proj.dim)
                if len(vecs) == len(p["memory_id"]):
                    proj.learn(_unit(vecs), p["memory_id"])

    def new_points(self, namespace: str, rows: list[Any]) -> tuple[dict[str, Any], bool]:
        """New memories as points (the projection learns them first); True if that moved the
        projection's basis."""
        proj = self.projection(namespace)
        vecs = _unit(np.stack([np.asarray(r.vector, dtype=np.float32) for r in rows]))
        moved = proj.learn(vecs, [r.memory_id for r in rows])
        snap = {
            "total": len(rows),
            "memory_id": [r.memory_id for r in rows],
            "agent_id": [r.agent_id for r in rows],
            "type": [r.type for r in rows],
            "state": ["active"] * len(rows),
            "cluster_id": [None] * len(rows),
            "content": [r.content for r in rows],
            "event_ts": np.array([r.event_ts for r in rows], dtype=np.float64),
            "position": np.array([_pos(r.extra) for r in rows], dtype=np.float64).reshape(-1, 3),
        }
        return {**columns(snap, proj.project(vecs)), "projection": proj.state()}, moved

    def counters(
        self,
        prev: dict[str, Any] | None,
        sub: Subscription | None = None,
        peers: Iterable[dict[str, Any]] = (),
    ) -> dict[str, Any]:
        """Counters for the live panel, summed with the ``peers``' latest (their live feeds'
        counters): rates since ``prev`` (the last counters sent)."""
        pipe = self.pipe
        s = pipe.stats.as_dict()
        lag = {f"{t}/{p}": n for (t, p), n in sorted(pipe.lag().items())}
        now = time.monotonic()
        out: dict[str, Any] = {
            "ts": time.time(),
            "mono": now,
            "ingested": s["ingested"],
            "stored": s["stored"],
            "dead_lettered": s["dead_lettered"],
            "recalls": s["recalls"],
            "denied": s["denied"],
            "decayed": s["decayed"],
            "archived": s["archived"],
            "derived": s["derived"],
            "strengthened": s["strengthened"],
            "cluster_changes": s["cluster_changes"],
            "lifecycle_events": s["lifecycle_events"],
            "predictions": s["predictions"],
            "uptime_s": s["uptime_s"],
            "lag_total": sum(lag.values()),
            "lag": lag,
            "hot_rows": len(pipe.recall.index),
            "watchers": pipe.feed.subscribers,
            "feed_dropped": sub.dropped if sub is not None else 0,
            "latency": {k: w.summary() for k, w in pipe.latency.items()},
        }
        out = sum_counters(out, peers)
        if prev is not None and now > prev["mono"]:
            dt = now - prev["mono"]
            out["events_per_s"] = round((out["ingested"] - prev["ingested"]) / dt, 2)
            out["stored_per_s"] = round((out["stored"] - prev["stored"]) / dt, 2)
        else:
            out["events_per_s"] = out["stored_per_s"] = 0.0
        return out

    def analytics(self, namespace: str) -> dict[str, Any]:
        """The analytics stage's models and metrics of ``namespace`` (in its own thread)."""
        a = self.pipe.analytics
        if a is None:
            return {"enabled": False, "namespace": namespace, "models": [], "metrics": {}}
        if namespace not in a.namespaces:
            return {"enabled": True, "namespace": namespace, "models": [], "metrics": {}}
        models = []
        for target, (score, base) in sorted(a.scores(namespace).items()):
            better = None
            if score.value is not None and base.value is not None:
                better = (
                    score.value > base.value if score.higher_is_better else score.value < base.value
                )
            models.append(
                {
                    "target": target,
                    "metric": score.metric,
                    "value": score.value,
                    "n": score.n,
                    "higher_is_better": score.higher_is_better,
                    "baseline": base.name,
                    "baseline_value": base.value,
                    "beats_baseline": better,
                }
            )
        # the metrics the stage publishes on argos.analytics.metrics, as of now (a pure read of
        # the models; Analytics has no public accessor for one namespace's snapshot)
        snap = a._snapshot(a.namespaces[namespace])
        metrics = {m.name: {"kind": m.kind, "values": m.values, "n": m.n} for m in snap}
        return {"enabled": True, "namespace": namespace, "models": models, "metrics": metrics}


def _wanted(ns: str, agent: str | None, principal: Principal) -> Any:
    """Whether an item of (namespace, agent) belongs in a stream of ``ns`` (and ``agent``)
    that ``principal`` may see."""

    def wanted(ns_: str, agent_: str) -> bool:
        return ns_ == ns and (agent is None or agent_ == agent) and principal.for_agent(agent_)

    return wanted


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes | bytearray) else value


def _ndjson(item: dict[str, Any]) -> bytes:
    return json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _agent(agent: str | None) -> dict[str, str]:
    return {"agent_id": agent} if agent else {}


def _unit(vecs: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs / np.where(norms > 0, norms, 1.0)


def _pos(extra: dict[str, Any]) -> tuple[float, float, float]:
    p = extra.get("position") or {}
    if "x" not in p or "y" not in p:
        return (math.nan, math.nan, math.nan)
    z = p.get("z")
    return (float(p["x"]), float(p["y"]), math.nan if z is None else float(z))


def register_dashboard(pipe: Pipeline) -> Dashboard:
    """Add the dashboard's routes to the worker's web server (see the module docstring)."""
    app = pipe.app
    existing = getattr(pipe, "dashboard", None)
    if isinstance(existing, Dashboard):  # registered already
        return existing
    dash = Dashboard(pipe)
    pipe.dashboard = dash  # type: ignore[attr-defined]
    policy, tel = pipe.policy, pipe.telemetry
    assert policy is not None and tel is not None  # noqa: S101

    @app.on_before_shutdown.connect
    async def _stop_streams(app: Any, **kwargs: Any) -> None:
        dash.stopping = True

    def credentials(request: web.Request) -> str | None:
        header = request.headers.get("Authorization")
        token = request.query.get("token")
        if not header and token:
            return f"Bearer {token}"
        return header

    async def refuse(ns: str | None, agent: str | None, exc: RejectedError, actor: str) -> None:
        await pipe.deny(exc, actor, ns or "", agent)

    async def check(
        request: web.Request, ns: str | None, agent: str | None = None
    ) -> tuple[Principal | None, RejectedError | None]:
        """The caller's principal, if the token may see ``ns`` (and ``agent``); else the
        refusal (audited)."""
        actor = "anonymous"
        try:
            principal = policy.authenticate(credentials(request))
            actor = principal.subject
            if ns is not None:
                if agent is not None:
                    policy.authorize_read(principal, ns, agent)
                elif not principal.in_namespace(ns):
                    raise ForbiddenError(f"{principal.subject!r} may not use namespace {ns!r}")
            return principal, None
        except RejectedError as exc:
            await refuse(ns, agent, exc, actor)
            return None, exc

    def refused(view: web.View, exc: RejectedError) -> web.Response:
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else {}
        return view.json(
            {"error": exc.reason, "status": exc.http_status},
            status=exc.http_status,
            headers={**headers, "Cache-Control": "no-store"},
        )

    def visible(principal: Principal, agents: Iterable[str]) -> list[str]:
        return sorted(a for a in agents if principal.for_agent(a))

    def bad(view: web.View, msg: str) -> web.Response:
        return view.json({"error": msg, "status": 400}, status=400)

    async def in_pool(fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(dash.pool, fn, *args)

    # -- the other workers ----------------------------------------------------------------------

    def peers() -> list[URL]:
        """The other workers of the group (Faust's partition assignment); [] when alone or
        before the first assignment."""
        table = pipe.memory_table
        if table is None:
            return []
        try:
            hosts = app.router.table_metadata(table.name)
        except Exception:  # noqa: BLE001 - no assignment yet
            return []
        here = app.conf.canonical_url
        urls = {URL(h) for h in hosts}
        return sorted((u for u in urls if (u.host, u.port) != (here.host, here.port)), key=str)

    def from_peer(request: web.Request) -> bool:
        return request.headers.get(ROUTED_HEADER) is not None

    def peer_headers(request: web.Request) -> dict[str, str]:
        cred = credentials(request)
        return {ROUTED_HEADER: "1", **({"Authorization": cred} if cred else {})}

    async def ask_peers(
        request: web.Request,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        body: Any = None,
    ) -> tuple[list[Any], list[str]]:
        """Every peer's JSON answer to the same question, with the caller's token (a peer
        answers for itself only), and the peers that did not answer. None when the request
        came from a peer."""
        urls = [] if from_peer(request) else peers()
        if not urls:
            return [], []
        timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT_S)

        async def one(url: URL) -> Any:
            async with app.http_client.request(
                method,
                str(url.with_path(path)),
                params=params,
                json=body,
                headers=peer_headers(request),
                timeout=timeout,
            ) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}: {(await resp.text())[:300]}")
                return await resp.json()

        answers = await asyncio.gather(*(one(u) for u in urls), return_exceptions=True)
        got, failed = [], []
        for url, answer in zip(urls, answers, strict=True):
            if isinstance(answer, BaseException):
                log.warning("dashboard: peer %s did not answer %s: %r", url, path, answer)
                failed.append(str(url))
            else:
                got.append(answer)
        pipe.stats.routed += len(urls)
        return got, failed

    @app.page("/dashboard")
    class PageView(web.View):
        """The dashboard page (401/403 as an HTML page with a token form)."""

        async def get(self, request: web.Request, **kwargs: Any) -> web.Response:
            ns = request.query.get("namespace") or None
            _, exc = await check(request, ns)
            if exc is not None:
                headers = {**PAGE_HEADERS}
                if exc.http_status == 401:
                    headers["WWW-Authenticate"] = "Bearer"
                return self.html(refusal_page(exc), status=exc.http_status, headers=headers)
            page = dist_dir() / "index.html"
            if not page.is_file():
                return self.html(_message_page(BUILD_HINT), status=404, headers=PAGE_HEADERS)
            return self.html(page.read_text(encoding="utf-8"), headers=PAGE_HEADERS)

    @app.page("/dashboard/static/{name}")
    class StaticView(web.View):
        """The built bundles (no data in them: no token needed)."""

        async def get(self, request: web.Request, name: str = "", **kwargs: Any) -> web.Response:
            path = dist_dir() / name
            if not _FILE.fullmatch(name) or ".." in name or not path.is_file():
                why = f"no dashboard file {name!r}"
                if not (dist_dir() / "index.html").is_file():
                    why += f": {BUILD_HINT}"
                return self.json({"error": why, "status": 404}, status=404)
            ctype = CONTENT_TYPES.get(path.suffix, "application/octet-stream")
            headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
            resp = self.bytes(path.read_bytes(), content_type=ctype, headers=headers)
            if ctype.startswith("text/") or ctype == "application/json":
                resp.charset = "utf-8"  # type: ignore[attr-defined]
            return resp

    @app.page("/dashboard/api/namespaces")
    class NamespacesView(web.View):
        """Namespaces this worker holds memories of (those the token may use)."""

        async def get(self, request: web.Request, **kwargs: Any) -> web.Response:
            principal, exc = await check(request, None)
            if exc is not None or principal is None:
                return refused(self, exc)  # type: ignore[arg-type]
            held = await in_pool(dash.held)
            answers, failed = await ask_peers(request, "GET", "/dashboard/api/held")
            held = merge_held([held, *answers])
            out = []
            for ns, agents in sorted(held.items()):
                if not principal.in_namespace(ns):
                    continue
                mine = visible(principal, agents)
                if mine:
                    out.append(
                        {
                            "namespace": ns,
                            "agents": len(mine),
                            "memories": sum(agents[a] for a in mine),
                        }
                    )
            return self.json(
                {"namespaces": out, "unanswered": failed}, headers={"Cache-Control": "no-store"}
            )

    @app.page("/dashboard/api/held")
    class HeldView(web.View):
        """A peer's question: namespace -> agent -> memories this worker holds, of the
        namespaces and agents the token may see."""

        async def get(self, request: web.Request, **kwargs: Any) -> web.Response:
            principal, exc = await check(request, None)
            if exc is not None or principal is None:
                return refused(self, exc)  # type: ignore[arg-type]
            held = await in_pool(dash.held)
            out = {
                ns: {a: agents[a] for a in visible(principal, agents)}
                for ns, agents in held.items()
                if principal.in_namespace(ns)
            }
            return self.json(out, headers={"Cache-Control": "no-store"})

    @app.page("/dashboard/api/agents")
    class AgentsView(web.View):
        """Agents of a namespace held by this worker, with their memories (L2 rows)."""

        async def get(self, request: web.Request, **kwargs: Any) -> web.Response:
            ns = request.query.get("namespace")
            if not ns:
                return bad(self, "namespace is required")
            principal, exc = await check(request, ns)
            if exc is not None or principal is None:
                return refused(self, exc)  # type: ignore[arg-type]
            answers, failed = await ask_peers(request, "GET", "/dashboard/api/held")
            agents = merge_held([await in_pool(dash.held), *answers]).get(ns, {})
            body = [{"agent_id": a, "memories": agents[a]} for a in visible(principal, agents)]
            return self.json(
                {"namespace": ns, "agents": body, "unanswered": failed},
                headers={"Cache-Control": "no-store"},
            )

    def points_args(q: Any) -> tuple[str, str | None, str, int] | str:
        """(namespace, agent, view, limit) of a points request, or what is wrong with it."""
        ns, agent, view = q.get("namespace"), q.get("agent_id") or None, q.get("view", "embedding")
        if not ns or not isinstance(ns, str):
            return "namespace is required"
        if agent is not None and not isinstance(agent, str):
            return "agent_id must be a string"
        if view not in ("embedding", "world"):
            return "view must be embedding or world"
        try:
            limit = int(q.get("limit", DEFAULT_LIMIT))
        except (TypeError, ValueError):
            return "limit must be an integer"
        if not 1 <= limit <= MAX_LIMIT:
            return f"limit must be between 1 and {MAX_LIMIT}"
        return ns, agent, view, limit

    def agents_of(principal: Principal, agent: str | None) -> list[str] | None:
        if agent is not None:
            return [agent]
        return sorted(principal.agents) if principal.agents is not None else None

    def reply(view_: web.View, body: dict[str, Any]) -> web.Response:
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        resp = view_.bytes(
            payload, content_type="application/json", headers={"Cache-Control": "no-store"}
        )
        resp.charset = "utf-8"  # type: ignore[attr-defined]
        return resp

    @app.page("/dashboard/api/points")
    class PointsView(web.View):
        """The memories as points (see the module docstring): GET from the page (gathered from
        every worker), POST from a peer (its share, projected in the basis it sends)."""

        async def get(self, request: web.Request, **kwargs: Any) -> web.Response:
            args = points_args(request.query)
            if isinstance(args, str):
                return bad(self, args)
            ns, agent, view, limit = args
            principal, exc = await check(request, ns, agent)
            if exc is not None or principal is None:
                return refused(self, exc)  # type: ignore[arg-type]
            agents = agents_of(principal, agent)
            if from_peer(request) or not peers():  # this worker's share only
                vectors = from_peer(request) and request.query.get("vectors") == "1"
                return reply(
                    self, await in_pool(dash.points, ns, agents, limit, view, None, vectors)
                )
            proj = await in_pool(dash.warm_projection, ns)
            if proj.n < LEARN_SAMPLE // 2:  # little here: learn the peers' sample as well
                sample = {"namespace": ns, "limit": str(LEARN_SAMPLE), "vectors": "1"}
                samples, _ = await ask_peers(
                    request, "GET", "/dashboard/api/points", params=sample | _agent(agent)
                )
                await in_pool(dash.learn_from, ns, samples)
            basis = proj.view
            ask = {"namespace": ns, "view": view, "limit": limit, **_agent(agent)}
            if basis is not None:
                ask |= {"center": basis[0].tolist(), "basis": basis[1].tolist()}
            answers, failed = await ask_peers(request, "POST", "/dashboard/api/points", body=ask)

            def gather() -> dict[str, Any]:
                mine = dash.points(ns, agents, limit, view, basis)
                return merge_points([mine, *answers], limit) | {
                    "projection": proj.state(),
                    "workers": 1 + len(answers),
                    "unanswered": failed,
                }

            return reply(self, await in_pool(gather))

        async def post(self, request: web.Request, **kwargs: Any) -> web.Response:
            if not from_peer(request):
                return bad(self, "POST is how workers ask each other for points: use GET")
            try:
                q = json.loads(await self.read_request_content(request))
            except ValueError:
                return bad(self, "the body must be JSON")
            args = points_args(q) if isinstance(q, dict) else "the body must be an object"
            if isinstance(args, str):
                return bad(self, args)
            ns, agent, view, limit = args
            dim = pipe.recall.index.dim
            try:
                center = np.asarray(q.get("center", np.zeros(dim)), dtype=np.float64)
                basis = np.asarray(q.get("basis", np.zeros((dim, 2))), dtype=np.float64)
                if center.shape != (dim,) or basis.shape != (dim, 2):
                    raise ValueError(f"center ({dim},) and basis ({dim}, 2) expected")
            except (TypeError, ValueError) as e:
                return bad(self, f"invalid projection: {e}")
            principal, exc = await check(request, ns, agent)
            if exc is not None or principal is None:
                return refused(self, exc)  # type: ignore[arg-type]
            agents = agents_of(principal, agent)
            body = await in_pool(dash.points, ns, agents, limit, view, (center, basis))
            return reply(self, body)

    @app.page("/dashboard/api/analytics")
    class AnalyticsView(web.View):
        """Model scores beside their baselines, and the metrics of a namespace."""

        async def get(self, request: web.Request, **kwargs: Any) -> web.Response:
            ns = request.query.get("namespace")
            if not ns:
                return bad(self, "namespace is required")
            _, exc = await check(request, ns)
            if exc is not None:
                return refused(self, exc)
            loop = asyncio.get_running_loop()
            # the models' own thread: batches and this read never overlap
            body = await loop.run_in_executor(pipe.analytics_pool, dash.analytics, ns)
            body["latency"] = {k: w.summary() for k, w in pipe.latency.items()}
            return self.json(body, headers={"Cache-Control": "no-store"})

    @app.page("/dashboard/api/events")
    class EventsView(web.View):
        """Server-Sent Events of a namespace (optionally one agent)."""

        async def get(self, request: web.Request, **kwargs: Any) -> Any:
            ns, agent = request.query.get("namespace"), request.query.get("agent_id") or None
            if not ns:
                return bad(self, "namespace is required")
            principal, exc = await check(request, ns, agent)
            if exc is not None or principal is None:
                return refused(self, exc)  # type: ignore[arg-type]
            return await stream(request, ns, agent, principal)

    @app.page("/dashboard/api/feed")
    class FeedView(web.View):
        """A peer's question: this worker's live feed of a namespace (optionally one agent),
        as newline-delimited JSON: ``memory`` (the row, vector as float16), ``lifecycle`` and
        ``cluster`` (the events' JSON), ``counters`` every second (this worker's counts)."""

        async def get(self, request: web.Request, **kwargs: Any) -> Any:
            if not from_peer(request):
                return bad(self, "the feed is how workers relay to each other: use /events")
            ns, agent = request.query.get("namespace"), request.query.get("agent_id") or None
            if not ns:
                return bad(self, "namespace is required")
            principal, exc = await check(request, ns, agent)
            if exc is not None or principal is None:
                return refused(self, exc)  # type: ignore[arg-type]
            raw: aioweb.Request = request  # type: ignore[assignment]  # the aiohttp driver's
            resp = aioweb.StreamResponse(
                headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-store"}
            )
            await resp.prepare(raw)
            sub = pipe.feed.subscribe()
            wanted = _wanted(ns, agent, principal)
            try:
                next_counters = 0.0
                while not dash.stopping:
                    if raw.transport is None or raw.transport.is_closing():
                        break
                    wait = max(0.0, next_counters - time.monotonic())
                    lines = []
                    for kind, payload in await _gather(sub, min(TICK_S, wait)):
                        if kind == "memory":
                            r = payload["row"]
                            if wanted(r.namespace, r.agent_id):
                                lines.append({"kind": kind, "row": row_to_wire(r)})
                        elif kind in ("lifecycle", "cluster"):
                            text = _text(payload["json"])
                            ev = json.loads(text)
                            if wanted(ev["namespace"], ev["agent_id"]):
                                lines.append({"kind": kind, "json": text})
                    if time.monotonic() >= next_counters:
                        lines.append({"kind": "counters", "counters": dash.counters(None, sub)})
                        next_counters = time.monotonic() + COUNTERS_S
                    if lines:
                        await resp.write(b"".join(_ndjson(x) for x in lines))
            except ConnectionError:
                pass  # the serving worker went away
            finally:
                sub.close()
            with contextlib.suppress(ConnectionError):
                await resp.write_eof()
            return resp

    async def relay(
        request: web.Request,
        url: URL,
        ns: str,
        agent: str | None,
        sub: Subscription,
        counters: dict[str, dict[str, Any]],
    ) -> None:
        """Put a peer's live feed into this stream's subscription (its memories as rows, so
        this worker projects them), keeping its latest counters; reopened when it breaks,
        until the peer leaves the group."""
        dim = pipe.recall.index.dim
        params = {"namespace": ns, **_agent(agent)}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=10 * COUNTERS_S)
        while not dash.stopping:
            try:
                async with app.http_client.get(
                    str(url.with_path("/dashboard/api/feed")),
                    params=params,
                    headers=peer_headers(request),
                    timeout=timeout,
                ) as resp:
                    if resp.status != 200:
                        raise RuntimeError(f"HTTP {resp.status}: {(await resp.text())[:300]}")
                    async for line in resp.content:
                        item = json.loads(line)
                        kind = item["kind"]
                        if kind == "memory":
                            sub.put(("memory", {"row": row_from_wire(item["row"], dim)}))
                        elif kind in ("lifecycle", "cluster"):
                            sub.put((kind, {"json": item["json"]}))
                        elif kind == "counters":
                            counters[str(url)] = item["counters"]
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a peer restarting or gone: try again
                log.info("dashboard: the live feed of %s broke: %r", url, exc)
            counters.pop(str(url), None)
            if url not in peers():
                return
            await asyncio.sleep(PEER_RETRY_S)

    async def stream(
        request: web.Request, ns: str, agent: str | None, principal: Principal
    ) -> aioweb.StreamResponse:
        raw: aioweb.Request = request  # type: ignore[assignment]  # the aiohttp driver's
        resp = aioweb.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await resp.prepare(raw)

        wanted = _wanted(ns, agent, principal)
        sub = pipe.feed.subscribe()
        dash.streams += 1
        # the peers' live feeds, relayed into this subscription (their counters kept apart)
        peer_counters: dict[str, dict[str, Any]] = {}
        relays: dict[URL, asyncio.Task[None]] = {}

        def relay_peers() -> None:
            if from_peer(request):
                return
            for url in peers():
                if url not in relays or relays[url].done():
                    relays[url] = asyncio.create_task(
                        relay(request, url, ns, agent, sub, peer_counters)
                    )

        relay_peers()
        try:
            hello = {"namespace": ns, "agent_id": agent, "tick_s": TICK_S}
            hello["projection"] = (await in_pool(dash.warm_projection, ns)).state()
            await resp.write(b"retry: 2000\n\n" + _sse("hello", hello))
            prev = await in_pool(dash.counters, None, sub, list(peer_counters.values()))
            await resp.write(_sse("counters", prev))
            next_counters = time.monotonic() + COUNTERS_S
            while not dash.stopping:
                if raw.transport is None or raw.transport.is_closing():
                    break
                items = await _gather(sub, min(TICK_S, max(0.0, next_counters - time.monotonic())))
                mems, lives, clusters = [], [], []
                for kind, payload in items:
                    if kind == "memory":
                        r = payload["row"]
                        if wanted(r.namespace, r.agent_id):
                            mems.append(r)
                    elif kind == "lifecycle":
                        ev = json.loads(_text(payload["json"]))
                        if wanted(ev["namespace"], ev["agent_id"]):
                            lives.append(_lifecycle_item(ev))
                    elif kind == "cluster":
                        ev = json.loads(_text(payload["json"]))
                        if wanted(ev["namespace"], ev["agent_id"]):
                            clusters.append(_cluster_item(ev))
                out = b""
                if mems:
                    body, moved = await in_pool(dash.new_points, ns, mems)
                    out += _sse("memories", body)
                    if moved:
                        out += _sse("projection", body["projection"])
                if lives:
                    out += _sse("lifecycle", {"items": lives})
                if clusters:
                    out += _sse("clusters", {"items": clusters})
                if time.monotonic() >= next_counters:
                    prev = dash.counters(prev, sub, list(peer_counters.values()))
                    out += _sse("counters", prev)
                    relay_peers()  # a worker that joined since
                    next_counters = time.monotonic() + COUNTERS_S
                if out:
                    await resp.write(out)
        except ConnectionError:
            pass  # the client went away
        finally:
            for task in relays.values():
                task.cancel()
            sub.close()
            dash.streams -= 1
        with contextlib.suppress(ConnectionError):
            await resp.write_eof()
        return resp

    return dash


async def _gather(sub: Subscription, wait_s: float) -> list[tuple[str, dict[str, Any]]]:
    """What the subscription holds now, waiting up to ``wait_s`` for the first item."""
    items: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + wait_s
    while len(items) < MAX_ITEMS_PER_TICK:
        left = deadline - time.monotonic()
        try:
            async with asyncio.timeout(max(left, 0.0) if not items else 0.0):
                items.append(await sub.get())
        except TimeoutError:
            break
    return items


def _lifecycle_item(ev: dict[str, Any]) -> dict[str, Any]:
    keys = ("memory_id", "agent_id", "from_state", "to_state", "cause", "event_ts", "recalls")
    return {k: ev.get(k) for k in (*keys, "related")}


def _cluster_item(ev: dict[str, Any]) -> dict[str, Any]:
    keys = ("kind", "agent_id", "cluster_id", "memory_id", "size", "radius", "stability")
    return {k: ev.get(k) for k in (*keys, "event_ts", "related")}


def _message_page(message: str, status: int = 404) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>ArgOS dashboard</title>"
        "</head><body style='font:15px system-ui;margin:3em'><h1>ArgOS dashboard</h1>"
        f"<p>{html.escape(message)}</p></body></html>"
    )


def refusal_page(exc: RejectedError) -> str:
    """The 401/403 page: the reason, and a form to give a token."""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{exc.http_status} · ArgOS dashboard</title></head>"
        "<body style='font:15px system-ui;margin:3em'>"
        f"<h1 id=refused data-status={exc.http_status}>{exc.http_status}: not allowed</h1>"
        f"<p id=reason>{html.escape(exc.reason)}</p>"
        "<form method=get action=/dashboard><label>Token <input name=token type=password "
        "autocomplete=off required></label> <label>Namespace <input name=namespace></label> "
        "<button>Open</button></form></body></html>"
    )
