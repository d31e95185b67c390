"""The lexical part of recall: BM25 kept up to date in place, and its weight in the hot index."""

from __future__ import annotations

import gc
import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.hot_index import HotIndex, RecallFilters
from pipelines.lexical import K1, B, LexicalIndex, normalised, terms
from pipelines.scoring import ScoreWeights
from pipelines.store import StoredMemory
from schemas.recall import RecallRequest

WORDS = ["fox", "owl", "river", "well", "bread", "oven", "water", "stone", "the", "a"]


def reference(docs: list[str], query: str) -> list[float]:
    """BM25 from scratch over ``docs`` (the textbook formula, no incremental state)."""
    toks = [terms(d) for d in docs]
    n = len(toks)
    avg = sum(map(len, toks)) / n if n and sum(map(len, toks)) else 1.0
    df = Counter(t for d in toks for t in set(d))
    out = []
    for d in toks:
        tf, s = Counter(d), 0.0
        for t in set(terms(query)):
            if tf[t]:
                idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                s += idf * tf[t] * (K1 + 1) / (tf[t] + K1 * (1 - B + B * len(d) / avg))
        out.append(s)
    return out


texts = st.lists(st.sampled_from(WORDS), max_size=8).map(" ".join)
ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "add", "extend", "replace", "remove"]),
        st.integers(0, 80),
        texts,
        st.lists(texts, max_size=6),
    ),
    max_size=120,
)


@settings(max_examples=200, deadline=None)
@given(ops, texts)
def test_incremental_index_scores_as_a_fresh_one(script: list, query: str) -> None:
    """Adds (one row, or several at once: ``extend``), replacements and swap-with-last
    removals in any order: the scores equal BM25 computed from scratch over the rows as they
    are now."""
    ix, docs = LexicalIndex(), []
    for op, at, text, more in script:
        if op == "extend":
            ix.extend(more)
            docs.extend(more)
        elif op == "add" or not docs:
            ix.set(len(docs), text)
            docs.append(text)
        elif op == "replace":
            i = at % len(docs)
            ix.set(i, text)
            docs[i] = text
        else:
            i, last = at % len(docs), len(docs) - 1
            ix.remove_at(i, last)
            docs[i] = docs[last]
            docs.pop()
    assert len(ix) == len(docs)
    got = ix.scores(terms(query), len(docs))
    assert got.tolist() == pytest.approx(reference(docs, query), rel=1e-5, abs=1e-5)
    assert ix.total == sum(len(terms(d)) for d in docs)
    assert ix.n_postings == sum(len(set(terms(d))) for d in docs) == sum(ix.df.values())
    assert set(ix.df) == set(ix.postings) == {t for d in docs for t in terms(d)}


def test_postings_add_no_objects_for_the_garbage_collector() -> None:
    """A full collection visits every tracked object: the index keeps its postings in arrays
    and ints, so once collected, none of it is tracked however many terms it holds."""
    ix = LexicalIndex()
    for i in range(200):
        ix.set(i, f"memory {i} of word{i} and word{i + 1} near the river")
    ix.extend([f"memory {i} of word{i} by the well" for i in range(200, 400)])
    gc.collect()
    assert len(ix.postings) > 200
    assert not gc.is_tracked(ix.postings) and not gc.is_tracked(ix.df)
    assert not any(gc.is_tracked(r) for r in ix.rows)


def test_terms_drop_stop_words_and_keep_any_script() -> None:
    assert terms("What did Caroline do at the LGBTQ+ support group?") == [
        "caroline",
        "lgbtq",
        "support",
        "group",
    ]
    assert terms("Zoë visited Kraków; 東京 in 2023") == ["zoë", "visited", "kraków", "東京", "2023"]
    assert terms("snake_case field_names") == ["snake", "case", "field", "names"]
    assert terms("the a of") == []


def test_bad_row_numbers_are_errors() -> None:
    ix = LexicalIndex()
    with pytest.raises(IndexError):
        ix.set(1, "gap")
    ix.set(0, "one")
    ix.set(1, "two")
    with pytest.raises(IndexError):
        ix.remove_at(0, 0)  # 0 is not the last row


def test_normalised_is_zero_without_a_match() -> None:
    assert normalised(np.zeros(3, dtype=np.float32)).tolist() == [0.0, 0.0, 0.0]
    assert normalised(np.zeros(0, dtype=np.float32)).tolist() == []


def _row(mid: str, text: str, v: np.ndarray) -> StoredMemory:
    return StoredMemory(mid, "ann", "w", "episodic", text, 0.5, 0.0, "", v, {})


def test_words_of_the_query_lift_the_memory_that_has_them() -> None:
    """Two memories equally close to the query vector: the one with the query's rare word ranks
    first, with lexical 1.0; without query words or with weight 0 there is no lexical part."""
    ix = HotIndex(dim=2)
    v = np.array([1.0, 0.0], dtype=np.float32)
    ix.upsert(
        [_row("a", "we walked by the river", v), _row("b", "Caroline met the adoption agency", v)]
    )
    req = RecallRequest(namespace="w", agent_id="ann", query="the adoption agency", k=2)
    hits = ix.recall(req, v, ScoreWeights(1.0, 0.0, 0.0, 0.4))
    assert [h.memory.memory_id for h in hits] == ["b", "a"]
    assert hits[0].parts.lexical == 1.0 and hits[1].parts.lexical == 0.0
    assert hits[0].score == pytest.approx(hits[0].parts.relevance + 0.4)
    assert hits[0].to_recall_hit().parts.lexical == 1.0  # type: ignore[union-attr]
    off = ix.recall(req, v, ScoreWeights(1.0, 0.0, 0.0, 0.0))
    assert [h.parts.lexical for h in off] == [None, None]
    plain = ix.search(v, RecallFilters("w", "ann"), k=2)  # vector only: no words
    assert [h.parts.lexical for h in plain] == [None, None]


def test_lexical_part_follows_removals_and_replacements() -> None:
    """Decays (swap-with-last in the partition) and re-upserts keep the words with their rows."""
    rng = np.random.default_rng(0)
    texts = [f"{WORDS[i % 8]} {WORDS[(i * 3) % 8]} memory {i}" for i in range(40)]
    vecs = rng.standard_normal((40, 8)).astype(np.float32)
    ix = HotIndex(dim=8)
    ix.upsert([_row(f"m{i}", t, vecs[i]) for i, t in enumerate(texts)])
    for i in range(0, 40, 3):
        ix.update_life("w", "ann", f"m{i}", "decayed", 3600.0, 0.0, 0)
    ix.upsert([_row("m1", "owl owl stone", vecs[1])])
    texts[1] = "owl owl stone"
    fresh = HotIndex(dim=8)
    fresh.upsert([_row(f"m{i}", t, vecs[i]) for i, t in enumerate(texts) if i % 3])
    req = RecallRequest(namespace="w", agent_id="ann", query="owl stone river", k=40)
    q, w = vecs[5], ScoreWeights(1.0, 0.0, 0.0, 0.5)
    got = {h.memory.memory_id: h.parts.lexical for h in ix.recall(req, q, w)}
    want = {h.memory.memory_id: h.parts.lexical for h in fresh.recall(req, q, w)}
    assert got.keys() == want.keys() and len(got) == 40 - 14
    for mid in got:
        assert got[mid] == pytest.approx(want[mid], abs=1e-6)
