"""Embedded memory: the record on ``argos.memory.embedded`` (a memory event plus its vector)."""

from __future__ import annotations

import base64

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from schemas.memory_event import MemoryEvent


class EmbeddedMemory(BaseModel):
    """A validated memory event with its embedding, ready for clustering and storage.

    The vector travels as base64 of little-endian float32 (``vector_b64``): a quarter of the
    size of a JSON float list and much faster to encode and decode.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, title="EmbeddedMemory")

    event: MemoryEvent
    vector_b64: str = Field(description="base64 of the L2-normalised float32 vector, little-endian")
    dim: int = Field(ge=1, le=4096)
    model: str = Field(description="Name of the embedding model (or 'client' for agent vectors).")
    ingest_ts: float = Field(description="Wall-clock POSIX seconds when the event was ingested.")
    importance_given: bool = Field(
        True,
        description="Whether the agent set the importance (else it is the default 0.5 and the "
        "analytics predict one).",
    )

    @classmethod
    def build(
        cls, event: MemoryEvent, vector: np.ndarray, model: str, ingest_ts: float
    ) -> EmbeddedMemory:
        vec = np.ascontiguousarray(vector, dtype="<f4")
        return cls(
            event=event,
            vector_b64=base64.b64encode(vec.tobytes()).decode("ascii"),
            dim=int(vec.shape[0]),
            model=model,
            ingest_ts=ingest_ts,
            importance_given="importance" in event.model_fields_set,
        )

    def vector(self) -> np.ndarray:
        vec = np.frombuffer(base64.b64decode(self.vector_b64), dtype="<f4")
        if vec.shape[0] != self.dim:
            raise ValueError(f"vector has {vec.shape[0]} values, dim says {self.dim}")
        return vec
