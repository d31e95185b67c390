"""Kafka ACLs for a deployment: what each kind of principal may do, nothing more.

With an authorizer on the broker (``StandardAuthorizer`` in KRaft, or Strimzi's ``simple``
authorization), three roles:

- the **worker** (every worker and its recall process log in as one principal): everything on
  its topics (``<prefix>.*``), its table changelogs and Faust's own topics (``<app_id>-*``),
  and its consumer group (``<app_id>``); the events topic too where ``ARGOS_EVENTS_TOPIC``
  names one outside the prefix;
- **agents** (publishers): write to the events topic, nothing else, so an agent cannot read
  other agents' memories from Kafka nor forge the pipeline's own records;
- **readers** (analytics subscribers): read the analytics topics (``<prefix>.analytics.*``),
  with no consumer group (``argos subscribe`` commits nothing).

``argos acls`` prints these bindings or creates them (``--apply``, as a principal allowed to
alter ACLs, e.g. a super user).

>>> from pipelines.settings import Settings
>>> for acl in acl_bindings(Settings(), "User:worker", ["User:agent-7"], ["User:viewer"]):
...     print(describe(acl))
User:worker ALL TOPIC PREFIXED argos.
User:worker ALL TOPIC PREFIXED argos-memory-
User:worker ALL GROUP PREFIXED argos-memory
User:agent-7 WRITE TOPIC LITERAL argos.memory.events
User:agent-7 DESCRIBE TOPIC LITERAL argos.memory.events
User:viewer READ TOPIC PREFIXED argos.analytics.
User:viewer DESCRIBE TOPIC PREFIXED argos.analytics.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pipelines.errors import ConfigurationError
from pipelines.settings import Settings


def principal(name: str) -> str:
    """``User:<name>`` for a bare user name; a principal given whole stays as it is."""
    if not name or not name.strip():
        raise ConfigurationError("a Kafka principal needs a name")
    return name if ":" in name else f"User:{name}"


def acl_bindings(
    settings: Settings,
    worker: str,
    agents: Iterable[str] = (),
    readers: Iterable[str] = (),
) -> list[Any]:
    """The ACLs (kafka-python ``ACL``) that let ``worker`` run the pipeline, ``agents``
    publish memory events and ``readers`` read the analytics topics (principals, or bare
    user names: ``User:`` is added)."""
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    lit, pre = ACLResourcePatternType.LITERAL, ACLResourcePatternType.PREFIXED

    def allow(who: str, op: Any, kind: Any, name: str, pattern: Any) -> Any:
        return ACL(
            principal(who),
            "*",
            op,
            ACLPermissionType.ALLOW,
            ResourcePattern(kind, name, pattern),
        )

    topic, group = ResourceType.TOPIC, ResourceType.GROUP
    prefix, events = f"{settings.topic_prefix}.", settings.source_topic()
    out = [
        allow(worker, ACLOperation.ALL, topic, prefix, pre),
        allow(worker, ACLOperation.ALL, topic, f"{settings.app_id}-", pre),
        allow(worker, ACLOperation.ALL, group, settings.app_id, pre),
    ]
    if not events.startswith(prefix):  # ARGOS_EVENTS_TOPIC outside the prefix
        out += [
            allow(worker, op, topic, events, lit)
            for op in (ACLOperation.READ, ACLOperation.DESCRIBE)
        ]
    for agent in agents:
        out += [
            allow(agent, op, topic, events, lit)
            for op in (ACLOperation.WRITE, ACLOperation.DESCRIBE)
        ]
    for reader in readers:
        out += [
            allow(reader, op, topic, f"{prefix}analytics.", pre)
            for op in (ACLOperation.READ, ACLOperation.DESCRIBE)
        ]
    return out


def describe(acl: Any) -> str:
    """One line: principal, operation, resource type, pattern type, resource name."""
    rp = acl.resource_pattern
    return (
        f"{acl.principal} {acl.operation.name} {rp.resource_type.name} "
        f"{rp.pattern_type.name} {rp.resource_name}"
    )


def strimzi_acls(acls: Iterable[Any]) -> list[dict[str, Any]]:
    """``acls`` (one principal's) as a Strimzi ``KafkaUser``'s ``spec.authorization.acls``:
    one rule per resource with its operations, as the prod overlay writes them
    (``k8s/overlays/prod/kafka-tls.yaml``; a test checks the two agree).

    >>> from pipelines.settings import Settings
    >>> strimzi_acls(acl_bindings(Settings(), "agent", [], ["viewer"])[3:])
    [{'resource': {'type': 'topic', 'name': 'argos.analytics.', 'patternType': 'prefix'}, \
'operations': ['Read', 'Describe']}]
    """
    rules: dict[tuple[str, str, str], list[str]] = {}
    for acl in acls:
        rp = acl.resource_pattern
        key = (
            rp.resource_type.name.lower(),
            rp.resource_name,
            "prefix" if rp.pattern_type.name == "PREFIXED" else "literal",
        )
        rules.setdefault(key, []).append(acl.operation.name.capitalize())
    return [
        {"resource": {"type": kind, "name": name, "patternType": pattern}, "operations": ops}
        for (kind, name, pattern), ops in rules.items()
    ]


def apply_acls(settings: Settings, acls: Sequence[Any]) -> int:
    """Create ``acls`` on the settings' broker (as its configured principal, which must be
    allowed to alter ACLs); returns how many were created. Creating one that exists is not
    an error (Kafka keeps one)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
        client_id="argos-acls",
        **settings.kafka_client_options(),
    )
    try:
        result = admin.create_acls(list(acls))
    finally:
        admin.close()
    failed = result.get("failed", [])
    if failed:
        lines = "; ".join(f"{describe(acl)}: {err!r}" for acl, err in failed)
        raise ConfigurationError(f"the broker refused {len(failed)} ACL(s): {lines}")
    return len(result.get("succeeded", []))
