"""``python -m bench.all``: the one command that runs every benchmark and summarises them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.all import BENCHES, RESULTS, VARIANT_RESULTS, main, summary


def test_every_benchmark_module_exists_and_is_listed() -> None:
    modules = {p.stem for p in RESULTS.parent.glob("*.py")} - {"__init__", "all", "machine"}
    assert modules == set(BENCHES)


def test_summary_reads_the_committed_results(tmp_path: Path) -> None:
    text = summary(RESULTS)
    rows = [ln for ln in text.splitlines() if ln.startswith("| [") or "not run yet" in ln]
    extra = [n for n in VARIANT_RESULTS if (RESULTS / f"{n}.json").exists()]
    assert len(rows) == len(BENCHES) + len(extra)
    # every headline the summary knows how to read, read from the committed JSON without error
    assert "see the JSON (" not in text
    assert "pipeline ÷ model ceiling" in text and "evidence R@10" in text


def test_summary_of_a_new_result(tmp_path: Path) -> None:
    shutil.copy(RESULTS / "throughput.json", tmp_path / "throughput.json")
    d = json.loads((tmp_path / "throughput.json").read_text())
    d["pipeline_to_ceiling_ratio"] = 0.123
    (tmp_path / "throughput.json").write_text(json.dumps(d))
    assert main(["--summary", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "summary.md").read_text()
    assert "**0.12**" in text and text.count("not run yet") == len(BENCHES) - 1


def test_unknown_names_are_refused() -> None:
    with pytest.raises(SystemExit):
        main(["--only", "thruput"])
