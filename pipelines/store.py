"""Store stage core: the vector store (Milvus; Lite by default) and its in-memory twin.

Writes are upserts keyed by ``namespace|memory_id`` (``auto_id=False``: memory ids are made by
clients and unique only within a namespace, so the key carries both), so a replay of the same events
never makes duplicates. Milvus Lite runs inside the worker process (one process per data file).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pipelines.crypto import Keyring, is_encrypted
from pipelines.errors import ConfigurationError, DecryptionError, StoreUnavailableError
from schemas import EmbeddedMemory, MemoryType

MAX_VARCHAR = 65535
# a row's fields but its vector (``StoredMemory.fields``)
RowFields = tuple[str, str, str, str, str, float, float, str, dict[str, Any]]


@dataclass(frozen=True)
class StoredMemory:
    """One row of the memory collection."""

    memory_id: str
    agent_id: str
    namespace: str
    type: str
    content: str
    importance: float
    event_ts: float
    event_time: str
    vector: np.ndarray = field(repr=False, compare=False)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> str:
        return primary_key(self.namespace, self.memory_id)

    @classmethod
    def from_embedded(cls, rec: EmbeddedMemory) -> StoredMemory:
        ev = rec.event
        extra = ev.model_dump(
            mode="json",
            include={"emotion", "position", "tags", "steps"},
            exclude_none=True,
        )
        extra["model"] = rec.model
        extra["ingest_ts"] = rec.ingest_ts
        return cls(
            memory_id=ev.memory_id,
            agent_id=ev.agent_id,
            namespace=ev.namespace,
            type=ev.type.value,
            content=ev.content,
            importance=ev.importance,
            event_ts=ev.event_ts,
            event_time=ev.event_time.isoformat(),
            vector=rec.vector(),
            extra=extra,
        )

    def fields(self) -> RowFields:
        """Everything but the vector, in the order ``rows_from_fields`` takes (and the L2
        header holds)."""
        return (
            self.memory_id,
            self.agent_id,
            self.namespace,
            self.type,
            self.content,
            self.importance,
            self.event_ts,
            self.event_time,
            self.extra,
        )

    def to_bytes(self) -> bytes:
        """Compact bytes for the L2 table: a length-prefixed JSON header, then the float32
        vector as it is (little-endian)."""
        head = json.dumps(self.fields(), separators=(",", ":")).encode()
        vec = np.ascontiguousarray(self.vector, dtype="<f4").tobytes()
        return _ROW_MAGIC + len(head).to_bytes(4, "little") + head + vec

    @classmethod
    def from_bytes(cls, data: bytes) -> StoredMemory:
        head, vec = _split_row(data)
        vector = np.frombuffer(vec, dtype="<f4").copy()
        return rows_from_fields([json.loads(head)], vector[None, :])[0]


_ROW_MAGIC = b"R1"


def _split_row(data: bytes) -> tuple[bytes, bytes]:
    """A ``StoredMemory.to_bytes`` value's JSON header and vector bytes."""
    if not data.startswith(_ROW_MAGIC):
        raise ValueError("not a stored-memory record")
    n = int.from_bytes(data[2:6], "little")
    return data[6 : 6 + n], data[6 + n :]


def rows_from_bytes(values: Sequence[bytes]) -> list[StoredMemory]:
    """Many ``StoredMemory.to_bytes`` values at once (an agent's L2 rows, a warm answer): one
    JSON parse of all their headers and one float32 matrix of all their vectors, each row's
    vector a view of it (a caller that keeps one row keeps the matrix). ~1.2x faster than
    ``from_bytes`` one by one (6.4 vs 7.9 ms per 1,000 rows, measured in process)."""
    if not values:
        return []
    heads, vecs = zip(*map(_split_row, values), strict=True)
    if len({len(v) for v in vecs}) != 1:  # vectors of different sizes: no one matrix
        return [StoredMemory.from_bytes(data) for data in values]
    fields = json.loads(b"[" + b",".join(heads) + b"]")
    mat = np.frombuffer(b"".join(vecs), dtype="<f4").reshape(len(values), -1).copy()
    return rows_from_fields(fields, mat)


def rows_from_fields(fields: Sequence[Sequence[Any]], vectors: np.ndarray) -> list[StoredMemory]:
    """Rows from their ``StoredMemory.fields`` and a matrix of their vectors (row i's vector
    is a view of ``vectors[i]``): how many rows travel at once (one array and plain tuples
    pickle ~10x faster than an object and an array per row)."""
    return [
        StoredMemory(mid, agent, ns, kind, content, float(imp), float(ts), when, vectors[i], extra)
        for i, (mid, agent, ns, kind, content, imp, ts, when, extra) in enumerate(fields)
    ]


@dataclass(frozen=True)
class Hit:
    memory: StoredMemory
    score: float


class VectorStore(Protocol):
    """Where memories live; the conformance tests run against every implementation."""

    dim: int

    def upsert(self, rows: Sequence[StoredMemory]) -> int: ...

    def search(
        self,
        vector: np.ndarray,
        *,
        namespace: str,
        agent_id: str,
        k: int,
        types: Sequence[MemoryType] | None = None,
    ) -> list[Hit]: ...

    def count(self, namespace: str | None = None) -> int: ...

    def get(self, namespace: str, memory_ids: Sequence[str]) -> list[StoredMemory]: ...

    def agent_rows(self, namespace: str, agent_id: str) -> list[StoredMemory]: ...

    def delete(self, namespace: str, memory_ids: Sequence[str]) -> int: ...

    def close(self) -> None: ...


def primary_key(namespace: str, memory_id: str) -> str:
    """``|`` cannot occur in identifiers, so the key is unambiguous."""
    return f"{namespace}|{memory_id}"


def dedupe_last(rows: Sequence[StoredMemory]) -> list[StoredMemory]:
    """Keep the last row per key (a batch may hold a replayed event twice).

    >>> v = np.zeros(2, dtype=np.float32)
    >>> a = StoredMemory("m", "a", "n", "episodic", "x", 0.5, 0.0, "", v)
    >>> b = StoredMemory("m", "a", "n", "episodic", "y", 0.5, 0.0, "", v)
    >>> [r.content for r in dedupe_last([a, b])]
    ['y']
    """
    return list({r.key: r for r in rows}.values())


def _quote(value: str) -> str:
    return json.dumps(value)  # a double-quoted, escaped string literal for Milvus filters


def _filter(namespace: str | None, agent_id: str | None, types: Sequence[MemoryType] | None) -> str:
    parts = []
    if namespace is not None:
        parts.append(f"namespace == {_quote(namespace)}")
    if agent_id is not None:
        parts.append(f"agent_id == {_quote(agent_id)}")
    if types:
        parts.append(f"type in [{', '.join(_quote(t.value) for t in types)}]")
    return " and ".join(parts)


_OUTPUT = [
    "memory_id",
    "agent_id",
    "namespace",
    "type",
    "content",
    "importance",
    "event_ts",
    "event_time",
    "extra",
]


class MilvusStore:
    """Milvus (Lite file or server URI) behind the ``VectorStore`` protocol."""

    def __init__(
        self,
        uri: str,
        collection: str = "argos_memories",
        dim: int = 384,
        keyring: Keyring | None = None,
    ) -> None:
        """``keyring``: content is encrypted (AES-GCM, bound to the row's key) before it
        reaches Milvus and decrypted on the way out; rows written without one still read."""
        from pymilvus import MilvusClient

        self.keyring = keyring
        self.uri = uri
        self.collection = collection
        self.dim = dim
        if uri.endswith(".db"):
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._client = MilvusClient(uri=uri)
        except Exception as exc:  # pymilvus raises many types; say which store failed
            raise StoreUnavailableError(f"cannot open Milvus at {uri}: {exc}") from exc
        self._write_lock = threading.Lock()  # Milvus Lite: one writer per collection
        if self._client.has_collection(collection):
            self._check_dim()
        else:
            self._create()
        self._client.load_collection(collection)  # a reopened collection starts released

    def _create(self) -> None:
        from pymilvus import DataType

        collection, dim = self.collection, self.dim
        schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pk", DataType.VARCHAR, max_length=260, is_primary=True)
        schema.add_field("memory_id", DataType.VARCHAR, max_length=128)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("namespace", DataType.VARCHAR, max_length=128)
        schema.add_field("agent_id", DataType.VARCHAR, max_length=128)
        schema.add_field("type", DataType.VARCHAR, max_length=16)
        schema.add_field("content", DataType.VARCHAR, max_length=MAX_VARCHAR)
        schema.add_field("importance", DataType.FLOAT)
        schema.add_field("event_ts", DataType.DOUBLE)
        schema.add_field("event_time", DataType.VARCHAR, max_length=64)
        schema.add_field("extra", DataType.JSON)
        index = self._client.prepare_index_params()
        index.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="COSINE")
        index.add_index(field_name="agent_id", index_type="INVERTED")
        index.add_index(field_name="namespace", index_type="INVERTED")
        self._client.create_collection(collection, schema=schema, index_params=index)

    def _check_dim(self) -> None:
        desc = self._client.describe_collection(self.collection)
        names = {f.get("name") for f in desc.get("fields", [])}
        if "pk" not in names:
            raise ConfigurationError(
                f"collection {self.collection!r} at {self.uri} has an older schema (no "
                "namespace-qualified 'pk' key); set another ARGOS_COLLECTION or remove it"
            )
        for f in desc.get("fields", []):
            if f.get("name") == "vector":
                have = int(f.get("params", {}).get("dim", self.dim))
                if have != self.dim:
                    raise ConfigurationError(
                        f"collection {self.collection!r} holds {have}-d vectors but the embedder "
                        f"makes {self.dim}-d ones; use another ARGOS_COLLECTION"
                    )

    def upsert(self, rows: Sequence[StoredMemory]) -> int:
        rows = dedupe_last(rows)
        if not rows:
            return 0
        data = [
            {
                "pk": r.key,
                "memory_id": r.memory_id,
                "vector": r.vector.tolist(),
                "namespace": r.namespace,
                "agent_id": r.agent_id,
                "type": r.type,
                "content": self._seal(r),
                "importance": r.importance,
                "event_ts": r.event_ts,
                "event_time": r.event_time,
                "extra": r.extra,
            }
            for r in rows
        ]
        try:
            with self._write_lock:
                self._client.upsert(self.collection, data)
        except Exception as exc:
            raise StoreUnavailableError(f"upsert of {len(rows)} rows failed: {exc}") from exc
        return len(rows)

    def search(
        self,
        vector: np.ndarray,
        *,
        namespace: str,
        agent_id: str,
        k: int,
        types: Sequence[MemoryType] | None = None,
    ) -> list[Hit]:
        try:
            res = self._read(
                lambda: self._client.search(
                    self.collection,
                    data=[np.asarray(vector, dtype=np.float32).tolist()],
                    filter=_filter(namespace, agent_id, types),
                    limit=k,
                    output_fields=_OUTPUT,
                    search_params={"metric_type": "COSINE"},
                )
            )
        except Exception as exc:
            raise StoreUnavailableError(f"search failed: {exc}") from exc
        hits = []
        for h in res[0] if res else []:
            ent = h.get("entity", h)
            hits.append(Hit(self._row(ent, None), float(h["distance"])))
        return hits

    def _read(self, call: Callable[[], Any]) -> Any:
        """A read; if the server forgot the loaded collection (a restarted Milvus answers
        "released"), load it again and retry once."""
        try:
            return call()
        except Exception as exc:
            if "released" not in str(exc) and "not loaded" not in str(exc):
                raise
            self._client.load_collection(self.collection)
            return call()

    def _seal(self, r: StoredMemory) -> str:
        if self.keyring is None:
            return r.content
        return self.keyring.encrypt_text(r.content, aad=r.key)

    def _row(self, ent: dict[str, Any], vector: Any) -> StoredMemory:
        content = ent["content"]
        if self.keyring is not None or is_encrypted(content):
            if self.keyring is None:
                raise DecryptionError(
                    f"{self.collection} holds encrypted content and no keys are configured "
                    "(set ARGOS_ENCRYPTION_KEYS or ARGOS_ENCRYPTION_KEYS_FILE)"
                )
            content = self.keyring.decrypt_text(
                content, aad=primary_key(ent["namespace"], ent["memory_id"])
            )
        return StoredMemory(
            memory_id=ent["memory_id"],
            agent_id=ent["agent_id"],
            namespace=ent["namespace"],
            type=ent["type"],
            content=content,
            importance=float(ent["importance"]),
            event_ts=float(ent["event_ts"]),
            event_time=ent["event_time"],
            vector=np.asarray(vector if vector is not None else [], dtype=np.float32),
            extra=dict(ent.get("extra") or {}),
        )

    def count(self, namespace: str | None = None) -> int:
        try:
            res = self._read(
                lambda: self._client.query(
                    self.collection,
                    filter=_filter(namespace, None, None),
                    output_fields=["count(*)"],
                )
            )
        except Exception as exc:
            raise StoreUnavailableError(f"count failed: {exc}") from exc
        return int(res[0]["count(*)"]) if res else 0

    def get(self, namespace: str, memory_ids: Sequence[str]) -> list[StoredMemory]:
        if not memory_ids:
            return []
        try:
            res = self._read(
                lambda: self._client.get(
                    self.collection,
                    ids=[primary_key(namespace, m) for m in memory_ids],
                    output_fields=[*_OUTPUT, "vector"],
                )
            )
        except Exception as exc:
            raise StoreUnavailableError(f"get failed: {exc}") from exc
        return [self._row(r, r.get("vector")) for r in res]

    def agent_rows(self, namespace: str, agent_id: str) -> list[StoredMemory]:
        """Every row (with its vector) of one agent: what warms the hot recall index."""
        rows: list[StoredMemory] = []
        try:
            it = self._read(
                lambda: self._client.query_iterator(
                    self.collection,
                    batch_size=1000,
                    filter=_filter(namespace, agent_id, None),
                    output_fields=[*_OUTPUT, "vector"],
                )
            )
            while batch := it.next():
                rows += [self._row(r, r.get("vector")) for r in batch]
            it.close()
        except Exception as exc:
            raise StoreUnavailableError(f"reading {agent_id}'s rows failed: {exc}") from exc
        return rows

    def reencrypt(self, batch: int = 1000) -> tuple[int, int]:
        """Rewrite every row whose content is plaintext or under a key other than the current
        one (after a rotation: add the new key first, make it current, run this, then drop the
        old key). Returns (rows read, rows rewritten)."""
        if self.keyring is None:
            raise ConfigurationError("re-encryption needs ARGOS_ENCRYPTION_KEYS (none are set)")
        stale: dict[str, list[str]] = {}
        seen = 0
        try:
            it = self._read(
                lambda: self._client.query_iterator(
                    self.collection,
                    batch_size=batch,
                    filter="",
                    output_fields=["memory_id", "namespace", "content"],
                )
            )
            while page := it.next():
                seen += len(page)
                for r in page:
                    if self.keyring.needs_rotation(r["content"]):
                        stale.setdefault(r["namespace"], []).append(r["memory_id"])
            it.close()
        except Exception as exc:
            raise StoreUnavailableError(f"reading {self.collection} failed: {exc}") from exc
        done = 0
        for ns, mids in sorted(stale.items()):
            for i in range(0, len(mids), batch):
                done += self.upsert(self.get(ns, mids[i : i + batch]))
        return seen, done

    def delete(self, namespace: str, memory_ids: Sequence[str]) -> int:
        """Remove memories (decayed ones leave the hot collection); returns how many were asked."""
        if not memory_ids:
            return 0
        try:
            with self._write_lock:
                self._client.delete(
                    self.collection, ids=[primary_key(namespace, m) for m in memory_ids]
                )
        except Exception as exc:
            raise StoreUnavailableError(f"delete of {len(memory_ids)} rows failed: {exc}") from exc
        return len(memory_ids)

    def close(self) -> None:
        self._client.close()


class InMemoryStore:
    """Numpy twin of ``MilvusStore`` for unit tests of pure logic (same conformance suite)."""

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self._rows: dict[str, StoredMemory] = {}

    def upsert(self, rows: Sequence[StoredMemory]) -> int:
        rows = dedupe_last(rows)
        for r in rows:
            if r.vector.shape != (self.dim,):
                raise ValueError(f"vector shape {r.vector.shape}, store dim {self.dim}")
            self._rows[r.key] = r
        return len(rows)

    def search(
        self,
        vector: np.ndarray,
        *,
        namespace: str,
        agent_id: str,
        k: int,
        types: Sequence[MemoryType] | None = None,
    ) -> list[Hit]:
        wanted = {t.value for t in types} if types else None
        rows = [
            r
            for r in self._rows.values()
            if r.namespace == namespace
            and r.agent_id == agent_id
            and (wanted is None or r.type in wanted)
        ]
        if not rows:
            return []
        mat = np.stack([r.vector for r in rows])
        q = np.asarray(vector, dtype=np.float32)
        scores = mat @ q / np.maximum(np.linalg.norm(mat, axis=1) * np.linalg.norm(q), 1e-12)
        top = np.argsort(-scores, kind="stable")[:k]
        return [Hit(rows[i], float(scores[i])) for i in top]

    def count(self, namespace: str | None = None) -> int:
        return sum(1 for r in self._rows.values() if namespace is None or r.namespace == namespace)

    def get(self, namespace: str, memory_ids: Sequence[str]) -> list[StoredMemory]:
        keys = [primary_key(namespace, m) for m in memory_ids]
        return [self._rows[k] for k in keys if k in self._rows]

    def agent_rows(self, namespace: str, agent_id: str) -> list[StoredMemory]:
        return [
            r for r in self._rows.values() if (r.namespace, r.agent_id) == (namespace, agent_id)
        ]

    def delete(self, namespace: str, memory_ids: Sequence[str]) -> int:
        for m in memory_ids:
            self._rows.pop(primary_key(namespace, m), None)
        return len(memory_ids)

    def close(self) -> None:
        self._rows.clear()
