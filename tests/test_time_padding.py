"""Temporal reflect padding of the 3D datasets (nnunet.time_padding): padding and cropping, the exported 3D
datasets, the prediction crop, the config, and the area errors by frame position that show the end effect."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from echo_utils import segmentation as nnunet
from echo_utils.config import ConfigError, load_config
from echo_utils.report import frame_position as fp
from echo_utils.segmentation.time_padding import crop_time, pad_time, padded_sources, time_padding_frames

from test_segmentation import run_of, toy_cohort, toy_sequence


def _cfg(**nnunet_overrides):
    return load_config("notebooks/params/ci.yaml", overrides={"nnunet": {"n_proc": 1, **nnunet_overrides}})


def _read(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


# ----------------------------------------------------------------------------------------------------------------
# padding and cropping
# ----------------------------------------------------------------------------------------------------------------


def test_reflect_padding_by_hand_and_cropped_back_exactly():
    # numpy's 'reflect': the end frame is the mirror, never repeated (written out by hand for T = 5, k = 3)
    assert padded_sources(5, 3).tolist() == [3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1]
    rng = np.random.default_rng(0)
    vol = rng.random((7, 4, 5)).astype(np.float32)
    for k in (1, 3, 6, 9):  # 9 > T - 1: the reflection folds back, as np.pad does
        padded = pad_time(vol, k)
        assert padded.shape == (7 + 2 * k, 4, 5) and padded.dtype == vol.dtype
        np.testing.assert_array_equal(padded, np.pad(vol, ((k, k), (0, 0), (0, 0)), mode="reflect"))
        np.testing.assert_array_equal(crop_time(padded, k, n_frames=7), vol)
    np.testing.assert_array_equal(pad_time(vol, 0), vol)
    with pytest.raises(ValueError, match="7 frames, the sequence 6"):
        crop_time(pad_time(vol, 2), 2, n_frames=6)
    with pytest.raises(ValueError, match="at least 2 frames"):
        padded_sources(1, 2)


def test_frame_count_is_half_the_patch_unless_given():
    cfg = _cfg()
    assert time_padding_frames(_cfg(time_padding="none").nnunet) == 0
    assert time_padding_frames(_cfg(time_padding="reflect").nnunet) == cfg.nnunet.patch_3d[0] // 2
    assert time_padding_frames(_cfg(time_padding="reflect", patch_3d=[15, 32, 32]).nnunet) == 7
    assert time_padding_frames(_cfg(time_padding="reflect", time_padding_frames=3).nnunet) == 3


def test_config_refuses_bad_padding_values():
    with pytest.raises(ConfigError, match=r"nnunet.time_padding.*'none' or 'reflect'"):
        _cfg(time_padding="mirror")
    with pytest.raises(ConfigError, match="time_padding_frames = 4 is set but time_padding is 'none'"):
        _cfg(time_padding="none", time_padding_frames=4)
    with pytest.raises(ConfigError, match="nnunet.time_padding_frames"):
        _cfg(time_padding="reflect", time_padding_frames=0)
    with pytest.raises(ConfigError, match="patch_3d is not set"):
        _cfg(time_padding="reflect", patch_3d=None, configuration="default")


def test_paper_profile_keeps_nnunets_padding(monkeypatch, tmp_path):
    monkeypatch.setenv("CAMUS_ROOT", str(tmp_path))
    monkeypatch.setenv("TED_ROOT", str(tmp_path))
    cfg = load_config("notebooks/params/paper.yaml")
    assert cfg.nnunet.time_padding == "none" and time_padding_frames(cfg.nnunet) == 0
    with open("notebooks/params/paper.yaml") as f:  # stated in the profile, not left to the default
        assert any(line.strip().startswith("time_padding: none") for line in f)


# ----------------------------------------------------------------------------------------------------------------
# the exported datasets
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture()
def cohort():
    seqs = toy_cohort(4)
    return {"train": seqs[:4], "val": seqs[4:6], "test": seqs[6:], "dense": {s.key: s.dense for s in seqs}}


@pytest.mark.parametrize("model", ["3d_dense", "3d_sparse"])
def test_exported_3d_dataset_holds_reflected_frames(model, cohort, tmp_path):
    cfg = _cfg(time_padding="reflect", time_padding_frames=3)
    k = 3
    run = run_of(cfg, tmp_path)
    folder = nnunet.export_dataset(run, model, cohort["train"], cohort["val"], cohort["test"],
                                   cohort["dense"])  # nnU-Net's integrity check runs on the padded folder
    assert nnunet.dataset_time_padding(run, model) == k
    assert nnunet.datasets_table(run, [model]).loc[model, "time padding (frames at each end)"] == k
    for seq in cohort["train"] + cohort["val"]:
        T = seq.n_frames
        image = _read(folder / "imagesTr" / f"{seq.key}_0000.nii.gz")
        label = _read(folder / "labelsTr" / f"{seq.key}.nii.gz")
        assert image.shape == label.shape == (T + 2 * k, *seq.shape)
        np.testing.assert_array_equal(image[k:k + T], seq.images)
        for j in range(1, k + 1):  # frame -j shows frame j, frame T-1+j shows frame T-1-j (ends not repeated)
            np.testing.assert_array_equal(image[k - j], seq.images[j])
            np.testing.assert_array_equal(image[k + T - 1 + j], seq.images[T - 1 - j])
        np.testing.assert_array_equal(label[k + seq.ed], seq.labels[seq.ed])
        np.testing.assert_array_equal(label[k + seq.es], seq.labels[seq.es])
        pad = np.r_[0:k, k + T:T + 2 * k]
        if model == "3d_dense":  # the pseudo-labels reflected with their frames
            np.testing.assert_array_equal(label[pad], seq.dense[padded_sources(T, k)[pad]])
        else:  # k <= T - 2: reflected frames copy unlabelled frames: all ignored, the manual labels appear once each
            assert k <= T - 2
            assert np.all(label[pad] == nnunet.IGNORE_LABEL)
            assert int(np.sum(np.any(label != nnunet.IGNORE_LABEL, axis=(1, 2)))) == 2
    for seq in cohort["test"]:  # the command-line volumes are padded the same way
        assert _read(folder / "imagesTs" / f"{seq.key}_0000.nii.gz").shape[0] == seq.n_frames + 2 * k


def test_padding_longer_than_the_sequence_folds_back_with_exact_labels(cohort, tmp_path):
    """k > T - 2 (ci's 7 frames on 5-7 frame sequences): the mirror folds back onto ED and ES, and those copies carry
    their manual labels (the same image, the same label); every other padded frame of 3D sparse stays ignored."""
    cfg = _cfg(time_padding="reflect", time_padding_frames=7)
    folder = nnunet.export_dataset(run_of(cfg, tmp_path), "3d_sparse", cohort["train"], cohort["val"])
    seq = min(cohort["train"], key=lambda s: s.n_frames)
    label = _read(folder / "labelsTr" / f"{seq.key}.nii.gz")
    source = padded_sources(seq.n_frames, 7)
    assert label.shape[0] == seq.n_frames + 14 and {seq.ed, seq.es} <= set(source[:7]) | set(source[-7:])
    for t, src in enumerate(source):
        if src in (seq.ed, seq.es):
            np.testing.assert_array_equal(label[t], seq.labels[src])
        else:
            assert np.all(label[t] == nnunet.IGNORE_LABEL)


def test_2d_datasets_are_not_padded(cohort, tmp_path):
    run = run_of(_cfg(time_padding="reflect"), tmp_path)
    folder = nnunet.export_dataset(run, "2d_dense", cohort["train"], cohort["val"], [], cohort["dense"])
    n = sum(s.n_frames for s in cohort["train"] + cohort["val"])
    assert json.loads((folder / "dataset.json").read_text())["numTraining"] == n
    assert nnunet.dataset_time_padding(run, "2d_dense") == 0


def test_padding_setting_is_part_of_the_dataset_key(cohort, tmp_path):
    """A dataset exported with one padding setting is never reused with another (refused, left untouched)."""
    args = (cohort["train"], cohort["val"], [], cohort["dense"])
    folder = nnunet.export_dataset(run_of(_cfg(time_padding="none"), tmp_path), "3d_dense", *args)
    record = json.loads((folder / "echo_export.json").read_text())
    assert record["time_padding_frames"] == 0
    with pytest.raises(nnunet.NnUNetError, match="already holds a different dataset"):
        nnunet.export_dataset(run_of(_cfg(time_padding="reflect"), tmp_path), "3d_dense", *args)
    assert json.loads((folder / "echo_export.json").read_text()) == record
    other = tmp_path / "other"
    assert nnunet.export_dataset(run_of(_cfg(time_padding="reflect", time_padding_frames=2), other), "3d_dense", *args)
    with pytest.raises(nnunet.NnUNetError, match="already holds a different dataset"):
        nnunet.export_dataset(run_of(_cfg(time_padding="reflect", time_padding_frames=3), other), "3d_dense", *args)


# ----------------------------------------------------------------------------------------------------------------
# prediction
# ----------------------------------------------------------------------------------------------------------------


class _FramePredictor:
    """Stands in for nnU-Net's predictor: labels each pixel with ``round(3 * image)`` and records its input."""

    def __init__(self):
        self.inputs = []

    def predict_single_npy_array(self, image, props, *args):
        self.inputs.append((np.array(image), props))
        return np.rint(3 * image[0]).astype(np.uint8)


def test_prediction_of_a_padded_volume_is_cropped_back_to_the_sequence():
    seq = toy_sequence("patient0001", "2CH", n_frames=6)
    seq.images[:] = np.linspace(0, 1, 6)[:, None, None] * np.ones(seq.shape)  # every frame different
    predictor = _FramePredictor()
    seg = nnunet.predict_sequence(predictor, seq, 2.5, time_padding=4)
    (image, props), = predictor.inputs
    assert image.shape == (1, 6 + 8, *seq.shape) and props["spacing"][0] == 2.5
    np.testing.assert_array_equal(image[0], pad_time(seq.images, 4))
    # the crop keeps exactly the sequence's frames, aligned (an off-by-one would shift the frame values)
    np.testing.assert_array_equal(seg, np.rint(3 * seq.images).astype(np.uint8))
    np.testing.assert_array_equal(nnunet.predict_sequence(_FramePredictor(), seq, 2.5), seg)  # unpadded control


def test_prediction_marker_records_the_padding_and_reads_old_records_as_none(cohort, tmp_path, monkeypatch):
    """predict_all keys its folder by the dataset's padding; a record from before the key existed means 0."""
    from echo_utils.segmentation import predict

    cfg = _cfg(time_padding="reflect", time_padding_frames=2)
    run = run_of(cfg, tmp_path)
    nnunet.export_dataset(run, "3d_dense", cohort["train"], cohort["val"], [], cohort["dense"])
    ckpt = predict.fold_folder(run, "3d_dense", 0) / "checkpoint_final.pth"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"weights")
    calls = []
    monkeypatch.setattr(predict, "load_predictor", lambda *a, **k: _FramePredictor())
    monkeypatch.setattr(predict, "_predict_into", lambda out, pr, todo, ts, progress, pad=0: calls.append(pad))
    out = nnunet.predict_all(run, "3d_dense", cohort["test"])
    assert calls == [2] and json.loads((out / "echo_predictions.json").read_text())["time_padding_frames"] == 2
    # an old record (no padding key) of an unpadded dataset is still accepted ...
    plain = run_of(_cfg(time_padding="none"), tmp_path / "plain")
    nnunet.export_dataset(plain, "3d_dense", cohort["train"], cohort["val"], [], cohort["dense"])
    pckpt = predict.fold_folder(plain, "3d_dense", 0) / "checkpoint_final.pth"
    pckpt.parent.mkdir(parents=True)
    pckpt.write_bytes(b"weights")
    key = {"model": "3d_dense", "dataset": nnunet.dataset_name(_cfg().nnunet, "3d_dense"),
           "configuration": nnunet.configuration_name(_cfg().nnunet, "3d_dense"),
           "checkpoints": [nnunet.env.file_digest(pckpt)], "mirroring": False,
           "time_spacing": nnunet.dataset_time_spacing(plain, "3d_dense")}
    pout = plain.predictions / "3d_dense"
    pout.mkdir(parents=True)
    (pout / "echo_predictions.json").write_text(json.dumps(key))
    nnunet.predict_all(plain, "3d_dense", cohort["test"])
    # ... but predictions made without padding are never reused for a padded model
    (out / "echo_predictions.json").write_text(json.dumps({**key, "dataset": nnunet.dataset_name(cfg.nnunet, "3d_dense"),
                                                           "checkpoints": [nnunet.env.file_digest(ckpt)],
                                                           "time_spacing": nnunet.dataset_time_spacing(run, "3d_dense")}))
    with pytest.raises(nnunet.NnUNetError, match="predictions of another model"):
        nnunet.predict_all(run, "3d_dense", cohort["test"])


@pytest.mark.slow
def test_padded_3d_model_trains_and_predicts_every_original_frame(tmp_path):
    """ci budget, reflect padding: the preprocessed volumes hold T + 2k frames, the predictions exactly T."""
    cfg = _cfg(time_padding="reflect")
    k = time_padding_frames(cfg.nnunet)
    run = run_of(cfg, tmp_path)
    seqs = toy_cohort(3, size=48)
    train, val, test = seqs[:4], seqs[4:5], seqs[5:]
    nnunet.export_dataset(run, "3d_dense", train, val, test, {s.key: s.dense for s in seqs})
    plans = nnunet.plan_and_preprocess(run, "3d_dense")
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    parent = plans["configurations"]["3d_fullres"]
    pre = run.preprocessed / nnunet.dataset_name(cfg.nnunet, "3d_dense") / parent["data_identifier"]
    ds = infer_dataset_class(str(pre))(str(pre))
    for seq in train + val:
        data, seg, _, _ = ds.load_case(seq.key)
        assert data.shape[1] == seg.shape[1] == seq.n_frames + 2 * k
    nnunet.train_model(run, "3d_dense")
    nnunet.predict_all(run, "3d_dense", test)
    for seq in test:
        pred = nnunet.load_prediction(run.predictions, "3d_dense", seq)
        assert pred.shape == seq.images.shape


# ----------------------------------------------------------------------------------------------------------------
# area errors by frame position (notebook 05)
# ----------------------------------------------------------------------------------------------------------------


def test_frame_position_errors_against_hand_counts():
    seq = toy_sequence("patient0001", "2CH", n_frames=5)
    truth = seq.dense
    area = (truth == 1).sum(axis=(1, 2)).astype(float)
    end_heavy = truth.copy()
    end_heavy[0][truth[0] == 2] = 1  # the first frame's ring becomes cavity: + ring area
    end_heavy[-1][truth[-1] == 1] = 0  # the last frame loses its cavity: - cavity area
    ring0 = float((truth[0] == 2).sum())
    errors = fp.frame_position_errors({"3d_dense": {seq.key: end_heavy}, "2d_sparse": {seq.key: truth}}, [seq])
    row = errors.set_index(["model", "position"])
    assert row.loc[("3d_dense", "first"), "error"] == ring0
    assert row.loc[("3d_dense", "last"), "error"] == -area[-1]
    assert row.loc[("3d_dense", "interior"), "error"] == 0 and row.loc[("3d_dense", "interior"), "frames"] == 3
    assert row.loc[("3d_dense", "last"), "relative_error"] == pytest.approx(-100.0)
    assert (row.loc["2d_sparse", "abs_error"] == 0).all()
    summary = fp.frame_position_summary(errors)
    assert summary.loc[("LV", "3d_dense"), ("abs_error", "first")] == ring0
    assert summary.loc[("LV", "3d_dense"), ("sequences", "")] == 1
    lines = fp.frame_position_statements(summary)
    assert len(lines) == 2 and "control 2D sparse: +0 px" in lines[1]
    assert f"{(ring0 + area[-1]) / 2:+.0f} px" in lines[1]


def test_frame_position_without_dense_truth_scores_the_ends_only():
    seq = toy_sequence("patient0001", "4CH", n_frames=6)
    pred = seq.dense.copy()
    seq.dense = None  # CAMUS-like: manual labels at ED and ES only
    errors = fp.frame_position_errors({"2d_dense": {seq.key: pred}}, [seq])
    assert sorted(errors["position"]) == ["first", "last"] and (errors["error"] == 0).all()
    with pytest.raises(ValueError, match="shape"):
        fp.frame_position_errors({"2d_dense": {seq.key: pred[:-1]}}, [seq])
    with pytest.raises(ValueError, match="no frame-position errors"):
        fp.frame_position_summary(fp.frame_position_errors({}, [seq]))
