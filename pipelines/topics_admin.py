"""Create the pipeline's topics with their partitions and retention before a worker starts.

Faust subscribes to its source topics by name; a topic that does not exist yet is only picked up
after a metadata refresh and a rebalance, and broker auto-creation (off in most production
clusters) would give it the broker's defaults. So workers create what the registry names first.
"""

from __future__ import annotations

import logging

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from pipelines.errors import ConfigurationError
from pipelines.settings import Settings
from schemas import TOPICS
from schemas.topics import Topic

log = logging.getLogger(__name__)

ENSURE_RETRY_S = 120.0  # a busy broker may time out a request: retriable errors are tried again


def _retriable(exc: BaseException) -> bool:
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))


# The worker's state tables (``pipelines.app``); Faust names their changelogs
# ``<app_id>-<table>-changelog``.
TABLES = ("memory", "population", "hot", "analytics")
# Largest record a changelog accepts: one agent's (or namespace's) whole state is one value, and
# Kafka's 1 MiB default is reached by an agent with a few thousand memories.
STATE_MAX_BYTES = 32 * 1024 * 1024


def topic_config(t: Topic) -> dict[str, str]:
    """The Kafka topic configuration of one of the pipeline's topics."""
    config = {"cleanup.policy": t.cleanup_policy, "retention.ms": str(t.retention_ms)}
    if t.max_message_bytes is not None:
        config["max.message.bytes"] = str(t.max_message_bytes)
    return config


def changelog_topics(settings: Settings) -> list[str]:
    return [f"{settings.app_id}-{settings.topic_prefix}-{t}-changelog" for t in TABLES]


def ensure_topics(settings: Settings, replication_factor: int = 1) -> list[str]:
    """Create every registry topic and table changelog that is missing; returns the names
    created. Changelogs too: Faust declares them itself, but a table written before the
    producer's metadata knows its new changelog fails (seen with a fast first batch).

    Retriable Kafka errors (a request timed out on a busy broker, a connection dropped) are
    tried again with backoff for up to ``ENSURE_RETRY_S``; others are raised at once."""
    for attempt in Retrying(
        retry=retry_if_exception(_retriable),
        wait=wait_exponential(multiplier=0.5, max=10),
        stop=stop_after_delay(ENSURE_RETRY_S),
        before_sleep=lambda rs: log.warning(
            "creating topics: %r; trying again", rs.outcome.exception() if rs.outcome else None
        ),
        reraise=True,
    ):
        with attempt:
            return _ensure_topics(settings, replication_factor)
    raise AssertionError("unreachable")  # pragma: no cover - Retrying returns or raises


def _ensure_topics(settings: Settings, replication_factor: int) -> list[str]:
    assert settings.kafka_bootstrap_servers  # noqa: S101 - callers resolve it first
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
        **settings.kafka_client_options(),
    )
    try:
        existing = set(admin.list_topics())

        def new(name: str, configs: dict[str, str]) -> NewTopic:
            return NewTopic(
                name,
                num_partitions=settings.topic_partitions,
                replication_factor=replication_factor,
                topic_configs=configs,
            )

        wanted = [new(settings.topic(t.suffix), topic_config(t)) for t in TOPICS.values()]
        compacted = {"cleanup.policy": "compact", "max.message.bytes": str(STATE_MAX_BYTES)}
        wanted += [new(name, compacted) for name in changelog_topics(settings)]
        wanted = [nt for nt in wanted if nt.name not in existing]
        if settings.events_topic:
            check_source_topic(admin, settings, existing)
        _raise_record_limits(admin, settings, existing)
        created = []
        for nt in wanted:  # one by one: another worker may create the same topic concurrently
            try:
                admin.create_topics([nt])
                created.append(nt.name)
            except TopicAlreadyExistsError:
                pass
        if created:
            log.info("created topics %s", created)
        return created
    finally:
        admin.close()


def _raise_record_limits(admin: KafkaAdminClient, settings: Settings, existing: set[str]) -> None:
    """A registry topic created before it had a ``max.message.bytes`` (the dead-letter topic
    before 2026-11-29, at the broker's 1 MiB) gets it raised to the registry's, never lowered:
    a dead letter the broker refused would stop the ingest stage at that record."""
    limits = {
        settings.topic(t.suffix): t.max_message_bytes
        for t in TOPICS.values()
        if t.max_message_bytes is not None and settings.topic(t.suffix) in existing
    }
    if not limits:
        return
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in limits]
    described = admin.describe_configs(resources, config_filter="all")
    have = described.get("topic", {}) if isinstance(described, dict) else {}
    low = {}
    for name, want in limits.items():
        entry = have.get(name, {}).get("max.message.bytes") or {}
        value = entry.get("value") if isinstance(entry, dict) else entry
        if value is not None and int(value) < want:
            low[name] = (int(value), want)
    if not low:
        return
    admin.alter_configs(
        [
            ConfigResource(ConfigResourceType.TOPIC, name, {"max.message.bytes": str(want)})
            for name, (_, want) in low.items()
        ]
    )
    log.warning(
        "raised max.message.bytes of %s",
        ", ".join(f"{n} from {v} to {w}" for n, (v, w) in sorted(low.items())),
    )


def check_source_topic(admin: KafkaAdminClient, settings: Settings, existing: set[str]) -> None:
    """An ``ARGOS_EVENTS_TOPIC`` to replay must exist and be partitioned like the pipeline's
    own topics (the agents' state is placed by partition: a different count would split an
    agent's events across workers)."""
    name = settings.source_topic()
    if name not in existing:
        raise ConfigurationError(f"ARGOS_EVENTS_TOPIC {name!r} does not exist on the cluster")
    described = admin.describe_topics([name])
    count = len(described[0]["partitions"]) if described else 0
    if count != settings.topic_partitions:
        raise ConfigurationError(
            f"ARGOS_EVENTS_TOPIC {name!r} has {count} partitions; ARGOS_TOPIC_PARTITIONS is "
            f"{settings.topic_partitions}: set them alike to replay it"
        )
