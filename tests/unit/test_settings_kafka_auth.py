"""The Kafka security settings (``ARGOS_KAFKA_*``): validation, and the one configuration
handed to kafka-python (topic admin, CLI, publisher) and to Faust/aiokafka (the worker)."""

from __future__ import annotations

import inspect
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import certifi
import pytest
from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import ValidationError

from pipelines.errors import ConfigurationError
from pipelines.publisher import MemoryPublisher
from pipelines.settings import Settings, kafka_security_options

ENV_VARS = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "ARGOS_KAFKA_SECURITY_PROTOCOL",
    "ARGOS_KAFKA_SASL_MECHANISM",
    "ARGOS_KAFKA_USERNAME",
    "ARGOS_KAFKA_PASSWORD",
    "ARGOS_KAFKA_SSL_CAFILE",
    "ARGOS_KAFKA_SSL_CERTFILE",
    "ARGOS_KAFKA_SSL_KEYFILE",
)
CA = certifi.where()  # a real PEM bundle


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def settings(**values: Any) -> Settings:
    return Settings.model_validate(values)


def test_default_is_plaintext_without_credentials() -> None:
    s = settings()
    assert s.kafka_security_protocol == "PLAINTEXT"
    assert s.kafka_client_options() == {"security_protocol": "PLAINTEXT"}
    assert s.faust_broker_credentials() is None
    assert s.kafka_ssl_context() is None


def test_sasl_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARGOS_KAFKA_SECURITY_PROTOCOL", "sasl_plaintext")  # any case
    monkeypatch.setenv("ARGOS_KAFKA_SASL_MECHANISM", "scram-sha-512")
    monkeypatch.setenv("ARGOS_KAFKA_USERNAME", "worker")
    monkeypatch.setenv("ARGOS_KAFKA_PASSWORD", "hunter2")
    s = Settings()
    assert s.kafka_client_options() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "worker",
        "sasl_plain_password": "hunter2",
    }
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump())

    creds = s.faust_broker_credentials()
    assert isinstance(creds, SASLCredentials)
    assert credentials_to_aiokafka_auth(creds) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "worker",
        "sasl_plain_password": "hunter2",
        "ssl_context": None,
    }


def test_sasl_ssl_uses_the_ca_file_for_both_clients() -> None:
    s = settings(
        kafka_security_protocol="SASL_SSL",
        kafka_username="u",
        kafka_password="p",
        kafka_ssl_cafile=CA,
    )
    assert s.kafka_client_options()["ssl_cafile"] == CA
    assert s.kafka_client_options()["security_protocol"] == "SASL_SSL"
    auth = credentials_to_aiokafka_auth(s.faust_broker_credentials())
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "PLAIN"
    assert isinstance(auth["ssl_context"], ssl.SSLContext)
    assert auth["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert auth["ssl_context"].check_hostname


def test_ssl_without_sasl() -> None:
    s = settings(kafka_security_protocol="SSL")
    assert s.kafka_client_options() == {"security_protocol": "SSL"}  # system CAs
    creds = s.faust_broker_credentials()
    assert isinstance(creds, SSLCredentials)
    assert credentials_to_aiokafka_auth(creds)["security_protocol"] == "SSL"


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl_without_credentials_names_the_env_vars(protocol: str) -> None:
    with pytest.raises(ConfigurationError) as err:
        settings(kafka_security_protocol=protocol)
    assert "ARGOS_KAFKA_USERNAME and ARGOS_KAFKA_PASSWORD" in str(err.value)
    with pytest.raises(ConfigurationError, match="set ARGOS_KAFKA_PASSWORD$"):
        settings(kafka_security_protocol=protocol, kafka_username="u")
    with pytest.raises(ConfigurationError, match="set ARGOS_KAFKA_USERNAME$"):
        settings(kafka_security_protocol=protocol, kafka_password="p", kafka_username="")


def test_sasl_without_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARGOS_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("ARGOS_KAFKA_USERNAME", "u")
    with pytest.raises(ConfigurationError, match="ARGOS_KAFKA_PASSWORD"):
        Settings()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kafka_security_protocol", "TLS"),
        ("kafka_security_protocol", "SASL"),
        ("kafka_sasl_mechanism", "GSSAPI"),
        ("kafka_sasl_mechanism", "SCRAM-SHA-1"),
    ],
)
def test_bad_values_are_rejected(field: str, value: str) -> None:
    with pytest.raises(ValidationError, match=field):
        settings(**{field: value, "kafka_username": "u", "kafka_password": "p"})


def test_credentials_without_a_sasl_protocol_are_an_error() -> None:
    with pytest.raises(ConfigurationError, match="ARGOS_KAFKA_SECURITY_PROTOCOL is PLAINTEXT"):
        settings(kafka_username="u", kafka_password="p")
    with pytest.raises(ConfigurationError, match="ARGOS_KAFKA_USERNAME"):
        settings(kafka_security_protocol="SSL", kafka_password="p")


def test_ca_file_must_exist_and_needs_tls(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="ARGOS_KAFKA_SSL_CAFILE.*not a file"):
        settings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "missing.pem")
    with pytest.raises(ConfigurationError, match="ARGOS_KAFKA_SSL_CAFILE is set.*TLS"):
        settings(kafka_ssl_cafile=CA)


def test_publisher_checks_its_keyword_arguments_before_connecting() -> None:
    # nothing listens on port 1: these must fail on the arguments, not after a timeout
    with pytest.raises(ConfigurationError, match="sasl_plain_username and sasl_plain_password"):
        MemoryPublisher("127.0.0.1:1", security_protocol="SASL_PLAINTEXT")
    with pytest.raises(ConfigurationError, match="security_protocol='TLS'"):
        MemoryPublisher("127.0.0.1:1", security_protocol="TLS")
    with pytest.raises(ConfigurationError, match="sasl_mechanism='OAUTHBEARER'"):
        MemoryPublisher(
            "127.0.0.1:1",
            security_protocol="SASL_SSL",
            sasl_mechanism="OAUTHBEARER",
            sasl_plain_username="u",
            sasl_plain_password="p",
        )


@pytest.fixture(scope="module")
def client_cert(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from infra.tls import write_client_tls, write_server_tls

    folder = tmp_path_factory.mktemp("tls")
    files = write_server_tls(folder, "127.0.0.1")
    return write_client_tls(folder, "agent-7") | {"ca": files["ca"]}


def test_a_client_certificate_needs_its_key_tls_and_files(
    client_cert: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(ConfigurationError, match="needs both.*set ARGOS_KAFKA_SSL_KEYFILE too"):
        settings(kafka_security_protocol="SSL", kafka_ssl_certfile=client_cert["cert"])
    with pytest.raises(ConfigurationError, match="set ARGOS_KAFKA_SSL_CERTFILE too"):
        settings(kafka_security_protocol="SSL", kafka_ssl_keyfile=client_cert["key"])
    with pytest.raises(ConfigurationError, match="KEYFILE are set but .* PLAINTEXT"):
        settings(kafka_ssl_certfile=client_cert["cert"], kafka_ssl_keyfile=client_cert["key"])
    with pytest.raises(ConfigurationError, match="ARGOS_KAFKA_SSL_KEYFILE=.*not a file"):
        settings(
            kafka_security_protocol="SSL",
            kafka_ssl_certfile=client_cert["cert"],
            kafka_ssl_keyfile=tmp_path / "gone.key",
        )
    with pytest.raises(ConfigurationError, match="ssl_keyfile too"):
        MemoryPublisher("127.0.0.1:1", security_protocol="SSL", ssl_certfile=client_cert["cert"])


def test_a_client_certificate_reaches_both_clients(client_cert: dict[str, Path]) -> None:
    s = settings(
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=client_cert["ca"],
        kafka_ssl_certfile=client_cert["cert"],
        kafka_ssl_keyfile=client_cert["key"],
    )
    opts = s.kafka_client_options()
    assert opts["ssl_certfile"] == str(client_cert["cert"])
    assert opts["ssl_keyfile"] == str(client_cert["key"])
    creds = s.faust_broker_credentials()
    assert isinstance(creds, SSLCredentials)
    # a handshake with a server that requires client certificates: the worker's context
    # presents agent-7's (the server sees its name)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(client_cert["ca"].parent / "server.pem")
    server.load_verify_locations(client_cert["ca"])
    server.verify_mode = ssl.CERT_REQUIRED
    a, b = socket.socketpair()
    peer: dict[str, Any] = {}

    def serve() -> None:
        with server.wrap_socket(a, server_side=True) as tls:
            peer.update(tls.getpeercert() or {})

    t = threading.Thread(target=serve)
    t.start()
    with creds.context.wrap_socket(b, server_hostname="127.0.0.1"):
        t.join(10)
    assert dict(x[0] for x in peer["subject"])["commonName"] == "agent-7"


def test_the_publisher_takes_the_settings_options_as_its_own_arguments(
    client_cert: dict[str, Path],
) -> None:
    """``MemoryPublisher(..., **settings.kafka_client_options())``: every key is one of its
    named (checked, documented) arguments, none slips through to ``**producer_config``."""
    s = settings(
        kafka_security_protocol="SASL_SSL",
        kafka_username="u",
        kafka_password="p",
        kafka_ssl_cafile=CA,
        kafka_ssl_certfile=client_cert["cert"],
        kafka_ssl_keyfile=client_cert["key"],
    )
    named = inspect.signature(MemoryPublisher.__init__).parameters
    options = s.kafka_client_options()
    assert set(options) == {
        "security_protocol",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "ssl_cafile",
        "ssl_certfile",
        "ssl_keyfile",
    }
    assert all(named[k].kind is inspect.Parameter.KEYWORD_ONLY for k in options)
    # the publisher's own check accepts them unchanged
    assert (
        kafka_security_options(
            options["security_protocol"],
            options["sasl_mechanism"],
            options["sasl_plain_username"],
            options["sasl_plain_password"],
            options["ssl_cafile"],
            options["ssl_certfile"],
            options["ssl_keyfile"],
        )
        == options
    )
