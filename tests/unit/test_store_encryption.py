"""Encryption at rest in Milvus Lite: ciphertext in the collection, plaintext to the caller, and
key rotation with re-encryption that keeps every memory readable."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from pipelines.crypto import Keyring, is_encrypted
from pipelines.errors import DecryptionError
from pipelines.store import MilvusStore, StoredMemory

DIM = 8
KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(32, 64))).decode()


def _rows(n: int) -> list[StoredMemory]:
    rng = np.random.default_rng(0)
    return [
        StoredMemory(
            memory_id=f"m{i}",
            agent_id="ann",
            namespace="w",
            type="episodic",
            content=f"secret number {i}: the wolf is behind the mill",
            importance=0.5,
            event_ts=float(i),
            event_time="2026-01-01T00:00:00+00:00",
            vector=rng.normal(size=DIM).astype(np.float32),
        )
        for i in range(n)
    ]


def _raw_contents(store: MilvusStore) -> list[str]:
    res = store._client.query(store.collection, filter="", output_fields=["content"], limit=1000)
    return [r["content"] for r in res]


def test_content_is_ciphertext_in_milvus_and_plaintext_to_the_caller(tmp_path: Path) -> None:
    rows = _rows(5)
    s = MilvusStore(str(tmp_path / "m.db"), "enc", DIM, keyring=Keyring.parse(f"a:{KEY_A}"))
    try:
        s.upsert(rows)
        raw = _raw_contents(s)
        assert len(raw) == 5 and all(is_encrypted(c) and "wolf" not in c for c in raw)
        got = {r.memory_id: r.content for r in s.get("w", [r.memory_id for r in rows])}
        assert got == {r.memory_id: r.content for r in rows}
        hits = s.search(rows[0].vector, namespace="w", agent_id="ann", k=1)
        assert hits[0].memory.content == rows[0].content
    finally:
        s.close()


def test_rotation_then_reencryption_keeps_every_memory_readable(tmp_path: Path) -> None:
    uri, rows = str(tmp_path / "m.db"), _rows(7)
    old = MilvusStore(uri, "enc", DIM, keyring=Keyring.parse(f"a:{KEY_A}"))
    old.upsert(rows)
    old.close()
    # the new key is added and made current: old rows still read, new ones use b
    both = MilvusStore(uri, "enc", DIM, keyring=Keyring.parse(f"a:{KEY_A},b:{KEY_B}", "b"))
    assert {r.content for r in both.get("w", ["m0", "m6"])} == {rows[0].content, rows[6].content}
    assert {Keyring.key_id_of(c) for c in _raw_contents(both)} == {"a"}
    assert both.reencrypt(batch=3) == (7, 7)
    assert {Keyring.key_id_of(c) for c in _raw_contents(both)} == {"b"}
    assert both.reencrypt() == (7, 0)  # nothing left to rewrite
    both.close()
    # the old key is dropped: everything still reads
    new = MilvusStore(uri, "enc", DIM, keyring=Keyring.parse(f"b:{KEY_B}"))
    try:
        assert sorted(r.content for r in new.agent_rows("w", "ann")) == sorted(
            r.content for r in rows
        )
    finally:
        new.close()


def test_encrypted_rows_without_keys_fail_loudly(tmp_path: Path) -> None:
    uri = str(tmp_path / "m.db")
    s = MilvusStore(uri, "enc", DIM, keyring=Keyring.parse(f"a:{KEY_A}"))
    s.upsert(_rows(1))
    s.close()
    bare = MilvusStore(uri, "enc", DIM)
    try:
        with pytest.raises(DecryptionError, match="no keys are configured"):
            bare.get("w", ["m0"])
    finally:
        bare.close()
