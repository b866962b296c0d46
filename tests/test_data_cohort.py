"""The cohort's data in plain arguments (echo_utils.data.cohort): roots, split, keys, the registration's exclusions
and the TED pairing.

The study's resolution of them (profile + run directory -> Cohort, the Fig. 2 evaluation set) is tested in
``test_study_cohort.py``; the end-to-end paper protocol (CAMUS + TED -> registration -> pseudo-labels -> scores) in
``test_paper_protocol.py``.
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


def _read(data, root, keys):
    from echo_utils.data.camus import list_patients

    return list(cohort_data.read_sequences(list_patients(root), keys, root=root, ted=data.source == "ted",
                                           resize=data.resize, listed_in="the split"))


def test_synthetic_root_split_and_keys(tmp_path):
    cfg = load_config("notebooks/params/ci.yaml", {"data": {"n_patients": 4, "frames": [4, 5], "size": 48}})
    paths = RunPaths(tmp_path / "run")
    root = cohort_data.cohort_root(cfg.data, paths.data)  # generated into the run's data folder
    assert root == paths.data and (paths.data / "database_nifti").is_dir()
    split = cohort_data.cohort_split(cfg.data, root, paths.data)
    assert sorted(sum(split.values(), [])) == [f"patient{i:04d}" for i in range(1, 5)]
    assert all(split[k] for k in ("train", "test"))
    assert not set(split["train"]) & set(split["test"])
    assert not (paths.data / "split.json").exists()  # the cohort's own split files: nothing seeded
    views = cohort_data.cohort_views(cfg.data)
    assert cohort_data.split_keys(split, views, "test") == [(p, v) for p in split["test"] for v in ("2CH", "4CH")]
    assert cohort_data.split_keys(split, views, "testing") == cohort_data.split_keys(split, views, "test")
    assert cohort_data.split_keys(split, views) == [(p, v) for p in sorted(sum(split.values(), [])) for v in views]
    with pytest.raises(EchoDataError, match="unknown split 'training set'"):
        cohort_data.split_keys(split, views, "training set")
    seqs = _read(cfg.data, root, cohort_data.split_keys(split, views, "train"))
    assert [s.key for s in seqs] == [f"{p}_{v}" for p in split["train"] for v in ("2CH", "4CH")]
    assert all(s.dense_kind == "exact" and s.shape == (48, 48) for s in seqs)
    # resize and views
    cfg2 = load_config("notebooks/params/ci.yaml", {"data": {"n_patients": 4, "frames": [4, 5], "size": 48,
                                                             "resize": 64, "views": ["4CH"]}})
    seqs2 = _read(cfg2.data, root, cohort_data.split_keys(split, cohort_data.cohort_views(cfg2.data), "test"))
    assert [s.view for s in seqs2] == ["4CH"] * len(split["test"])
    assert seqs2[0].shape == (64, 64)
    ref = camus.load_sequence(paths.data / "database_nifti" / split["test"][0], "4CH")
    assert seqs2[0].spacing == pytest.approx((ref.spacing[0] * 48 / 64, ref.spacing[1] * 48 / 64))
    # another cohort size in the same run directory is refused, not silently overwritten
    cfg3 = load_config("notebooks/params/ci.yaml", {"data": {"n_patients": 5, "frames": [4, 5], "size": 48}})
    with pytest.raises(RuntimeError, match="made with other settings"):
        cohort_data.cohort_root(cfg3.data, paths.data)
    assert cohort_data.cohort_root(cfg3.data, paths.data, generate=False) == root  # --check: not generated


def test_read_sequences_reads_only_the_given_keys_and_names_a_missing_folder(tmp_path):
    from echo_utils.data.camus import list_patients

    cfg = load_config("notebooks/params/ci.yaml", {"data": {"n_patients": 4, "frames": [4, 5], "size": 48}})
    paths = RunPaths(tmp_path / "run")
    root = cohort_data.cohort_root(cfg.data, paths.data)
    patients = list_patients(root)
    keys = [("patient0003", "4CH"), ("patient0001", "2CH")]
    seqs = list(cohort_data.read_sequences(patients, keys, root=root, listed_in="the test"))
    assert [s.key for s in seqs] == ["patient0003_4CH", "patient0001_2CH"]
    ref = camus.load_sequence(root / "database_nifti" / "patient0003", "4CH")
    np.testing.assert_array_equal(seqs[0].images, ref.images)
    lazy = cohort_data.read_sequences(patients, [("patient0001", "2CH"), ("patient0099", "2CH")], root=root,
                                listed_in="this shard")
    with pytest.raises(EchoDataError, match=r"\['patient0099'\] are listed in this shard but have no folder"):
        next(lazy)  # checked before the first sequence is read


def test_camus_root_env_and_seeded_split(tmp_path, monkeypatch):
    def cfg_for(**data):
        return load_config("notebooks/params/ci.yaml", {"data": {"source": "camus", "root": "${CAMUS_ROOT}",
                                                                 "test_fraction": 0.1, "val_fraction": 0.0,
                                                                 **data}})

    paths = RunPaths(tmp_path / "run")
    monkeypatch.delenv("CAMUS_ROOT", raising=False)
    with pytest.raises(ValueError, match="CAMUS_ROOT"):  # the profile names the unset variable
        cfg_for()
    monkeypatch.setenv("CAMUS_ROOT", str(tmp_path / "missing"))
    with pytest.raises(EchoDataError, match="data.root = .*folder not found"):
        cohort_data.cohort_root(cfg_for().data, paths.data)
    root = tmp_path / "camus"
    for i in range(1, 11):
        write_nifti_patient(root, f"patient{i:04d}")  # no database_split: seeded split written to split.json
    monkeypatch.setenv("CAMUS_ROOT", str(root))
    d = cfg_for().data
    assert cohort_data.cohort_root(d, paths.data) == root
    assert cohort_data.cohort_split(d, root, paths.data, write=False) and not (paths.data / "split.json").exists()
    split = cohort_data.cohort_split(d, root, paths.data)
    assert len(split["test"]) == 1 and len(split["train"]) == 9 and split["val"] == []
    # split.json: the layout every earlier run directory holds (keys in this order, indent 1)
    record = {"params": {"root": str(root), "seed": 0, "test_fraction": 0.1, "val_fraction": 0.0}, "split": split}
    assert (paths.data / "split.json").read_text() == json.dumps(record, indent=1)
    assert cohort_data.cohort_split(d, root, paths.data) == split  # reused
    test = _read(d, root, cohort_data.split_keys(split, cohort_data.cohort_views(d), "test"))
    assert [s.key for s in test] == [f"{split['test'][0]}_2CH", f"{split['test'][0]}_4CH"]
    assert test[0].dense_kind == "interpolated"
    s4 = cohort_data.cohort_split(cfg_for(max_patients=4).data, root, paths.data)
    assert sum(len(v) for v in s4.values()) <= 4 and s4["test"]
    with pytest.raises(EchoDataError, match="split.json"):
        cohort_data.cohort_split(cfg_for(seed=5).data, root, paths.data)


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


def test_ted_exclusions_and_pairs(tmp_path, monkeypatch):
    cfg, paths = _paper_cfg(tmp_path, monkeypatch)
    excl = cohort_data.ted_exclusions(cfg.data)
    assert excl == sorted(camus.read_ted_map().values()) and len(excl) == 94  # all of the authors' 94
    mapped = {c for c, _ in PAPER_TED.values() if c}
    assert mapped <= set(excl) and "patient0001" not in excl
    pairs, unmapped = cohort_data.ted_pairs(cfg.data)
    assert {c for _, c in pairs} == mapped and unmapped == ["patient019"]
    assert [c for _, c in pairs] == sorted(c for _, c in pairs)  # sorted by CAMUS id
    # no TED: nothing to leave out (the evaluation is on the validation/test split)
    assert cohort_data.ted_exclusions(load_config("notebooks/params/ci.yaml").data) == []
    no_ted = load_config("notebooks/params/paper.yaml", {"data": {"ted_root": None}})
    assert cohort_data.ted_exclusions(no_ted.data) == []


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
