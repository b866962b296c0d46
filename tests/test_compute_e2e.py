"""The whole ``ci`` study with ``compute.backend: local`` gives the same result tables as the ``inline`` run.

Issue 18's "done when": the notebooks run end to end with every job (DIR training, pseudo-label shards, nnU-Net
trainings and prediction sets) in submitit's local executor, and every table the run writes under ``metrics/``
equals the inline run's. The inline reference is the ci run that ``test_book.py`` executes once per session.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from echo_utils.rundir import RunPaths
from echo_utils.run import run_notebooks
from test_book import build_ci_book

PARAMS = Path(__file__).resolve().parent.parent / "notebooks" / "params" / "ci.yaml"
# wall-clock columns (training logs, timings, time per pair): they differ between any two runs
WALL_CLOCK = re.compile(r"second|timestamp|time per|wall|elapsed|duration", re.I)


def _tables(metrics: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for path in sorted(metrics.glob("*.csv")):
        df = pd.read_csv(path)
        out[path.name] = df.drop(columns=[c for c in df.columns if WALL_CLOCK.search(str(c))])
    return out


def _assert_tables_equal(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    assert a.keys() == b.keys(), f"tables only in one run: {sorted(a.keys() ^ b.keys())}"
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=False, rtol=0, atol=1e-12, obj=name)


@pytest.mark.slow
def test_ci_study_local_backend_tables_equal_inline(tmp_path_factory, tmp_path):
    root, executed, _ = build_ci_book(tmp_path_factory)
    inline = RunPaths(root / "runs" / "ci")
    local = RunPaths(tmp_path / "run")
    ran = run_notebooks(PARAMS, run_dir=local.root, output_dir=tmp_path / "notebooks",
                        overrides={"compute": {"backend": "local", "poll_seconds": 0.5}})  # never a cache key
    assert [p.name for p in ran] == [p.name for p in executed]

    # the jobs went through submitit's local executor (the inline run submits nothing)
    jobs = sorted(p for p in (local.root / "jobs").iterdir() if p.is_dir())
    names = {p.name for p in jobs}
    assert "dir-training" in names and any(n.startswith("pseudo-labels-") for n in names)
    assert any(n.startswith("nnunet-train-") for n in names) and any(n.startswith("nnunet-predict-") for n in names)
    for job in jobs:
        assert json.loads((job / "submitted.json").read_text())["backend"] == "local", job.name
        assert (job / "done.json").exists(), job.name
    assert not list((inline.root / "jobs").glob("*/submitted.json"))

    ref, got = _tables(inline.metrics), _tables(local.metrics)
    assert {"table1_scores.csv", "table2_indices.csv", "smoothness.csv", "fig2_videos.csv",
            "pseudo_label_scores.csv"} <= ref.keys()
    _assert_tables_equal(ref, got)

    # the control: the comparison sees a change of 1e-9 in one Table 1 Dice score
    table1 = got["table1_scores.csv"].copy()
    row = table1["dice"].first_valid_index()
    table1.loc[row, "dice"] += 1e-9
    with pytest.raises(AssertionError):
        _assert_tables_equal(ref, {**got, "table1_scores.csv": table1})
