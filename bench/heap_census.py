"""What a loaded worker keeps for its garbage collector: tracked objects per memory, by type.

A full (generation 2) collection stops every thread for as long as it takes to visit every
object the collector tracks; in a worker those grow with the memories it holds (hot-index rows,
lifecycle entries, analytics records, BM25 postings), and so do its pauses (2-3 s at 200k
memories, ``bench/growth.py``). This loads one fresh worker (hashing embedder, the recall
bench's settings and texts: ``bench.recall_http``) in steps and, after each, asks it for a census
(``bench/heap_hook/sitecustomize.py``, put on the worker's ``PYTHONPATH``): the tracked objects
by type and the time of one full collection. The slope between two steps is what each memory
adds, without the worker's fixed start-up objects.

    python -m bench.heap_census [--steps 10000 20000] [--name heap_census] [--bytes FRAMES]

``--bytes N`` runs the worker under ``tracemalloc`` (N frames per allocation; it slows the
worker) and adds, from one step to the next, the bytes each memory adds by the line (and the
call stack) that allocated them, beside the worker's RSS per memory.

Writes ``bench/results/<name>.json`` and ``.png``. To compare code versions, run it in each
checkout on the same machine, one after the other (``--name``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.machine import describe, machine_title, write_results
from bench.recall_http import WORKER_ENV, _raise_exit, load, make_events
from infra.local_kafka import LocalKafka
from pipelines.client import MemoryClient
from pipelines.processes import WorkerProcess

RESULTS = Path(__file__).parent / "results"
HOOK = Path(__file__).parent / "heap_hook"


def ask(folder: Path, pid: int, timeout: float = 600.0) -> dict[str, Any]:
    """Trigger the worker's census and wait for its answer."""
    out = folder / f"census-{pid}.json"
    out.unlink(missing_ok=True)
    (folder / f"trigger-{pid}").touch()
    deadline = time.monotonic() + timeout
    while not out.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the worker wrote no census (is bench/heap_hook on its path?)")
        time.sleep(0.5)
    return json.loads(out.read_text())


def git_commit() -> str | None:
    try:
        return subprocess.run(  # noqa: S603, S607 - our own repository
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def bytes_per_memory(folder: Path, pid: int, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The traced bytes the memories between the first and the last census added, per memory:
    in all, by allocating line, by file and by call stack; and the worker's RSS per memory."""
    import tracemalloc

    snaps = sorted(
        folder.glob(f"snapshot-{pid}-*.tracemalloc"), key=lambda p: int(p.stem.split("-")[-1])
    )
    a, b = tracemalloc.Snapshot.load(str(snaps[0])), tracemalloc.Snapshot.load(str(snaps[-1]))
    span = steps[-1]["memories"] - steps[0]["memories"]

    def top(group: str, n: int) -> list[tuple[str, float]]:
        rows = []
        for d in b.compare_to(a, group)[:n]:
            where = " <- ".join(
                f"{f.filename.split('site-packages/')[-1]}:{f.lineno}" for f in d.traceback
            )
            rows.append((where, d.size_diff / span))
        return rows

    total = sum(s.size for s in b.statistics("filename")) - sum(
        s.size for s in a.statistics("filename")
    )
    rss = steps[-1]["system"]["rss_bytes"] - steps[0]["system"]["rss_bytes"]
    return {
        "traced_per_memory": total / span,
        "rss_per_memory": rss / span,
        "by_line": top("lineno", 40),
        "by_file": top("filename", 25),
        "by_stack": top("traceback", 25),
    }


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "bytes" in out:  # --bytes: what each memory adds, by allocating file
        b = out["bytes"]
        rows = [(w.split("/")[-1].split(":")[0], v) for w, v in b["by_file"][:14] if v > 0]
        fig, ax = plt.subplots(figsize=(9, 4.5))
        ax.barh([r[0] for r in rows][::-1], [r[1] for r in rows][::-1])
        ax.set_xlabel("traced bytes added per memory, by allocating file")
        ax.set_title(
            f"{b['traced_per_memory']:,.0f} traced bytes and {b['rss_per_memory']:,.0f} RSS bytes "
            f"per memory, {out['steps'][0]['memories']:,} -> {out['steps'][-1]['memories']:,} "
            f"(commit {out['commit']})",
            fontsize=9,
        )
        fig.suptitle(machine_title(out), fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        return
    per = out["per_memory_by_type"]
    names = [n for n, _ in sorted(per.items(), key=lambda kv: -kv[1])[:12]]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.barh(names[::-1], [per[n] for n in names[::-1]])
    ax.set_xlabel("tracked objects added per memory")
    ax.set_title(
        f"{out['per_memory']:.1f} tracked objects per memory (commit {out['commit']}); full "
        f"collection {out['steps'][-1]['full_collection_s'] * 1000:.0f} ms at "
        f"{out['steps'][-1]['memories']:,}",
        fontsize=9,
    )
    fig.suptitle(machine_title(out), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[10_000, 20_000])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--name", default="heap_census")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--bytes", type=int, default=0, metavar="FRAMES")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_exit)
    steps = sorted(args.steps)
    events = make_events(steps[-1], "100_agents", args.seed)
    out: dict[str, Any] = {"machine": describe(), "commit": git_commit(), "steps": []}
    with tempfile.TemporaryDirectory() as tmp, LocalKafka(Path(tmp) / "kafka") as kafka:
        folder = Path(tmp) / "census"
        folder.mkdir()
        path = os.pathsep.join(p for p in (str(HOOK), os.environ.get("PYTHONPATH")) if p)
        env = {**WORKER_ENV, "PYTHONPATH": path, "ARGOS_HEAP_CENSUS": str(folder)}
        if args.bytes:
            env["PYTHONTRACEMALLOC"] = str(args.bytes)
        worker = WorkerProcess.fresh(
            kafka.bootstrap_servers, Path(tmp), "heap", embedder="hashing", extra_env=env
        )
        prefix = worker.prefix
        client = worker.start()
        if args.bytes:  # a traced worker answers slowly
            client.close()
            client = MemoryClient(worker.url, timeout=300.0)
        assert worker.proc is not None
        try:
            done, base = 0, {"stored": 0, "count": 0, "inputs": 0}
            for n in steps:
                got = load(client, kafka.bootstrap_servers, prefix, events[done:n], 5.0, base)
                st = client.stats()
                base = {"stored": n, "count": n, "inputs": int(st["lifecycle_inputs"])}
                done = n
                c = ask(folder, worker.proc.pid)
                c |= {"memories": n, "events_per_s": got["events_per_s"], "system": st["system"]}
                out["steps"].append(c)
                print(
                    f"[{n}] {c['tracked']:,} tracked, full collection "
                    f"{c['full_collection_s'] * 1000:.0f} ms",
                    flush=True,
                )
            if args.bytes:
                out["bytes"] = bytes_per_memory(folder, worker.proc.pid, out["steps"])
        finally:
            client.close()
            worker.stop()
            shutil.rmtree(worker.data_dir, ignore_errors=True)
    first, last = out["steps"][0], out["steps"][-1]
    span = last["memories"] - first["memories"]
    if span:
        a, b = dict(first["top"]), dict(last["top"])
        out["per_memory"] = (last["tracked"] - first["tracked"]) / span
        out["per_memory_by_type"] = {
            t: (b.get(t, 0) - a.get(t, 0)) / span for t in {*a, *b} if b.get(t, 0) > a.get(t, 0)
        }
        write_results(out, args.out, args.name, plot)
        print(f"{out['per_memory']:.2f} tracked objects per memory")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
