"""The real model (int8 ONNX all-MiniLM-L6-v2, offline) behaves like a sentence embedder."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.embed import DIM, Embedder, HashingEmbedder, OnnxMiniLM, load_embedder
from pipelines.errors import EmbedderUnavailableError


@pytest.fixture(scope="module")
def onnx() -> OnnxMiniLM:
    return OnnxMiniLM(threads=2, batch_size=8)


def test_onnx_vectors_are_unit_and_semantic(onnx: OnnxMiniLM) -> None:
    texts = [
        "A wolf chased me through the forest",
        "I was hunted by a wild animal in the woods",
        "The market sells fresh bread",
        "",
    ]
    v = onnx.embed_many(texts)
    assert v.shape == (4, DIM) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert v[0] @ v[1] > 0.5 > v[0] @ v[2]


def test_a_vector_depends_on_its_text_only_bit_for_bit(onnx: OnnxMiniLM) -> None:
    """Restarts and replays cut batches differently; the vectors must not notice."""
    texts = [("word " * n).strip() for n in (30, 1, 12, 5, 60, 2, 9, 17, 3, 12, 5)]
    texts += [f"agent {i} saw a fox near the river" for i in range(20)]
    together = onnx.embed_many(texts)
    alone = np.stack([onnx.embed_many([t])[0] for t in texts])
    shuffled = onnx.embed_many(texts[::-1])[::-1]
    halves = np.concatenate([onnx.embed_many(texts[:13]), onnx.embed_many(texts[13:])])
    assert np.array_equal(together, alone)
    assert np.array_equal(together, shuffled)
    assert np.array_equal(together, halves)


def test_long_text_is_truncated_not_refused(onnx: OnnxMiniLM) -> None:
    assert onnx.embed_many(["memory " * 3000]).shape == (1, DIM)


def test_every_embedder_meets_the_protocol() -> None:
    for e in (HashingEmbedder(), load_embedder("onnx")):
        assert isinstance(e, Embedder) and e.embed_many([]).shape == (0, e.dim)


def test_unknown_backend_is_a_configuration_error() -> None:
    with pytest.raises(EmbedderUnavailableError, match="unknown embedder"):
        load_embedder("word2vec")
