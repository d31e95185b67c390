"""Where one worker's time goes: py-spy on a fresh worker taking a burst of events.

A fresh worker (the hashing embedder by default: the pipeline's own cost) on a local broker
takes ``--events`` simulated events published at once. py-spy (in the ``bench`` extra) samples
the worker with ``--gil`` for the whole run: only the thread holding the GIL, which is what
serialises one worker's stages. Reported per event:

- GIL time by part: the event loop (Faust's deliveries, the producer, the stages' own code on
  the loop, the HTTP server, the rest) and each stage's thread (ingest+embed, memory, store,
  population, analytics);
- CPU of every process that used any over the run (worker, its recall process and Milvus Lite
  server, the broker, this harness): whether the worker or the machine is the bound; and of
  each of the worker's threads, by its Python name (a ``py-spy dump`` at the end);
- records per event in each of the worker's topics (what the producer and Faust handle).

    python -m bench.profile_worker [--events 20000] [--embedder hashing] [--rate 50]

Writes ``bench/results/profile_worker.json`` and ``profile_worker.png``. Needs ptrace rights
over the worker (root, or ``kernel.yama.ptrace_scope`` 0, as on the machines here).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.machine import describe
from bench.recall_http import _raise_exit
from bench.throughput import _wait_all_stored
from infra.local_kafka import LocalKafka
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher
from pipelines.simulation import Population

RESULTS = Path(__file__).parent / "results"

#: (part, pattern in a frame): a sample belongs to the first part whose pattern is in its stack
#: (stage threads by the function each stage runs on its pool); the rest of the main thread is
#: the event loop, split by ``LOOP_PARTS``
STAGE_PARTS = [
    ("memory stage", "create_app.<locals>.memory_work"),
    ("analytics", "analytics_batch"),
    ("store", "create_app.<locals>.store_through"),
    ("population", "population_batch"),
    ("ingest+embed", "create_app.<locals>.timed"),
]
LOOP_PARTS = [
    ("loop: producer", ("send_records", "aiokafka/producer", "faust/transport/producer")),
    ("loop: HTTP (/stats polls)", ("aiohttp/",)),
    ("loop: stages' code", ("Agent._execute_actor",)),
    (
        "loop: Faust deliveries",
        ("faust/transport/consumer", "faust/streams.py", "conductor.py", "aiokafka/consumer"),
    ),
]


def find_py_spy() -> str | None:
    """The py-spy executable (the ``bench`` extra installs it beside this interpreter), or
    None."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def py_spy() -> str:
    found = find_py_spy()
    if found is None:
        raise SystemExit("py-spy is not installed: pip install -e '.[bench]'")
    return found


def classify(stack: list[str]) -> str:
    """The part one sampled stack (root first) belongs to."""
    for part, pattern in STAGE_PARTS:
        if any(pattern in f for f in stack):
            return part
    if stack and stack[0].startswith("Thread._bootstrap"):
        return "other threads"
    for part, patterns in LOOP_PARTS:
        if any(p in f for f in stack for p in patterns):
            return part
    return "loop: the rest (asyncio, aiokafka I/O, timers)"


def parts_of(raw: str) -> tuple[Counter[str], Counter[str]]:
    """Samples per part, and per leaf function, from py-spy's raw (collapsed) output."""
    parts: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        parts[classify(frames)] += int(n)
        leaves[re.sub(r" \(.*", "", frames[-1])] += int(n)
    return parts, leaves


def cpu_seconds() -> dict[int, tuple[str, float]]:
    """pid -> (command, user + system CPU seconds) of every process."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            st = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = st[st.rindex(")") + 2 :].split()
        out[int(d.name)] = (cmd.strip()[:120], (int(fields[11]) + int(fields[12])) / tick)
    return out


def task_cpu(pid: int) -> dict[int, tuple[float, float]]:
    """Thread id -> (user, system) CPU seconds of each thread of ``pid``."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for d in Path(f"/proc/{pid}/task").iterdir():
        try:
            st = (d / "stat").read_text()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2 :].split()
        out[int(d.name)] = (int(fields[11]) / tick, int(fields[12]) / tick)
    return out


def thread_cpu(spy: str, pid: int, before: dict[int, tuple[float, float]]) -> dict[str, Any]:
    """CPU of each of the worker's threads since ``before``, named as Python names them (a
    ``py-spy dump``): set beside the GIL samples, it shows the CPU a thread spends without the
    GIL (system calls, numpy, waiting to get it back)."""
    dump = subprocess.run(  # noqa: S603 - py-spy on our own child
        [spy, "dump", "-p", str(pid)], capture_output=True, text=True, timeout=60
    ).stdout
    names = {}
    for m in re.finditer(r'^Thread (\d+|0x[0-9a-f]+) \([^)]*\): "([^"]*)"', dump, re.M):
        names[int(m.group(1), 0)] = m.group(2)
    out: dict[str, Any] = {}
    for tid, (user, system) in task_cpu(pid).items():
        u0, s0 = before.get(tid, (0.0, 0.0))
        if user - u0 + system - s0 >= 0.05:
            name = names.get(tid, f"native {tid}")
            out[name] = {"user_s": round(user - u0, 2), "system_s": round(system - s0, 2)}
    return dict(sorted(out.items(), key=lambda kv: -(kv[1]["user_s"] + kv[1]["system_s"])))


def label(pid: int, cmd: str, worker: int, kids: set[int]) -> str:
    if pid == worker:
        return "worker"
    if pid == os.getpid():
        return "this harness"
    if "milvus_lite" in cmd:
        return "Milvus Lite server"
    if "recall_server" in cmd:
        return "recall process"
    if "kafka.Kafka" in cmd or "java" in cmd.split(" ")[0]:
        return "Kafka broker"
    return "worker's other children" if pid in kids else "other"


def records_per_topic(bootstrap: str, prefix: str) -> dict[str, int]:
    from kafka import KafkaConsumer, TopicPartition

    kc = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        out = {}
        for t in sorted(kc.topics()):
            if t.startswith(prefix):
                tps = [TopicPartition(t, p) for p in kc.partitions_for_topic(t) or ()]
                name = t[len(prefix) :].lstrip(".-")
                if name.endswith("-changelog"):  # <app id>-<prefix>-<table>-changelog
                    name = "changelog: " + name.removesuffix("-changelog").rsplit("-", 1)[-1]
                out[name] = sum(kc.end_offsets(tps).values())
        return out
    finally:
        kc.close()


@dataclass
class Run:
    """What one profiled burst gave (see ``_profile``)."""

    raw: str  # py-spy's samples, collapsed
    wall: float  # s from the first publish until every event was stored
    pid: int  # the worker's
    before: dict[int, tuple[str, float]]  # CPU per process, before and after
    after: dict[int, tuple[str, float]]
    threads: dict[str, Any]  # CPU per worker thread
    topics: dict[str, int]  # records per topic


def _profile(
    spy: str,
    worker: WorkerProcess,
    client: Any,
    bootstrap: str,
    prefix: str,
    events: list[Any],
    rate: int,
    tmp: str,
) -> Run:
    """py-spy on the running ``worker`` while it takes ``events``."""
    assert worker.proc is not None  # noqa: S101 - started by the caller
    pid = worker.proc.pid
    raw_path = Path(tmp) / "spy.txt"
    rec = subprocess.Popen(  # noqa: S603 - py-spy on our own child
        [spy, "record", "-p", str(pid), "-o", str(raw_path), "-f", "raw"]
        + ["-r", str(rate), "--gil", "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.0)  # py-spy attached
    before, thread_before = cpu_seconds(), task_cpu(pid)
    try:
        with MemoryPublisher(bootstrap, f"{prefix}.memory.events") as pub:
            t0 = time.perf_counter()
            pub.publish_many(events)
            pub.flush()
            _wait_all_stored(client, len(events))
            wall = time.perf_counter() - t0
        after = cpu_seconds()
    finally:
        rec.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        _, err = rec.communicate(timeout=60)
    threads = thread_cpu(spy, pid, thread_before)
    topics = records_per_topic(bootstrap, prefix)
    if not raw_path.exists():
        raise SystemExit(f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}")
    return Run(raw_path.read_text(), wall, pid, before, after, threads, topics)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--embedder", default="hashing")
    ap.add_argument("--rate", type=int, default=50, help="py-spy samples per second")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_exit)
    spy = py_spy()
    events = list(Population(50, seed=1, namespace="bench").events(args.events))
    with tempfile.TemporaryDirectory() as tmp, LocalKafka(Path(tmp) / "kafka") as kafka:
        prefix = f"prof-{uuid.uuid4().hex[:8]}"
        worker = WorkerProcess(
            kafka.bootstrap_servers,
            Path(tmp) / prefix,
            topic_prefix=prefix,
            app_id=f"{prefix}-app",
            embedder=args.embedder,
            extra_env={"ARGOS_OTEL_EXPORTER": "none"},
        )
        client = worker.start()
        try:
            run = _profile(
                spy, worker, client, kafka.bootstrap_servers, prefix, events, args.rate, tmp
            )
        finally:
            worker.stop()
    raw, wall, pid, before, after = run.raw, run.wall, run.pid, run.before, run.after
    kids = set(after) - set(before)
    parts, leaves = parts_of(raw)
    sample_s = 1.0 / args.rate
    per_event_ms = {k: round(v * sample_s / len(events) * 1e3, 4) for k, v in parts.most_common()}
    cpu: dict[str, float] = {}
    for p, (cmd, s) in after.items():
        used = s - before.get(p, (cmd, 0.0))[1]
        if used > 0.05:
            name = label(p, cmd, pid, kids)
            cpu[name] = round(cpu.get(name, 0.0) + used, 2)
    out: dict[str, Any] = {
        "machine": describe(),
        "events": len(events),
        "embedder": args.embedder,
        "wall_s": wall,
        "events_per_s": len(events) / wall,
        "gil_held_share": sum(parts.values()) * sample_s / wall,
        "gil_ms_per_event": round(sum(per_event_ms.values()), 4),
        "gil_ms_per_event_by_part": per_event_ms,
        "top_leaf_functions": dict(leaves.most_common(25)),
        "cpu_s_by_process": dict(sorted(cpu.items(), key=lambda kv: -kv[1])),
        "worker_cpu_s_by_thread": run.threads,
        "records_per_event": {t: round(n / len(events), 4) for t, n in run.topics.items() if n},
        "note": "py-spy --gil: samples of the thread holding the GIL; a loaded run's rate is "
        "below the unprofiled one",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "profile_worker.json").write_text(json.dumps(out, indent=2) + "\n")
    plot(out, args.out / "profile_worker.png")
    print(json.dumps({k: v for k, v in out.items() if k != "machine"}, indent=1))
    return 0


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = out["gil_ms_per_event_by_part"]
    names = list(parts)[::-1]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.barh(names, [parts[n] for n in names])
    for y, n in enumerate(names):
        ax.text(parts[n], y, f" {parts[n]:.3f}", va="center", fontsize=8)
    ax.set_xlabel("ms of GIL per event")
    m = out["machine"]
    ax.set_title(
        f"one worker, {out['events']:,} events ({out['embedder']} embedder), "
        f"{out['events_per_s']:.0f} events/s under py-spy\n"
        f"GIL held {out['gil_held_share']:.0%} of the time, "
        f"{out['gil_ms_per_event']:.2f} ms per event; {m['cores']} cores, {m['cpu'][:30]}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
