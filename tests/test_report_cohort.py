"""Tests of :mod:`echo_utils.report.cohort`: what notebooks 01 and 03 show of the cohort (the TED pairing from the
``cfg`` files, the one-pass overview with its biplane EF, the sin² law in one sentence); the frame matching is
checked with the evaluation sequences it describes in ``test_data_cohort.py``."""

from __future__ import annotations

import numpy as np
import pandas as pd
from echo_fixtures import PAPER_T
from test_data_cohort import _paper_cfg

from echo_utils.config import load_config
from echo_utils.report import cohort
from echo_utils.rundir import RunPaths
from echo_utils.study import Study


def test_ted_pairing_from_cfg_files(tmp_path, monkeypatch):
    cfg, paths = _paper_cfg(tmp_path, monkeypatch)
    t = cohort.ted_pairing(Study.of(cfg, paths).cohort).set_index("ted")
    assert list(t.index) == ["patient001", "patient002", "patient003", "patient019"]
    assert t["match"].tolist() == ["exact", "exact", "phase", "unmapped"]
    assert t.loc["patient003", ["ted_frames", "camus_frames"]].tolist() == [PAPER_T + 2, PAPER_T]
    assert t["camus_split"].tolist()[:3] == ["train"] * 3
    ci = Study.of(load_config("notebooks/params/ci.yaml", {"data": {"n_patients": 3, "frames": [4, 5], "size": 48}}),
                  RunPaths(tmp_path / "ci"))
    assert cohort.ted_pairing(ci.cohort).empty  # the control: a cohort without TED


def test_cohort_overview_biplane_ef(tmp_path):
    """One pass over the synthetic cohort: per-patient biplane EF close to the EF the phantom was asked for."""
    cfg = load_config("notebooks/params/ci.yaml", {"data": {"n_patients": 3, "frames": [4, 5], "size": 64}})
    paths = RunPaths(tmp_path / "run")
    study = Study.of(cfg, paths)
    ov = cohort.cohort_overview(study.read_sequences(study.cohort.keys()), study.cohort.views)
    assert ov.n_sequences == 6 and list(ov.table.index) == [f"patient{i:04d}" for i in (1, 2, 3)]
    assert (ov.table["biplane EF (%)"] - ov.table["Info EF (%)"]).abs().max() < 5  # 3.3 pp measured at 64 px
    assert len(ov.curves) == 6 and ov.example.view == "4CH"
    assert all({s.view for s in seqs} == {"2CH", "4CH"} for seqs in ov.examples.values())
    areas = ov.curves[0][2][1]
    key = ov.curves[0][0]
    seq = next(s for s in study.sequences("all") if s.key == key)
    np.testing.assert_allclose(areas, (seq.dense == 1).sum(axis=(1, 2)) * np.prod(seq.spacing) / 100.0)


def test_sin2_law_statement():
    t = pd.DataFrame({"key": ["a", "b"], "max_abs": [0.2, 0.4], "rms": [0.1, 0.3], "tau_at_max": [0.3, 0.5]})
    assert cohort.sin2_law_statement(t).startswith("2 sequences: max |area curve - sin² law| median 0.30 "
                                                   "(range 0.20-0.40), RMS median 0.20")
    assert "not measured" in cohort.sin2_law_statement(t.iloc[:0])


def test_notebook_01_tables_and_sentences(tmp_path):
    """The split table, the sequence card, the EF and pairing sentences of notebook 01, on a 3-patient cohort."""
    cfg = load_config("notebooks/params/ci.yaml", {"data": {"n_patients": 3, "frames": [4, 5], "size": 48}})
    study = Study.of(cfg, RunPaths(tmp_path / "run"))
    split = {"train": ["p1", "p2", "p3"], "val": [], "test": ["p4"]}
    t = cohort.split_table(split, shown=2)
    assert t.loc["train"].tolist() == [3, "p1, p2 ..."] and t.loc["val"].tolist() == [0, ""]
    assert t.loc["test", "first patients"] == "p4"  # no "..." when every id is shown
    seq = study.sequences("test")[0]
    card = cohort.sequence_card(seq)["value"]
    assert card["key"] == seq.key and card["ED, ES (0-based)"] == (seq.ed, seq.es)
    assert card["sparse labels at frames"] == sorted(seq.labels) and card["dense kind"] == "exact"
    assert card["images"].startswith(f"{seq.images.shape} float32, range [")
    table = pd.DataFrame({"Info EF (%)": [50.0, 60.0], "biplane EF (%)": [51.0, 57.0]}, index=["a", "b"])
    assert cohort.ef_statement(table) == "biplane EF - Info EF: mean -1.00, max |error| 3.00 percentage points"
    assert "not read in both views" in cohort.ef_statement(table.drop(columns="biplane EF (%)"))
    assert "not checked" in cohort.ef_statement(table.assign(**{"Info EF (%)": [50.0, None]}))
    assert cohort.patient_table(pd.DataFrame({"x": [1.26] * 12}), rows=3)["x"].tolist() == [1.3] * 3
    pairing = pd.DataFrame({"match": ["exact", "phase", "exact", "unmapped"]})
    assert cohort.pairing_statement(pairing, ["c1", "c2"]) == (
        "4 TED patients by ED...ES frame match {'exact': 2, 'phase': 1, 'unmapped': 1} ('phase': another count than "
        "CAMUS); 2 CAMUS patients left out of registration training")
    summary = {"n_patients": 3, "size": 48, "frames": [4, 5], "seed": 0, "seconds": 1.5, "workers": 1}
    assert cohort.phantom_statement(summary) == ("synthetic cohort: 3 patients at 48x48 pixels, 4-5 frames ED->ES, "
                                                 "seed 0; generated in 1.5 s on 1 process(es)")
