"""``MemoryPublisher``: the Python SDK agents use to publish memory events.

Built on kafka-python: keyed by ``agent_id`` (so an agent's memories stay ordered on one
partition), ``acks=all``, batched with a short linger. Events are validated before they leave, so
a bug in an agent shows up at its call site, not only in the dead-letter topic.

Each event starts its trace: a ``publish`` span (OpenTelemetry, the global tracer provider unless
one is given) whose W3C ``traceparent`` travels in the record's headers, so every stage after it
adds its span to the same trace. A ``token`` travels in the ``argos-token`` header: the worker
checks at ingest that it may publish to the event's namespace.

A cluster that requires TLS and/or authentication takes the same options as the worker's
``ARGOS_KAFKA_*`` settings, as keyword arguments (kafka-python's names)::

    MemoryPublisher("broker:9093", security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                    sasl_plain_username="agent", sasl_plain_password="...", ssl_cafile="ca.pem")
    MemoryPublisher(bootstrap, topic, **Settings().kafka_client_options())  # from ARGOS_KAFKA_*
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from kafka import KafkaProducer
from kafka.errors import (
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    SaslAuthenticationFailedError,
)
from opentelemetry import trace
from opentelemetry.propagate import inject
from opentelemetry.trace import SpanKind

from pipelines.errors import ConfigurationError, InvalidEventError
from pipelines.settings import kafka_security_options
from schemas import AccessEvent, MemoryEvent, parse_memory_event

DEFAULT_TOPIC = "argos.memory.events"
TOKEN_HEADER = "argos-token"  # noqa: S105 (a header name, not a secret)
#: How errors name the security inputs: this class's keyword arguments.
_KWARG_NAMES = {
    "security_protocol": "security_protocol",
    "sasl_mechanism": "sasl_mechanism",
    "username": "sasl_plain_username",
    "password": "sasl_plain_password",  # noqa: S105 (an argument's name, not a secret)
    "ssl_cafile": "ssl_cafile",
    "ssl_certfile": "ssl_certfile",
    "ssl_keyfile": "ssl_keyfile",
}


class _KafkaErrors(logging.Handler):
    """While active, keeps the exceptions kafka-python logs (it retries a refused or dropped
    connection until its bootstrap timeout and then reports only "Unable to bootstrap")."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.errors: list[BaseException] = []
        self._logger = logging.getLogger("kafka")

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        self.errors += [a for a in args if isinstance(a, BaseException)]

    def __enter__(self) -> _KafkaErrors:
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)


def _connect_error(
    bootstrap: str, timeout: float, security: dict[str, Any], errors: list[BaseException]
) -> str:
    """Why the producer could not start, in words an operator can act on."""
    protocol = security["security_protocol"]
    how = protocol
    if "sasl_mechanism" in security:
        how += f", SASL {security['sasl_mechanism']} as {security['sasl_plain_username']!r}"
    refused = [e for e in errors if isinstance(e, SaslAuthenticationFailedError)]
    if refused:
        return f"Kafka at {bootstrap} refused the credentials ({how}): {refused[-1]}"
    causes = [e for e in errors if not isinstance(e, KafkaTimeoutError)]
    last = f" (last error: {causes[-1]})" if causes else ""
    hint = "the bootstrap address and security_protocol"
    if "sasl_mechanism" in security:
        # Kafka closes the connection after a failed SASL authentication, often before
        # kafka-python reads the error response: a wrong password looks like a dropped link.
        hint += ", sasl_mechanism and the credentials (sasl_plain_username/_password: "
        hint += "brokers drop the connection on a failed SASL authentication)"
    return f"cannot connect to Kafka at {bootstrap} within {timeout:g}s ({how}): check {hint}{last}"


class MemoryPublisher:
    """Publish memory events to Kafka.

    >>> # with MemoryPublisher("127.0.0.1:9092") as pub:
    >>> #     pub.publish({"schema_version": 1, "memory_id": "m1", ...})

    Security (the worker's ``ARGOS_KAFKA_*`` settings; ``**settings.kafka_client_options()``
    passes them all):

    ``security_protocol``
        ``PLAINTEXT`` (default), ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL``.
    ``sasl_mechanism``
        ``PLAIN`` (default), ``SCRAM-SHA-256`` or ``SCRAM-SHA-512`` (SASL protocols only).
    ``sasl_plain_username``, ``sasl_plain_password``
        The SASL credentials (required by the SASL protocols, whatever the mechanism).
    ``ssl_cafile``
        PEM CA bundle of the brokers' certificates (SSL protocols; default: system CAs).
    ``ssl_certfile``, ``ssl_keyfile``
        The client's own PEM certificate and key, for brokers that require one (mutual TLS).

    A bad combination raises :class:`ConfigurationError` here; credentials the broker refuses
    raise :class:`ConfigurationError` from the constructor too (``connect_timeout`` seconds at
    most), instead of sends that time out later.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str = DEFAULT_TOPIC,
        *,
        linger_ms: int = 20,
        batch_size: int = 256 * 1024,
        validate: bool = True,
        token: str | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        security_protocol: str = "PLAINTEXT",
        sasl_mechanism: str | None = "PLAIN",
        sasl_plain_username: str | None = None,
        sasl_plain_password: str | None = None,
        ssl_cafile: str | Path | None = None,
        ssl_certfile: str | Path | None = None,
        ssl_keyfile: str | Path | None = None,
        connect_timeout: float = 30.0,
        **producer_config: Any,
    ) -> None:
        if not bootstrap_servers:
            raise ConfigurationError("MemoryPublisher needs bootstrap_servers (host:port,...)")
        security = kafka_security_options(
            security_protocol,
            sasl_mechanism,
            sasl_plain_username,
            sasl_plain_password,
            ssl_cafile,
            ssl_certfile,
            ssl_keyfile,
            names=_KWARG_NAMES,
        )
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.validate = validate
        self.published = 0
        self._token = [(TOKEN_HEADER, token.encode())] if token else []
        self._tracer = trace.get_tracer("argos.publisher", tracer_provider=tracer_provider)
        config: dict[str, Any] = {
            "acks": "all",
            "linger_ms": linger_ms,
            "batch_size": batch_size,
            "retries": 5,
            "max_in_flight_requests_per_connection": 1,
            "bootstrap_timeout_ms": int(connect_timeout * 1000),
            **security,
            **producer_config,
        }
        with _KafkaErrors() as seen:
            try:
                self._producer = KafkaProducer(
                    bootstrap_servers=bootstrap_servers.split(","), **config
                )
            except KafkaTimeoutError as exc:
                raise ConfigurationError(
                    _connect_error(bootstrap_servers, connect_timeout, security, seen.errors)
                ) from exc

    def publish(self, event: MemoryEvent | dict[str, Any]) -> Any:
        """Send one event; returns kafka-python's future (``.get()`` waits for the ack)."""
        if isinstance(event, dict):
            if not self.validate:
                key = str(event.get("agent_id", "")).encode()
                return self.publish_raw(key, json.dumps(event).encode())
            try:
                event = parse_memory_event(event)
            except ValueError as exc:
                raise InvalidEventError(str(exc)) from None
        return self._send(self.topic, event.agent_id.encode(), event.to_json_bytes(), event)

    def _send(
        self, topic: str, key: bytes | None, value: bytes, event: MemoryEvent | None = None
    ) -> Any:
        """Send one record inside its ``publish`` span, the trace context in its headers."""
        with self._tracer.start_as_current_span(
            "argos.publish",
            kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "kafka", "messaging.destination.name": topic},
        ) as span:
            if event is not None and span.is_recording():
                span.set_attribute("argos.namespace", event.namespace)
                span.set_attribute("argos.memory_id", event.memory_id)
            carrier: dict[str, str] = {}
            inject(carrier)
            headers = self._token + [(k, v.encode()) for k, v in carrier.items()]
            try:
                fut = self._producer.send(topic, key=key, value=value, headers=headers or None)
            except MessageSizeTooLargeError as exc:  # refused here, before anything is sent
                raise InvalidEventError(
                    f"a record of {len(value)} bytes is over the producer's max_request_size "
                    f"({self._producer.config['max_request_size']} bytes): not sent ({exc})"
                ) from None
        if topic == self.topic:
            self.published += 1
        return fut

    def report_use(
        self,
        namespace: str,
        agent_id: str,
        memory_ids: Sequence[str],
        success: bool,
        event_time: datetime | None = None,
    ) -> Any:
        """Tell the memory that the agent used these memories (followed a procedure, acted on a
        fact) and whether it worked, on ``<prefix>.memory.access``: a use counts as a recall, and
        a success reinforces a procedural memory once more."""
        if not self.topic.endswith(".memory.events"):
            raise ConfigurationError(f"cannot derive the access topic from {self.topic!r}")
        access = AccessEvent(
            namespace=namespace,
            agent_id=agent_id,
            memory_ids=list(memory_ids),
            event_ts=event_time.timestamp() if event_time else None,
            outcome="success" if success else "failure",
        )
        topic = self.topic.removesuffix(".memory.events") + ".memory.access"
        return self._send(topic, agent_id.encode(), access.model_dump_json().encode())

    def publish_raw(self, key: bytes | None, value: bytes) -> Any:
        """Send bytes as they are (no validation): for other producers' payloads and tests."""
        return self._send(self.topic, key, value)

    def publish_many(self, events: Iterable[MemoryEvent | dict[str, Any]]) -> int:
        n = 0
        for ev in events:
            self.publish(ev)
            n += 1
        return n

    def flush(self, timeout: float | None = None) -> None:
        self._producer.flush(timeout=timeout)

    def close(self, timeout: float | None = 30) -> None:
        self._producer.flush(timeout=timeout)
        self._producer.close(timeout=timeout)

    def __enter__(self) -> MemoryPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
