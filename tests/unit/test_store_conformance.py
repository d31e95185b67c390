"""One conformance suite for every VectorStore: the numpy twin, embedded Milvus Lite, and a
Milvus gRPC server (``milvus-lite server`` in a child process, reached through ``MILVUS_URI``
the way a real Milvus deployment is)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipelines.processes import free_port
from pipelines.store import InMemoryStore, MilvusStore, StoredMemory, VectorStore
from schemas import MemoryType

DIM = 8


def _row(mid: str, agent: str, ns: str, vec: list[float], kind: str = "episodic") -> StoredMemory:
    v = np.asarray(vec + [0.0] * (DIM - len(vec)), dtype=np.float32)
    return StoredMemory(
        mid,
        agent,
        ns,
        kind,
        f"text of {mid}",
        0.5,
        1.0,
        "2026-01-01T00:00:00",
        v / np.linalg.norm(v),
        {"tags": ["x"]},
    )


@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "milvus_lite",
            "server",
            "--data-dir",
            str(tmp_path_factory.mktemp("milvus")),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                MilvusStore(uri, "probe", dim=DIM).close()
                break
            except Exception:
                assert proc.poll() is None, "milvus-lite server exited"
                assert time.monotonic() < deadline, "milvus-lite server did not answer in 60 s"
                time.sleep(0.3)
        yield uri
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.fixture(params=["memory", "milvus-lite", "milvus-server"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, milvus_server: str
) -> Iterator[VectorStore]:
    s: VectorStore
    if request.param == "memory":
        s = InMemoryStore(dim=DIM)
    elif request.param == "milvus-lite":
        s = MilvusStore(str(tmp_path / "m.db"), "conformance", dim=DIM)
    else:
        s = MilvusStore(milvus_server, f"c_{tmp_path.name.replace('-', '_')}", dim=DIM)
    yield s
    s.close()


def test_upsert_is_idempotent(store: VectorStore) -> None:
    rows = [_row("a", "ag", "ns", [1, 0]), _row("b", "ag", "ns", [0, 1])]
    store.upsert(rows)
    store.upsert(rows)
    store.upsert([_row("a", "ag", "ns", [1, 1])])
    assert store.count() == 2 and store.count("ns") == 2 and store.count("other") == 0


def test_batch_with_duplicate_ids_keeps_last(store: VectorStore) -> None:
    store.upsert([_row("a", "ag", "ns", [1, 0]), _row("a", "ag", "ns", [0, 1])])
    assert store.count() == 1
    hit = store.search(np.eye(DIM, dtype=np.float32)[1], namespace="ns", agent_id="ag", k=1)[0]
    assert hit.memory.memory_id == "a" and hit.score == pytest.approx(1.0, abs=1e-5)


def test_search_filters_namespace_agent_and_type(store: VectorStore) -> None:
    store.upsert(
        [
            _row("n1-a1", "a1", "n1", [1, 0]),
            _row("n1-a1-s", "a1", "n1", [1, 0.1], "semantic"),
            _row("n1-a2", "a2", "n1", [1, 0]),
            _row("n2-a1", "a1", "n2", [1, 0]),
        ]
    )
    q = np.eye(DIM, dtype=np.float32)[0]
    hits = store.search(q, namespace="n1", agent_id="a1", k=10)
    assert [h.memory.memory_id for h in hits] == ["n1-a1", "n1-a1-s"]
    assert hits[0].score >= hits[1].score
    only = store.search(q, namespace="n1", agent_id="a1", k=10, types=[MemoryType.semantic])
    assert [h.memory.memory_id for h in only] == ["n1-a1-s"]
    assert store.search(q, namespace="n3", agent_id="a1", k=10) == []


def test_same_memory_id_in_two_namespaces_are_two_memories(store: VectorStore) -> None:
    store.upsert([_row("same", "a", "n1", [1, 0]), _row("same", "a", "n2", [0, 1])])
    assert store.count("n1") == 1 and store.count("n2") == 1
    q = np.eye(DIM, dtype=np.float32)[0]
    [hit] = store.search(q, namespace="n1", agent_id="a", k=5)
    assert hit.memory.namespace == "n1" and hit.score == pytest.approx(1.0, abs=1e-5)


def test_delete_removes_only_the_named_memories(store: VectorStore) -> None:
    store.upsert([_row(m, "a", ns, [1, i]) for i, m in enumerate("xyz") for ns in ("n1", "n2")])
    store.delete("n1", ["x", "y", "never-stored"])
    assert store.count("n1") == 1 and store.count("n2") == 3
    q = np.eye(DIM, dtype=np.float32)[0]
    assert [h.memory.memory_id for h in store.search(q, namespace="n1", agent_id="a", k=5)] == ["z"]


def test_filter_values_are_escaped(store: VectorStore) -> None:
    store.upsert([_row("q", "a", "ns", [1])])
    q = np.eye(DIM, dtype=np.float32)[0]
    assert store.search(q, namespace='ns" or namespace != "', agent_id="a", k=5) == []


def test_get_returns_rows_with_vectors(store: VectorStore) -> None:
    store.upsert([_row("g", "a", "ns", [0, 0, 1])])
    [row] = store.get("ns", ["g", "missing"])
    assert store.get("other-ns", ["g"]) == []
    assert row.content == "text of g" and row.extra["tags"] == ["x"]
    assert np.allclose(row.vector, np.eye(DIM)[2], atol=1e-6)


def test_agent_rows_returns_one_agents_rows_with_vectors(store: VectorStore) -> None:
    store.upsert([_row(f"r{i}", "a", "ns", [1, 0, i]) for i in range(5)])
    store.upsert([_row("x", "b", "ns", [0, 1, 0]), _row("r0", "a", "other", [0, 0, 1])])
    rows = store.agent_rows("ns", "a")
    assert sorted(r.memory_id for r in rows) == [f"r{i}" for i in range(5)]
    assert all(r.vector.shape == (DIM,) for r in rows)
    assert store.agent_rows("ns", "nobody") == []


def test_collection_of_an_older_schema_is_refused_with_advice(tmp_path: Path) -> None:
    from pymilvus import DataType, MilvusClient

    from pipelines.errors import ConfigurationError

    uri = str(tmp_path / "old.db")
    client = MilvusClient(uri=uri)
    schema = client.create_schema(auto_id=False)
    schema.add_field("memory_id", DataType.VARCHAR, max_length=128, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    client.create_collection("old", schema=schema)
    client.close()
    with pytest.raises(ConfigurationError, match="older schema"):
        MilvusStore(uri, "old", dim=DIM)
