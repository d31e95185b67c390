"""``argos``: the command line of ArgOS Memory Stream.

Run ``argos --help``, or ``argos COMMAND --help`` for one command.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipelines.settings import Settings

app = typer.Typer(
    help="ArgOS Memory Stream: agents publish memories to Kafka; workers embed and store them in "
    "Milvus; agents recall them.",
    no_args_is_help=True,
    add_completion=False,
)
broker_app = typer.Typer(help="A local single-node Kafka broker (KRaft) for development.")
app.add_typer(broker_app, name="broker")
console = Console()

DataDir = Annotated[Path, typer.Option(help="Broker state folder.")]


def _kafka_dir() -> Path:
    from infra.local_kafka import DEFAULT_DATA_DIR

    return DEFAULT_DATA_DIR


@broker_app.command("start")
def broker_start(data_dir: DataDir = None) -> None:  # type: ignore[assignment]
    """Fetch Kafka's jars (cached), start the broker in the background, print its address."""
    from infra.local_kafka import start_detached

    console.print(start_detached(data_dir or _kafka_dir()))


@broker_app.command("stop")
def broker_stop(data_dir: DataDir = None) -> None:  # type: ignore[assignment]
    """Stop the local broker started by `argos broker start`."""
    from infra.local_kafka import stop_detached

    stopped = stop_detached(data_dir or _kafka_dir())
    console.print("stopped" if stopped else "no broker was running")


@broker_app.command("status")
def broker_status(data_dir: DataDir = None) -> None:  # type: ignore[assignment]
    """Print the local broker's address, or exit 1 if it is not running."""
    from infra.local_kafka import status

    found = status(data_dir or _kafka_dir())
    if not found:
        console.print("not running")
        raise typer.Exit(1)
    console.print(found)


@app.command()
def worker(
    port: Annotated[int | None, typer.Option(help="HTTP port (default ARGOS_WEB_PORT).")] = None,
    loglevel: Annotated[
        str, typer.Option(help="debug, info, warning, error", envvar="ARGOS_LOG_LEVEL")
    ] = "warning",
) -> None:
    """Run a worker: the ingest, embed and store stages and the recall API."""
    from pipelines.worker import run_worker

    settings = Settings()
    if port is not None:
        settings = settings.model_copy(update={"web_port": port})
    run_worker(settings, loglevel=loglevel)


@app.command()
def publish(
    agents: Annotated[int, typer.Option(help="Simulated agents.")] = 20,
    events: Annotated[int, typer.Option(help="Events to publish.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the simulation.")] = 0,
    namespace: Annotated[str, typer.Option(help="World / tenant.")] = "sim",
    file: Annotated[
        Path | None, typer.Option(help="Publish the JSON lines of this file instead ('-': stdin).")
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="ARGOS_TOKEN", help="Publish token (argos-token header).")
    ] = None,
) -> None:
    """Publish memory events: a simulated population's, or JSON lines from a file."""
    from pipelines.publisher import MemoryPublisher
    from pipelines.simulation import Population
    from pipelines.worker import resolve_bootstrap

    settings = resolve_bootstrap(Settings())
    assert settings.kafka_bootstrap_servers  # noqa: S101 - resolve_bootstrap guarantees it
    n = 0
    topic = settings.topic("memory.events")
    with MemoryPublisher(
        settings.kafka_bootstrap_servers, topic, token=token, **settings.kafka_client_options()
    ) as pub:
        if file is not None:
            lines = sys.stdin if str(file) == "-" else file.open(encoding="utf-8")
            for line in lines:
                if line.strip():
                    pub.publish(json.loads(line))
                    n += 1
        else:
            n = pub.publish_many(Population(agents, seed, namespace).events(events))
    console.print(f"published {n} events to {settings.topic('memory.events')}")


@app.command()
def recall(
    query: Annotated[str, typer.Argument(help="What to remember, in words.")],
    agent: Annotated[str, typer.Option(help="Agent id.")],
    namespace: Annotated[str, typer.Option(help="World / tenant.")] = "sim",
    k: Annotated[int, typer.Option(help="How many memories.")] = 5,
    url: Annotated[str, typer.Option(help="A worker's base URL.")] = "http://127.0.0.1:6066",
    token: Annotated[
        str | None, typer.Option(envvar="ARGOS_TOKEN", help="Bearer token of the recall API.")
    ] = None,
    recall_url: Annotated[
        str,
        typer.Option(
            envvar="ARGOS_RECALL_URL",
            help="Where the recall goes: 'auto' (the recall process the worker's /ready names, "
            "else the worker), 'worker' (the worker's own /recall) or a recall process's URL, "
            "e.g. http://127.0.0.1:6067.",
        ),
    ] = "auto",
) -> None:
    """Ask a worker what an agent remembers that is like QUERY."""
    from pipelines.client import MemoryClient

    to = None if recall_url == "worker" else recall_url
    with MemoryClient(url, token=token, recall_url=to) as client:
        resp = client.recall(namespace, agent, query, k=k)
    print_recall(resp)


def print_recall(resp: object) -> None:
    from schemas import RecallResponse

    assert isinstance(resp, RecallResponse)  # noqa: S101 - internal contract
    table = Table(title=f"{resp.agent_id} remembers, like “{resp.query}” ({resp.took_ms:.0f} ms)")
    table.add_column("score", justify="right")
    table.add_column("rel/rec/imp", justify="right")
    table.add_column("type")
    table.add_column("when")
    table.add_column("memory")
    for h in resp.hits:
        p = h.parts
        parts = f"{p.relevance:.2f}/{p.recency:.2f}/{p.importance:.2f}" if p else ""
        table.add_row(f"{h.score:.3f}", parts, h.type.value, h.event_time[:16], h.content)
    console.print(table)


@app.command()
def subscribe(
    topic: Annotated[
        str, typer.Argument(help="A topic suffix (memory.lifecycle, clusters, ...) or full name.")
    ],
    from_beginning: Annotated[
        bool, typer.Option(help="Start at the oldest record instead of new ones.")
    ] = False,
    limit: Annotated[int, typer.Option(help="Stop after this many records (0 = never).")] = 0,
    raw: Annotated[bool, typer.Option(help="Print one JSON line per record.")] = False,
) -> None:
    """Print a topic's records as they arrive (no consumer group: nothing is committed)."""
    from kafka import KafkaConsumer

    from pipelines.worker import resolve_bootstrap

    settings = resolve_bootstrap(Settings())
    assert settings.kafka_bootstrap_servers  # noqa: S101 - resolve_bootstrap guarantees it
    name = topic if topic.startswith(f"{settings.topic_prefix}.") else settings.topic(topic)
    consumer = KafkaConsumer(
        name,
        bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        **settings.kafka_client_options(),
    )
    seen = 0
    try:
        for rec in consumer:
            try:
                value: object = json.loads(rec.value)
            except ValueError:
                value = rec.value.decode("utf-8", "replace")
            if raw:
                print(json.dumps({"key": (rec.key or b"").decode(), "value": value}), flush=True)
            else:
                console.print(
                    f"[dim]{name}[{rec.partition}]@{rec.offset} key={(rec.key or b'').decode()}[/]"
                )
                console.print_json(data=value)
            seen += 1
            if limit and seen >= limit:
                break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


@app.command()
def acls(
    worker: Annotated[str, typer.Option(help="The workers' Kafka user (or User:... principal).")],
    agent: Annotated[
        list[str] | None, typer.Option(help="A publishing agent's user (repeatable).")
    ] = None,
    reader: Annotated[
        list[str] | None, typer.Option(help="An analytics subscriber's user (repeatable).")
    ] = None,
    apply: Annotated[
        bool, typer.Option(help="Create them on the broker (as a principal allowed to).")
    ] = False,
) -> None:
    """The Kafka ACLs of a deployment (pipelines/kafka_acls.py): print them, or create them."""
    from pipelines.kafka_acls import acl_bindings, apply_acls, describe
    from pipelines.worker import resolve_bootstrap

    settings = Settings()
    bindings = acl_bindings(settings, worker, agent or [], reader or [])
    for acl in bindings:
        print(describe(acl))
    if apply:
        created = apply_acls(resolve_bootstrap(settings), bindings)
        console.print(f"created {created} ACLs")


@app.command()
def dashboard(
    namespace: Annotated[str | None, typer.Option(help="World / tenant to show first.")] = None,
    url: Annotated[str, typer.Option(help="A worker's base URL.")] = "http://127.0.0.1:6066",
    token: Annotated[
        str | None, typer.Option(envvar="ARGOS_TOKEN", help="A read token (goes in the URL).")
    ] = None,
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open a browser.")] = True,
) -> None:
    """Print (and open) the address of a worker's dashboard (the MemoryVisualizer)."""
    import webbrowser

    from pipelines.dashboard import dashboard_url

    link = dashboard_url(url, namespace, token)
    console.print(link)
    if open_browser:
        webbrowser.open(link)


keys_app = typer.Typer(help="Encryption keys (AES-256-GCM) for content at rest.")
app.add_typer(keys_app, name="keys")


@keys_app.command("new")
def keys_new(
    key_id: Annotated[str, typer.Argument(help="Id of the new key, e.g. 2026-11.")],
) -> None:
    """Print a new key entry for ARGOS_ENCRYPTION_KEYS ('kid:base64'). To rotate: append it to
    the list, make it current (ARGOS_ENCRYPTION_KEY_ID), restart the workers, run
    `argos reencrypt`, then drop the old key."""
    from pipelines.crypto import Keyring

    Keyring.parse(f"{key_id}:{(key := Keyring.generate_key())}")  # validates the id
    print(f"{key_id}:{key}")


@app.command()
def reencrypt() -> None:
    """Rewrite stored content under the current key (hot and archive collections). With Milvus
    Lite, run it while the worker that owns the data folder is stopped."""
    from pipelines.crypto import Keyring
    from pipelines.errors import ConfigurationError
    from pipelines.store import MilvusStore

    settings = Settings()
    keyring = Keyring.from_settings(settings)
    if keyring is None:
        raise ConfigurationError("set ARGOS_ENCRYPTION_KEYS (or _FILE) to re-encrypt")
    for name in (settings.collection, settings.archive_collection):
        store = MilvusStore(settings.milvus_target, name, keyring=keyring)
        try:
            seen, done = store.reencrypt()
        finally:
            store.close()
        console.print(f"{name}: {seen} rows read, {done} rewritten under key {keyring.current_id}")


@app.command()
def token(
    subject: Annotated[str, typer.Argument(help="Who holds it, e.g. sim-writer.")],
    namespace: Annotated[list[str], typer.Option(help="Namespaces it may use ('*': all).")],
    agent: Annotated[
        list[str] | None, typer.Option(help="Only these agents (default: every agent).")
    ] = None,
    publish: Annotated[bool, typer.Option(help="May publish memory events.")] = False,
) -> None:
    """Print a new token entry (JSON) for the ARGOS_TOKENS list."""
    from pipelines.access import AccessPolicy, generate_token

    entry = {
        "token": generate_token(),
        "subject": subject,
        "namespaces": namespace,
        "agents": agent or None,
        "publish": publish,
    }
    AccessPolicy.parse(json.dumps([entry]))  # validates it
    print(json.dumps(entry))


@app.command()
def demo(
    agents: Annotated[int, typer.Option(help="Simulated agents.")] = 20,
    events: Annotated[int, typer.Option(help="Good events to publish.")] = 3000,
    bad: Annotated[int, typer.Option(help="Malformed events mixed in (dead-lettered).")] = 30,
    rate: Annotated[float, typer.Option(help="Events/s to publish (0 = as fast as possible).")] = 0,
    keep: Annotated[bool, typer.Option(help="Leave the broker and worker running.")] = False,
) -> None:
    """The whole pipeline on this machine: broker, worker, simulated agents, then recalls."""
    from pipelines.demo import run_demo

    run_demo(agents=agents, events=events, bad=bad, rate=rate, keep=keep, console=console)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
