"""``argos demo``: broker, worker, simulated agents publishing, progress, then recalls.

The demo runs secured as production would: content encrypted at rest, a writer token for the
simulated agents and a reader token for the recalls (made once, kept in ``.data/demo/secrets.json``
so later runs can read what earlier ones stored), spans and audit logs to a JSON-lines file.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipelines.client import MemoryClient
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher
from pipelines.settings import Settings
from pipelines.simulation import Population, malformed_events

DEMO_DIR = Path(".data/demo")
QUERIES = [
    "I was scared by a wild animal",
    "trading goods for tools",
    "singing and celebrating with friends",
    "how do I build a shelter",
]


def _publish(
    pub: MemoryPublisher, pop: Population, events: int, bad: int, rate: float, stop: threading.Event
) -> None:
    bad_payloads = list(malformed_events(bad, seed=pop.seed, namespace=pop.namespace))
    every = max(events // max(bad, 1), 1)
    t0 = time.monotonic()
    for i, ev in enumerate(pop.events(events)):
        if stop.is_set():
            break
        pub.publish(ev)
        if bad_payloads and i % every == every - 1:
            pub.publish_raw(b"demo-bad", bad_payloads.pop())
        if rate > 0:
            ahead = (i + 1) / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
    for raw in bad_payloads:
        pub.publish_raw(b"demo-bad", raw)
    pub.flush()


def demo_secrets(folder: Path) -> dict[str, str]:
    """The demo's encryption key and tokens: made on the first run, then reused (mode 0600)."""
    from pipelines.access import generate_token
    from pipelines.crypto import Keyring

    path = folder / "secrets.json"
    if path.exists():
        return dict(json.loads(path.read_text()))
    folder.mkdir(parents=True, exist_ok=True)
    secrets = {
        "keys": "demo1:" + Keyring.generate_key(),
        "writer": generate_token(),
        "reader": generate_token(),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(secrets, f)
    return secrets


def run_demo(
    *, agents: int, events: int, bad: int, rate: float, keep: bool, console: Console
) -> None:
    settings = Settings()
    namespace = "demo-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    broker_dir = DEMO_DIR / "kafka"
    bootstrap = settings.kafka_bootstrap_servers
    if not bootstrap:
        from infra.local_kafka import start_detached

        with console.status("starting a local Kafka broker (first run fetches its jars)..."):
            bootstrap = start_detached(broker_dir)
    console.print(f"[bold]Kafka[/] {bootstrap}")
    secrets = demo_secrets(DEMO_DIR)
    tokens = [
        {
            "token": secrets["writer"],
            "subject": "demo-agents",
            "namespaces": ["*"],
            "publish": True,
        },
        {"token": secrets["reader"], "subject": "demo-reader", "namespaces": ["*"]},
    ]
    worker = WorkerProcess(
        bootstrap,
        DEMO_DIR / "worker",
        topic_prefix=settings.topic_prefix,
        app_id=settings.app_id,
        port=settings.web_port,
        embedder=settings.embedder,
        extra_env={
            "ARGOS_ENCRYPTION_KEYS": secrets["keys"],
            "ARGOS_TOKENS": json.dumps(tokens),
            "ARGOS_OTEL_CONSOLE_FILE": str(DEMO_DIR / "worker" / "otel.jsonl"),
        },
    )
    with console.status("starting a worker (ingest → embed → store, recall API)..."):
        worker.start()
    client = MemoryClient(worker.url, token=secrets["reader"], recall_url=worker.recall_url)
    stats = client.stats()
    console.print(
        f"[bold]Worker[/] {worker.url}  recalls={worker.recall_url}  "
        f"embedder={stats['embedder']}  log={worker.log_path}"
    )
    console.print(
        f"[bold]Secured[/] content encrypted at rest (key demo1), tokens in "
        f"{DEMO_DIR / 'secrets.json'}; spans and audit logs in {DEMO_DIR / 'worker' / 'otel.jsonl'}"
    )
    from pipelines.dashboard import dashboard_url

    link = dashboard_url(worker.url, namespace, secrets["reader"])
    console.print(f"[bold]Dashboard[/] {link}  (live while the demo runs; --keep leaves it up)")
    try:
        _run(
            client,
            bootstrap,
            settings,
            namespace,
            agents,
            events,
            bad,
            rate,
            console,
            secrets["writer"],
        )
    finally:
        if keep:
            pid = worker.proc.pid if worker.proc else "?"
            console.print(
                f"left running: worker {worker.url} (pid {pid}), broker {bootstrap}; "
                f"stop with `kill {pid}` and `argos broker stop --data-dir {broker_dir}`"
            )
        else:
            worker.stop()
            if not settings.kafka_bootstrap_servers:
                from infra.local_kafka import stop_detached

                stop_detached(broker_dir)


def _run(
    client: MemoryClient,
    bootstrap: str,
    settings: Settings,
    namespace: str,
    agents: int,
    events: int,
    bad: int,
    rate: float,
    console: Console,
    writer_token: str,
) -> None:
    pop = Population(agents, seed=7, namespace=namespace)
    base = client.stats()
    dead0, stored0 = int(base["dead_lettered"]), int(base["stored"])
    clustered0, lived0 = int(base["clustered"]), int(base["lifecycle_inputs"])
    decayed0, strong0, derived0, rederived0 = (
        int(base[k]) for k in ("decayed", "strengthened", "derived", "rederived")
    )
    stop = threading.Event()
    pub = MemoryPublisher(
        bootstrap,
        settings.topic("memory.events"),
        token=writer_token,
        **settings.kafka_client_options(),
    )
    thread = threading.Thread(
        target=_publish, args=(pub, pop, events, bad, rate, stop), daemon=True
    )
    columns = (
        TextColumn("{task.description:>14}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    )
    t0 = time.monotonic()
    with Progress(*columns, console=console) as progress:
        p_pub = progress.add_task("published", total=events + bad, rate="")
        p_sto = progress.add_task("stored", total=events, rate="")
        p_dlq = progress.add_task("dead-lettered", total=bad, rate="")
        p_clu = progress.add_task("clustered", total=events, rate="")
        p_life = progress.add_task("lifecycle", total=events, rate="")
        thread.start()
        stored = dead = 0
        deadline = time.monotonic() + max(600.0, events / 20)
        while time.monotonic() < deadline:
            time.sleep(0.5)
            s = client.stats()
            stored, dead = int(s["stored"]) - stored0, int(s["dead_lettered"]) - dead0
            elapsed = time.monotonic() - t0
            progress.update(
                p_pub, completed=pub.published, rate=f"{pub.published / elapsed:7.0f} ev/s"
            )
            progress.update(p_sto, completed=stored, rate=f"{stored / elapsed:7.0f} ev/s")
            progress.update(p_dlq, completed=dead, rate="")
            kinds = s.get("cluster_kinds") or {}
            progress.update(
                p_clu,
                completed=int(s["clustered"]) - clustered0,
                rate=" ".join(f"{k} {v}" for k, v in sorted(kinds.items())),
            )
            lived = int(s["lifecycle_inputs"]) - lived0
            states = s.get("lifecycle_kinds") or {}
            progress.update(
                p_life,
                completed=min(lived, events),
                rate=" ".join(f"{k} {v}" for k, v in sorted(states.items()))
                + f" | derived {int(s['derived']) - derived0}"
                + f" near-dup {int(s['strengthened']) - strong0}",
            )
            clustered = int(s["clustered"]) - clustered0
            # derived semantic memories go through the store and memory stages too
            target = events + int(s["derived"]) + int(s["rederived"]) - derived0 - rederived0
            if not thread.is_alive() and min(stored, clustered) >= target and dead >= bad:
                break
        stop.set()
    thread.join()
    pub.close()
    elapsed = time.monotonic() - t0
    in_store = client.count(namespace)  # the truth: what Milvus holds for this run's namespace
    archived = client.count(namespace, archive=True)
    after = client.stats()
    decayed = int(after["decayed"]) - decayed0
    strengthened = int(after["strengthened"]) - strong0
    derived = int(after["derived"]) - derived0
    lost = events + bad + derived - in_store - archived - decayed - strengthened - dead
    console.print(
        f"[bold]{pub.published}[/] published + [bold]{derived}[/] semantic memories derived: "
        f"[bold green]{in_store}[/] in the hot store + [bold]{archived}[/] archived + "
        f"[bold]{decayed}[/] decayed (forgotten on event time) + [bold]{strengthened}[/] "
        f"near-duplicates (strengthened an earlier memory) + [bold yellow]{dead}[/] "
        f"dead-lettered; [bold]{lost}[/] missing. "
        f"{stored} stored in {elapsed:.1f}s ({stored / elapsed:.0f} memories/s end to end)"
    )
    from pipelines.cli import print_recall

    for i, query in enumerate(QUERIES):
        agent = pop.agents[i % len(pop.agents)].agent_id
        print_recall(client.recall(namespace, agent, query, k=4))
    agent = pop.agents[0].agent_id
    ctable = Table(title=f"{agent}'s memory clusters (largest first)")
    for col in ("cluster", "size", "radius", "stability"):
        ctable.add_column(col, justify="right" if col != "cluster" else "left")
    clusters = sorted(client.clusters(namespace, agent), key=lambda c: -int(c["size"]))
    for c in clusters[:8]:
        ctable.add_row(
            str(c["cluster_id"]), str(c["size"]), f"{c['radius']:.3f}", f"{c['stability']:.2f}"
        )
    console.print(ctable)
    ptable = Table(title=f"population clusters of {namespace} (shared across agents)")
    for col in ("cluster", "agents", "agent clusters", "memories", "cohesion"):
        ptable.add_column(col, justify="right" if col != "cluster" else "left")
    for c in client.population(namespace)[:8]:
        ptable.add_row(
            str(c["pop_id"]),
            str(c["n_agents"]),
            str(c["n_agent_clusters"]),
            str(c["size"]),
            f"{c['cohesion']:.2f}",
        )
    console.print(ptable)
    table = Table(title="worker counters")
    for key, value in client.stats().items():
        table.add_row(key, str(value))
    console.print(table)
