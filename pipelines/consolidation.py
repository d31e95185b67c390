"""Distilling a stable cluster of episodes into a semantic memory: keywords and representatives.

Pure text logic; the memory stage decides when (see ``pipelines.memory_state``).

>>> keywords(["The fox crossed the river", "a fox by the river bank", "river fish"], 2)
['river', 'fox']
>>> summary_text(["river", "fox"], ["a fox by the river bank", "The fox crossed the river"])
'About river, fox: "a fox by the river bank"; "The fox crossed the river"'
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

# A small English stop list: enough to keep function words out of the keywords.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    out over own same she should so some such than that the their theirs them then there these
    they this those through to too under until up very was we were what when where which while
    who whom why will with would you your yours yourself also got get like one two just really
    yeah yes oh ok okay""".split()
)
WORD = re.compile(r"[a-z][a-z'-]{2,}")
MAX_CHARS = 2000


def keywords(texts: Sequence[str], n: int = 5) -> list[str]:
    """The ``n`` most frequent content words (document frequency, then term count, then a-z)."""
    df: Counter[str] = Counter()
    tf: Counter[str] = Counter()
    for text in texts:
        words = [w.strip("'-") for w in WORD.findall(text.lower())]
        words = [w for w in words if len(w) > 2 and w not in STOPWORDS]
        tf.update(words)
        df.update(set(words))
    ranked = sorted(df, key=lambda w: (-df[w], -tf[w], w))
    return ranked[:n]


def summary_text(words: Sequence[str], representatives: Sequence[str]) -> str:
    """The content of a derived semantic memory: its keywords and a few representative episodes."""
    head = f"About {', '.join(words)}" if words else "Recurring experience"
    quoted = "; ".join(f'"{" ".join(r.split())[:400]}"' for r in representatives)
    return f"{head}: {quoted}"[:MAX_CHARS] if quoted else head[:MAX_CHARS]
