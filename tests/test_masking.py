"""segmentation.masking and the 3d_dense_masked export: doubtful pseudo-labelled pixels become nnU-Net's ignore label,
the manual ED/ES frames stay whole, and the threshold chosen on validation patients is the known best one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from echo_utils import labels as L
from echo_utils import segmentation as nnunet
from echo_utils.config import ConfigError, load_config
from echo_utils.report import masking as masking_report
from echo_utils.segmentation.time_padding import crop_time
from echo_utils.segmentation import masking
from test_segmentation import run_of, toy_cohort


def _read(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _cfg(**nn):
    return load_config("notebooks/params/ci.yaml", overrides={"nnunet": {"n_proc": 1, **nn}})


def test_optional_model_in_the_vocabulary_and_the_profile():
    assert "3d_dense_masked" in L.OPTIONAL_MODELS and "3d_dense_masked" not in L.MODELS
    assert L.color("3d_dense_masked") and L.name("3d_dense_masked") != "3d_dense_masked"
    cfg = _cfg(models=["3d_dense", "3d_dense_masked"])
    assert "3d_dense_masked" not in _cfg().nnunet.models  # not a default model
    spec = nnunet.SPECS["3d_dense_masked"]
    assert spec.dim == 3 and spec.dense and spec.masked
    nn = cfg.nnunet
    assert nnunet.dataset_id(nn, "3d_dense_masked") not in {nnunet.dataset_id(nn, m) for m in L.MODELS}
    assert nnunet.dataset_name(nn, "3d_dense_masked").endswith("3DDenseMasked")
    # the same training settings as 3D dense: the masking is the only difference
    assert nnunet.training_settings(nn, "3d_dense_masked") | {"seed": 0} == \
        nnunet.training_settings(nn, "3d_dense") | {"seed": 0}
    with pytest.raises(ConfigError, match="models"):
        _cfg(models=["3d_dense_unknown"])
    with pytest.raises(ConfigError, match="masked_confidence_threshold"):
        _cfg(masked_confidence_threshold=1.5)


def test_export_ignores_low_confidence_pseudo_pixels_and_keeps_ed_es(tmp_path):
    cfg = _cfg(masked_confidence_threshold=0.3)
    seqs = toy_cohort(4)
    train, val = seqs[:4], seqs[4:6]
    rng = np.random.default_rng(0)
    conf = {s.key: rng.uniform(0, 1, s.images.shape).astype(np.float32) for s in train + val}  # low at ED/ES too
    dense = {s.key: s.dense for s in train + val}
    run = run_of(cfg, tmp_path)
    with pytest.raises(nnunet.NnUNetError, match="confidence"):  # the masked set needs its confidence maps
        nnunet.export_dataset(run, "3d_dense_masked", train, val, (), dense)
    folder = nnunet.export_dataset(run, "3d_dense_masked", train, val, (), dense, confidence=conf)
    ds = json.loads((folder / "dataset.json").read_text())
    assert ds["labels"]["ignore"] == nnunet.IGNORE_LABEL == max(ds["labels"].values())
    ignored = pseudo = 0
    for seq in train + val:
        # the original frames (ci mirrors the 3D volumes past their ends: segmentation.time_padding)
        label = crop_time(_read(folder / "labelsTr" / f"{seq.key}.nii.gz"),
                          nnunet.dataset_time_padding(run, "3d_dense_masked"), seq.n_frames)
        for t in (seq.ed, seq.es):  # the manual frames: fully labelled, whatever their confidence says
            np.testing.assert_array_equal(label[t], seq.labels[t])
            assert (conf[seq.key][t] < 0.3).any()
        mid = masking.pseudo_frames(seq)
        low = conf[seq.key][mid] < 0.3
        assert np.all(label[mid][low] == nnunet.IGNORE_LABEL)
        np.testing.assert_array_equal(label[mid][~low], seq.dense[mid][~low])
        ignored += int(low.sum())
        pseudo += low.size
    record = nnunet.dataset_masking(run)
    assert record["threshold"] == 0.3 and "profile" in record["source"]
    assert record["ignored_pixels"] == ignored
    assert record["ignored_fraction_of_pseudo"] == pytest.approx(ignored / pseudo, abs=1e-6)
    assert 0.2 < record["ignored_fraction_of_pseudo"] < 0.4  # uniform confidence: about 30 %
    table = nnunet.datasets_table(run, ["3d_dense_masked"])
    assert table.loc["3d_dense_masked", "confidence threshold"] == 0.3
    nnunet.verify_dataset(cfg.nnunet, folder, tmp_path / "verify.log")  # nnU-Net's per-case checks accept the ignore label


def _graded_case(n: int = 20000):
    """Confidence on a regular grid in (0, 1) and errors at known rates: 80 % below 0.2, 40 % in [0.2, 0.5), 2 %
    from 0.5 on. F1 of "confidence < t" rises up to t = 0.5 and falls after it (analytically: on [0.2, 0.5] its
    derivative has the sign of 0.8 * 0.29 - 0.16 > 0, above 0.5 of 0.04 * 0.29 - 0.54 < 0)."""
    i = np.arange(n)
    conf = (i + 0.5) / n
    err = np.where(conf < 0.2, i % 5 < 4, np.where(conf < 0.5, i % 5 < 2, i % 50 == 0))
    return conf, err


def test_threshold_selection_picks_the_known_best_threshold():
    from sklearn.metrics import f1_score

    conf, err = _graded_case()
    best = masking.select_threshold([conf[:7000], conf[7000:]], [err[:7000], err[7000:]])
    assert best["threshold"] == 0.5
    for row in best["table"]:  # each candidate's F1 against scikit-learn's
        assert row["f1"] == pytest.approx(f1_score(err, conf < row["threshold"]), abs=1e-12)
    assert best["f1"] == pytest.approx(2 * 0.28 / (0.5 + 0.29), abs=1e-3)
    with pytest.raises(nnunet.NnUNetError, match="errors"):
        masking.select_threshold([conf], [np.zeros_like(err)])


def test_masking_record_on_validation_truth_and_fallback():
    cfg = _cfg()
    val = toy_cohort(2)
    rng = np.random.default_rng(1)
    conf, fused = {}, {}
    for seq in val:  # the pseudo-labels are wrong exactly where the confidence is below 0.35
        c = rng.uniform(0, 1, seq.images.shape).astype(np.float32)
        c[[seq.ed, seq.es]] = 1.0
        f = seq.dense.copy()
        f[c < 0.35] = (f[c < 0.35] + 1) % 4
        conf[seq.key], fused[seq.key] = c, f
    record = masking.masking_record(cfg.nnunet, val, fused, conf)
    assert record["threshold"] == 0.35 and record["val_f1"] == 1.0 and "validation" in record["source"]
    # real data: no exact truth on the validation patients -> the stated fallback
    for seq in val:
        seq.dense_kind = "interpolated"
    record = masking.masking_record(cfg.nnunet, val, fused, conf)
    assert record["threshold"] == masking.FALLBACK_THRESHOLD == 0.5 and "fallback" in record["source"]
    masks = masking.ignore_masks(val, conf, 0.35)
    assert not any(masks[s.key][[s.ed, s.es]].any() for s in val)


def test_notebook05_tables_take_the_optional_model():
    """Table 1, Table 2, Eq. 2 and the even/odd summary handle 3d_dense_masked like any model, and the
    comparison with 3D dense reads the numbers from them (differences computed, signs as constructed)."""
    import warnings

    from echo_utils.report import smoothness, tables

    test = toy_cohort(3, size=48)
    rng = np.random.default_rng(2)
    preds = {"2d_sparse": {}, "3d_dense": {}, "3d_dense_masked": {}}
    for s in test:
        preds["3d_dense_masked"][s.key] = s.dense.copy()  # perfect
        worse = s.dense.copy()
        worse[:, ::7, :] = 0  # stripes of background: lower Dice
        preds["3d_dense"][s.key] = worse
        noisy = s.dense.copy()
        noisy[rng.uniform(size=noisy.shape) < 0.02] = 0
        preds["2d_sparse"][s.key] = noisy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, _ = tables.summarise_table1(tables.segmentation_scores(preds, test))
        reference, indices = tables.clinical_indices(test, preds)
        t2 = tables.table2(indices, reference)
        smooth = smoothness.smoothness_table(preds, test)
        even_odd = smoothness.even_odd_summary(smoothness.even_odd_table(preds, test))
    assert "3d_dense_masked" in mean.index and "3d_dense_masked" in t2.index
    medians = smooth.groupby(["structure", "model"])["smoothness"].median().unstack()
    assert "3d_dense_masked" in medians.columns
    table = masking_report.masked_comparison(mean, t2, medians, even_odd, ["3d_dense_masked"])
    name, base = L.name("3d_dense_masked"), L.name("3d_dense")
    assert list(table.columns) == [base, name, f"{name} − {base}"]
    assert table.loc["Dice ED LV", name] == pytest.approx(1.0)
    assert table.loc["Dice ED LV", f"{name} − {base}"] > 0
    np.testing.assert_allclose(table[f"{name} − {base}"], table[name] - table[base])
    assert "EF MAE (points)" in table.index and "median even/odd LV" in table.index  # (toy LVs: EF below the
    # plausibility floor, NaN)
