"""Embedding stage core: attach a vector to each valid event (batched)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipelines.embed import Embedder
from pipelines.errors import InvalidEventError
from schemas import EmbeddedMemory, MemoryEvent, MemoryType


def text_of(event: MemoryEvent) -> str:
    """The text embedded for an event: the content, plus the steps of a procedural memory."""
    if event.type is MemoryType.procedural and event.steps:
        return event.content + " Steps: " + "; ".join(event.steps)
    return event.content


def embed_events(
    events: Sequence[MemoryEvent], embedder: Embedder, now: float
) -> tuple[list[EmbeddedMemory], list[tuple[MemoryEvent, InvalidEventError]]]:
    """Embed a batch with one model call; events that bring their own vector keep it.

    A brought vector of the wrong dimension is refused (returned with its error), since it could
    never be compared with the others.
    """
    out: list[EmbeddedMemory | None] = [None] * len(events)
    refused: list[tuple[MemoryEvent, InvalidEventError]] = []
    to_embed: list[int] = []
    for i, ev in enumerate(events):
        if ev.embedding is None:
            to_embed.append(i)
            continue
        vec = np.asarray(ev.embedding, dtype=np.float32)
        norm = float(np.linalg.norm(vec))
        if vec.shape[0] != embedder.dim:
            refused.append(
                (
                    ev,
                    InvalidEventError(
                        f"embedding has {vec.shape[0]} values; "
                        f"this pipeline's model makes {embedder.dim}"
                    ),
                )
            )
        elif norm == 0.0:
            refused.append((ev, InvalidEventError("embedding is the zero vector")))
        else:
            out[i] = EmbeddedMemory.build(ev, vec / norm, "client", now)
    if to_embed:
        vecs = embedder.embed_many([text_of(events[i]) for i in to_embed])
        for row, i in enumerate(to_embed):
            out[i] = EmbeddedMemory.build(events[i], vecs[row], embedder.name, now)
    return [o for o in out if o is not None], refused
