"""Lexical relevance for recall: BM25 over one agent's memories, kept up to date in place.

Dense sentence embeddings blur the words a question turns on: names, places, objects, dates
("What did Caroline research?", "When did Melanie paint a sunrise?"). On LoCoMo dev, BM25 alone
found more evidence in the top 10 than all-MiniLM-L6-v2 cosine (0.59 against 0.47), and the two
together more than either (0.65-0.66 for cosine + 0.3..0.5 x BM25 scaled to the best hit;
``bench/locomo.py``). So the hot index keeps, next to each agent's vectors, an inverted index of
its memories' words, and a recall adds ``lexical`` (BM25 of the query, divided by the best
candidate's BM25, so in [0, 1]) with its weight.

BM25 (Robertson/Sparck Jones, the Lucene/Elasticsearch default):
``sum over query terms t: idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avglen))`` with
``idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))``; N, df and avglen are the agent's own (its
memories are the corpus).

Row numbers are the owning partition's: ``set`` a row's text, ``remove_at`` with the same
swap-with-last move as the partition's arrays.

>>> ix = LexicalIndex()
>>> for i, text in enumerate(["Caroline went to a pottery class", "Melanie painted a sunrise",
...                            "Caroline researched adoption agencies"]):
...     ix.set(i, text)
>>> [round(float(x), 3) for x in ix.scores(terms("What did Caroline research?"), 3)]
[0.453, 0.0, 0.453]
>>> [round(float(x), 3) for x in ix.scores(terms("adoption agencies"), 3)]
[0.0, 0.0, 1.891]
>>> ix.remove_at(0, 2)  # row 2 moves to 0
>>> [round(float(x), 3) for x in ix.scores(terms("adoption"), 2)]
[0.655, 0.0]
"""

from __future__ import annotations

import math
import re
import sys
from collections import Counter
from collections.abc import Sequence

import numpy as np

# English function words: they match everywhere and say nothing about which memory is meant
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom whose why will with would you your yours yourself
    yourselves s t d ll m re ve""".split()
)
_WORD = re.compile(r"[^\W_]+")

K1 = 1.2
B = 0.75


def terms(text: str) -> list[str]:
    """The words of ``text`` that count: lower case letters and digits (any script), stop words
    dropped.

    >>> terms("Caroline's LGBTQ support group, on 7 May 2023!")
    ['caroline', 'lgbtq', 'support', 'group', '7', 'may', '2023']
    """
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


class LexicalIndex:
    """An inverted index with BM25 scoring over numbered rows (one agent's memories)."""

    def __init__(self, k1: float = K1, b: float = B) -> None:
        self.k1, self.b = k1, b
        # term -> its postings, a (2, capacity) int32 array (rows, term frequencies) of which
        # the first ``df[term]`` columns are live, order free (removal swaps in the last one),
        # so scoring a term is one vectorised step however many rows hold it. Arrays and ints
        # only: the garbage collector tracks none of it (a postings object per term was a
        # third of a loaded worker's tracked objects, and a full collection visits them all)
        self.postings: dict[str, np.ndarray] = {}
        self.df: dict[str, int] = {}  # term -> rows holding it
        self.rows: list[dict[str, int]] = []  # row -> term -> its entry in the term's postings
        self.lengths = np.zeros(0, dtype=np.float32)  # row -> number of terms
        self.total = 0  # sum of lengths
        self.n_postings = 0

    def __len__(self) -> int:
        return len(self.rows)

    def set(self, i: int, text: str) -> None:
        """Index ``text`` as row ``i`` (``i`` is an existing row, replaced, or the next one)."""
        if i > len(self.rows):
            raise IndexError(f"row {i} after the last row {len(self.rows) - 1}")
        tf = Counter(map(sys.intern, terms(text)))  # one str per word, whatever rows hold it
        if i == len(self.rows):
            self.rows.append({})
            if i >= self.lengths.size:
                grown = np.zeros(max(16, 2 * self.lengths.size), dtype=np.float32)
                grown[: self.lengths.size] = self.lengths
                self.lengths = grown
        self._unpost(i)
        entries = self.rows[i]
        for t, f in tf.items():
            entries[t] = self._post(t, i, f)
        self.n_postings += len(tf)
        n = sum(tf.values())
        self.lengths[i] = n
        self.total += n

    def extend(self, texts: Sequence[str]) -> None:
        """Index ``texts`` as the next rows, in order: ``set`` for each, with each term's new
        postings gathered in lists and written into its array in one step (a warm loads an
        agent's rows at once; numpy writes one by one cost more than the words)."""
        start = len(self.rows)
        end = start + len(texts)
        if end > self.lengths.size:
            grown = np.zeros(max(16, 2 * self.lengths.size, end), dtype=np.float32)
            grown[: self.lengths.size] = self.lengths
            self.lengths = grown
        new: dict[str, tuple[list[int], list[int]]] = {}
        df = self.df
        for i, text in enumerate(texts, start):
            tf = Counter(map(sys.intern, terms(text)))
            entries: dict[str, int] = {}
            for t, f in tf.items():
                acc = new.get(t)
                if acc is None:
                    acc = new[t] = ([], [])
                entries[t] = df.get(t, 0) + len(acc[0])
                acc[0].append(i)
                acc[1].append(f)
            self.rows.append(entries)
            n = sum(tf.values())
            self.lengths[i] = n
            self.total += n
            self.n_postings += len(tf)
        for t, (rows, fs) in new.items():
            n = df.get(t, 0)
            need = n + len(rows)
            post = self.postings.get(t)
            if post is None or need > post.shape[1]:
                grown = np.empty((2, max(4, need, 2 * n)), dtype=np.int32)
                if post is not None:
                    grown[:, :n] = post[:, :n]
                post = self.postings[t] = grown
            post[0, n:need] = rows
            post[1, n:need] = fs
            df[t] = need

    def _post(self, t: str, row: int, f: int) -> int:
        """Add (row, f) to term ``t``'s postings; returns its entry."""
        post, n = self.postings.get(t), self.df.get(t, 0)
        if post is None:
            post = self.postings[t] = np.empty((2, 4), dtype=np.int32)
        elif n == post.shape[1]:
            grown = np.empty((2, 2 * n), dtype=np.int32)
            grown[:, :n] = post
            post = self.postings[t] = grown
        post[0, n], post[1, n] = row, f
        self.df[t] = n + 1
        return n

    def _unpost(self, i: int) -> None:
        entries = self.rows[i]
        for t, j in entries.items():
            post, n = self.postings[t], self.df[t] - 1
            if n == 0:
                del self.postings[t], self.df[t]
                continue
            self.df[t] = n
            if j != n:  # the last entry moves into j
                post[:, j] = post[:, n]
                self.rows[int(post[0, j])][t] = j
        self.n_postings -= len(entries)
        entries.clear()
        self.total -= int(self.lengths[i])
        self.lengths[i] = 0

    def remove_at(self, i: int, last: int) -> None:
        """Drop row ``i``; row ``last`` (the final one) takes its number."""
        if last != len(self.rows) - 1:
            raise IndexError(f"row {last} is not the last row ({len(self.rows) - 1})")
        self._unpost(i)
        if i != last:
            moved = self.rows[last]
            for t, j in moved.items():
                self.postings[t][0, j] = i
            self.rows[i] = moved
            self.lengths[i] = self.lengths[last]
            self.lengths[last] = 0
        self.rows.pop()

    def scores(self, query: list[str], n: int) -> np.ndarray:
        """BM25 of every row ``< n`` for the query terms (0 where none occurs), float32."""
        out = np.zeros(n, dtype=np.float32)
        if not self.rows or not query:
            return out
        size = len(self.rows)
        avg = self.total / size if self.total else 1.0
        slope = self.k1 * self.b / avg
        base = self.k1 * (1.0 - self.b)
        for t in set(query):
            post = self.postings.get(t)
            if post is None:
                continue
            df = self.df[t]
            idf = math.log(1.0 + (size - df + 0.5) / (df + 0.5))
            rows, tf = post[0, :df], post[1, :df].astype(np.float32)
            if n < size:
                keep = rows < n
                rows, tf = rows[keep], tf[keep]
            norm = base + slope * self.lengths[rows]
            out[rows] += idf * (self.k1 + 1.0) * tf / (tf + norm)  # a term's rows are distinct
        return out

    def nbytes(self) -> int:
        """A rough size: the per-row entry maps (Python dicts) and the postings arrays (8 bytes
        an entry, up to twice that while they grow, and ~180 bytes per term: array, dict slots)."""
        arrays = 12 * self.n_postings + 180 * len(self.postings)
        return 70 * self.n_postings + 60 * len(self.rows) + arrays + self.lengths.nbytes


def normalised(raw: np.ndarray) -> np.ndarray:
    """BM25 scaled to the best candidate's (1.0), float64; all zero when nothing matched.

    >>> normalised(np.array([0.0, 2.0, 4.0], dtype=np.float32)).tolist()
    [0.0, 0.5, 1.0]
    """
    best = float(raw.max()) if raw.size else 0.0
    out = np.asarray(raw, dtype=np.float64)
    return out / best if best > 0 else np.zeros_like(out)
