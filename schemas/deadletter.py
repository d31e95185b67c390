"""Dead-letter record: what ``argos.deadletter`` holds for every event the pipeline refused."""

from __future__ import annotations

import base64

from pydantic import BaseModel, ConfigDict, Field


class DeadLetter(BaseModel):
    """A refused event, with the reason and the original bytes, so nothing is lost."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="DeadLetter")

    reason: str = Field(description="Why the event was refused, readable by a person.")
    error: str = Field(description="Error class, e.g. InvalidEventError.")
    stage: str = Field(description="Pipeline stage that refused it: ingest, embed, store.")
    source_topic: str
    source_partition: int | None = None
    source_offset: int | None = None
    key: str | None = Field(None, description="The original Kafka key, as UTF-8 (lossy) text.")
    original_b64: str = Field(description="The original message value, base64.")
    refused_ts: float = Field(description="Wall-clock POSIX seconds of the refusal.")

    @classmethod
    def of(
        cls,
        *,
        reason: str,
        error: str,
        stage: str,
        source_topic: str,
        original: bytes,
        refused_ts: float,
        key: bytes | None = None,
        source_partition: int | None = None,
        source_offset: int | None = None,
    ) -> DeadLetter:
        return cls(
            reason=reason[:2000],
            error=error,
            stage=stage,
            source_topic=source_topic,
            source_partition=source_partition,
            source_offset=source_offset,
            key=key.decode("utf-8", "replace") if key is not None else None,
            original_b64=base64.b64encode(original).decode("ascii"),
            refused_ts=refused_ts,
        )

    def original(self) -> bytes:
        return base64.b64decode(self.original_b64)
