"""Describe the machine a benchmark ran on (stored next to every result)."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from importlib import metadata
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
