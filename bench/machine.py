"""Describe the machine a benchmark ran on (stored next to every result)."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = [
    "faust-streaming",
    "aiokafka",
    "kafka-python",
    "pymilvus",
    "milvus-lite",
    "onnxruntime",
    "tokenizers",
    "sentence-transformers",
    "torch",
    "numpy",
]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_gib() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def describe() -> dict[str, Any]:
    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            versions[p] = None
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _mem_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "note": "shared, noisy machine: compare the ratios measured side by side in one run",
    }


def machine_title(out: dict[str, Any]) -> str:
    """ "CPU, N cores" of a result's ``machine``, for plot titles."""
    m = out.get("machine", {})
    return f"{m.get('cpu', '')}, {m.get('cores', '')} cores"


def write_results(out: dict[str, Any], folder: Path, name: str, plot: Any) -> None:
    """``folder/name.json`` and, drawn by ``plot(out, path)``, ``folder/name.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(out, indent=2) + "\n")
    plot(out, folder / f"{name}.png")
