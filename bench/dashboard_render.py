"""Dashboard rendering: time to first render and frame time with 10k and 100k points, in
headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright).

The page is the real built dashboard (``dashboard/dist``, ``make dashboard``); its data comes
from a tiny local HTTP server that answers the dashboard API with synthetic points (clustered
blobs, 100 agents, the same columns as ``GET /dashboard/api/points``), so what is timed is the
browser's side: fetching and parsing the points, building the typed arrays and drawing.

- **time to first render**: from navigation start to the end of the first draw with points
  (``performance.now()`` in the page), and the part of it spent fetching + parsing the points;
- **the worker's side** of ``GET /dashboard/api/points`` for as many memories (in-process: the
  sample, the projection and the JSON), first call and warm;
- **frame time**: (a) CPU time of one full redraw (all points into the pixel buffer, the hover
  grid, the overlay) while zooming, 60 frames; (b) the interval between animation frames while
  panning (the browser's own frame pacing, ~16.7 ms at 60 fps when a frame fits).

Each size runs ``--runs`` times in a fresh page; medians are reported. Writes
``bench/results/dashboard_render.json`` and ``.png`` (with the machine described).

    python -m bench.dashboard_render [--sizes 10000 100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np

from pipelines.dashboard import CHROMIUM, CHROMIUM_ARGS, STATES, TYPES, dist_dir

try:
    from bench.machine import describe
except ImportError:  # run as ``python bench/dashboard_render.py``
    from machine import describe  # type: ignore[no-redef]

RESULTS = Path(__file__).parent / "results"
NS = "bench"
AGENTS = 100
CLUSTERS = 400
VIEWPORT = {"width": 1600, "height": 900}


def synthetic_points(n: int, seed: int = 0) -> bytes:
    """A points payload of ``n`` memories in ``CLUSTERS`` Gaussian blobs (JSON bytes)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=0.35, size=(CLUSTERS, 2))
    spread = rng.uniform(0.01, 0.05, size=CLUSTERS)
    cl = rng.integers(0, CLUSTERS, size=n)
    xy = centres[cl] + rng.normal(size=(n, 2)) * spread[cl, None]
    agent = cl % AGENTS
    world = rng.uniform(0, 200, size=(n, 2))
    has_pos = rng.random(n) < 0.9
    ts = 1_767_225_600.0 + rng.uniform(0, 86_400, size=n)
    body = {
        "namespace": NS,
        "view": "embedding",
        "total": n,
        "limit": n,
        "projection": {"version": 1, "rows_learnt": n},
        "n": n,
        "x": np.round(xy[:, 0], 5).tolist(),
        "y": np.round(xy[:, 1], 5).tolist(),
        "wx": [
            round(float(v), 3) if h else None for v, h in zip(world[:, 0], has_pos, strict=True)
        ],
        "wy": [
            round(float(v), 3) if h else None for v, h in zip(world[:, 1], has_pos, strict=True)
        ],
        "memory_id": [f"m{i}" for i in range(n)],
        "agent": agent.tolist(),
        "agents": [f"agent-{a:03d}" for a in range(AGENTS)],
        "cluster": cl.tolist(),
        "clusters": [f"agent-{c % AGENTS:03d}/c{c}" for c in range(CLUSTERS)],
        "type": rng.integers(0, 3, size=n).tolist(),
        "types": TYPES,
        "state": rng.choice([1, 1, 1, 2, 4], size=n).tolist(),
        "states": STATES,
        "content": [f"synthetic memory {i} of theme {c}" for i, c in enumerate(cl.tolist())],
        "event_ts": np.round(ts, 3).tolist(),
    }
    return json.dumps(body, separators=(",", ":")).encode()


class _Server:
    """The dashboard's files and a synthetic dashboard API on 127.0.0.1 (a free port)."""

    def __init__(self, payloads: dict[int, bytes]) -> None:
        dist = dist_dir()
        if not (dist / "index.html").is_file():
            raise SystemExit(f"no {dist}/index.html: build the dashboard first (make dashboard)")
        files = {p.name: p.read_bytes() for p in dist.iterdir() if p.is_file()}
        stop = threading.Event()
        self.stop_streams = stop

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def send(self, body: bytes, ctype: str, status: int = 200) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                url = urlparse(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                path = url.path
                if path == "/dashboard":
                    self.send(files["index.html"], "text/html; charset=utf-8")
                elif path.startswith("/dashboard/static/"):
                    name = path.rsplit("/", 1)[-1]
                    ctype = {".js": "text/javascript", ".css": "text/css"}.get(
                        Path(name).suffix, "application/octet-stream"
                    )
                    if name in files:
                        self.send(files[name], ctype)
                    else:
                        self.send(b"{}", "application/json", 404)
                elif path == "/dashboard/api/namespaces":
                    body = {"namespaces": [{"namespace": NS, "agents": AGENTS, "memories": 0}]}
                    self.send(json.dumps(body).encode(), "application/json")
                elif path == "/dashboard/api/agents":
                    agents = [{"agent_id": f"agent-{a:03d}", "memories": 0} for a in range(AGENTS)]
                    self.send(json.dumps({"agents": agents}).encode(), "application/json")
                elif path == "/dashboard/api/points":
                    self.send(payloads[int(q.get("limit", "10000"))], "application/json")
                elif path == "/dashboard/api/analytics":
                    body = {"enabled": False, "models": [], "metrics": {}}
                    self.send(json.dumps(body).encode(), "application/json")
                elif path == "/clusters":
                    self.send(b'{"clusters": []}', "application/json")
                elif path == "/dashboard/api/events":
                    self.events()
                else:
                    self.send(b"{}", "application/json", 404)

            def events(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                hello = json.dumps({"namespace": NS, "projection": {"version": 1}})
                self.wfile.write(f"retry: 60000\n\nevent: hello\ndata: {hello}\n\n".encode())
                self.wfile.flush()
                while not stop.wait(1.0):  # keep it open (idle) until the run ends
                    try:
                        self.wfile.write(b": idle\n\n")
                        self.wfile.flush()
                    except OSError:
                        return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_streams.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def server_payload(n: int, dim: int = 384, seed: int = 0) -> dict[str, float]:
    """What the worker spends on ``GET /dashboard/api/points`` for ``n`` memories (100 agents
    in one hot index, random unit vectors): the first call (the projection learns its sample),
    then a warm call, each with the JSON encoding. In-process, no HTTP."""
    from types import SimpleNamespace

    from pipelines.dashboard import Dashboard
    from pipelines.hot_index import HotIndex
    from pipelines.store import StoredMemory

    rng = np.random.default_rng(seed)
    index = HotIndex(dim)
    for lo in range(0, n, 10_000):
        rows = [
            StoredMemory(
                f"m{i}",
                f"agent-{i % AGENTS:03d}",
                NS,
                "episodic",
                f"synthetic memory {i}",
                0.5,
                1_767_225_600.0 + i,
                "",
                rng.normal(size=dim).astype(np.float32),
                {"position": {"x": float(i % 200), "y": float(i % 97)}},
            )  # fmt: skip
            for i in range(lo, min(n, lo + 10_000))
        ]
        index.upsert(rows)
    recall = SimpleNamespace(index=index, warm=lambda ns, agent: None)
    dash = Dashboard(SimpleNamespace(recall=recall, hot_table=None))  # type: ignore[arg-type]
    out = {}
    for label in ("first_ms", "warm_ms"):
        t0 = time.perf_counter()
        body = dash.points(NS, None, n, "embedding")
        json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        out[label] = (time.perf_counter() - t0) * 1000.0
    dash.pool.shutdown()
    return out


def _q(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(p * len(s)) - 1))]


def run_one(browser: Any, url: str, n: int, frames: int) -> dict[str, Any]:
    page = browser.new_page(viewport=VIEWPORT)
    try:
        t0 = time.perf_counter()
        page.goto(f"{url}/dashboard?namespace={NS}&limit={n}")
        page.wait_for_function(
            "() => window.__argosDash && window.__argosDash.panes()[0]"
            " && window.__argosDash.panes()[0].firstRenderAt > 0",
            timeout=120_000,
        )
        wall = (time.perf_counter() - t0) * 1000.0
        pane = page.evaluate("() => window.__argosDash.panes()[0]")
        page.wait_for_timeout(300)  # let the first frames settle
        b = page.evaluate(f"() => window.__argosDash.bench({frames})")
        return {
            "points": pane["n"],
            "drawn": b["drawn"],
            "point_size_px": b["pointSize"],
            "canvas_px": [b["width"], b["height"]],
            "first_render_ms": pane["firstRenderAt"],
            "points_fetch_parse_ms": pane["loadMs"],
            "first_render_wall_ms": wall,
            "render_cpu_ms_p50": statistics.median(b["cpu"]),
            "render_cpu_ms_p95": _q(b["cpu"], 0.95),
            "render_cpu_ms_max": max(b["cpu"]),
            "frame_interval_ms_p50": statistics.median(b["intervals"]),
            "frame_interval_ms_p95": _q(b["intervals"], 0.95),
            "frame_interval_ms_max": max(b["intervals"]),
            "fps": 1000.0 / statistics.mean(b["intervals"]),
        }
    finally:
        page.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--out", type=Path, default=RESULTS / "dashboard_render.json")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install -y chromium")
    payloads = {n: synthetic_points(n) for n in args.sizes}
    results: dict[str, Any] = {"machine": describe(), "sizes": {}}
    with _Server(payloads) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        results["browser"] = f"Chromium {browser.version} (headless, --disable-gpu)"
        results["viewport"] = VIEWPORT
        for n in args.sizes:
            runs = [run_one(browser, server.url, n, args.frames) for _ in range(args.runs)]
            keys = [k for k, v in runs[0].items() if isinstance(v, int | float)]
            med = {k: statistics.median(r[k] for r in runs) for k in keys}
            results["sizes"][str(n)] = {
                "median": med,
                "runs": runs,
                "payload_bytes": len(payloads[n]),
                "worker_points_payload": server_payload(n),
            }
            print(
                f"{n:>7} points: first render {med['first_render_ms']:.0f} ms "
                f"(fetch+parse {med['points_fetch_parse_ms']:.0f} ms), redraw "
                f"p50 {med['render_cpu_ms_p50']:.1f} ms / p95 {med['render_cpu_ms_p95']:.1f} ms, "
                f"frames p50 {med['frame_interval_ms_p50']:.1f} ms ({med['fps']:.0f} fps); "
                "worker payload {first_ms:.0f} ms (first), {warm_ms:.0f} ms (warm)".format(
                    **results["sizes"][str(n)]["worker_points_payload"]
                )
            )
        browser.close()
    results["method"] = __doc__
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(results["sizes"])
    med = [results["sizes"][s]["median"] for s in sizes]
    labels = [f"{int(s) // 1000}k points" for s in sizes]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    x = np.arange(len(sizes))
    a.bar(x - 0.2, [m["first_render_ms"] for m in med], 0.4, label="first render")
    a.bar(x + 0.2, [m["points_fetch_parse_ms"] for m in med], 0.4, label="of it: fetch + parse")
    a.set_xticks(x, labels)
    a.set_ylabel("ms from navigation start")
    a.set_title("Time to first render")
    a.legend()
    b.bar(x - 0.2, [m["render_cpu_ms_p50"] for m in med], 0.4, label="full redraw, CPU p50")
    b.bar(x + 0.2, [m["frame_interval_ms_p50"] for m in med], 0.4, label="frame interval p50")
    b.axhline(1000 / 60, color="grey", ls="--", lw=1, label="60 fps")
    b.set_xticks(x, labels)
    b.set_ylabel("ms")
    b.set_title("Frame time (pan / zoom)")
    b.legend()
    m = results["machine"]
    fig.suptitle(
        f"Dashboard rendering in headless Chromium — {m['cpu']}, {m['cores']} cores, "
        f"{m['date'][:10]}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
