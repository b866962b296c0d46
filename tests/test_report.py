"""Tests of the report tables (Tables 1-2, Fig. 3 smoothness, Fig. 2 summary) on hand-made sequences with known answers."""

from __future__ import annotations

import dataclasses
import numpy as np
import pandas as pd
import pytest

from echo_utils import metrics
from echo_utils.artifacts import files
from echo_utils.report import fig2_summary as F2
from echo_utils.report import paper as P
from echo_utils.report import smoothness as S
from echo_utils.report import tables as TB
from echo_utils.camus import EchoSequence

T, H, W = 6, 48, 40
SPACING = (2.0, 1.5)  # mm: LV volumes of 13-20 mL, above the 5 mL plausibility floor


def _rect_labels(top: int, bottom: int, left: int, right: int, myo: int = 3, la: int = 5) -> np.ndarray:
    """One frame: LV cavity rectangle, a myocardium ring of width ``myo`` around it, LA rectangle below."""
    lab = np.zeros((H, W), np.uint8)
    lab[top - myo : bottom + myo, left - myo : right + myo] = 2
    lab[top:bottom, left:right] = 1
    lab[bottom + myo + 1 : bottom + myo + 1 + la, left:right] = 3
    return lab


def _sequence(patient: str, view: str, shrink: float = 1.0, dense: bool = True) -> EchoSequence:
    """An LV whose bottom edge rises linearly from ED (frame 0) to ES (frame T-1)."""
    frames = [_rect_labels(8, int(round(30 - shrink * 8 * t / (T - 1))), 12, 28) for t in range(T)]
    dense_arr = np.stack(frames)
    return EchoSequence(
        patient=patient,
        view=view,
        images=np.zeros((T, H, W), np.float32),
        spacing=SPACING,
        ed=0,
        es=T - 1,
        labels={0: dense_arr[0].copy(), T - 1: dense_arr[-1].copy()},
        dense=dense_arr if dense else None,
        dense_kind="exact" if dense else None,
    )


@pytest.fixture(scope="module")
def cohort() -> list[EchoSequence]:
    return [_sequence(f"patient000{i}", v, shrink=1.0 + 0.2 * i) for i in (1, 2, 3) for v in ("2CH", "4CH")]


def test_score_ed_es_perfect_and_shifted():
    seq = _sequence("patient0001", "2CH")
    perfect = TB.score_ed_es(seq.dense, seq)
    assert set(perfect["structure"]) == {"LV", "MYO", "EPI", "LA"}
    assert set(perfect["phase"]) == {"ED", "ES"}
    assert np.allclose(perfect["dice"], 1.0) and np.allclose(perfect["hd"], 0.0) and np.allclose(perfect["mad"], 0.0)

    shifted = np.roll(seq.dense, 2, axis=1)  # 2 rows down = 2 * 2.0 mm
    s = TB.score_ed_es(shifted, seq).set_index(["phase", "structure"])
    # LV at ED is rows 8..30 (22 rows): Dice of a 2-row shift is (22 - 2) / 22; HD is exactly 2 rows = 1.0 mm.
    assert s.loc[("ED", "LV"), "dice"] == pytest.approx(20 / 22)
    assert s.loc[("ED", "LV"), "hd"] == pytest.approx(2 * SPACING[0])


def test_epicardium_convention_merges_cavity_and_ring():
    seq = _sequence("patient0001", "2CH")
    pred = seq.dense.copy()
    pred[pred == 2] = 1  # the whole epicardium called cavity: ring lost, union intact
    s = TB.score_ed_es(pred, seq).set_index(["phase", "structure"])
    assert s.loc[("ED", "MYO"), "dice"] == pytest.approx(0.0)
    assert s.loc[("ED", "EPI"), "dice"] == pytest.approx(1.0)
    assert s.loc[("ED", "LV"), "dice"] < 1.0


def test_score_ed_es_rejects_wrong_shape():
    seq = _sequence("patient0001", "2CH")
    with pytest.raises(ValueError, match="patient0001_2CH"):
        TB.score_ed_es(seq.dense[:-1], seq)


def test_table1_mean_sd_and_best(cohort):
    preds = {
        "2d_sparse": {s.key: np.roll(s.dense, 2, axis=1) for s in cohort},
        "3d_dense": {s.key: s.dense for s in cohort},
    }
    scores = TB.segmentation_scores(preds, cohort)
    assert len(scores) == 2 * len(cohort) * 2 * 4  # models x sequences x phases x structures
    mean, sd = TB.summarise_table1(scores)
    assert list(mean.index) == ["2d_sparse", "3d_dense"]  # paper order
    manual = scores.query("model == '2d_sparse' and phase == 'ES' and structure == 'LV'")["dice"]
    assert mean.loc["2d_sparse", ("ES", "LV", "dice")] == pytest.approx(manual.mean())
    assert sd.loc["2d_sparse", ("ES", "LV", "dice")] == pytest.approx(manual.std(ddof=1))
    text, best = TB.format_mean_sd(mean, sd)
    assert best.loc["3d_dense", ("ED", "LV", "dice")] and not best.loc["2d_sparse", ("ED", "LV", "dice")]
    assert best.loc["3d_dense", ("ED", "LV", "hd")]  # lower HD is better
    assert text.loc["3d_dense", ("ED", "LV", "dice")] == "1.000 ± 0.000"
    html = TB.style_best(text, best, caption="Table 1").to_html()
    assert "font-weight: bold" in html and "3D dense" in html


def test_best_mask_bias_closest_to_zero():
    mean = pd.DataFrame({("EF", "bias"): [-0.5, 2.0, 0.3], ("EF", "mae"): [4.0, 3.0, 5.0]}, index=["a", "b", "c"])
    mean.columns = pd.MultiIndex.from_tuples(mean.columns)
    _, best = TB.format_mean_sd(mean)
    assert best[("EF", "bias")].tolist() == [False, False, True]
    assert best[("EF", "mae")].tolist() == [False, True, False]


def test_lv_indices_and_table2(cohort):
    ref = TB.lv_indices(cohort, lambda s: s.labels)
    assert list(ref.index) == ["patient0001", "patient0002", "patient0003"]
    assert (ref["EDV"] > ref["ESV"]).all() and (ref["EF"] > 0).all()
    s2 = next(s for s in cohort if s.key == "patient0001_2CH")
    s4 = next(s for s in cohort if s.key == "patient0001_4CH")
    edv = metrics.lv_volume_biplane(s2.labels[0] == 1, s4.labels[0] == 1, s2.spacing, s4.spacing)
    assert ref.loc["patient0001", "EDV"] == pytest.approx(edv)

    perfect = TB.lv_indices(cohort, lambda s: s.dense)
    bigger = TB.lv_indices(cohort, lambda s: np.where(s.dense == 2, 1, s.dense))  # cavity swallows the ring
    t2 = TB.table2({"3d_dense": perfect, "2d_sparse": bigger}, ref)
    assert t2.loc["3d_dense", ("EDV", "bias")] == pytest.approx(0.0, abs=1e-9)
    assert t2.loc["3d_dense", ("EF", "mae")] == pytest.approx(0.0, abs=1e-9)
    assert t2.loc["2d_sparse", ("EDV", "bias")] > 0
    assert t2.loc["2d_sparse", ("EF", "n")] == 3 and t2.loc["2d_sparse", ("missing", "EF")] == 0


def test_lv_indices_skips_patients_with_one_view(cohort):
    ref = TB.lv_indices([s for s in cohort if s.key != "patient0002_4CH"], lambda s: s.labels)
    assert "patient0002" not in ref.index and len(ref) == 2


def _jitter(dense: np.ndarray) -> np.ndarray:
    """Every other frame's LV grown by 2 rows into the ring: a temporally inconsistent prediction."""
    out = dense.copy()
    for t in range(1, dense.shape[0], 2):
        rows = np.where((dense[t] == 1).any(1))[0]
        bottom = rows.max()
        out[t, bottom + 1 : bottom + 3][dense[t, bottom + 1 : bottom + 3] == 2] = 1
    return out


def test_smoothness_table_orders_smooth_and_jittery(cohort):
    preds = {"3d_dense": {s.key: s.dense for s in cohort}, "2d_sparse": {s.key: _jitter(s.dense) for s in cohort}}
    tab = S.smoothness_table(preds, cohort)
    assert set(tab["model"]) == {"reference", "3d_dense", "2d_sparse"}
    lv = tab[tab["structure"] == "LV"].groupby("model")[["smoothness", "inconsistency"]].median()
    assert lv.loc["2d_sparse", "smoothness"] > 10 * max(lv.loc["3d_dense", "smoothness"], 1.0)
    assert lv.loc["2d_sparse", "inconsistency"] > lv.loc["3d_dense", "inconsistency"]
    order = S.median_ordering(tab, ["3d_dense", "2d_sparse"])
    assert bool(order.loc["LV", "holds"])
    assert not S.median_ordering(tab, ["2d_sparse", "3d_dense"]).loc["LV", "holds"]


def test_smoothness_table_does_not_rank_a_structure_never_segmented(cohort):
    """A model with no myocardium in any frame has a flat zero area curve, Eq. 2 = 0: it must not win the
    ordering as the 'smoothest' (seen on the demo: the masked 3D model lost the myocardium at one seed)."""
    no_myo = {s.key: np.where(s.dense == 2, 0, s.dense) for s in cohort}
    preds = {"3d_dense": no_myo, "2d_sparse": {s.key: _jitter(s.dense) for s in cohort}}
    tab = S.smoothness_table(preds, cohort)
    myo = tab[(tab["structure"] == "MYO") & (tab["model"] == "3d_dense")]
    assert myo["absent"].all() and myo["smoothness"].isna().all()
    lv = tab[(tab["structure"] == "LV") & (tab["model"] == "3d_dense")]
    assert not lv["absent"].any() and lv["smoothness"].notna().all()
    order = S.median_ordering(tab, ["3d_dense", "2d_sparse"])
    assert not bool(order.loc["MYO", "holds"]) and bool(order.loc["LV", "holds"])
    line = [l for l in S.ordering_statements(order) if "yocardium" in l][0]
    assert "never segmented" in line and "does NOT hold" in line


def _linear_sequence(patient: str, view: str, n: int = 7, dense: bool = True) -> EchoSequence:
    """LV bottom edge rising exactly 2 rows per frame: LV and myocardium areas linear in t (d(t) = 0), LA
    constant. LV area 16 x (22 - 2t) px: 352 at ED to 160 at ES; ring 132 + 6 x (22 - 2t): 264 to 192."""
    frames = np.stack([_rect_labels(8, 30 - 2 * t, 12, 28) for t in range(n)])
    return EchoSequence(patient=patient, view=view, images=np.zeros((n, H, W), np.float32), spacing=SPACING,
                        ed=0, es=n - 1, labels={0: frames[0].copy(), n - 1: frames[-1].copy()},
                        dense=frames if dense else None, dense_kind="exact" if dense else None)


def _spike(labels: np.ndarray, t: int) -> np.ndarray:
    """Frame ``t``'s LV grown by 2 rows into the ring: LV area +32 px, ring -32 px in that frame only."""
    out = labels.copy()
    bottom = np.where((labels[t] == 1).any(1))[0].max()
    band = out[t, bottom + 1 : bottom + 3]
    band[band == 2] = 1
    return out


def test_inconsistency_summary_counts_frames_and_sequences():
    seqs = [_linear_sequence(f"patient000{i}", v) for i in (1, 2) for v in ("2CH", "4CH")]
    spiked = seqs[1].key
    preds = {"3d_dense": {s.key: s.dense for s in seqs},
             "2d_sparse": {s.key: _spike(s.dense, 3) if s.key == spiked else s.dense for s in seqs}}
    tab = S.smoothness_table(preds, seqs)
    assert tab.attrs["bounds"]["LV"] == (160.0, 352.0) and "dense references" in tab.attrs["bounds_source"]
    # LV: d(3) = 32/192 = 0.167, d(2) = d(4) = -0.083, all > 1.60e-2; ring: 32/72 and 16/72, all > 3.21e-2
    row = tab[(tab["model"] == "2d_sparse") & (tab["patient"] == seqs[1].patient) & (tab["view"] == seqs[1].view)]
    assert row.set_index("structure").loc[["LV", "MYO", "LA"], "inconsistent_frames"].tolist() == [3, 3, 0]
    summ = S.inconsistency_summary(tab)
    assert list(summ.index.get_level_values("model")[:3]) == ["reference", "2d_sparse", "3d_dense"]
    for st, th in (("LV", 1.60e-2), ("MYO", 3.21e-2)):
        r = summ.loc[(st, "2d_sparse")]
        assert r["threshold"] == th
        assert (r["frames"], r["inconsistent_frames"]) == (28, 3) and r["frame_fraction"] == pytest.approx(3 / 28)
        assert (r["sequences"], r["inconsistent_sequences"]) == (4, 1) and r["sequence_fraction"] == 0.25
        for clean in ("reference", "3d_dense"):  # linear areas: no violation at all
            assert summ.loc[(st, clean), "inconsistent_frames"] == 0 and summ.loc[(st, clean), "sequence_fraction"] == 0
    assert summ.loc[("LA", "2d_sparse"), "inconsistent_frames"] == 0
    # a second spike in the same sequence adds frames but not sequences
    preds["2d_sparse"][spiked] = _spike(_spike(seqs[1].dense, 3), 1)
    r = S.inconsistency_summary(S.smoothness_table(preds, seqs)).loc[("LV", "2d_sparse")]
    assert r["inconsistent_sequences"] == 1 and r["inconsistent_frames"] > 3
    lines = S.inconsistency_statements(summ)
    assert lines[0].startswith("LV") and "2D sparse 10.7% of frames, 25% of sequences (1/4)" in lines[0]
    assert "Above the reference's frame fraction: 2D sparse" in lines[0] and "Not above it: 3D dense" in lines[0]
    assert not any("itself violates" in ln for ln in lines)  # the control passes here
    with pytest.raises(ValueError, match="inconsistent_frames"):
        S.inconsistency_summary(tab.drop(columns="inconsistent_frames"))


def test_inconsistency_bounds_without_dense_reference_use_the_manual_labels():
    """Without a dense reference the bounds come from the manual ED/ES labels (the LV's extremes), not from the
    predictions: a model with a wide spike cannot widen the range that scales it."""
    seqs = [_linear_sequence(f"patient000{i}", "4CH", dense=False) for i in (1, 2)]
    full = _linear_sequence("x", "4CH").dense
    preds = {"2d_sparse": {seqs[0].key: _spike(full, 3), seqs[1].key: full}}
    tab = S.smoothness_table(preds, seqs)
    assert set(tab["model"]) == {"2d_sparse"} and "manual ED/ES labels" in tab.attrs["bounds_source"]
    assert tab.attrs["bounds"]["LV"] == (160.0, 352.0)
    assert S.inconsistency_summary(tab).loc[("LV", "2d_sparse"), "inconsistent_frames"] == 3


def test_inconsistency_thresholds_are_vitals():
    """vital/data/camus/statistics/attr_thresholds.yaml: lv_area 1.60e-2, myo_area 3.21e-2; vital has no LA or
    epicardium area, for which we use lv_area's."""
    assert S.VITAL_ATTR_THRESHOLDS["lv_area"] == 1.60e-2 and S.VITAL_ATTR_THRESHOLDS["myo_area"] == 3.21e-2
    assert S.INCONSISTENCY_THRESHOLDS == {"LV": 1.60e-2, "MYO": 3.21e-2, "EPI": 1.60e-2, "LA": 1.60e-2}
    assert files.TEMPORAL_INCONSISTENCY.endswith(".csv")


def test_smoothness_units_mm_is_rescaled_px(cohort):
    preds = {"2d_sparse": {s.key: _jitter(s.dense) for s in cohort}}
    px = S.smoothness_table(preds, cohort, include_reference=False).set_index(["patient", "view", "structure"])
    mm = S.smoothness_table(preds, cohort, units="mm", include_reference=False).set_index(
        ["patient", "view", "structure"]
    )
    # area x (sy*sx) and time step 1/(T-1): Eq. 2 scales by (sy*sx)^2 * (T-1)^3
    factor = (SPACING[0] * SPACING[1]) ** 2 * (T - 1) ** 3
    np.testing.assert_allclose(mm["smoothness"], px["smoothness"] * factor, rtol=1e-9)
    with pytest.raises(ValueError, match="units"):
        S.smoothness_table(preds, cohort, units="cm")


def test_paper_numbers_are_the_published_ones():
    assert P.PAPER_TABLE1.loc["3d_dense", ("ED", "LV", "dice")] == 0.952
    assert P.PAPER_TABLE1.loc["CLAS", ("ES", "LA", "mad")] == 1.8
    assert np.isnan(P.PAPER_TABLE1.loc["2d_dense", ("ES", "LV", "dice")])  # not given in the text
    assert P.PAPER_TABLE2.loc["3d_dense", ("EF", "corr")] == 0.859
    assert P.PAPER_TABLE2.loc["2d_sparse", ("EDV", "mae")] == 6.0
    med = P.PAPER_FIG3_MEDIANS
    assert (med.loc["3d_dense"] < med.loc["2d_dense"]).all() and (med.loc["2d_dense"] < med.loc["2d_sparse"]).all()


def test_side_by_side_tables_put_paper_epicardium_under_epi(cohort):
    preds = {"2d_sparse": {s.key: np.roll(s.dense, 2, axis=1) for s in cohort}, "3d_dense": {s.key: s.dense for s in cohort}}
    mean, sd = TB.summarise_table1(TB.segmentation_scores(preds, cohort))
    data = TB.table1_side_by_side(mean, sd, "ED", caption="t").data
    assert data.loc[("paper (CAMUS)", "3D dense"), ("MYO (epicardium)", "Dice")] == "0.961"
    assert data.loc[("paper (CAMUS)", "3D dense"), ("MYO (ring)", "Dice")] == "–"
    assert data.loc[("this run", "3D dense"), ("LV", "Dice")] == "1.000 ± 0.000"
    ref = TB.lv_indices(cohort, lambda s: s.labels)
    t2 = TB.table2({"3d_dense": TB.lv_indices(cohort, lambda s: s.dense)}, ref)
    d2 = TB.table2_side_by_side(t2, caption="t").data
    assert d2.loc[("paper (CAMUS)", "CLAS"), ("EF (%)", "corr")] == "0.926"


def test_fig2_videos_and_direction_statements(cohort):
    from echo_utils.report import fig2

    labels = {s.key: {"forward": _jitter(s.dense), "backward": _jitter(s.dense), "bidirectional": s.dense} for s in cohort}
    pl = fig2.score_pseudo_labels(cohort, labels, progress=False)
    nn = fig2.score_pseudo_labels(cohort, {s.key: {"2d_sparse": np.roll(s.dense, 1, axis=2)} for s in cohort},
                                    method="nnunet", progress=False)
    videos = F2.fig2_videos(pl, nn)
    assert set(videos["kind"]) == {"forward", "backward", "bidirectional", "2d_sparse"}
    assert len(videos) == len(cohort) * 4 * 4  # sequences x kinds x structures (LV, MYO, EPI, LA)
    lines = F2.direction_statements(videos)
    assert any(l.startswith("LV cavity: bidirectional beats forward") for l in lines)
    assert any("beats 2D sparse" in l for l in lines)


def test_load_predictions_reports_missing(cohort, tmp_path):
    import SimpleITK as sitk

    from echo_utils import segmentation as nnunet
    from echo_utils.rundir import RunPaths

    paths = RunPaths(tmp_path)
    seq = cohort[0]
    p = nnunet.prediction_path(paths, "3d_dense", seq)
    p.parent.mkdir(parents=True)
    sitk.WriteImage(sitk.GetImageFromArray(seq.dense), str(p))
    preds, missing = TB.load_predictions(paths, ["3d_dense", "2d_dense"], cohort[:2])
    assert list(preds) == ["3d_dense"] and np.array_equal(preds["3d_dense"][seq.key], seq.dense)
    assert missing == {"3d_dense": [cohort[1].key], "2d_dense": [cohort[0].key, cohort[1].key]}


def test_lv_indices_empty_cavity_is_nan_not_an_error(cohort):
    def no_lv(s):
        out = s.dense.copy()
        if s.key == "patient0001_4CH":
            out[s.es][out[s.es] == 1] = 0
        return out

    idx = TB.lv_indices(cohort, no_lv)
    assert np.isnan(idx.loc["patient0001", "ESV"]) and np.isnan(idx.loc["patient0001", "EF"])
    assert np.isfinite(idx.loc["patient0001", "EDV"]) and np.isfinite(idx.loc["patient0002", "EF"])
    assert idx.attrs["failed"] == ["patient0001: ESV not measurable", "patient0001: EF needs both volumes"]
    assert idx.attrs["n_missing"] == {"EDV": 0, "ESV": 1, "EF": 1}


def test_implausible_volumes_are_missing_and_counted_not_averaged(cohort):
    """Issue 13: a near-empty predicted ES cavity must not enter the EF MAE (it gave 1670 EF points there)."""
    def speck_at_es(s):
        out = s.dense.copy()
        if s.patient == "patient0002":
            out[s.es][out[s.es] == 1] = 2  # cavity gone...
            out[s.es, 10:12, 18:20] = 1  # ...but for a 2x2-pixel speck: a volume far below the floor
        return out

    ref = TB.lv_indices(cohort, lambda s: s.labels)
    auto = TB.lv_indices(cohort, speck_at_es)
    assert np.isnan(auto.loc["patient0002", "ESV"]) and np.isnan(auto.loc["patient0002", "EF"])
    assert auto.attrs["n_missing"] == {"EDV": 0, "ESV": 1, "EF": 1}
    assert any(f.startswith("patient0002: ESV") and "floor" in f for f in auto.attrs["failed"])
    raw = TB.lv_indices(cohort, speck_at_es, min_volume=0.0)  # the control: no floor
    assert 0 < raw.loc["patient0002", "ESV"] < 5.0  # the speck has a volume...
    assert raw.loc["patient0002", "EF"] > 90 > ref.loc["patient0002", "EF"] + 30  # ...and a wild EF
    t2 = TB.table2({"2d_dense": auto}, ref)
    assert t2.loc["2d_dense", ("EF", "n")] == 2 and t2.loc["2d_dense", ("missing", "ESV")] == 1
    assert t2.loc["2d_dense", ("EF", "mae")] == pytest.approx(0.0, abs=1e-9)  # the other two patients are exact
    lines = TB.table2_statements(t2)
    assert len(lines) == 1 and lines[0].startswith(
        "2D dense: compared on 3 / 2 / 2 patients (EDV / ESV / EF); missing (empty or implausible): 0 / 1 / 1, "
        "e.g. patient0002: ESV ")
    assert t2.attrs["failed"] == {"2d_dense": auto.attrs["failed"]}
    t2 = TB.table2({"2d_sparse": auto.iloc[:1], "3d_dense": ref}, ref)  # one patient: no MAE statistics
    assert TB.table2_statements(t2)[-1] == ("EF MAE: 3D dense vs 2D sparse not comparable (fewer than 2 patients "
                                            "with a plausible EF for one of them)")


def test_clinical_indices_flatten_and_recorded_ef_check(cohort):
    preds = {"3d_dense": {s.key: s.dense for s in cohort if s.patient != "patient0003"}}
    ref, auto = TB.clinical_indices(cohort, preds)
    assert list(ref.index) == ["patient0001", "patient0002", "patient0003"]
    assert list(auto["3d_dense"].index) == ["patient0001", "patient0002"]  # a model without a view: skipped
    np.testing.assert_allclose(auto["3d_dense"].to_numpy(), ref.loc[["patient0001", "patient0002"]].to_numpy())
    flat = TB.flatten(TB.table2(auto, ref).drop(columns="missing", level=0))
    assert flat["3d_dense|EF|n"] == 2 and flat["3d_dense|EDV|bias"] == 0.0 and "3d_dense|EF|corr" in flat
    assert TB.recorded_ef_check(ref, cohort) is None  # the hand-made cohort records no EF
    recorded = [dataclasses.replace(s, info={"EF": float(ref.loc[s.patient, "EF"]) + 2.0}) for s in cohort]
    assert TB.recorded_ef_check(ref, recorded).endswith("mean |difference| 2.0 EF points over 3 patients")


def test_table2_statements_compare_ef_mae(cohort):
    ref = TB.lv_indices(cohort, lambda s: s.labels)
    t2 = TB.table2({"3d_dense": TB.lv_indices(cohort, lambda s: s.dense),
                    "2d_sparse": TB.lv_indices(cohort, lambda s: np.where(s.dense == 2, 1, s.dense))}, ref)
    lines = TB.table2_statements(t2)
    assert lines[0].startswith("2D sparse: compared on 3 / 3 / 3 patients")
    assert lines[-1].startswith("EF MAE: 3D dense 0.0 vs 2D sparse") and "-> smaller" in lines[-1]


def test_paired_differences_and_statements(cohort):
    preds = {"2d_sparse": {s.key: np.roll(s.dense, 2, axis=1) for s in cohort},
             "3d_dense": {s.key: s.dense for s in cohort}}
    diffs = TB.paired_differences(TB.segmentation_scores(preds, cohort))
    assert set(diffs["model"]) == {"3d_dense"} and set(diffs["structure"]) == {"LV", "EPI"}
    row = diffs.set_index(["phase", "structure", "metric"]).loc[("ED", "LV", "hd")]
    assert row["n"] == 6 and row["mean_diff"] == pytest.approx(-2 * SPACING[0])  # 2-row shift removed
    assert row["p"] == pytest.approx(0.03125)  # exact Wilcoxon: 6 differences of one sign, 2 / 2**6
    ed_lv = diffs.set_index(["phase", "structure", "metric"]).loc[("ED", "LV", "dice")]
    assert ed_lv["mean_diff"] > 0
    lines = TB.table1_statements(diffs)
    assert lines[0].startswith("3D dense vs 2D sparse, ED LV cavity, 6 sequences: Dice +0.")
    assert "HD -4.0 mm (p = 0.031)" in lines[0]
    same = TB.paired_differences(TB.segmentation_scores({"2d_sparse": preds["3d_dense"], "x": preds["3d_dense"]}, cohort))
    assert same["mean_diff"].eq(0).all() and same["p"].isna().all()  # identical models: no test, no claim


def test_ratio_statements_against_the_paper(cohort):
    preds = {"3d_dense": {s.key: s.dense for s in cohort}, "2d_sparse": {s.key: _jitter(s.dense) for s in cohort}}
    tab = S.smoothness_table(preds, cohort, include_reference=False)
    lines = S.ratio_statements(tab)
    assert len(lines) == 3 and lines[0].startswith("LV cavity: 2D sparse / 3D dense median ratio")
    assert lines[0].endswith("28 in the paper")  # 7e6 / 2.5e5
    assert S.ratio_statements(tab[tab["model"] != "3d_dense"]) == []
    order = S.median_ordering(tab)  # default: the paper's order, 2D dense absent
    assert list(order.columns) == ["3d_dense", "2d_sparse", "holds"]
    assert S.ordering_statements(order)[0].endswith("holds")


def test_fig2_medians_match_the_paper_layout_and_control(cohort):
    from echo_utils.report import fig2

    labels = {s.key: {"forward": _jitter(s.dense), "backward": _jitter(s.dense), "bidirectional": s.dense} for s in cohort}
    pl = fig2.score_pseudo_labels(cohort, labels, progress=False)
    videos = F2.fig2_videos(pl)
    med = F2.fig2_medians(videos)
    assert list(med.columns) == list(P.PAPER_FIG2_MEDIANS.columns)
    assert list(med.index) == ["bidirectional", "forward", "backward"]
    assert med.loc["bidirectional", ("LV", "dice")] == 1.0
    html = F2.fig2_side_by_side(videos, caption="Fig. 2 medians").to_html()
    assert "0.962" in html and "this run" in html
    ident = {s.key: {"forward": s.dense, "backward": s.dense, "bidirectional": _jitter(s.dense)} for s in cohort}
    both = pd.concat([pl, fig2.score_pseudo_labels(cohort, ident, method="identity", progress=False)])
    lines = F2.control_statements(both, "dlir")
    assert lines[0].startswith("LV cavity: bidirectional with DLIR network 1.000 vs with identity")
    assert lines[0].endswith("the registration adds accuracy")
    assert F2.control_statements(pl, "dlir") == []  # no control rows, no claim


def test_nnunet_fig2_scores_reads_saved_predictions(cohort, tmp_path):
    import SimpleITK as sitk

    from echo_utils import segmentation as nnunet
    from echo_utils.rundir import RunPaths

    paths = RunPaths(tmp_path)
    for seq, folder in ((cohort[0], "2d_sparse_train"), (cohort[1], "2d_sparse_fig2")):
        p = nnunet.prediction_path(paths, folder, seq)
        p.parent.mkdir(parents=True)
        sitk.WriteImage(sitk.GetImageFromArray(seq.dense), str(p))
    scores, missing = F2.nnunet_fig2_scores(paths, cohort[:3])
    assert missing == [cohort[2].key] and set(scores["key"]) == {cohort[0].key, cohort[1].key}
    assert set(scores["kind"]) == {"2d_sparse"} and (scores["dice"] == 1.0).all()
    assert F2.nnunet_fig2_scores(paths, cohort[2:3]) == (None, [cohort[2].key])


def test_load_fig2_without_notebook_03(tmp_path):
    from types import SimpleNamespace

    from echo_utils.rundir import RunPaths

    videos, scores, notes = F2.load_fig2(SimpleNamespace(cfg=SimpleNamespace(registration=SimpleNamespace(method="dlir")),
                                                          paths=RunPaths(tmp_path)))
    assert videos is None and scores is None and "run notebook 03 first" in notes[0]
