"""Clustering quality: the online micro-clusters vs offline clustering of the same vectors.

Data with known groups, embedded with the pipeline's model (ONNX int8 all-MiniLM-L6-v2):
- simulated agents: each agent's memories, grouped by their ``theme:*`` tag;
- LoCoMo dev (../shared/data/locomo-dev): each conversation's turns, grouped by session.

For each group of vectors, the online clusterer (``pipelines.clustering``, one pass in event
order) and two offline baselines that see all vectors at once and are told the true number of
groups (scikit-learn agglomerative, average linkage on cosine; k-means on unit vectors) are scored
against the truth by adjusted Rand index and NMI.

    python -m bench.clustering_quality  ->  bench/results/clustering_quality.{json,png}

``--sweep`` scores the online clusterer over a grid of thresholds, chosen on the simulated agents
only (by ARI) and then checked on LoCoMo, which the choice never sees
(``bench/results/clustering_sweep.json``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from bench.machine import describe
from pipelines.clustering import AgentClusters, ClusterParams
from pipelines.embed import OnnxMiniLM
from pipelines.embed_stage import text_of
from pipelines.simulation import Population, theme_of

RESULTS = Path(__file__).parent / "results"
LOCOMO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "locomo-dev"


def _online(ids: list[str], vecs: np.ndarray, params: ClusterParams) -> list[str]:
    ac = AgentClusters("x", params)
    for i, v in zip(ids, vecs, strict=True):
        ac.add(i, v, 0.0)
    return [ac.where[i] for i in ids]


def _score(truth: list[Any], pred: list[Any]) -> dict[str, float]:
    return {
        "ari": float(adjusted_rand_score(truth, pred)),
        "nmi": float(normalized_mutual_info_score(truth, pred)),
        "clusters": len(set(pred)),
    }


def evaluate(
    groups: dict[str, tuple[list[str], np.ndarray, list[str]]], params: ClusterParams
) -> dict[str, Any]:
    per: dict[str, dict[str, Any]] = {}
    for name, (ids, vecs, truth) in groups.items():
        k = len(set(truth))
        agg = AgglomerativeClustering(n_clusters=k, metric="cosine", linkage="average")
        km = KMeans(n_clusters=k, n_init=10, random_state=0)
        per[name] = {
            "n": len(ids),
            "true_groups": k,
            "online": _score(truth, _online(ids, vecs, params)),
            "agglomerative": _score(truth, agg.fit_predict(vecs).tolist()),
            "kmeans": _score(truth, km.fit_predict(vecs).tolist()),
        }
    mean = {
        m: {s: float(np.mean([p[m][s] for p in per.values()])) for s in ("ari", "nmi", "clusters")}
        for m in ("online", "agglomerative", "kmeans")
    }
    return {"mean": mean, "groups": per}


def simulated(emb: OnnxMiniLM) -> dict[str, tuple[list[str], np.ndarray, list[str]]]:
    events = list(Population(12, seed=3, namespace="q").events(1800))
    vecs = emb.embed_many([text_of(e) for e in events])
    by_agent: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(events):
        by_agent[e.agent_id].append(i)
    return {
        a: ([events[i].memory_id for i in idx], vecs[idx], [theme_of(events[i]) for i in idx])
        for a, idx in by_agent.items()
    }


def locomo(emb: OnnxMiniLM) -> dict[str, tuple[list[str], np.ndarray, list[str]]]:
    out = {}
    for f in sorted(LOCOMO.glob("*.json")):
        conv = json.loads(f.read_text())
        ids, texts, truth = [], [], []
        n = 1
        while f"session_{n}" in conv:
            for t in conv[f"session_{n}"]:
                ids.append(t["dia_id"])
                texts.append(f"{t['speaker']}: {t['text']}")
                truth.append(f"s{n}")
            n += 1
        out[f"locomo-{f.stem}"] = (ids, emb.embed_many(texts), truth)
    return out


GRID = {
    "join_threshold": (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75),
    "merge_threshold": (0.7, 0.75, 0.8, 0.85, 0.88),
    "split_radius": (0.45, 0.5, 0.55),
}


def _online_mean(groups: dict[str, Any], params: ClusterParams) -> dict[str, float]:
    scores = [_score(truth, _online(ids, vecs, params)) for ids, vecs, truth in groups.values()]
    return {s: float(np.mean([x[s] for x in scores])) for s in ("ari", "nmi", "clusters")}


def sweep(emb: OnnxMiniLM) -> dict[str, Any]:
    """Every grid point on the simulated agents; the best (by ARI) and the
    defaults are then scored on LoCoMo, held out."""
    import itertools

    sim = simulated(emb)
    rows = []
    for join, merge, split in itertools.product(*GRID.values()):
        if merge <= join:
            continue
        params = ClusterParams(join, merge, split)
        rows.append({"params": params.__dict__, "simulated": _online_mean(sim, params)})
    rows.sort(key=lambda r: -r["simulated"]["ari"])
    best = ClusterParams(**rows[0]["params"])
    default = ClusterParams()
    out: dict[str, Any] = {
        "machine": describe(),
        "embedder": emb.name,
        "objective": (
            "ARI over the simulated agents (theme groups): chance-adjusted, so more, smaller "
            "clusters are not rewarded as NMI rewards them"
        ),
        "grid": GRID,
        "ranked": rows,
        "best": best.__dict__,
        "default": default.__dict__,
    }
    if LOCOMO.is_dir():
        held = locomo(emb)
        out["held_out_locomo"] = {
            "best": _online_mean(held, best),
            "default": _online_mean(held, default),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    import sys

    emb = OnnxMiniLM()
    if "--sweep" in (sys.argv[1:] if argv is None else argv):
        res = sweep(emb)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "clustering_sweep.json").write_text(json.dumps(res, indent=2) + "\n")
        for r in res["ranked"][:8]:
            print(r["params"], {k: round(v, 3) for k, v in r["simulated"].items()})
        print("held out:", json.dumps(res.get("held_out_locomo"), indent=1))
        return 0
    params = ClusterParams()
    res: dict[str, Any] = {"machine": describe(), "params": params.__dict__, "embedder": emb.name}
    res["simulated"] = evaluate(simulated(emb), params)
    if LOCOMO.is_dir():
        res["locomo"] = evaluate(locomo(emb), params)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "clustering_quality.json").write_text(json.dumps(res, indent=2) + "\n")
    _plot(res, RESULTS / "clustering_quality.png")
    for data in ("simulated", "locomo"):
        if data in res:
            for m, s in res[data]["mean"].items():
                print(
                    f"{data:10s} {m:14s} ARI {s['ari']:.3f}  NMI {s['nmi']:.3f}  "
                    f"clusters {s['clusters']:.1f}"
                )
    return 0


def _plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = [d for d in ("simulated", "locomo") if d in res]
    methods = ["online", "agglomerative", "kmeans"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, metric in zip(axes, ("ari", "nmi"), strict=True):
        for j, m in enumerate(methods):
            vals = [res[d]["mean"][m][metric] for d in datasets]
            ax.bar([i + 0.27 * (j - 1) for i in range(len(datasets))], vals, 0.27, label=m)
        ax.set_xticks(range(len(datasets)), datasets)
        ax.set_title(metric.upper())
    axes[0].legend(fontsize=8)
    fig.suptitle("online micro-clusters vs offline (told the true k)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
