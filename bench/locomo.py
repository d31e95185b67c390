"""LoCoMo retrieval quality: the project's recall (real pipeline) vs plain dense retrieval.

Each LoCoMo conversation (``../shared/data/locomo-dev/*.json``, read in place) is replayed
through the real pipeline: a local Kafka broker, one worker process (ingest, embed, memory
stage, store, recall over HTTP), published with ``MemoryPublisher``. Every turn becomes an
episodic memory of **both** speakers (one event per speaker agent, content ``"Speaker: text"``,
memory id ``<agent>/<dia_id>``) at its session's date and time (turn ``i`` of a session at
``+10 i`` seconds, so the order within a session is kept); one namespace per conversation.

Then, for every question with evidence: recall through ``MemoryClient.recall`` and evidence
recall@5/10/25 (the fraction of the evidence turns in the top k, averaged over questions).
Which agent asks: the speaker(s) the question names; when it names neither, both; hits of
several agents are merged by their best score (both agents hold the same turns). Side by side,
in the same run: plain dense retrieval (cosine top-k over the same texts, same embedder,
``pipelines.embed.load_embedder``, no pipeline).

Methods (``project*`` go through the worker's HTTP recall; the others are computed here):

- ``dense``: cosine top-k over the turns, no pipeline (the reference);
- ``bm25``: BM25 top-k over the turns (``pipelines.lexical``, the same words the worker
  weighs), no pipeline;
- ``project``: the worker's recall exactly as configured by default (relevance 1, recency 0.5,
  importance 0.3, lexical 0.4, ``time_hints`` on, all memory types, so derived semantic
  memories compete for the k slots): the method the goal is about;
- ``project_episodic``: the same, ``types=["episodic"]`` (no derived memories);
- ``project_no_lexical``: ``project`` with the lexical weight 0 (what the words add);
- ``project_no_time``: ``project`` with ``time_hints`` off (what the time preference adds);
- ``project_content``: relevance 1, lexical 0.4, time on, recency and importance 0, episodic:
  what the query's content and time alone rank;
- ``project_cosine``: relevance 1 and nothing else, episodic only: must equal ``dense`` (the
  check that the pipeline keeps every turn and embeds it exactly as the reference does);
- ``dense_context``: dense over each turn embedded with the turn before it (a content change:
  what the publisher would send), not through the pipeline.

Recalls reinforce what they return (the worker emits ``memory.access``), so questions are asked
in file order and every method is asked question by question (interleaved), so all methods see
the same reinforcement history.

    python -m bench.locomo [--conversations 26,30,41,42,43] [--quick] [--lifecycle default]

``--quick``: the first conversation only (unless ``--conversations`` is given) and its first 60
questions. ``--lifecycle default`` runs the worker with the project's default lifecycle
settings (to see what they throw away); the default run sets ``LONG_LIVED_ENV``.

Writes ``bench/results/locomo.json`` and ``bench/results/locomo.png``.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import describe
from bench.throughput import _wait_all_stored
from infra.local_kafka import LocalKafka
from pipelines.client import MemoryClient
from pipelines.embed import load_embedder
from pipelines.lexical import LexicalIndex, terms
from pipelines.processes import WorkerProcess
from pipelines.publisher import MemoryPublisher
from pipelines.settings import Settings
from pipelines.time_hints import named_period as feature_period
from schemas.recall import DEFAULT_TIME_SLACK_S, DEFAULT_TIME_WEIGHT

RESULTS = Path(__file__).parent / "results"
LOCOMO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "locomo-dev"
KS = (5, 10, 25)
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
TURN_STEP_S = 10.0
DAY = 86400.0
YEAR = 365 * DAY

# Worker settings for a months-long conversation. With the defaults a plain episodic memory
# (importance 0.5) has stability S = 6 h x 2 = 12 h and decays (R = exp(-dt/S) <= 0.05) about
# 36 h after it formed unless recalled; consolidated memories idle for 30 days are archived (out
# of default recalls). LoCoMo sessions are days to weeks apart over 6-12 months.
LONG_LIVED_ENV = {
    # S = 365 d x 2 for a plain episodic memory: R stays above exp(-1) over a 2-year replay
    "ARGOS_BASE_STABILITY_S": str(365 * DAY),
    # a consolidated memory stays in the hot collection (default recall) for 10 years
    "ARGOS_ARCHIVE_IDLE_S": str(10 * YEAR),
}
COMMON_ENV = {"ARGOS_OTEL_EXPORTER": "none", "ARGOS_ANALYTICS": "false"}
_DEFAULT = Settings()
NO_LEXICAL = {
    "relevance": _DEFAULT.recall_w_relevance,
    "recency": _DEFAULT.recall_w_recency,
    "importance": _DEFAULT.recall_w_importance,
    "lexical": 0.0,
}
CONTENT = {
    "relevance": 1.0,
    "recency": 0.0,
    "importance": 0.0,
    "lexical": _DEFAULT.recall_w_lexical,
}
COSINE = {"relevance": 1.0, "recency": 0.0, "importance": 0.0, "lexical": 0.0}


# -- data ------------------------------------------------------------------------------------


@dataclass
class Turn:
    dia_id: str
    speaker: str
    text: str
    ts: float
    session: int

    @property
    def content(self) -> str:
        return f"{self.speaker}: {self.text}"


@dataclass
class Question:
    text: str
    evidence: list[str]
    category: int


@dataclass
class Conversation:
    name: str
    speakers: tuple[str, str]
    turns: list[Turn]
    questions: list[Question]
    skipped_no_evidence: int = 0
    dropped_evidence_ids: list[str] = field(default_factory=list)

    def agent(self, speaker: str) -> str:
        return re.sub(r"[^a-z0-9]+", "-", speaker.lower()).strip("-") or "speaker"


def _session_ts(text: str) -> float:
    return datetime.strptime(text, "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC).timestamp()


def _norm_evidence(raw: Iterable[str], known: set[str]) -> tuple[list[str], list[str]]:
    """Evidence ids as turns of the conversation: ``"D8:6; D9:17"`` is two, ``"D:11:26"`` is
    ``D11:26``; ids that name no turn are dropped (returned second)."""
    out, dropped = [], []
    for item in raw:
        for part in re.split(r"[;,\s]+", item):
            if not part:
                continue
            m = re.fullmatch(r"D:?(\d+):(\d+)", part)
            dia = f"D{m.group(1)}:{m.group(2)}" if m else part
            if dia in known and dia not in out:
                out.append(dia)
            elif dia not in known:
                dropped.append(part)
    return out, dropped


def load(path: Path) -> Conversation:
    d = json.loads(path.read_text())
    turns: list[Turn] = []
    n = 1
    while f"session_{n}" in d:
        t0 = _session_ts(d[f"session_{n}_date_time"])
        for i, t in enumerate(d[f"session_{n}"]):
            turns.append(Turn(t["dia_id"], t["speaker"], t["text"], t0 + TURN_STEP_S * i, n))
        n += 1
    known = {t.dia_id for t in turns}
    conv = Conversation(path.stem, (d["speaker_a"], d["speaker_b"]), turns, [])
    for q in d["qa"]:
        ev, dropped = _norm_evidence(q.get("evidence") or [], known)
        conv.dropped_evidence_ids += dropped
        if not ev:
            conv.skipped_no_evidence += 1
            continue
        conv.questions.append(Question(q["question"], ev, int(q["category"])))
    return conv


def events(conv: Conversation, namespace: str) -> list[dict[str, Any]]:
    """One episodic memory event per turn and per speaker agent."""
    out = []
    for t in conv.turns:
        when = datetime.fromtimestamp(t.ts, UTC).isoformat().replace("+00:00", "Z")
        for speaker in conv.speakers:
            agent = conv.agent(speaker)
            out.append(
                {
                    "schema_version": 1,
                    "memory_id": f"{agent}/{t.dia_id}",
                    "agent_id": agent,
                    "namespace": namespace,
                    "type": "episodic",
                    "content": t.content,
                    "event_time": when,
                    "tags": [f"session-{t.session}"],
                }
            )
    return out


# -- question analysis (prototypes) ----------------------------------------------------------


def named_speakers(conv: Conversation, question: str) -> list[str]:
    """Speakers the question names (first name, or a prefix of at least 3 letters: "Mel")."""
    words = set(re.findall(r"[a-z]+", question.lower()))
    out = []
    for s in conv.speakers:
        first = s.split()[0].lower()
        if first in words or any(len(w) >= 3 and first.startswith(w) for w in words):
            out.append(s)
    return out


# -- metrics ---------------------------------------------------------------------------------


def recall_at(ranked: list[str | None], evidence: list[str], k: int) -> float:
    top = set(x for x in ranked[:k] if x is not None)
    return sum(e in top for e in evidence) / len(evidence)


@dataclass
class Scores:
    """Per question: category and recall@k of each method."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, conv: str, q: Question, method: str, ranked: list[str | None]) -> None:
        self.rows.append(
            {
                "conv": conv,
                "category": q.category,
                "method": method,
                **{f"r@{k}": recall_at(ranked, q.evidence, k) for k in KS},
            }
        )

    def summary(self, key: str | None = None) -> dict[str, dict[str, dict[str, float]]]:
        """{group: {method: {r@k: mean, n}}}; group = conversation, category, or "all"."""
        acc: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        for r in self.rows:
            g = "all" if key is None else str(r[key])
            if key == "category":
                g = f"{r['category']}-{CATEGORIES.get(r['category'], '?')}"
            acc[g][r["method"]].append(r)
        return {
            g: {
                m: {
                    **{f"r@{k}": float(np.mean([x[f"r@{k}"] for x in rs])) for k in KS},
                    "n": len(rs),
                }
                for m, rs in sorted(ms.items())
            }
            for g, ms in sorted(acc.items())
        }


# -- the pipeline ----------------------------------------------------------------------------


def _dia(memory_id: str) -> str | None:
    """The turn a memory id names (``agent/D3:7`` -> ``D3:7``); None for derived memories."""
    m = re.fullmatch(r"[a-z0-9-]+/(D\d+:\d+)", memory_id)
    return m.group(1) if m else None


def merged(hit_lists: list[list[Any]], score: Any = None) -> list[tuple[str | None, float, Any]]:
    """Hits of several agents merged: each turn once, at its best score, best first; derived
    memories (no turn) keep their slot."""
    best: dict[str, tuple[str | None, float, Any]] = {}
    for hits in hit_lists:
        for h in hits:
            s = h.score if score is None else score(h)
            key = _dia(h.memory_id) or h.memory_id
            if key not in best or s > best[key][1]:
                best[key] = (_dia(h.memory_id), s, h)
    return sorted(best.values(), key=lambda x: -x[1])


def lifecycle_report(bootstrap: str, topic: str) -> dict[str, Any]:
    """Every memory's last state and the near-duplicates, from ``<prefix>.memory.lifecycle``."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    parts = [TopicPartition(topic, p) for p in (c.partitions_for_topic(topic) or [])]
    c.assign(parts)
    c.seek_to_beginning(*parts)
    end = c.end_offsets(parts)
    last: dict[tuple[str, str], str] = {}
    folded: dict[tuple[str, str], str] = {}  # (ns, near-copy id) -> the memory it reinforced
    deadline = time.monotonic() + 60
    while any(c.position(p) < end[p] for p in parts) and time.monotonic() < deadline:
        for recs in c.poll(timeout_ms=500).values():
            for r in recs:
                e = json.loads(r.value)
                last[(e["namespace"], e["memory_id"])] = e["to_state"]
                if e.get("cause") == "duplicate":
                    for rel in e.get("related") or []:
                        folded[(e["namespace"], rel)] = e["memory_id"]
    c.close()
    return {"last_state": last, "folded": folded}


class Pipeline:
    def __init__(self, kafka: LocalKafka, workdir: Path, env: dict[str, str]) -> None:
        self.kafka = kafka
        self.prefix = f"locomo-{uuid.uuid4().hex[:8]}"
        self.worker = WorkerProcess(
            kafka.bootstrap_servers,
            workdir / self.prefix,
            topic_prefix=self.prefix,
            app_id=f"{self.prefix}-app",
            embedder="onnx",
            extra_env=env,
        )
        self.client: MemoryClient | None = None

    def __enter__(self) -> Pipeline:
        self.client = self.worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.worker.stop()

    def replay(self, evs: list[dict[str, Any]]) -> dict[str, Any]:
        assert self.client is not None
        t0 = time.perf_counter()
        with MemoryPublisher(self.kafka.bootstrap_servers, f"{self.prefix}.memory.events") as pub:
            pub.publish_many(evs)
            pub.flush()
        _wait_all_stored(self.client, len(evs))
        self.client.wait_counter("clustered", len(evs), timeout=600)
        _wait_all_stored(self.client, len(evs))  # derived memories of the last batches
        s = self.client.stats()
        return {
            "events": len(evs),
            "seconds": time.perf_counter() - t0,
            **{k: int(s[k]) for k in ("stored", "decayed", "strengthened", "derived", "archived")},
        }


# -- the bench -------------------------------------------------------------------------------


def run(
    convs: list[Conversation], env: dict[str, str], quick: bool, dense_context: bool
) -> dict[str, Any]:
    emb = load_embedder("onnx")
    scores = Scores()
    per_conv: dict[str, Any] = {}
    timing: dict[str, float] = defaultdict(float)
    with tempfile.TemporaryDirectory() as tmp, LocalKafka(Path(tmp) / "kafka") as kafka:
        with Pipeline(kafka, Path(tmp), {**COMMON_ENV, **env}) as pipe:
            assert pipe.client is not None
            client = pipe.client
            namespaces = {c.name: f"locomo-{c.name}" for c in convs}
            all_events = [e for c in convs for e in events(c, namespaces[c.name])]
            ingest = pipe.replay(all_events)
            print(f"replayed {ingest}", flush=True)
            life = lifecycle_report(kafka.bootstrap_servers, f"{pipe.prefix}.memory.lifecycle")
            for c in convs:
                ns = namespaces[c.name]
                qs = c.questions[:60] if quick else c.questions
                t0 = time.perf_counter()
                vecs = emb.embed_many([t.content for t in c.turns])
                qvecs = emb.embed_many([q.text for q in qs])
                ctx_vecs = None
                if dense_context:
                    ctx = [
                        f"{c.turns[i - 1].content}\n{t.content}"
                        if i and c.turns[i - 1].session == t.session
                        else t.content
                        for i, t in enumerate(c.turns)
                    ]
                    ctx_vecs = emb.embed_many(ctx)
                timing["dense_embed_s"] += time.perf_counter() - t0
                ids = [t.dia_id for t in c.turns]
                lexicon = LexicalIndex()
                for i, t in enumerate(c.turns):
                    lexicon.set(i, t.content)
                span = (c.turns[0].ts, c.turns[-1].ts)
                # what the lifecycle did to this conversation's evidence
                lost: dict[str, int] = defaultdict(int)
                for t in c.turns:
                    for s in c.speakers:
                        mid = f"{c.agent(s)}/{t.dia_id}"
                        if (ns, mid) in life["folded"]:
                            lost["folded_as_near_duplicate"] += 1
                        st = life["last_state"].get((ns, mid))
                        if st not in (None, "active"):  # consolidated, decayed, archived
                            lost[f"turn_memories_{st}"] += 1
                evid = {e for q in qs for e in q.evidence}
                ev_gone = sorted(
                    e
                    for e in evid
                    if all(
                        (ns, f"{c.agent(s)}/{e}") in life["folded"]
                        or life["last_state"].get((ns, f"{c.agent(s)}/{e}"))
                        not in ("active", "consolidated")
                        for s in c.speakers
                    )
                )
                t0 = time.perf_counter()
                for qi, q in enumerate(qs):
                    # dense reference
                    order = np.argsort(-(vecs @ qvecs[qi]), kind="stable")[: max(KS)]
                    scores.add(c.name, q, "dense", [ids[j] for j in order])
                    lex = lexicon.scores(terms(q.text), len(ids))
                    order = np.argsort(-lex, kind="stable")[: max(KS)]
                    scores.add(c.name, q, "bm25", [ids[j] for j in order])
                    if ctx_vecs is not None:
                        order = np.argsort(-(ctx_vecs @ qvecs[qi]), kind="stable")[: max(KS)]
                        scores.add(c.name, q, "dense_context", [ids[j] for j in order])
                    named = named_speakers(c, q.text)
                    agents = [c.agent(s) for s in (named or c.speakers)]

                    def ask(**kw: Any) -> list[str | None]:
                        hits = [
                            client.recall(ns, a, q.text, k=max(KS), **kw).hits  # noqa: B023
                            for a in agents  # noqa: B023
                        ]
                        return [d for d, _, _ in merged(hits)]

                    scores.add(c.name, q, "project", ask())
                    scores.add(c.name, q, "project_episodic", ask(types=["episodic"]))
                    scores.add(c.name, q, "project_no_lexical", ask(weights=NO_LEXICAL))
                    scores.add(c.name, q, "project_no_time", ask(time_hints=False))
                    scores.add(
                        c.name, q, "project_content", ask(weights=CONTENT, types=["episodic"])
                    )
                    scores.add(
                        c.name,
                        q,
                        "project_cosine",
                        ask(weights=COSINE, types=["episodic"], time_hints=False),
                    )
                timing["recall_loop_s"] += time.perf_counter() - t0
                per_conv[c.name] = {
                    "speakers": list(c.speakers),
                    "turns": len(c.turns),
                    "sessions": c.turns[-1].session,
                    "span_days": round((span[1] - span[0]) / DAY, 1),
                    "questions_scored": len(qs),
                    "questions_skipped_no_evidence": c.skipped_no_evidence,
                    "evidence_ids_dropped": c.dropped_evidence_ids,
                    "questions_naming_a_period": sum(
                        feature_period(q.text, span[1]) is not None for q in qs
                    ),
                    "lifecycle": dict(lost),
                    "evidence_turns_lost_for_both_agents": ev_gone,
                }
                print(
                    f"{c.name}: {len(qs)} questions, lifecycle {dict(lost)}, "
                    f"evidence lost {len(ev_gone)}",
                    flush=True,
                )
            final = pipe.client.stats()
    return {
        "ingest": ingest,
        "worker_stats_after": {
            k: final.get(k) for k in ("stored", "decayed", "strengthened", "derived", "archived")
        },
        "conversations": per_conv,
        "by_conversation": scores.summary("conv"),
        "by_category": scores.summary("category"),
        "overall": scores.summary()["all"],
        "timing": dict(timing),
    }


METHOD_ORDER = [
    "dense",
    "bm25",
    "project",
    "project_episodic",
    "project_no_lexical",
    "project_no_time",
    "project_content",
    "project_cosine",
    "dense_context",
]


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [*out["by_conversation"], "all"]
    table = {**out["by_conversation"], "all": out["overall"]}
    methods = [m for m in METHOD_ORDER if m in out["overall"]]
    fig, axes = plt.subplots(1, len(KS), figsize=(5.2 * len(KS), 5.2), sharey=True)
    width = 0.8 / len(methods)
    colours = plt.get_cmap("tab20").colors
    for ax, k in zip(axes, KS, strict=True):
        for j, m in enumerate(methods):
            ys = [table[g].get(m, {}).get(f"r@{k}", 0.0) for g in groups]
            xs = [i - 0.4 + width * (j + 0.5) for i in range(len(groups))]
            ax.bar(xs, ys, width, label=m, color=colours[j % len(colours)])
        ax.set_xticks(range(len(groups)), groups)
        ax.set_title(f"evidence recall@{k}")
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("fraction of evidence turns in the top k")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(methods), fontsize=7)
    m = out["machine"]
    fig.suptitle(
        f"LoCoMo dev: project recall (real pipeline) vs plain dense, all-MiniLM-L6-v2 int8; "
        f"{m['cores']} cores, {m['cpu'][:40]}",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conversations", default="", help="e.g. 26,30 (default: all in the folder)")
    ap.add_argument("--quick", action="store_true", help="one conversation, 60 questions")
    ap.add_argument(
        "--lifecycle",
        choices=["long", "stability", "default"],
        default="long",
        help="long: LONG_LIVED_ENV (default); stability: its stability only (archiving at the "
        "default 30 days idle); default: the project's lifecycle defaults",
    )
    ap.add_argument("--no-dense-context", action="store_true")
    ap.add_argument("--out", default=str(RESULTS / "locomo.json"))
    ap.add_argument("--replot", action="store_true", help="only redraw the PNG from --out")
    args = ap.parse_args(argv)
    if args.replot:
        plot(json.loads(Path(args.out).read_text()), Path(args.out).with_suffix(".png"))
        return 0
    files = sorted(LOCOMO.glob("*.json"), key=lambda p: p.stem)
    if args.conversations:
        wanted = args.conversations.split(",")
        files = [f for f in files if f.stem in wanted]
    elif args.quick:
        files = files[:1]
    convs = [load(f) for f in files]
    env = {
        "long": LONG_LIVED_ENV,
        "stability": {"ARGOS_BASE_STABILITY_S": LONG_LIVED_ENV["ARGOS_BASE_STABILITY_S"]},
        "default": {},
    }[args.lifecycle]
    t0 = time.perf_counter()
    res = run(convs, env, args.quick, not args.no_dense_context)
    out: dict[str, Any] = {
        "machine": describe(),
        "data": str(LOCOMO),
        "conversations_run": [c.name for c in convs],
        "quick": args.quick,
        "embedder": "onnx (all-MiniLM-L6-v2 int8), the worker's and the dense reference's",
        "worker_env": {**COMMON_ENV, **env},
        "agent_choice": "the speaker(s) a question names, else both; hits merged by best score",
        "weights": {
            "project": "the worker's defaults (pipelines.settings)",
            "project_no_lexical": NO_LEXICAL,
            "project_content": CONTENT,
            "project_cosine": COSINE,
            "time_weight": DEFAULT_TIME_WEIGHT,
            "time_slack_s": DEFAULT_TIME_SLACK_S,
        },
        "previous_dense_r10": {"torch": 0.474, "int8": 0.472},
        **res,
        "seconds": time.perf_counter() - t0,
    }
    path = Path(args.out)
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    plot(out, path.with_suffix(".png"))
    print(
        json.dumps({"overall": out["overall"], "by_conversation": out["by_conversation"]}, indent=1)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
