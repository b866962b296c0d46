"""The benchmarks chapter's tables are rendered from the committed JSON results, not typed (benchmarks/summary.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_committed_benchmark_summary_matches_the_json_results():
    spec = importlib.util.spec_from_file_location("bench_summary", ROOT / "benchmarks" / "summary.py")
    summary = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(summary)
    committed = (ROOT / "book" / "benchmark_summary.md").read_text()
    assert committed == summary.render(), "rerun `.venv/bin/python benchmarks/summary.py` after the benchmarks"
    assert "{include} benchmark_summary.md" in (ROOT / "book" / "benchmarks.md").read_text()
    assert (ROOT / "book" / "seed_summary.md").read_text() == summary.render_seeds()
    assert "{include} seed_summary.md" in (ROOT / "book" / "results.md").read_text()
