"""The security commands: new keys and tokens that the worker accepts, and re-encryption."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipelines.access import AccessPolicy
from pipelines.cli import app
from pipelines.crypto import Keyring
from pipelines.store import MilvusStore, StoredMemory

runner = CliRunner()


def test_keys_new_prints_an_entry_the_keyring_accepts() -> None:
    res = runner.invoke(app, ["keys", "new", "2026-11"])
    assert res.exit_code == 0, res.output
    ring = Keyring.parse(res.output.strip())
    assert ring.current_id == "2026-11"
    assert ring.decrypt_text(ring.encrypt_text("hello")) == "hello"


def test_token_prints_an_entry_the_policy_accepts() -> None:
    res = runner.invoke(app, ["token", "sim-writer", "--namespace", "sim", "--publish"])
    assert res.exit_code == 0, res.output
    entry = json.loads(res.output)
    policy = AccessPolicy.parse(json.dumps([entry]))
    who = policy.authenticate(f"Bearer {entry['token']}")
    assert who.subject == "sim-writer" and who.publish and who.in_namespace("sim")


def test_reencrypt_moves_every_row_to_the_current_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = Keyring.generate_key(), Keyring.generate_key()
    store = MilvusStore(
        str(tmp_path / "milvus.db"), "argos_memories", 384, Keyring.parse(f"a:{old}")
    )
    rows = [
        StoredMemory(
            memory_id=f"m{i}",
            agent_id="ann",
            namespace="w",
            type="episodic",
            content=f"memory {i}",
            importance=0.5,
            event_ts=float(i),
            event_time="2026-01-01T00:00:00+00:00",
            vector=np.eye(384, dtype=np.float32)[i],
        )
        for i in range(4)
    ]
    store.upsert(rows)
    store.close()
    monkeypatch.setenv("ARGOS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ARGOS_ENCRYPTION_KEYS", f"a:{old},b:{new}")
    monkeypatch.setenv("ARGOS_ENCRYPTION_KEY_ID", "b")
    res = runner.invoke(app, ["reencrypt"])
    assert res.exit_code == 0, res.output
    assert "argos_memories: 4 rows read, 4 rewritten under key b" in res.output
    after = MilvusStore(
        str(tmp_path / "milvus.db"), "argos_memories", 384, Keyring.parse(f"b:{new}")
    )
    try:
        assert sorted(r.content for r in after.agent_rows("w", "ann")) == [r.content for r in rows]
    finally:
        after.close()
