"""Token-based access control for the recall API and for ingest.

Tokens are configured as a JSON list (``ARGOS_TOKENS``, or the file ``ARGOS_TOKENS_FILE``)::

    [{"token": "...", "subject": "planner", "namespaces": ["world"], "agents": ["a-1"],
      "publish": true, "admin": false}]

- ``namespaces``: the namespaces the token may use; ``"*"`` is every namespace.
- ``agents``: the agents whose memories it may read; ``null`` (or left out) is every agent in
  those namespaces, so an agent's own token lists just that agent.
- ``publish``: it may publish memory events (to its namespaces, as its agents).
- ``admin``: it may call the admin operations.

With neither setting the policy is *open* (``enabled`` is False): every caller is the
all-powerful ``anonymous`` principal. That is for local development only.

Only SHA-256 digests of the tokens are kept; a presented token is hashed and looked up, so
neither the comparison nor the lookup leaks timing about a token's value, and no error message
ever contains one.

>>> policy = AccessPolicy.parse('[{"token": "s3cret-token", "subject": "a-1",'
...     ' "namespaces": ["world"], "agents": ["a-1"], "publish": true}]')
>>> p = policy.authenticate("Bearer s3cret-token")
>>> p.subject, sorted(p.namespaces), p.publish, p.admin
('a-1', ['world'], True, False)
>>> policy.authorize_read(p, "world", "a-1")
>>> policy.authorize_read(p, "world", "a-2")
Traceback (most recent call last):
...
pipelines.errors.ForbiddenError: 'a-1' may not read the memories of agent 'a-2' in namespace 'world'
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.errors import (
    ConfigurationError,
    ForbiddenError,
    RejectedError,
    UnauthenticatedError,
)

if TYPE_CHECKING:
    from pipelines.settings import Settings

ALL = "*"
"""In ``namespaces``: every namespace."""
TOKEN_HEADER = "argos-token"  # noqa: S105 (a header name, not a secret)
"""The Kafka record header that carries a publisher's token."""
MAX_TOKEN_CHARS = 4096

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}")  # schemas.memory_event.Identifier
_TOKEN = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces: fits a Bearer header
_FIELD_NAME = re.compile(r"[A-Za-z_]{1,20}")  # short enough to quote: it cannot be a token
_FIELDS = {"token", "subject", "namespaces", "agents", "publish", "admin"}


@dataclass(frozen=True)
class Principal:
    """Who a token belongs to, and what it may do."""

    subject: str
    namespaces: frozenset[str]
    """Namespaces it may use; ``"*"`` among them = all."""
    agents: frozenset[str] | None
    """Agents whose memories it may read; None = every agent in its namespaces."""
    publish: bool
    admin: bool

    def in_namespace(self, namespace: str) -> bool:
        return ALL in self.namespaces or namespace in self.namespaces

    def for_agent(self, agent_id: str) -> bool:
        return self.agents is None or agent_id in self.agents


ANONYMOUS = Principal(
    subject="anonymous", namespaces=frozenset({ALL}), agents=None, publish=True, admin=True
)
"""The principal of every caller while the policy is open."""


def generate_token() -> str:
    """A new random token (256 bits, URL-safe text) for the tokens list."""
    return secrets.token_urlsafe(32)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class AccessPolicy:
    """The configured tokens, and the checks the recall API and ingest make with them."""

    def __init__(self, principals: dict[bytes, Principal] | None = None) -> None:
        """``principals``: SHA-256 digest of each token -> its principal; None = open policy."""
        self._by_digest = dict(principals or {})
        self.enabled = principals is not None

    @classmethod
    def open(cls) -> AccessPolicy:
        """No tokens: every caller is ``ANONYMOUS`` (local development only)."""
        return cls(None)

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessPolicy:
        """The policy of ``settings.tokens`` or ``settings.tokens_file``; open if neither is set."""
        if settings.tokens is not None and settings.tokens_file is not None:
            raise ConfigurationError(
                "both ARGOS_TOKENS and ARGOS_TOKENS_FILE are set: set one of them"
            )
        if settings.tokens is not None:
            return cls.parse(settings.tokens, source="ARGOS_TOKENS")
        if settings.tokens_file is not None:
            path = settings.tokens_file
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                why = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
                raise ConfigurationError(
                    f"cannot read ARGOS_TOKENS_FILE {str(path)!r}: {why}"
                ) from None
            return cls.parse(text, source=f"ARGOS_TOKENS_FILE {str(path)!r}")
        return cls.open()

    @classmethod
    def parse(cls, json_text: str, source: str = "the tokens list") -> AccessPolicy:
        """An enabled policy from the JSON list of tokens.

        Raises ``ConfigurationError`` naming the entry (by position) and the field that is wrong;
        it never quotes a token, nor any other value of the list.
        """
        try:
            data = json.loads(json_text)
        except (ValueError, RecursionError) as exc:
            where = (
                f" (line {exc.lineno}, column {exc.colno})"
                if isinstance(exc, json.JSONDecodeError)
                else ""
            )
            raise ConfigurationError(
                f"{source} is not valid JSON{where}: it must be a JSON list of tokens, each "
                '{"token", "subject", "namespaces", "agents", "publish", "admin"}'
            ) from None
        if not isinstance(data, list):
            raise ConfigurationError(
                f"{source} must be a JSON list of token objects, not a {type(data).__name__}"
            )
        if not data:
            raise ConfigurationError(
                f"{source} lists no tokens, which would refuse every caller: add a token "
                "(pipelines.access.generate_token() makes one) or unset it for an open API"
            )
        principals: dict[bytes, Principal] = {}
        for i, entry in enumerate(data):
            token, principal = _parse_entry(entry, f"{source} entry {i}")
            digest = _digest(token)
            if digest in principals:
                raise ConfigurationError(
                    f"{source} entry {i} repeats the token of an earlier entry; tokens must be "
                    "unique"
                )
            principals[digest] = principal
        return cls(principals)

    def __repr__(self) -> str:
        if not self.enabled:
            return "AccessPolicy(open)"
        return f"AccessPolicy({len(self._by_digest)} tokens)"

    # Authentication -------------------------------------------------------------------------

    def authenticate(self, authorization_header: str | None) -> Principal:
        """The principal of an HTTP ``Authorization: Bearer <token>`` header.

        Raises ``UnauthenticatedError`` (401) when the header is missing or malformed, or the
        token is not one of the configured ones. An open policy returns ``ANONYMOUS``.
        """
        if not self.enabled:
            return ANONYMOUS
        if authorization_header is None or not authorization_header.strip():
            raise UnauthenticatedError(
                "missing credentials: send the header 'Authorization: Bearer <token>'"
            )
        scheme, _, token = authorization_header.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise UnauthenticatedError(
                "unsupported Authorization scheme: use 'Authorization: Bearer <token>'"
            )
        return self._principal_of(token.strip())

    def check_publish_token(
        self, token: str | bytes | None, namespace: str, agent_id: str | None = None
    ) -> Principal:
        """Ingest's check of an event's ``argos-token`` Kafka header: a valid token (401 if
        not) that may publish to ``namespace`` (and, if given and restricted, as ``agent_id``;
        403 if not). An open policy returns ``ANONYMOUS``."""
        if not self.enabled:
            return ANONYMOUS
        if isinstance(token, bytes | bytearray):
            try:
                token = bytes(token).decode("utf-8")
            except UnicodeDecodeError:
                raise UnauthenticatedError(
                    f"the {TOKEN_HEADER} header is not a valid token"
                ) from None
        if token is None or not token.strip():
            raise UnauthenticatedError(
                f"missing credentials: the event has no {TOKEN_HEADER} header"
            )
        principal = self._principal_of(token.strip())
        try:
            self.authorize_publish(principal, namespace, agent_id)
        except RejectedError as exc:
            exc.actor = principal.subject
            raise
        return principal

    def _principal_of(self, token: str) -> Principal:
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise UnauthenticatedError("invalid token")
        # A dict lookup by SHA-256 digest: what it could leak about timing concerns the digest,
        # which says nothing usable about the token.
        principal = self._by_digest.get(_digest(token))
        if principal is None:
            raise UnauthenticatedError("invalid token")
        return principal

    # Authorization --------------------------------------------------------------------------

    def authorize_read(self, principal: Principal, namespace: str, agent_id: str) -> None:
        """May ``principal`` recall the memories of ``agent_id`` in ``namespace``? (403 if not)

        A token restricted to agents reads those agents' memories; an unrestricted one reads
        every agent's in its namespaces (namespaces are never crossed).
        """
        if not principal.in_namespace(namespace):
            raise ForbiddenError(f"{principal.subject!r} may not use namespace {namespace!r}")
        if not principal.for_agent(agent_id):
            raise ForbiddenError(
                f"{principal.subject!r} may not read the memories of agent {agent_id!r} in "
                f"namespace {namespace!r}"
            )

    def authorize_publish(
        self, principal: Principal, namespace: str, agent_id: str | None = None
    ) -> None:
        """May ``principal`` publish memory events to ``namespace`` (as ``agent_id``, when given
        and the token is restricted to agents)? (403 if not)"""
        if not principal.publish:
            raise ForbiddenError(f"{principal.subject!r} may not publish memory events")
        if not principal.in_namespace(namespace):
            raise ForbiddenError(
                f"{principal.subject!r} may not publish to namespace {namespace!r}"
            )
        if agent_id is not None and not principal.for_agent(agent_id):
            raise ForbiddenError(
                f"{principal.subject!r} may not publish as agent {agent_id!r} in namespace "
                f"{namespace!r}"
            )

    def authorize_admin(self, principal: Principal) -> None:
        """May ``principal`` call admin operations? (403 if not)"""
        if not principal.admin:
            raise ForbiddenError(f"{principal.subject!r} is not an admin")


def _parse_entry(entry: Any, where: str) -> tuple[str, Principal]:
    """One token object -> (token, principal); error messages never include values."""
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{where} must be an object, not a {type(entry).__name__}")
    unknown = set(entry) - _FIELDS
    if unknown:
        # A misplaced token could be a key: quote only names too short to be one.
        names = ", ".join(
            repr(k) if isinstance(k, str) and _FIELD_NAME.fullmatch(k) else "<unexpected>"
            for k in sorted(unknown, key=str)
        )
        raise ConfigurationError(
            f"{where} has unknown fields ({names}); the fields are {sorted(_FIELDS)}"
        )
    token = entry.get("token")
    if not isinstance(token, str) or not token:
        raise ConfigurationError(f"{where}: 'token' must be a non-empty string")
    if len(token) > MAX_TOKEN_CHARS or not _TOKEN.fullmatch(token):
        raise ConfigurationError(
            f"{where}: 'token' must be printable ASCII without spaces, at most "
            f"{MAX_TOKEN_CHARS} characters (generate one with pipelines.access.generate_token)"
        )
    subject = entry.get("subject")
    if not isinstance(subject, str) or not subject.strip() or not subject.isprintable():
        raise ConfigurationError(f"{where}: 'subject' must be a non-empty printable string")
    namespaces = _names(entry.get("namespaces"), allow_all=True)
    if not namespaces:
        raise ConfigurationError(
            f"{where}: 'namespaces' must be a non-empty list of namespace names, or ['*'] for all"
        )
    agents_raw = entry.get("agents")
    agents = None
    if agents_raw is not None:
        agents = _names(agents_raw, allow_all=False)
        if agents is None:
            raise ConfigurationError(
                f"{where}: 'agents' must be null (every agent in its namespaces) or a list of "
                "agent ids"
            )
    flags = {}
    for flag in ("publish", "admin"):
        value = entry.get(flag, False)
        if not isinstance(value, bool):
            raise ConfigurationError(f"{where}: {flag!r} must be true or false")
        flags[flag] = value
    principal = Principal(
        subject=subject,
        namespaces=namespaces,
        agents=agents,
        publish=flags["publish"],
        admin=flags["admin"],
    )
    return token, principal


def _names(value: Any, *, allow_all: bool) -> frozenset[str] | None:
    """A list of identifiers (or ``"*"``) as a frozenset; None if it is not one."""
    if not isinstance(value, list):
        return None
    names: set[str] = set()
    for item in value:
        if not isinstance(item, str):
            return None
        if not (_NAME.fullmatch(item) or (allow_all and item == ALL)):
            return None
        names.add(item)
    return frozenset(names)
