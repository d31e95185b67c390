"""Ingest stage core: validate raw Kafka records; refuse bad ones with a reason.

Nothing is dropped: every record comes out either as a valid ``MemoryEvent`` or as a
``DeadLetter`` that carries the reason and the original bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pipelines.errors import (
    InvalidEventError,
    PoisonEventError,
    RejectedError,
    SchemaVersionUnsupported,
)
from schemas import DeadLetter, MemoryEvent, SchemaVersionError, parse_memory_event


@dataclass(frozen=True)
class RawRecord:
    """A Kafka record as the stage saw it."""

    value: bytes | None
    key: bytes | None = None
    topic: str = "argos.memory.events"
    partition: int | None = None
    offset: int | None = None
    headers: list[tuple[str, bytes]] | None = None  # trace context, publisher token
    timestamp: float | None = None  # Kafka record time (the publisher's send time), seconds


def validate(raw: bytes | None) -> MemoryEvent:
    """Parse one record value into a ``MemoryEvent``, or raise a ``PoisonEventError``.

    >>> validate(b'{"schema_version": 2}')
    Traceback (most recent call last):
    ...
    pipelines.errors.SchemaVersionUnsupported: unsupported schema_version 2; supported: [1]
    """
    if raw is None:
        raise InvalidEventError("record has no value (a tombstone is not a memory event)")
    try:
        return parse_memory_event(raw)
    except SchemaVersionError as exc:
        raise SchemaVersionUnsupported(str(exc)) from None
    except ValueError as exc:
        raise InvalidEventError(str(exc)) from None


def header(rec: RawRecord, name: str) -> bytes | None:
    """The last value of header ``name`` on ``rec`` (None when absent)."""
    found = None
    for k, v in rec.headers or ():
        if k == name:
            found = v
    return found


def dead_letter(
    rec: RawRecord, exc: PoisonEventError | RejectedError, stage: str, now: float
) -> DeadLetter:
    return DeadLetter.of(
        reason=exc.reason,
        error=type(exc).__name__,
        stage=stage,
        source_topic=rec.topic,
        source_partition=rec.partition,
        source_offset=rec.offset,
        key=rec.key,
        original=rec.value or b"",
        refused_ts=now,
    )


# Admission of a valid event (publish rights, rate limits): raises ``RejectedError``.
Guard = Callable[[RawRecord, MemoryEvent], object]


def ingest_batch(
    records: Iterable[RawRecord], now: float, guard: Guard | None = None
) -> tuple[list[tuple[RawRecord, MemoryEvent]], list[tuple[RawRecord, DeadLetter]]]:
    """Split a batch into valid events and dead letters, each with the record it came from.
    ``guard`` refuses valid events by policy (no right to publish to that namespace, over a
    rate limit): they are dead-lettered too, with the reason, never dropped."""
    good: list[tuple[RawRecord, MemoryEvent]] = []
    bad: list[tuple[RawRecord, DeadLetter]] = []
    for rec in records:
        try:
            ev = validate(rec.value)
            if guard is not None:
                guard(rec, ev)
            good.append((rec, ev))
        except (PoisonEventError, RejectedError) as exc:
            bad.append((rec, dead_letter(rec, exc, "ingest", now)))
    return good, bad
