from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pipelines.access import ANONYMOUS, AccessPolicy, Principal, generate_token
from pipelines.errors import ConfigurationError, ForbiddenError, UnauthenticatedError
from pipelines.settings import Settings

READER = "reader-token-0123456789"
AGENT = "agent-token-0123456789"
WRITER = "writer-token-0123456789"
ADMIN = "admin-token-0123456789"

TOKENS = [
    # reads every agent of "world", may not publish
    {"token": READER, "subject": "dashboard", "namespaces": ["world"], "agents": None},
    # one agent's own token: reads and publishes as a-1 in world
    {
        "token": AGENT,
        "subject": "a-1",
        "namespaces": ["world"],
        "agents": ["a-1"],
        "publish": True,
    },
    # a publisher for two namespaces, any agent
    {"token": WRITER, "subject": "sim", "namespaces": ["world", "lab"], "publish": True},
    {"token": ADMIN, "subject": "ops", "namespaces": ["*"], "publish": True, "admin": True},
]


@pytest.fixture
def policy() -> AccessPolicy:
    return AccessPolicy.parse(json.dumps(TOKENS))


def bearer(token: str) -> str:
    return f"Bearer {token}"


# --- authentication (401) ---------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header_is_401(policy: AccessPolicy, header: str | None) -> None:
    with pytest.raises(UnauthenticatedError, match="missing credentials") as exc:
        policy.authenticate(header)
    assert exc.value.http_status == 401


@pytest.mark.parametrize("header", [f"Basic {READER}", f"Token {READER}", READER, "Bearer"])
def test_wrong_scheme_or_no_token_is_401(policy: AccessPolicy, header: str) -> None:
    with pytest.raises(UnauthenticatedError) as exc:
        policy.authenticate(header)
    assert exc.value.http_status == 401
    assert READER not in exc.value.reason


@pytest.mark.parametrize(
    "token",
    ["not-a-token", READER + "x", READER[:-1], READER.upper(), "x" * 10_000, "\ud800", "é"],
)
def test_unknown_token_is_401_and_not_echoed(policy: AccessPolicy, token: str) -> None:
    with pytest.raises(UnauthenticatedError, match="invalid token") as exc:
        policy.authenticate(bearer(token))
    assert token not in exc.value.reason


def test_known_token_authenticates(policy: AccessPolicy) -> None:
    p = policy.authenticate(bearer(AGENT))
    assert p == Principal(
        subject="a-1",
        namespaces=frozenset({"world"}),
        agents=frozenset({"a-1"}),
        publish=True,
        admin=False,
    )
    # the scheme is case-insensitive (RFC 7235), surrounding blanks are tolerated
    assert policy.authenticate(f"  bearer   {AGENT} ") == p
    assert policy.enabled


def test_only_digests_of_tokens_are_kept(policy: AccessPolicy) -> None:
    kept = repr(vars(policy))
    for entry in TOKENS:
        assert entry["token"] not in kept
    assert hashlib.sha256(READER.encode()).digest() in policy._by_digest
    assert READER not in repr(policy)


# --- authorization (403) ----------------------------------------------------------------------


def test_reader_reads_every_agent_of_its_namespace(policy: AccessPolicy) -> None:
    p = policy.authenticate(bearer(READER))
    policy.authorize_read(p, "world", "a-1")
    policy.authorize_read(p, "world", "anyone")


def test_other_namespace_is_403_naming_it(policy: AccessPolicy) -> None:
    p = policy.authenticate(bearer(READER))
    with pytest.raises(ForbiddenError, match="namespace 'lab'") as exc:
        policy.authorize_read(p, "lab", "a-1")
    assert exc.value.http_status == 403


def test_agent_token_reads_only_its_agents(policy: AccessPolicy) -> None:
    p = policy.authenticate(bearer(AGENT))
    policy.authorize_read(p, "world", "a-1")
    with pytest.raises(ForbiddenError, match="agent 'a-2' in namespace 'world'"):
        policy.authorize_read(p, "world", "a-2")
    with pytest.raises(ForbiddenError, match="namespace 'lab'"):
        policy.authorize_read(p, "lab", "a-1")


def test_star_means_every_namespace(policy: AccessPolicy) -> None:
    p = policy.authenticate(bearer(ADMIN))
    for ns in ("world", "lab", "anything"):
        policy.authorize_read(p, ns, "a-9")
        policy.authorize_publish(p, ns)
    policy.authorize_admin(p)


def test_publish_needs_the_right_and_the_namespace(policy: AccessPolicy) -> None:
    reader = policy.authenticate(bearer(READER))
    with pytest.raises(ForbiddenError, match="may not publish"):
        policy.authorize_publish(reader, "world")
    writer = policy.authenticate(bearer(WRITER))
    policy.authorize_publish(writer, "world")
    policy.authorize_publish(writer, "lab", "any-agent")
    with pytest.raises(ForbiddenError, match="namespace 'other'"):
        policy.authorize_publish(writer, "other")


def test_agent_token_publishes_only_as_its_agents(policy: AccessPolicy) -> None:
    p = policy.authenticate(bearer(AGENT))
    policy.authorize_publish(p, "world")
    policy.authorize_publish(p, "world", "a-1")
    with pytest.raises(ForbiddenError, match="agent 'a-2'"):
        policy.authorize_publish(p, "world", "a-2")


def test_admin_needs_admin(policy: AccessPolicy) -> None:
    for token in (READER, AGENT, WRITER):
        with pytest.raises(ForbiddenError, match="not an admin"):
            policy.authorize_admin(policy.authenticate(bearer(token)))


# --- the ingest check (Kafka header) ----------------------------------------------------------


def test_check_publish_token(policy: AccessPolicy) -> None:
    assert policy.check_publish_token(WRITER, "lab").subject == "sim"
    assert policy.check_publish_token(WRITER.encode(), "world").subject == "sim"  # header bytes
    assert policy.check_publish_token(AGENT, "world", "a-1").subject == "a-1"
    with pytest.raises(UnauthenticatedError, match="argos-token"):
        policy.check_publish_token(None, "world")
    with pytest.raises(UnauthenticatedError, match="invalid token") as e401:
        policy.check_publish_token("nope", "world")
    assert e401.value.actor == "anonymous"  # the audit's actor: nobody known
    with pytest.raises(UnauthenticatedError):
        policy.check_publish_token(b"\xff\xfe", "world")
    with pytest.raises(ForbiddenError, match="may not publish") as e403:
        policy.check_publish_token(READER, "world")
    assert e403.value.actor == "dashboard"  # the token's subject, not the event's agent
    with pytest.raises(ForbiddenError, match="namespace 'other'"):
        policy.check_publish_token(WRITER, "other")
    with pytest.raises(ForbiddenError, match="agent 'a-2'") as e403b:
        policy.check_publish_token(AGENT, "world", "a-2")
    assert e403b.value.actor == "a-1"


# --- the open policy --------------------------------------------------------------------------


def test_open_policy_when_nothing_is_configured() -> None:
    policy = AccessPolicy.from_settings(Settings(tokens=None, tokens_file=None))
    assert not policy.enabled
    for header in (None, "", "Bearer whatever", "Basic xyz"):
        p = policy.authenticate(header)
        assert p is ANONYMOUS
    policy.authorize_read(ANONYMOUS, "any", "agent")
    policy.authorize_publish(ANONYMOUS, "any", "agent")
    policy.authorize_admin(ANONYMOUS)
    assert policy.check_publish_token(None, "any") is ANONYMOUS


def test_from_settings_reads_the_variable_or_the_file(tmp_path: Path) -> None:
    text = json.dumps(TOKENS)
    from_env = AccessPolicy.from_settings(Settings(tokens=text))
    assert from_env.enabled and from_env.authenticate(bearer(ADMIN)).admin
    f = tmp_path / "tokens.json"
    f.write_text(text)
    from_file = AccessPolicy.from_settings(Settings(tokens_file=f))
    assert from_file.authenticate(bearer(AGENT)).subject == "a-1"
    with pytest.raises(ConfigurationError, match="cannot read ARGOS_TOKENS_FILE"):
        AccessPolicy.from_settings(Settings(tokens_file=tmp_path / "missing.json"))
    with pytest.raises(ConfigurationError, match="both"):
        AccessPolicy.from_settings(Settings(tokens=text, tokens_file=f))


def test_generate_token_is_random_and_usable() -> None:
    a, b = generate_token(), generate_token()
    assert a != b and len(a) >= 43
    policy = AccessPolicy.parse(json.dumps([{"token": a, "subject": "s", "namespaces": ["*"]}]))
    assert policy.authenticate(bearer(a)).subject == "s"
    with pytest.raises(UnauthenticatedError):
        policy.authenticate(bearer(b))


# --- malformed configuration ------------------------------------------------------------------

SECRET = "SUPER-SECRET-TOKEN-VALUE-42"  # noqa: S105 (a test value)


def entry(**patch: object) -> dict[str, object]:
    base: dict[str, object] = {"token": SECRET, "subject": "s", "namespaces": ["world"]}
    base.update(patch)
    return {k: v for k, v in base.items() if v is not ...}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (f'[{{"token": "{SECRET}", ', "not valid JSON"),
        ("", "not valid JSON"),
        (json.dumps({"token": SECRET}), "must be a JSON list"),
        ("[]", "lists no tokens"),
        (json.dumps([SECRET]), "entry 0 must be an object"),
        (json.dumps([entry(token=...)]), "'token' must be a non-empty string"),
        (json.dumps([entry(token="")]), "'token'"),
        (json.dumps([entry(token=123)]), "'token'"),
        (json.dumps([entry(token=SECRET + " with space")]), "printable ASCII"),
        (json.dumps([entry(subject=...)]), "'subject'"),
        (json.dumps([entry(subject="")]), "'subject'"),
        (json.dumps([entry(namespaces=...)]), "'namespaces'"),
        (json.dumps([entry(namespaces=[])]), "'namespaces'"),
        (json.dumps([entry(namespaces="world")]), "'namespaces'"),
        (json.dumps([entry(namespaces=[SECRET + "/../x y"])]), "'namespaces'"),
        (json.dumps([entry(namespaces=["ok\n"])]), "'namespaces'"),
        (json.dumps([entry(agents="a-1")]), "'agents'"),
        (json.dumps([entry(agents=["*"])]), "'agents'"),
        (json.dumps([entry(publish="yes")]), "'publish' must be true or false"),
        (json.dumps([entry(admin=1)]), "'admin' must be true or false"),
        (json.dumps([entry(namespace=["world"])]), "unknown fields \\('namespace'\\)"),
        (json.dumps([entry(**{SECRET: True})]), "unknown fields \\(<unexpected>\\)"),
        (json.dumps([entry(), entry(subject="other")]), "entry 1 repeats the token"),
        (json.dumps([entry(), entry(token=SECRET + "2", agents=7)]), "entry 1: 'agents'"),
    ],
)
def test_malformed_tokens_are_configuration_errors_without_the_token(text: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match) as exc:
        AccessPolicy.parse(text, source="ARGOS_TOKENS")
    message = str(exc.value)
    assert SECRET not in message
    assert "SECRET" not in message
    assert "ARGOS_TOKENS" in message


def test_malformed_settings_variable_fails_fast() -> None:
    with pytest.raises(ConfigurationError, match="ARGOS_TOKENS") as exc:
        AccessPolicy.from_settings(Settings(tokens=f'[{{"token": "{SECRET}"}}]'))
    assert SECRET not in str(exc.value)
