"""Encryption at rest for memory content: AES-256-GCM under named keys.

A :class:`Keyring` holds 32-byte keys by key id (``kid``, ``^[A-Za-z0-9_-]{1,32}$``). One of
them, ``current_id``, encrypts new data; all of them decrypt. Every ciphertext names its key, so
keys rotate without downtime: add the new key, make it current, re-encrypt old rows at leisure
(:meth:`Keyring.needs_rotation`, :meth:`Keyring.rotate_text`), then drop the old key.

Configuration (``ARGOS_ENCRYPTION_KEYS`` or the file named by ``ARGOS_ENCRYPTION_KEYS_FILE``)::

    kid:base64-of-32-bytes,kid2:base64-of-32-bytes

Entries are separated by commas or newlines; other whitespace is ignored. Standard or URL-safe
base64 is accepted, padding optional. ``Keyring.generate_key()`` makes a key.

Text format (Milvus fields, JSON)::

    enc1:<kid>:<urlsafe-base64(nonce[12] + ciphertext + tag[16])>

Binary format (table values)::

    b"ENC1" + len(kid) [1 byte] + kid [ASCII] + nonce[12] + ciphertext + tag[16]

Each encryption draws a fresh random 96-bit nonce. The GCM associated data is the envelope's
header (``enc1:<kid>:`` or ``ENC1 + len + kid``) followed by the caller's ``aad``, e.g.
``"namespace|memory_id"``, so a ciphertext copied to another row, or relabelled with another key
id, does not open. Values without the marker (``enc1:`` / ``ENC1``) are plaintext written before
encryption was enabled and pass through decryption unchanged; a plaintext that itself begins with
the marker cannot be told apart and is refused as ciphertext.

Error messages name key ids, never key material.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pipelines.errors import ConfigurationError, DecryptionError

if TYPE_CHECKING:
    from pipelines.settings import Settings

TEXT_PREFIX = "enc1:"
BYTES_PREFIX = b"ENC1"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
KID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def is_encrypted(value: str | bytes) -> bool:
    """Whether ``value`` carries the text (``enc1:``) or binary (``ENC1``) envelope marker."""
    if isinstance(value, str):
        return value.startswith(TEXT_PREFIX)
    return bytes(value[: len(BYTES_PREFIX)]) == BYTES_PREFIX


def _valid_kid(kid: object) -> bool:
    return isinstance(kid, str) and KID_PATTERN.fullmatch(kid) is not None


def _text_header(kid: str) -> str:
    return f"{TEXT_PREFIX}{kid}:"


def _bytes_header(kid: str) -> bytes:
    raw = kid.encode("ascii")
    return BYTES_PREFIX + bytes([len(raw)]) + raw


def _split_text(token: str) -> tuple[str, str]:
    """``(kid, base64 body)`` of a text envelope; DecryptionError when malformed."""
    kid, sep, body = token[len(TEXT_PREFIX) :].partition(":")
    if not sep or not _valid_kid(kid):
        raise DecryptionError("malformed encrypted text: no valid key id after 'enc1:'")
    return kid, body


def _split_bytes(data: bytes) -> tuple[str, bytes, bytes]:
    """``(kid, header, nonce + ciphertext)`` of a binary envelope; DecryptionError if malformed."""
    start = len(BYTES_PREFIX) + 1
    if len(data) < start:
        raise DecryptionError("malformed encrypted value: truncated header")
    end = start + data[start - 1]
    try:
        kid = data[start:end].decode("ascii")
    except UnicodeDecodeError:
        kid = ""
    if len(data) < end or not _valid_kid(kid):
        raise DecryptionError("malformed encrypted value: no valid key id after 'ENC1'")
    return kid, data[:end], data[end:]


def _decode_key(kid: str, text: str) -> bytes:
    """The key bytes of one configured entry (standard or URL-safe base64, padding optional)."""
    text = text.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(
            f"encryption key {kid!r} is not valid base64; make one with "
            "`python -c 'from pipelines.crypto import Keyring; print(Keyring.generate_key())'`"
        ) from None


class Keyring:
    """AES-256-GCM keys by key id; ``current_id`` encrypts, every key decrypts."""

    current_id: str

    def __init__(self, keys: dict[str, bytes], current_id: str | None = None) -> None:
        """Keys by id (32 bytes each); ``current_id`` defaults to the first key.

        Raises ConfigurationError for no keys, a malformed key id, a key that is not 32 bytes,
        or a ``current_id`` that is not among the keys.
        """
        if not keys:
            raise ConfigurationError("no encryption keys given: expected 'kid:base64key,...'")
        self._aeads: dict[str, AESGCM] = {}
        for kid, key in keys.items():
            if not _valid_kid(kid):
                raise ConfigurationError(
                    f"encryption key id must match {KID_PATTERN.pattern} (letters, digits, _ or -, "
                    "at most 32)"
                )
            if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
                size = len(key) if isinstance(key, bytes | bytearray) else "not bytes"
                raise ConfigurationError(
                    f"encryption key {kid!r} must be {KEY_BYTES} bytes (AES-256), got {size}"
                )
            self._aeads[kid] = AESGCM(bytes(key))
        current = next(iter(keys)) if current_id is None else current_id
        if current not in self._aeads:
            shown = repr(current) if _valid_kid(current) else "(not a valid key id)"
            raise ConfigurationError(
                f"current encryption key id {shown} is not among the configured keys: "
                f"{', '.join(self._aeads)}"
            )
        self.current_id = current

    def __repr__(self) -> str:
        return f"Keyring(current_id={self.current_id!r}, key_ids={list(self._aeads)!r})"

    @property
    def key_ids(self) -> list[str]:
        """The configured key ids, in the order given."""
        return list(self._aeads)

    @classmethod
    def parse(cls, spec: str, current_id: str | None = None) -> Keyring:
        """A keyring from ``"kid:base64key,kid2:base64key"`` (commas or newlines between entries).

        Raises ConfigurationError for an empty spec, an entry without ``:``, a bad key id, bad
        base64, a key that is not 32 bytes, a duplicate key id or an unknown ``current_id``.
        """
        entries = [re.sub(r"\s+", "", e) for e in re.split(r"[,\n]", spec or "")]
        entries = [e for e in entries if e]
        if not entries:
            raise ConfigurationError(
                "encryption key list is empty: expected 'kid:base64key,...' (32-byte keys)"
            )
        keys: dict[str, bytes] = {}
        for n, entry in enumerate(entries, 1):
            kid, sep, encoded = entry.partition(":")
            if not sep or not kid or not encoded:
                raise ConfigurationError(
                    f"encryption key entry {n} is not 'kid:base64key' "
                    "(expected 'kid:base64key,...' with 32-byte keys)"
                )
            if not _valid_kid(kid):
                raise ConfigurationError(
                    f"encryption key entry {n}: the key id must match {KID_PATTERN.pattern}"
                )
            if kid in keys:
                raise ConfigurationError(f"encryption key id {kid!r} is listed twice")
            keys[kid] = _decode_key(kid, encoded)
        return cls(keys, current_id)

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring | None:
        """The keyring the settings configure, or None when encryption is off.

        Keys come from ``encryption_keys`` or the file ``encryption_keys_file`` (same format);
        ``encryption_key_id`` picks the current key (default: the first listed). Setting both
        sources, or a key id without keys, is a ConfigurationError.
        """
        inline, path = settings.encryption_keys, settings.encryption_keys_file
        if inline is not None and path is not None:
            raise ConfigurationError(
                "set ARGOS_ENCRYPTION_KEYS or ARGOS_ENCRYPTION_KEYS_FILE, not both"
            )
        if path is not None:
            try:
                inline = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigurationError(
                    f"cannot read ARGOS_ENCRYPTION_KEYS_FILE {str(path)!r}: {type(exc).__name__}"
                ) from None
        if inline is None:
            if settings.encryption_key_id is not None:
                raise ConfigurationError(
                    "ARGOS_ENCRYPTION_KEY_ID is set but no keys are: set ARGOS_ENCRYPTION_KEYS "
                    "or ARGOS_ENCRYPTION_KEYS_FILE"
                )
            return None
        return cls.parse(inline, settings.encryption_key_id)

    @staticmethod
    def generate_key() -> str:
        """A new random 32-byte key, standard base64 (for ``kid:<this>``)."""
        return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode("ascii")

    def _aead(self, kid: str) -> AESGCM:
        try:
            return self._aeads[kid]
        except KeyError:
            raise DecryptionError(
                f"no encryption key {kid!r} in the keyring (known: {', '.join(self._aeads)})"
            ) from None

    def _open(self, kid: str, blob: bytes, aad: bytes) -> bytes:
        aead = self._aead(kid)
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            raise DecryptionError(f"encrypted value under key {kid!r} is truncated")
        try:
            return aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag:
            raise DecryptionError(
                f"cannot decrypt under key {kid!r}: wrong key, wrong associated data, or tampered"
            ) from None

    def encrypt_text(self, text: str, aad: str = "") -> str:
        """``enc1:<kid>:<urlsafe-b64>`` of ``text`` under the current key, bound to ``aad``."""
        kid = self.current_id
        header = _text_header(kid)
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aeads[kid].encrypt(
            nonce, text.encode("utf-8"), (header + aad).encode("utf-8")
        )
        return header + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def decrypt_text(self, token: str, aad: str = "") -> str:
        """The plaintext of an ``enc1:`` token; any other string is returned unchanged.

        Raises DecryptionError for an unknown key id, a wrong ``aad``, tampering or a malformed
        token.
        """
        if not token.startswith(TEXT_PREFIX):
            return token
        kid, body = _split_text(token)
        try:
            blob = base64.b64decode(body, altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise DecryptionError(f"encrypted text under key {kid!r} is not valid base64") from None
        plain = self._open(kid, blob, (_text_header(kid) + aad).encode("utf-8"))
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError:
            raise DecryptionError(f"text under key {kid!r} is not UTF-8") from None

    def encrypt_bytes(self, data: bytes, aad: bytes = b"") -> bytes:
        """``ENC1 + len(kid) + kid + nonce + ciphertext`` of ``data``, bound to ``aad``."""
        kid = self.current_id
        header = _bytes_header(kid)
        nonce = os.urandom(NONCE_BYTES)
        return header + nonce + self._aeads[kid].encrypt(nonce, bytes(data), header + aad)

    def decrypt_bytes(self, data: bytes, aad: bytes = b"") -> bytes:
        """The plaintext of an ``ENC1`` envelope; any other bytes are returned unchanged.

        Raises DecryptionError for an unknown key id, a wrong ``aad``, tampering or a malformed
        envelope.
        """
        if not is_encrypted(data):
            return data
        kid, header, blob = _split_bytes(bytes(data))
        return self._open(kid, blob, header + aad)

    @staticmethod
    def key_id_of(token: str | bytes) -> str | None:
        """The key id an encrypted text or value names; None for plaintext.

        Raises DecryptionError when the marker is there but the envelope is malformed.
        """
        if not is_encrypted(token):
            return None
        if isinstance(token, str):
            return _split_text(token)[0]
        return _split_bytes(bytes(token))[0]

    def needs_rotation(self, token: str | bytes) -> bool:
        """Whether ``token`` is plaintext or encrypted under a key other than the current one."""
        return self.key_id_of(token) != self.current_id

    def rotate_text(self, token: str, aad: str = "") -> str:
        """``token`` re-encrypted under the current key (the same object if it already is).

        Plaintext is encrypted. Raises DecryptionError as :meth:`decrypt_text` does.
        """
        if not self.needs_rotation(token):
            return token
        return self.encrypt_text(self.decrypt_text(token, aad), aad)

    def rotate_bytes(self, data: bytes, aad: bytes = b"") -> bytes:
        """``data`` re-encrypted under the current key (the same object if it already is)."""
        if not self.needs_rotation(data):
            return data
        return self.encrypt_bytes(self.decrypt_bytes(data, aad), aad)
