"""Loaded by a worker started with this folder on ``PYTHONPATH`` (``bench/heap_census.py``).

With ``ARGOS_HEAP_CENSUS`` set to a folder, a daemon thread waits for a file named
``trigger-<pid>`` there; then it counts the objects the garbage collector tracks, by type (the
objects a full collection visits: its pause grows with them), times one full collection, and
writes ``census-<pid>.json`` beside the trigger. Without the variable it does nothing.
When the worker runs under ``tracemalloc`` (``PYTHONTRACEMALLOC=N``), each census also dumps a
snapshot of the traced allocations to ``snapshot-<pid>-<n>.tracemalloc`` (n counts the censuses),
which ``bench.heap_census --bytes`` compares step to step: the bytes each memory adds, by the
line that allocated them.
"""

from __future__ import annotations

import gc
import json
import os
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path


def young(top: int = 15) -> dict[str, object]:
    """What a young collection visits now: the objects in generations 0 and 1 and, by type, the
    references they hold (each one is followed, into old objects too)."""
    objs = gc.get_objects(0) + gc.get_objects(1)
    refs: Counter[str] = Counter()
    for o in objs:
        refs[f"{type(o).__module__}.{type(o).__qualname__}"] += len(gc.get_referents(o))
    n = len(objs)
    del objs
    return {"objects": n, "references": sum(refs.values()), "top": refs.most_common(top)}


def census(top: int = 40) -> dict[str, object]:
    before = young()
    gc.collect()  # count what lives, not the cyclic garbage waiting for the next collection
    t0 = time.perf_counter()
    objs = gc.get_objects()
    types = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in objs)
    counted_s = time.perf_counter() - t0
    tracked = len(objs)
    del objs
    t0 = time.perf_counter()
    gc.collect()
    return {
        "tracked": tracked,
        "frozen": gc.get_freeze_count(),
        "full_collection_s": time.perf_counter() - t0,
        "census_s": counted_s,
        "top": types.most_common(top),
        "young": before,
    }


def _watch(folder: Path) -> None:
    trigger = folder / f"trigger-{os.getpid()}"
    done = 0
    while True:
        time.sleep(0.5)
        if trigger.exists():
            trigger.unlink()
            out = folder / f"census-{os.getpid()}.json"
            if tracemalloc.is_tracing():
                gc.collect()
                snap = folder / f"snapshot-{os.getpid()}-{done}.tracemalloc"
                tracemalloc.take_snapshot().dump(str(snap))
            done += 1
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps(census()))
            tmp.rename(out)


if os.environ.get("ARGOS_HEAP_CENSUS"):
    threading.Thread(
        target=_watch, args=(Path(os.environ["ARGOS_HEAP_CENSUS"]),), daemon=True
    ).start()
