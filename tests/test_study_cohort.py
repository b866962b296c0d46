"""The study's cohort (echo_utils.study.cohort): the profile resolved into a Cohort (split, folders, exclusions, the
TED pairing) and the Fig. 2 evaluation set of a Study, on the synthetic cohort and the paper's CAMUS + TED layout."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
from echo_fixtures import PAPER_SPLIT, PAPER_T, PAPER_TED, write_paper_study
from test_data_cohort import _paper_cfg

from echo_utils.config import load_config
from echo_utils.data import camus
from echo_utils.data import cohort as cohort_data
from echo_utils.data.camus import EchoDataError
from echo_utils.report import cohort
from echo_utils.rundir import RunPaths
from echo_utils.study import Study, stages
from echo_utils.study.cohort import Cohort, evaluation_sequences, resolve_cohort


def test_paper_cohort_holds_the_ted_pairing_and_the_exclusions(tmp_path, monkeypatch):
    cfg, paths = _paper_cfg(tmp_path, monkeypatch)
    c = resolve_cohort(cfg, paths)
    assert c.exclusions == tuple(cohort_data.ted_exclusions(cfg.data)) and len(c.exclusions) == 94
    pairs, unmapped = cohort_data.ted_pairs(cfg.data)
    assert c.ted_pairs == tuple(tuple(p) for p in pairs) and c.ted_unmapped == ("patient019",)
    assert set(c.ted_patients) == set(PAPER_TED) and all(c.ted_patients[t].endswith(t) for t in c.ted_patients)
    assert {k: list(v) for k, v in c.split.items()} == {k: sorted(v) for k, v in PAPER_SPLIT.items()}
    assert c.split_of("patient0002") == "train" and c.split_of("patient9999") is None
    again = Cohort.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again == c
    old = {k: v for k, v in c.to_dict().items() if k not in ("ted_unmapped", "ted_patients")}
    assert Cohort.from_dict(old).ted_pairs == c.ted_pairs  # a job planned before these fields existed


def test_the_stage_and_the_study_read_the_same_cohort(tmp_path):
    cfg = load_config("notebooks/params/ci.yaml", {"data": {"n_patients": 4, "frames": [4, 5], "size": 48}})
    paths = RunPaths(tmp_path / "run")
    study = Study.of(cfg, paths)
    ev = stages.evaluation_set(study)
    assert [s.key for s in ev] == [f"{p}_{v}" for split in ("val", "test") for p, v in study.cohort.keys(split)]
    assert [s.key for s in study.sequences("val")] == [f"{p}_{v}" for p, v in study.cohort.keys("val")]
    assert not hasattr(cohort_data, "load_split") and not hasattr(cohort_data, "study_sequences")  # one home


def test_evaluation_sequences_paper_protocol(tmp_path, monkeypatch):
    cfg, paths = _paper_cfg(tmp_path, monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seqs = evaluation_sequences(Study.of(cfg, paths))
    msgs = [str(w.message) for w in caught]
    assert any("1 TED patient(s) have no CAMUS id" in m and "patient019" in m for m in msgs)
    assert any(m.startswith("1 of 3 TED patients have another number of frames") for m in msgs)
    assert [s.key for s in seqs] == ["patient0002_4CH", "patient0004_4CH", "patient0005_4CH"]
    assert all(s.n_frames == PAPER_T and s.dense.shape == s.images.shape for s in seqs)
    fm = cohort.frame_matching(seqs)
    assert fm["match"].tolist() == ["exact", "exact", "phase"] and fm["resampled"].tolist() == [False, True, False]
    assert int((fm["match"] == "phase").sum()) == 1
    for s in seqs:
        ref = camus.load_sequence(tmp_path / "camus" / "database_nifti" / s.patient, "4CH")
        np.testing.assert_array_equal(s.images, ref.images)  # the CAMUS half-sequence ...
        for k in (s.ed, s.es):
            np.testing.assert_array_equal(s.labels[k], ref.labels[k])  # ... and its manual seeds
            assert not np.array_equal(s.labels[k], s.dense[k])  # the TED reference is another annotation
        assert not (s.dense == 3).any()  # TED has no LA
    # resized like the study; limited by pseudo_labels.max_sequences
    cfg64 = load_config("notebooks/params/paper.yaml", {"data": {"resize": 64},
                                                        "pseudo_labels": {"max_sequences": 2}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s64 = evaluation_sequences(Study.of(cfg64, paths))
    assert [s.shape for s in s64] == [(64, 64)] * 2


def test_evaluation_sequences_missing_camus_patient(tmp_path, monkeypatch):
    cfg, paths = _paper_cfg(tmp_path, monkeypatch)
    shutil.rmtree(tmp_path / "camus" / "database_nifti" / "patient0004")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(EchoDataError, match=r"CAMUS patients \['patient0004'\] \(mapped from TED\) have no folder"):
            evaluation_sequences(Study.of(cfg, paths))


def test_check_unseen_on_camus_ids(tmp_path, monkeypatch):
    cfg, paths = _paper_cfg(tmp_path, monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = evaluation_sequences(Study.of(cfg, paths))
    study = Study.of(cfg, paths)
    train = study.sequences("train") + study.sequences("val")
    assert {s.patient for s in ev} <= set(PAPER_SPLIT["train"])  # the TED patients are CAMUS training patients
    with pytest.raises(EchoDataError, match=r"3 evaluation patient\(s\) are in the registration's training data"):
        cohort_data.check_unseen(train, ev)
    cohort_data.check_unseen(train, ev, study.cohort.exclusions)


def test_evaluation_sequences_ted_alone_and_camus_alone(tmp_path, monkeypatch):
    """Without the CAMUS/TED pairing the selection says what its reference and seeds are."""
    camus_root, ted_root = write_paper_study(tmp_path)
    paths = RunPaths(tmp_path / "run")
    ted = load_config("notebooks/params/ci.yaml", {"data": {"source": "ted", "ted_root": str(ted_root),
                                                            "test_fraction": 0.25, "val_fraction": 0.34}})
    with pytest.warns(UserWarning, match="seeds are TED's own ED/ES labels"):
        seqs = evaluation_sequences(Study.of(ted, paths))
    assert seqs and all(s.dense_kind == "manual" and len(s.patient) == len("patient001") for s in seqs)
    cam = load_config("notebooks/params/ci.yaml", {"data": {"source": "camus", "root": str(camus_root)}})
    with pytest.warns(UserWarning, match="interpolated"):
        seqs = evaluation_sequences(Study.of(cam, RunPaths(tmp_path / "run2")))
    assert {s.patient for s in seqs} == set(PAPER_SPLIT["val"]) and seqs[0].dense_kind == "interpolated"
