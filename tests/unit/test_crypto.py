from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.crypto import Keyring, is_encrypted
from pipelines.errors import ConfigurationError, DecryptionError
from pipelines.settings import Settings

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
B64_A = base64.b64encode(KEY_A).decode()
B64_B = base64.b64encode(KEY_B).decode()

TEXTS = ["", "hello", "Grüße, 世界 🧠\n\ttabs", "x" * 8192, "enc1 without the colon"]


@pytest.fixture(autouse=True)
def _no_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ARGOS_ENCRYPTION_KEYS", "ARGOS_ENCRYPTION_KEYS_FILE", "ARGOS_ENCRYPTION_KEY_ID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def ring() -> Keyring:
    return Keyring({"a": KEY_A})


@pytest.mark.parametrize("text", TEXTS)
def test_text_round_trip(ring: Keyring, text: str) -> None:
    token = ring.encrypt_text(text, aad="ns|m1")
    assert token.startswith("enc1:a:")
    assert is_encrypted(token)
    assert ring.decrypt_text(token, aad="ns|m1") == text


@pytest.mark.parametrize("data", [b"", b"\x00\xff" * 10, "Grüße".encode(), os.urandom(8192)])
def test_bytes_round_trip(ring: Keyring, data: bytes) -> None:
    blob = ring.encrypt_bytes(data, aad=b"ns|m1")
    assert blob.startswith(b"ENC1\x01a")
    assert len(blob) == 4 + 1 + 1 + 12 + len(data) + 16
    assert is_encrypted(blob)
    assert ring.decrypt_bytes(blob, aad=b"ns|m1") == data


def test_ciphertext_is_fresh_each_call_and_hides_the_plaintext(ring: Keyring) -> None:
    text = "the secret memory of agent 7"
    tokens = {ring.encrypt_text(text) for _ in range(20)}
    assert len(tokens) == 20
    for token in tokens:
        assert text not in token
        assert "secret" not in token
        body = base64.urlsafe_b64decode(token.split(":", 2)[2])
        assert b"secret" not in body
    blobs = {ring.encrypt_bytes(text.encode()) for _ in range(20)}
    assert len(blobs) == 20
    assert all(b"secret" not in blob for blob in blobs)


def test_wrong_aad_does_not_open(ring: Keyring) -> None:
    token = ring.encrypt_text("moved row", aad="ns|m1")
    with pytest.raises(DecryptionError, match="'a'"):
        ring.decrypt_text(token, aad="ns|m2")
    with pytest.raises(DecryptionError):
        ring.decrypt_text(token)
    blob = ring.encrypt_bytes(b"moved row", aad=b"ns|m1")
    with pytest.raises(DecryptionError):
        ring.decrypt_bytes(blob, aad=b"other|m1")


def test_tampered_text_does_not_open(ring: Keyring) -> None:
    token = ring.encrypt_text("do not touch")
    head, body = token.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(body))
    for i in (0, 12, len(raw) - 1):  # nonce, ciphertext, tag
        flipped = bytearray(raw)
        flipped[i] ^= 0x01
        bad = f"{head}:{base64.urlsafe_b64encode(bytes(flipped)).decode()}"
        with pytest.raises(DecryptionError):
            ring.decrypt_text(bad)
    with pytest.raises(DecryptionError):
        ring.decrypt_text(token[:-8])  # truncated
    with pytest.raises(DecryptionError):
        ring.decrypt_text(head + ":!!not base64!!")


def test_tampered_bytes_do_not_open(ring: Keyring) -> None:
    blob = ring.encrypt_bytes(b"do not touch")
    for i in range(4, len(blob)):  # every byte after the marker
        flipped = bytearray(blob)
        flipped[i] ^= 0x80
        with pytest.raises(DecryptionError):
            ring.decrypt_bytes(bytes(flipped))
    with pytest.raises(DecryptionError):
        ring.decrypt_bytes(blob[:20])
    with pytest.raises(DecryptionError):
        ring.decrypt_bytes(b"ENC1")


def test_relabelled_key_id_does_not_open() -> None:
    # Same key material under two ids: the key id is bound into the associated data.
    ring = Keyring({"a": KEY_A, "b": KEY_A})
    token = ring.encrypt_text("relabel me")
    with pytest.raises(DecryptionError):
        ring.decrypt_text(token.replace("enc1:a:", "enc1:b:", 1))


def test_unknown_key_id_names_the_kid_not_the_key() -> None:
    token = Keyring({"old": KEY_A}).encrypt_text("hi")
    blob = Keyring({"old": KEY_A}).encrypt_bytes(b"hi")
    ring = Keyring({"new": KEY_B})
    with pytest.raises(DecryptionError, match="'old'") as info:
        ring.decrypt_text(token)
    assert B64_A not in str(info.value) and B64_B not in str(info.value)
    with pytest.raises(DecryptionError, match="'old'"):
        ring.decrypt_bytes(blob)


def test_wrong_key_under_same_kid_does_not_open() -> None:
    token = Keyring({"a": KEY_A}).encrypt_text("hi")
    with pytest.raises(DecryptionError, match="'a'"):
        Keyring({"a": KEY_B}).decrypt_text(token)


def test_rotation_keeps_old_data_readable() -> None:
    old = Keyring({"a": KEY_A})
    token = old.encrypt_text("remember this", aad="ns|m1")
    blob = old.encrypt_bytes(b"table value", aad=b"k")
    ring = Keyring({"a": KEY_A, "b": KEY_B}, current_id="b")
    assert ring.current_id == "b"
    assert ring.decrypt_text(token, aad="ns|m1") == "remember this"
    assert ring.needs_rotation(token)
    assert Keyring.key_id_of(token) == "a"

    rotated = ring.rotate_text(token, aad="ns|m1")
    assert rotated.startswith("enc1:b:")
    assert Keyring.key_id_of(rotated) == "b"
    assert not ring.needs_rotation(rotated)
    assert ring.decrypt_text(rotated, aad="ns|m1") == "remember this"
    assert ring.rotate_text(rotated, aad="ns|m1") is rotated
    # once rotated, the old key can go
    assert Keyring({"b": KEY_B}).decrypt_text(rotated, aad="ns|m1") == "remember this"

    assert ring.needs_rotation(blob)
    rotated_blob = ring.rotate_bytes(blob, aad=b"k")
    assert Keyring.key_id_of(rotated_blob) == "b"
    assert ring.decrypt_bytes(rotated_blob, aad=b"k") == b"table value"
    assert ring.rotate_bytes(rotated_blob, aad=b"k") is rotated_blob


def test_rotation_of_wrong_aad_fails_instead_of_rewrapping() -> None:
    token = Keyring({"a": KEY_A}).encrypt_text("x", aad="ns|m1")
    ring = Keyring({"a": KEY_A, "b": KEY_B}, current_id="b")
    with pytest.raises(DecryptionError):
        ring.rotate_text(token, aad="ns|m2")


def test_plaintext_passes_through(ring: Keyring) -> None:
    for text in ["written before encryption", "", "ENC1 is only a bytes marker"]:
        assert not is_encrypted(text)
        assert ring.decrypt_text(text) == text
        assert Keyring.key_id_of(text) is None
        assert ring.needs_rotation(text)
    for data in [b"{}", b"", b"enc1:looks like text"]:
        assert not is_encrypted(data)
        assert ring.decrypt_bytes(data) == data
        assert Keyring.key_id_of(data) is None
    rotated = ring.rotate_text("legacy", aad="ns|m1")
    assert rotated.startswith("enc1:a:")
    assert ring.decrypt_text(rotated, aad="ns|m1") == "legacy"


def test_plaintext_that_looks_encrypted_is_refused(ring: Keyring) -> None:
    with pytest.raises(DecryptionError):
        ring.decrypt_text("enc1:")
    with pytest.raises(DecryptionError):
        ring.decrypt_text("enc1:no colon after kid")


def test_parse_accepts_whitespace_newlines_and_urlsafe() -> None:
    urlsafe_b = base64.urlsafe_b64encode(KEY_B).decode().rstrip("=")
    ring = Keyring.parse(f"  a : {B64_A} ,\n\n b:{urlsafe_b}\r\n")
    assert ring.key_ids == ["a", "b"]
    assert ring.current_id == "a"
    assert Keyring({"b": KEY_B}).decrypt_text(Keyring.parse(f"b:{urlsafe_b}").encrypt_text("k"))
    assert Keyring.parse(f"a:{B64_A},b:{B64_B}", current_id="b").current_id == "b"
    assert B64_A not in repr(ring) and "a" in repr(ring)


@pytest.mark.parametrize(
    ("spec", "current", "expected"),
    [
        (f"a:{B64_A[:-4]}!!!!", None, "not valid base64"),
        (f"a:{base64.b64encode(KEY_A[:16]).decode()}", None, "must be 32 bytes"),
        (f"a:{B64_A},a:{B64_B}", None, "listed twice"),
        ("", None, "empty"),
        (" ,\n, ", None, "empty"),
        (f"a:{B64_A}", "b", "not among"),
        (B64_A, None, "not 'kid:base64key'"),
        (f"{B64_A}:a", None, "key id must match"),
        (f"a.b:{B64_A}", None, "key id must match"),
        (f"a:{B64_A},b:{B64_B}", B64_B, "not among"),
    ],
)
def test_parse_errors_are_clear_and_keep_keys_secret(
    spec: str, current: str | None, expected: str
) -> None:
    with pytest.raises(ConfigurationError, match=expected) as info:
        Keyring.parse(spec, current_id=current)
    message = str(info.value)
    for secret in (B64_A, B64_B, B64_A[:20], B64_B[:20], B64_A[:-4]):
        assert secret not in message


@pytest.mark.parametrize(
    ("keys", "current", "expected"),
    [
        ({}, None, "no encryption keys"),
        ({"a": b"short"}, None, "must be 32 bytes"),
        ({"a": KEY_A}, "z", "not among"),
        ({"bad kid!": KEY_A}, None, "key id must match"),
        ({"k" * 33: KEY_A}, None, "key id must match"),
    ],
)
def test_keyring_constructor_errors(
    keys: dict[str, bytes], current: str | None, expected: str
) -> None:
    with pytest.raises(ConfigurationError, match=expected):
        Keyring(keys, current)


def test_generate_key_is_a_fresh_usable_32_byte_key() -> None:
    first, second = Keyring.generate_key(), Keyring.generate_key()
    assert first != second
    assert len(base64.b64decode(first, validate=True)) == 32
    ring = Keyring.parse(f"k1:{first}")
    assert ring.decrypt_text(ring.encrypt_text("ok")) == "ok"


def test_from_settings_inline() -> None:
    settings = Settings(encryption_keys=f"a:{B64_A},b:{B64_B}")
    ring = Keyring.from_settings(settings)
    assert ring is not None
    assert ring.key_ids == ["a", "b"] and ring.current_id == "a"
    chosen = Keyring.from_settings(
        Settings(encryption_keys=f"a:{B64_A},b:{B64_B}", encryption_key_id="b")
    )
    assert chosen is not None and chosen.current_id == "b"
    assert ring.decrypt_text(chosen.encrypt_text("shared")) == "shared"


def test_from_settings_file(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"old:{B64_A}\nnew:{B64_B}\n", encoding="utf-8")
    ring = Keyring.from_settings(Settings(encryption_keys_file=path, encryption_key_id="new"))
    assert ring is not None
    assert ring.key_ids == ["old", "new"] and ring.current_id == "new"
    assert Keyring.key_id_of(ring.encrypt_text("x")) == "new"


def test_from_settings_unset_is_none() -> None:
    settings = Settings(encryption_keys=None, encryption_keys_file=None, encryption_key_id=None)
    assert Keyring.from_settings(settings) is None


def test_from_settings_misconfigurations(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        Keyring.from_settings(
            Settings(encryption_keys=f"a:{B64_A}", encryption_keys_file=tmp_path / "k")
        )
    with pytest.raises(ConfigurationError, match="no keys"):
        Keyring.from_settings(Settings(encryption_key_id="a"))
    with pytest.raises(ConfigurationError, match="cannot read") as info:
        Keyring.from_settings(Settings(encryption_keys_file=tmp_path / "missing"))
    assert "missing" in str(info.value)
    with pytest.raises(ConfigurationError, match="not among"):
        Keyring.from_settings(Settings(encryption_keys=f"a:{B64_A}", encryption_key_id="b"))


RING_AB = Keyring({"a": KEY_A, "b": KEY_B}, current_id="b")


@given(st.text(), st.text())
def test_text_round_trip_property(text: str, aad: str) -> None:
    token = RING_AB.encrypt_text(text, aad)
    assert Keyring.key_id_of(token) == "b"
    assert RING_AB.decrypt_text(token, aad) == text


@given(st.binary(), st.binary())
def test_bytes_round_trip_property(data: bytes, aad: bytes) -> None:
    blob = RING_AB.encrypt_bytes(data, aad)
    assert RING_AB.decrypt_bytes(blob, aad) == data


@given(st.text(), st.text(), st.text())
def test_other_aad_never_opens_property(text: str, aad: str, other: str) -> None:
    token = RING_AB.encrypt_text(text, aad)
    if other != aad:
        with pytest.raises(DecryptionError):
            RING_AB.decrypt_text(token, other)
    else:
        assert RING_AB.decrypt_text(token, other) == text
