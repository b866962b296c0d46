"""Tests of :mod:`echo_utils.report.cohort`: what notebooks 01 and 03 show of the cohort (the TED pairing from the
``cfg`` files, the one-pass overview with its biplane EF, the sin² law in one sentence); the frame matching is
checked with the evaluation sequences it describes in ``test_data_cohort.py``."""

from __future__ import annotations

import numpy as np
import pandas as pd
from echo_fixtures import PAPER_T
from test_data_cohort import _paper_cfg

from echo_utils.config import load_config
from echo_utils.data import cohort as cohort_data
from echo_utils.report import cohort
from echo_utils.rundir import RunPaths


def test_ted_pairing_from_cfg_files(tmp_path, monkeypatch):
    cfg, paths = _paper_cfg(tmp_path, monkeypatch)
    t = cohort.ted_pairing(cfg, paths).set_index("ted")
    assert list(t.index) == ["patient001", "patient002", "patient003", "patient019"]
    assert t["match"].tolist() == ["exact", "exact", "phase", "unmapped"]
    assert t.loc["patient003", ["ted_frames", "camus_frames"]].tolist() == [PAPER_T + 2, PAPER_T]
    assert t["camus_split"].tolist()[:3] == ["train"] * 3
    assert cohort.ted_pairing(load_config("notebooks/params/ci.yaml"), paths).empty


def test_cohort_overview_biplane_ef(tmp_path):
    """One pass over the synthetic cohort: per-patient biplane EF close to the EF the phantom was asked for."""
    cfg = load_config("notebooks/params/ci.yaml", {"data": {"n_patients": 3, "frames": [4, 5], "size": 64}})
    paths = RunPaths(tmp_path / "run")
    ov = cohort.cohort_overview(cfg, paths)
    assert ov.n_sequences == 6 and list(ov.table.index) == [f"patient{i:04d}" for i in (1, 2, 3)]
    assert (ov.table["biplane EF (%)"] - ov.table["Info EF (%)"]).abs().max() < 5  # 3.3 pp measured at 64 px
    assert len(ov.curves) == 6 and ov.example.view == "4CH"
    assert all({s.view for s in seqs} == {"2CH", "4CH"} for seqs in ov.examples.values())
    areas = ov.curves[0][2][1]
    key = ov.curves[0][0]
    seq = next(s for s in cohort_data.load_split(cfg, paths, "all") if s.key == key)
    np.testing.assert_allclose(areas, (seq.dense == 1).sum(axis=(1, 2)) * np.prod(seq.spacing) / 100.0)


def test_sin2_law_statement():
    t = pd.DataFrame({"key": ["a", "b"], "max_abs": [0.2, 0.4], "rms": [0.1, 0.3], "tau_at_max": [0.3, 0.5]})
    assert cohort.sin2_law_statement(t).startswith("2 sequences: max |area curve - sin² law| median 0.30 "
                                                   "(range 0.20-0.40), RMS median 0.20")
    assert "not measured" in cohort.sin2_law_statement(t.iloc[:0])
