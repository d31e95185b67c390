"""The vector store unavailable for 30 s (issue #8's faults): the worker retries with backoff
(tenacity), keeps answering recalls from its caches marked ``degraded``, and catches up when
the store is back; nothing is lost. Milvus here is a ``milvus-lite server`` process (through
``MILVUS_URI``), stopped and started again on the same port and data folder. And its disk
full: the same retries, the cause in ``/stats`` (``store_error``), nothing lost once space is
freed."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from pipelines.client import MemoryClient
from pipelines.milvus_server import MilvusLiteServer
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher
from pipelines.simulation import Population
from tests.integration.kafka_utils import ledger

pytestmark = pytest.mark.integration

NS = "outage"
OUTAGE_S = 30.0


def _settled(
    w: WorkerProcess, client: MemoryClient, events: list
) -> tuple[dict, set[str], set[str]]:
    """Once every event went through the memory stage, wait (up to 3 min) until the store holds
    exactly the live memories of the worker's ledger; returns the ledger, the live ids and the
    published ids (the caller asserts)."""
    client.wait_counter("clustered", len(events), timeout=240)
    published = {e.memory_id for e in events}
    deadline = time.monotonic() + 180
    while True:
        book = ledger(w, NS)
        live = book["created"] - book["decayed"] - book["archived"]
        if client.count(NS) == len(live) or time.monotonic() > deadline:
            return book, live, published
        time.sleep(2.0)


def _first_half_stored(w: WorkerProcess, client: MemoryClient, seed: int) -> tuple[list, list, str]:
    """Publish the first 300 of 600 simulated events and wait until the memory stage and the
    store have them; returns all 600, the other 300, and an agent of the first ones."""
    events = list(Population(6, seed=seed, namespace=NS).events(600))
    first, second = events[:300], events[300:]
    with MemoryPublisher(w.bootstrap, w.env["ARGOS_TOPIC_PREFIX"] + ".memory.events") as pub:
        pub.publish_many(first)
    client.wait_counter("clustered", len(first), timeout=180)
    client.wait_counter("stored", len(first), timeout=180)
    return events, second, first[0].agent_id


@pytest.fixture
def milvus(tmp_path: Path) -> Iterator[MilvusLiteServer]:
    server = MilvusLiteServer(tmp_path / "milvus")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_store_outage_degrades_then_catches_up_with_nothing_lost(
    start_worker: Callable[..., WorkerProcess], milvus: MilvusLiteServer
) -> None:
    w = start_worker(extra_env={"MILVUS_URI": milvus.uri})
    client = MemoryClient(w.url)  # recalls go to the worker's recall process (the default)
    process = client.recall_url_named()
    assert process is not None

    def answered_by_process() -> int:
        return int(httpx.get(f"{process}/stats", timeout=10).json()["answered"])

    events, second, agent = _first_half_stored(w, client, seed=41)
    prefix = w.env["ARGOS_TOPIC_PREFIX"]
    healthy = client.recall(NS, agent, "what happened at the market", k=5)
    assert healthy.hits and not healthy.degraded

    milvus.stop()  # the store goes away ...
    down_at = time.monotonic()
    with MemoryPublisher(w.bootstrap, prefix + ".memory.events") as pub:
        pub.publish_many(second)
    deadline = time.monotonic() + OUTAGE_S
    while int(client.stats()["store_retries"]) == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert int(client.stats()["store_retries"]) > 0  # the worker noticed and retries
    answered = answered_by_process()
    during = client.recall(NS, agent, "what happened at the market", k=5)
    assert answered_by_process() == answered + 1  # the recall process answered, marked degraded
    st = client.stats()
    assert during.degraded and during.hits, (st["store_down_s"], st["store_retries"])
    assert st["store_down_s"] is not None
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
    milvus.start()  # ... and comes back after 30 s: the worker catches up
    book, live, published = _settled(w, client, events)
    assert (book["created"] & published) | book["duplicates"] == published  # nothing lost
    assert client.count(NS) == len(live)  # every live memory in the store, none twice
    after = client.recall(NS, agent, "what happened at the market", k=5)
    assert after.hits and not after.degraded
    print(
        f"outage {OUTAGE_S:.0f} s: {client.stats()['store_retries']} store retries; "
        f"{client.count(NS)} in the store = {len(live)} live of {len(events)} published"
    )


def _milvus_child(worker: WorkerProcess) -> int:
    """The pid of the worker's Milvus Lite server process."""
    assert worker.proc is not None
    out = subprocess.run(  # noqa: S603, S607 - procps, our own child
        ["pgrep", "-P", str(worker.proc.pid), "-f", "milvus_lite server"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    assert len(out) == 1, out
    return int(out[0])


def test_milvus_lite_process_killed_mid_stream_is_started_again_and_nothing_is_lost(
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """``ARGOS_MILVUS_LITE_PROCESS``: the worker runs Milvus Lite as its own child process (its
    own GIL) on the data folder; SIGKILL that process mid-stream and the worker's supervisor
    starts it again, the store stage writes its last rows again (a killed Milvus Lite may lose
    its last acknowledged writes: 5 of 244 once, in a clean-clone CI run before this), the
    stages retry, and every live memory ends up in the store once."""
    w = start_worker(extra_env={"ARGOS_MILVUS_LITE_PROCESS": "true"})
    client = MemoryClient(w.url)
    prefix = w.env["ARGOS_TOPIC_PREFIX"]
    child = _milvus_child(w)
    events, second, agent = _first_half_stored(w, client, seed=43)
    assert client.recall(NS, agent, "the market", k=5).hits
    os.kill(child, signal.SIGKILL)
    with MemoryPublisher(w.bootstrap, prefix + ".memory.events") as pub:
        pub.publish_many(second)
    book, live, published = _settled(w, client, events)
    again = _milvus_child(w)
    assert again != child  # a new server process, started by the worker
    resent = client.stats()["resent_after_restart"]
    assert resent > 0  # the restart hook ran: the last rows were written again
    assert (book["created"] & published) | book["duplicates"] == published  # nothing lost
    assert client.count(NS) == len(live)  # every live memory in the store, none twice
    print(
        f"Milvus Lite child {child} killed, {again} started by the worker, {resent} rows "
        f"written again: {client.count(NS)} in the store = {len(live)} live of {len(events)} "
        "published"
    )


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs of its own (a disk that can fill up without filling the machine's)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI and the dev machines run as root)")
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)], check=True)  # noqa: S603, S607
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)  # noqa: S603, S607


def _fill(disk: Path) -> Path:
    """Write zeros to one file on ``disk`` until the disk is full; returns the file."""
    filler = disk / "filler"
    chunk = bytes(1 << 20)
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as exc:
            assert exc.errno == 28, exc  # ENOSPC: full
    chunk = bytes(4096)
    with filler.open("ab", buffering=0) as f:  # the last pages too
        try:
            while True:
                f.write(chunk)
        except OSError as exc:
            assert exc.errno == 28, exc
    return filler


def test_store_disk_full_gives_a_clear_error_then_catches_up_with_nothing_lost(
    start_worker: Callable[..., WorkerProcess], small_disk: Path
) -> None:
    """Milvus's disk fills up mid-stream: its writes fail with ENOSPC, the worker retries
    with backoff and says why at ``/stats`` (``store_error``), recalls answer marked
    ``degraded``; once space is freed every live memory reaches the store, once."""
    milvus = MilvusLiteServer(small_disk / "milvus").start()
    try:
        w = start_worker(extra_env={"MILVUS_URI": milvus.uri})
        client = MemoryClient(w.url)
        events, second, agent = _first_half_stored(w, client, seed=47)
        prefix = w.env["ARGOS_TOPIC_PREFIX"]
        assert client.stats()["store_error"] is None
        filler = _fill(small_disk)
        with MemoryPublisher(w.bootstrap, prefix + ".memory.events") as pub:
            pub.publish_many(second)
        deadline = time.monotonic() + 120
        while client.stats()["store_error"] is None and time.monotonic() < deadline:
            time.sleep(0.5)
        st = client.stats()
        assert "No space left on device" in str(st["store_error"]), st["store_error"]
        assert int(st["store_retries"]) > 0 and st["store_down_s"] is not None
        during = client.recall(NS, agent, "what happened at the market", k=5)
        assert during.degraded and during.hits
        stored_while_full = int(client.stats()["stored"])
        time.sleep(10)  # still full: the stream waits, nothing is acknowledged unwritten
        assert int(client.stats()["stored"]) == stored_while_full < len(events)
        filler.unlink()  # space again: the worker catches up
        book, live, published = _settled(w, client, events)
        assert (book["created"] & published) | book["duplicates"] == published  # nothing lost
        assert client.count(NS) == len(live)  # every live memory in the store, none twice
        st = client.stats()
        assert st["store_error"] is None and st["store_down_s"] is None
        after = client.recall(NS, agent, "what happened at the market", k=5)
        assert after.hits and not after.degraded
        print(
            f"disk full: {st['store_retries']} store retries, stored {stored_while_full} while "
            f"full; {client.count(NS)} in the store = {len(live)} live of {len(events)} published"
        )
    finally:
        milvus.stop()
