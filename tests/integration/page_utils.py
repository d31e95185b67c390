"""Helpers of the browser tests: where screenshots go, and waiting on the page's state."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def artifacts() -> Path:
    """``$ARGOS_ARTIFACTS``, default ``tests/artifacts/`` (git-ignored: never committed)."""
    env = os.environ.get("ARGOS_ARTIFACTS")
    path = Path(env) if env else ROOT / "tests" / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    if not env:
        (path / ".gitignore").write_text("*\n")
    return path


def wait_js(page: Any, js: str, timeout_s: float = 20.0) -> Any:
    """Wait until the page's ``js`` function returns a truthy value; returns that value."""
    return page.wait_for_function(js, timeout=timeout_s * 1000).json_value()
