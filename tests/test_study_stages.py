"""echo_utils.study.stages, the nnU-Net stages: the study translated at the edge into what the segmentation package
takes (its nnunet section, the run's folders, the pseudo-label arrays and confidence maps), and nothing else."""

from __future__ import annotations

import json

import numpy as np
import pytest

from echo_utils import segmentation as seg
from echo_utils.config import load_config
from echo_utils.pseudolabels import PseudoLabels
from echo_utils.pseudolabels.store import save_pseudo_labels
from echo_utils.rundir import RunPaths
from echo_utils.study import Study, stages

from test_segmentation import toy_cohort


def _study(tmp_path, **nn) -> tuple[Study, dict]:
    """A ci study whose splits are the toy cohort (``study.sequences`` stands in for the data set)."""
    cfg = load_config("notebooks/params/ci.yaml", overrides={"nnunet": {"n_proc": 1, **nn}})
    study = Study(cfg, RunPaths(tmp_path))
    seqs = toy_cohort(4)
    splits = {"train": seqs[:4], "val": seqs[4:6], "test": seqs[6:]}
    study.sequences = lambda split: list(splits[split])
    return study, splits


def test_nnunet_run_is_the_section_and_the_run_folders(tmp_path):
    study, _ = _study(tmp_path)
    run = stages.nnunet_run(study)
    assert isinstance(run, seg.NnUNetRun) and run.nn is study.cfg.nnunet
    assert run.root == study.paths.nnunet and run.predictions == study.paths.predictions
    assert stages.pseudo_label_store(study) == study.paths.pseudo_labels / study.cfg.registration.method


def test_nnunet_datasets_exports_the_stored_pseudo_labels_and_plans_every_model(tmp_path, monkeypatch):
    """The stage reads notebook 03's store (dense labels; confidence maps for the masked model), exports every model
    of ``nnunet.models`` and plans it; the datasets are those a direct call with the same arrays writes (the
    same content key: an existing run directory stays valid)."""
    models = ["2d_sparse", "3d_dense", "3d_dense_masked"]
    study, splits = _study(tmp_path, models=models, masked_confidence_threshold=0.3)
    store = stages.pseudo_label_store(study)
    rng = np.random.default_rng(0)
    pseudo = {}
    for s in splits["train"] + splits["val"]:  # pseudo-labels with errors, so that forward and backward differ
        fwd, bwd = s.dense.copy(), s.dense.copy()
        fwd[:, :, : s.shape[1] // 3] = 0
        bwd[rng.uniform(size=bwd.shape) < 0.1] = 0
        pseudo[s.key] = PseudoLabels(forward=fwd, backward=bwd, bidirectional=np.maximum(fwd, bwd))
        save_pseudo_labels(pseudo[s.key], store, s)
    planned = []
    monkeypatch.setattr(seg, "plan_and_preprocess", lambda run, model: planned.append((run, model)))

    outputs = stages.nnunet_datasets(study)

    run = stages.nnunet_run(study)
    assert [m for _, m in planned] == models and all(r == run for r, _ in planned)
    assert outputs == [seg.plans.plans_file(run, m) for m in models]
    assert outputs[1] == tmp_path / "nnunet/preprocessed/Dataset802_Echo3DDense/nnUNetPlans.json"
    table = seg.datasets_table(run)
    assert list(table.index) == models and table.loc["3d_dense_masked", "confidence threshold"] == 0.3
    # the 3D dense labels are the stored bidirectional pseudo-labels, the manual labels at ED and ES
    import SimpleITK as sitk

    from echo_utils.segmentation.time_padding import crop_time

    seq = splits["train"][1]
    folder = seg.export.export_marker(run, "3d_dense").parent
    label = crop_time(sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / f"{seq.key}.nii.gz"))),
                      seg.dataset_time_padding(run, "3d_dense"), seq.n_frames)
    mid = [t for t in range(seq.n_frames) if t not in (seq.ed, seq.es)]
    np.testing.assert_array_equal(label[mid], pseudo[seq.key].bidirectional[mid])
    np.testing.assert_array_equal(label[seq.ed], seq.labels[seq.ed])
    # the same arrays given directly: the same content key, the published datasets reused as they are
    dense = {k: p.bidirectional for k, p in pseudo.items()}
    _, conf = seg.masking.study_confidence_maps(store, splits["train"] + splits["val"], study.cfg.pseudo_labels.weights)
    for m in models:
        marker = seg.export.export_marker(run, m)
        before = json.loads(marker.read_text())
        assert seg.export_dataset(run, m, splits["train"], splits["val"], splits["test"], dense,
                                  confidence=conf) == marker.parent
        assert json.loads(marker.read_text()) == before


def test_nnunet_datasets_names_a_missing_pseudo_label(tmp_path):
    study, _ = _study(tmp_path, models=["2d_dense"])
    with pytest.raises(seg.NnUNetError, match=r"pseudo-labels of patient0001_2CH.*does not exist"):
        stages.nnunet_datasets(study)


def test_model_and_predictions_stages_call_the_package_with_the_run(tmp_path, monkeypatch):
    """``model`` and ``predictions`` hand the segmentation package the study's NnUNetRun and the device (the
    profile's when none is given), and return the files the jobs' markers record."""
    study, splits = _study(tmp_path)
    calls = []
    monkeypatch.setattr(seg, "train_model", lambda run, name, fold, device: calls.append(("train", run, name, fold,
                                                                                          device)) or tmp_path / "f")
    monkeypatch.setattr(seg, "predict_all", lambda run, name, seqs, device, **kw: calls.append(
        ("predict", run, name, [s.key for s in seqs], device, kw)))
    run = stages.nnunet_run(study)
    assert stages.model(study, "3d_dense", 0) == tmp_path / "f" / "checkpoint_final.pth"
    files = stages.predictions(study, "2d_sparse", ["train", "val"], "cpu", out_name="2d_sparse_train")
    assert calls[0] == ("train", run, "3d_dense", 0, study.cfg.torch_device)
    keys = [s.key for s in splits["train"] + splits["val"]]
    assert calls[1] == ("predict", run, "2d_sparse", keys, "cpu", {"out_name": "2d_sparse_train"})
    assert files == [tmp_path / "predictions" / "2d_sparse_train" / f"{k}.nii.gz" for k in keys]
