"""The study's data (echo_utils.data.cohort): cohort, split, the registration's exclusions and the Fig. 2 set.

The end-to-end paper protocol (CAMUS + TED -> registration -> pseudo-labels -> scores) is in
``test_paper_protocol.py``; these are the unit tests of each selection.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from echo_fixtures import (
    PAPER_SPLIT,
    PAPER_T,
    PAPER_TED,
    write_nifti_patient,
    write_paper_study,
)

from echo_utils.data import camus
from echo_utils.data.camus import EchoDataError, EchoSequence
from echo_utils.config import load_config
from echo_utils.rundir import RunPaths
from echo_utils.data import cohort as cohort_data
from echo_utils.report import cohort

# --- cohort and split ---------------------------------------------------------------------------------------------


def test_load_split_synthetic(tmp_path):
    cfg = load_config("notebooks/params/ci.yaml", {"data": {"n_patients": 4, "frames": [4, 5], "size": 48}})
    paths = RunPaths(tmp_path / "run")
    split = cohort_data.study_split(cfg, paths)
    assert sorted(sum(split.values(), [])) == [f"patient{i:04d}" for i in range(1, 5)]
    assert all(split[k] for k in ("train", "test"))
    assert not set(split["train"]) & set(split["test"])
    assert cohort_data.study_sequences(cfg, paths, "test") == [(p, v) for p in split["test"] for v in ("2CH", "4CH")]
    seqs = cohort_data.load_split(cfg, paths, "train")
    assert [s.key for s in seqs] == [f"{p}_{v}" for p in split["train"] for v in ("2CH", "4CH")]
    assert all(s.dense_kind == "exact" and s.shape == (48, 48) for s in seqs)
    lazy = cohort_data.iter_split(cfg, paths, "train")
    assert not isinstance(lazy, list)
    first = next(lazy)
    assert first.key == seqs[0].key
    np.testing.assert_array_equal(first.images, seqs[0].images)
    assert (paths.data / "database_nifti").is_dir()
    # resize and views
    cfg2 = load_config("notebooks/params/ci.yaml", {"data": {"n_patients": 4, "frames": [4, 5], "size": 48,
                                                             "resize": 64, "views": ["4CH"]}})
    seqs2 = cohort_data.load_split(cfg2, paths, "test")
    assert [s.view for s in seqs2] == ["4CH"] * len(split["test"])
    assert seqs2[0].shape == (64, 64)
    ref = camus.load_sequence(paths.data / "database_nifti" / split["test"][0], "4CH")
    assert seqs2[0].spacing == pytest.approx((ref.spacing[0] * 48 / 64, ref.spacing[1] * 48 / 64))
    # another cohort size in the same run directory is refused, not silently overwritten
    cfg3 = load_config("notebooks/params/ci.yaml", {"data": {"n_patients": 5, "frames": [4, 5], "size": 48}})
    with pytest.raises(RuntimeError, match="made with other settings"):
        cohort_data.load_split(cfg3, paths, "all")


def test_read_sequences_reads_only_the_given_keys_and_names_a_missing_folder(tmp_path):
    from echo_utils.data.camus import list_patients

    cfg = load_config("notebooks/params/ci.yaml", {"data": {"n_patients": 4, "frames": [4, 5], "size": 48}})
    paths = RunPaths(tmp_path / "run")
    root = cohort_data.study_root(cfg, paths)
    patients = list_patients(root)
    keys = [("patient0003", "4CH"), ("patient0001", "2CH")]
    seqs = list(cohort_data.read_sequences(patients, keys, root=root, listed_in="the test"))
    assert [s.key for s in seqs] == ["patient0003_4CH", "patient0001_2CH"]
    full = {s.key: s for s in cohort_data.load_split(cfg, paths, "all")}
    np.testing.assert_array_equal(seqs[0].images, full["patient0003_4CH"].images)
    lazy = cohort_data.read_sequences(patients, [("patient0001", "2CH"), ("patient0099", "2CH")], root=root,
                                listed_in="this shard")
    with pytest.raises(EchoDataError, match=r"\['patient0099'\] are listed in this shard but have no folder"):
        next(lazy)  # checked before the first sequence is read


def test_load_split_camus_env_and_seeded_split(tmp_path, monkeypatch):
    def cfg_for(**data):
        return load_config("notebooks/params/ci.yaml", {"data": {"source": "camus", "root": "${CAMUS_ROOT}",
                                                                 "test_fraction": 0.1, "val_fraction": 0.0,
                                                                 **data}})

    paths = RunPaths(tmp_path / "run")
    monkeypatch.delenv("CAMUS_ROOT", raising=False)
    with pytest.raises(ValueError, match="CAMUS_ROOT"):  # the profile names the unset variable
        cfg_for()
    monkeypatch.setenv("CAMUS_ROOT", str(tmp_path / "missing"))
    with pytest.raises(EchoDataError, match="folder not found"):
        cohort_data.load_split(cfg_for(), paths, "all")
    root = tmp_path / "camus"
    for i in range(1, 11):
        write_nifti_patient(root, f"patient{i:04d}")  # no database_split: seeded split written to split.json
    monkeypatch.setenv("CAMUS_ROOT", str(root))
    cfg = cfg_for()
    split = cohort_data.study_split(cfg, paths)
    assert len(split["test"]) == 1 and len(split["train"]) == 9 and split["val"] == []
    stored = json.loads((paths.data / "split.json").read_text())
    assert stored["split"] == split
    assert cohort_data.study_split(cfg, paths) == split  # reused
    test = cohort_data.load_split(cfg, paths, "test")
    assert [s.key for s in test] == [f"{split['test'][0]}_2CH", f"{split['test'][0]}_4CH"]
    assert test[0].dense_kind == "interpolated"
    s4 = cohort_data.study_split(cfg_for(max_patients=4), paths)
    assert sum(len(v) for v in s4.values()) <= 4 and s4["test"]
    with pytest.raises(EchoDataError, match="split.json"):
        cohort_data.study_split(cfg_for(seed=5), paths)


def test_split_patients_seeded_and_disjoint():
    pats = [f"patient{i:04d}" for i in range(1, 21)]
    s = cohort_data.split_patients(pats, 3, 0.2, 0.25)
    assert (len(s["testing"]), len(s["validation"]), len(s["training"])) == (4, 4, 12)
    assert sorted(sum(s.values(), [])) == pats
    assert cohort_data.split_patients(pats, 3, 0.2, 0.25) == s
    assert cohort_data.split_patients(pats, 4, 0.2, 0.25) != s


# --- the paper protocol: TED patients --------------------------------------------------------------------------


def _paper_cfg(tmp_path, monkeypatch, **data):
    camus_root, ted_root = write_paper_study(tmp_path)
    monkeypatch.setenv("CAMUS_ROOT", str(camus_root))
    monkeypatch.setenv("TED_ROOT", str(ted_root))
    cfg = load_config("notebooks/params/paper.yaml", {"data": {"resize": None, **data}})
    return cfg, RunPaths(tmp_path / "run")


def test_registration_exclusions(tmp_path, monkeypatch):
    cfg, paths = _paper_cfg(tmp_path, monkeypatch)
    excl = cohort_data.registration_exclusions(cfg, paths)
    assert excl == sorted(camus.read_ted_map().values()) and len(excl) == 94  # all of the authors' 94
    mapped = {c for c, _ in PAPER_TED.values() if c}
    assert mapped <= set(excl) and "patient0001" not in excl
    # no TED: nothing to leave out (the evaluation is on the validation/test split)
    assert cohort_data.registration_exclusions(load_config("notebooks/params/ci.yaml"), paths) == []
    no_ted = load_config("notebooks/params/paper.yaml", {"data": {"ted_root": None}})
    assert cohort_data.registration_exclusions(no_ted, paths) == []


def test_pair_ted_with_camus_seeds_and_reference():
    """CAMUS images and seeds, TED reference; frames matched by phase when the counts differ; TED resampled."""
    rng = np.random.default_rng(0)
    T, H, W = 5, 8, 6
    cam_lab = {0: np.full((H, W), 1, np.uint8), 4: np.full((H, W), 2, np.uint8)}
    cam = EchoSequence("patient0005", "4CH", rng.random((T, H, W), dtype=np.float32), (0.3, 0.6), 0, 4,
                       labels=cam_lab, info={"ED": 1})
    ted_dense = np.stack([np.full((2 * H, 2 * W), t % 4, np.uint8) for t in range(12)])
    ted = EchoSequence("patient003", "4CH", rng.random((12, 2 * H, 2 * W), dtype=np.float32), (0.15, 0.3), 2, 10,
                       labels={}, dense=ted_dense, dense_kind="manual")
    s = cohort_data.pair_ted_with_camus(cam, ted)
    assert (s.patient, s.view, s.ed, s.es, s.dense_kind) == ("patient0005", "4CH", 0, 4, "manual")
    assert s.images is cam.images and s.spacing == cam.spacing
    assert {k: v.tolist() for k, v in s.labels.items()} == {k: v.tolist() for k, v in cam_lab.items()}
    assert s.dense.shape == (T, H, W)
    # CAMUS frame t at phase t/4 takes TED frame round(2 + 8 t / 4) = 2, 4, 6, 8, 10 -> values t % 4
    assert [int(s.dense[t, 0, 0]) for t in range(T)] == [2 % 4, 4 % 4, 6 % 4, 8 % 4, 10 % 4]
    assert (s.info["TED"], s.info["FrameMatch"], s.info["TEDResampled"]) == ("patient003", "phase", True)
    assert (s.info["TEDFramesEDES"], s.info["CAMUSFramesEDES"]) == (9, 5)
    # same count: frame by frame
    ted5 = EchoSequence("patient001", "4CH", ted.images[:7, :H, :W], (0.3, 0.6), 1, 5, dense=ted_dense[:7, :H, :W])
    s5 = cohort_data.pair_ted_with_camus(cam, ted5)
    assert s5.info["FrameMatch"] == "exact" and not s5.info["TEDResampled"]
    np.testing.assert_array_equal(s5.dense, ted_dense[1:6, :H, :W])


def test_evaluation_sequences_paper_protocol(tmp_path, monkeypatch):
    cfg, paths = _paper_cfg(tmp_path, monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seqs = cohort_data.evaluation_sequences(cfg, paths)
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
        s64 = cohort_data.evaluation_sequences(cfg64, paths)
    assert [s.shape for s in s64] == [(64, 64)] * 2


def test_evaluation_sequences_missing_camus_patient(tmp_path, monkeypatch):
    cfg, paths = _paper_cfg(tmp_path, monkeypatch)
    import shutil

    shutil.rmtree(tmp_path / "camus" / "database_nifti" / "patient0004")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(EchoDataError, match=r"CAMUS patients \['patient0004'\] \(mapped from TED\) have no folder"):
            cohort_data.evaluation_sequences(cfg, paths)


def test_check_unseen_on_camus_ids(tmp_path, monkeypatch):
    cfg, paths = _paper_cfg(tmp_path, monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = cohort_data.evaluation_sequences(cfg, paths)
    train = cohort_data.load_split(cfg, paths, "train") + cohort_data.load_split(cfg, paths, "val")
    assert {s.patient for s in ev} <= set(PAPER_SPLIT["train"])  # the TED patients are CAMUS training patients
    with pytest.raises(EchoDataError, match=r"3 evaluation patient\(s\) are in the registration's training data"):
        cohort_data.check_unseen(train, ev)
    cohort_data.check_unseen(train, ev, cohort_data.registration_exclusions(cfg, paths))


def test_evaluation_sequences_ted_alone_and_camus_alone(tmp_path, monkeypatch):
    """Without the CAMUS/TED pairing the selection says what its reference and seeds are."""
    camus_root, ted_root = write_paper_study(tmp_path)
    paths = RunPaths(tmp_path / "run")
    ted = load_config("notebooks/params/ci.yaml", {"data": {"source": "ted", "ted_root": str(ted_root),
                                                            "test_fraction": 0.25, "val_fraction": 0.34}})
    with pytest.warns(UserWarning, match="seeds are TED's own ED/ES labels"):
        seqs = cohort_data.evaluation_sequences(ted, paths)
    assert seqs and all(s.dense_kind == "manual" and len(s.patient) == len("patient001") for s in seqs)
    cam = load_config("notebooks/params/ci.yaml", {"data": {"source": "camus", "root": str(camus_root)}})
    with pytest.warns(UserWarning, match="interpolated"):
        seqs = cohort_data.evaluation_sequences(cam, RunPaths(tmp_path / "run2"))
    assert {s.patient for s in seqs} == set(PAPER_SPLIT["val"]) and seqs[0].dense_kind == "interpolated"
