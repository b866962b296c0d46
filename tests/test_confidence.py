"""Pseudo-label confidence (echo_utils.pseudolabels.confidence): the definition, the store, the error scores."""

from types import SimpleNamespace

import numpy as np
import pytest

from echo_utils.pseudolabels import confidence as C
from echo_utils.pseudolabels.propagate import PseudoLabels


def _disk(shape, centre, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def _seq(forward, backward, dense=None, key="patient0001_2CH"):
    t = forward.shape[0]
    return SimpleNamespace(key=key, patient=key.split("_")[0], view=key.split("_")[1], ed=0, es=t - 1,
                           spacing=(0.5, 0.5), dense=dense, images=np.zeros(forward.shape, np.float32))


def test_agreement_far_from_the_boundary_is_maximal():
    lab = np.zeros((64, 64), np.uint8)
    lab[_disk(lab.shape, (32, 32), 15)] = 1
    conf = C.frame_confidence(lab, lab, 0.5, 0.5)
    assert conf.max() == 1.0
    assert conf[32, 32] == 1.0  # 15 px inside, both agree
    assert conf[2, 2] == 1.0  # far outside, both agree
    # next to an agreed boundary (1 px inside: |s| = 1, no band, floor r0 = 2): 1 / (2 r0)
    assert conf[32, 32 + 15] == pytest.approx(0.25)


def _planar(t, a, b, shape=(40, 60)):
    """Forward: columns < a are LV; backward: columns < b (a straight band of disagreement a <= col < b)."""
    fwd = np.zeros((t, *shape), np.uint8)
    bwd = np.zeros((t, *shape), np.uint8)
    fwd[:, :, :a] = 1
    bwd[:, :, :b] = 1
    return fwd, bwd


def test_known_disagreement_band_is_exactly_the_low_confidence_region():
    fwd, bwd = _planar(3, 20, 28)  # mid-sequence frame: half-widths 4 px >= r0 on both sides
    conf = C.confidence_map(fwd, bwd)
    band = fwd[1] != bwd[1]
    assert band[:, 20:28].all() and band.sum() == 40 * 8
    np.testing.assert_array_equal(conf[1] < 0.5, band)
    assert (conf[0] == 1).all() and (conf[-1] == 1).all()  # ED and ES carry the manual references
    # a band narrower than r0 on one side (frames near ED/ES): still inside the low region, which widens to r0
    fwd, bwd = _planar(7, 20, 28)
    conf = C.confidence_map(fwd, bwd)
    for k in range(1, 6):
        assert (conf[k][fwd[k] != bwd[k]] < 0.5).all()


def test_band_confidence_is_zero_on_the_fused_boundary_and_grows_across_the_band():
    # 1D analytic case: contours at x = 20 (forward) and x = 26 (backward), mid-sequence weights: fused boundary at
    # 23, half-width h = 3 on both sides, r0 = 2 < h
    r = np.arange(0.0, 40.0)
    d_f, d_b = 20.0 - r, 26.0 - r
    conf = C.class_confidence(d_f, d_b, 0.5, 0.5, r0=2.0)
    assert conf[23] == 0.0
    np.testing.assert_allclose(conf[17:30], np.minimum(1, np.abs(23.0 - r[17:30]) / 6.0), rtol=1e-6)
    assert (conf[21:26] < 0.5).all() and (conf[[19, 27]] > 0.5).all()
    assert conf[0] == 1.0 and conf[39] == 1.0
    # weights 0.75 / 0.25: fused boundary at 21.5; forward side h = 1.5 < r0, backward side h = 4.5
    conf_w = C.class_confidence(d_f, d_b, 0.75, 0.25, r0=2.0)
    np.testing.assert_allclose(conf_w[21], 0.5 / 4.0, rtol=1e-6)
    np.testing.assert_allclose(conf_w[25], 3.5 / 9.0, rtol=1e-6)
    assert conf_w.max() == 1.0


def test_class_absent_from_both_directions_leaves_confidence_unchanged():
    lab = np.zeros((32, 32), np.uint8)
    lab[8:24, 8:24] = 1
    a = C.frame_confidence(lab, lab, 0.5, 0.5)
    b = C.frame_confidence(lab, lab, 0.5, 0.5, classes=[0, 1, 3])
    np.testing.assert_array_equal(a, b)


def test_rank_auroc_matches_scikit_learn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 500).astype(float)  # many ties
    pos = rng.random(500) < 0.3 + 0.1 * scores
    assert C.rank_auroc(scores, pos) == pytest.approx(roc_auc_score(pos, scores), abs=1e-12)
    conf = rng.random(200)
    err = conf < 0.2
    assert C.error_auroc(conf, err) == 1.0
    assert C.error_auroc(1 - conf, err) == 0.0
    assert np.isnan(C.error_auroc(conf, np.zeros(200, bool)))


def test_score_confidence_finds_errors_in_the_band():
    t, shape = 5, (64, 64)
    fwd = np.zeros((t, *shape), np.uint8)
    bwd = np.zeros((t, *shape), np.uint8)
    fwd[:] = np.where(_disk(shape, (32, 32), 10), 1, 0)
    bwd[:] = np.where(_disk(shape, (32, 32), 16), 1, 0)
    from echo_utils.pseudolabels.fuse import fuse_bidirectional

    fused = fuse_bidirectional(fwd, bwd)
    truth = np.where(_disk(shape, (32, 32), 13), 1, 0).astype(np.uint8)[None].repeat(t, 0)
    seq = _seq(fwd, bwd, dense=truth)
    pl = PseudoLabels(fwd, bwd, fused)
    conf = C.sequence_confidence_map(seq, pl)
    tab = C.score_confidence([seq], {"reg": {seq.key: pl}}, {"reg": {seq.key: conf}}, structures=("LV",))
    row = tab.iloc[0]
    assert row.n_errors > 0
    # every error lies in the disagreement band (confidence < 0.5) and most band pixels are right: AUROC high
    errors = (fused != truth)[1:-1]
    assert (conf[1:-1][errors] < 0.5).all()
    assert row.auroc > 0.9
    rel = C.reliability_table([seq], {"reg": {seq.key: pl}}, {"reg": {seq.key: conf}}, bins=4)
    assert rel.n_errors.sum() == errors.sum()
    assert rel.n_pixels.sum() > errors.sum()


def test_store_reads_back_and_recomputes_when_labels_or_definition_change(tmp_path, monkeypatch):
    t, shape = 4, (32, 32)
    fwd = np.zeros((t, *shape), np.uint8)
    fwd[:, 8:20, 8:20] = 1
    bwd = fwd.copy()
    bwd[:, 8:24, 8:20] = 1
    seq = _seq(fwd, bwd)
    pl = PseudoLabels(fwd, bwd, fwd)
    a = C.sequence_confidence(tmp_path, seq, pl)
    path = C.confidence_path(tmp_path, seq, C.confidence_key())
    assert path.is_file() and (path.parents[1] / "params.json").is_file()
    mtime = path.stat().st_mtime_ns
    b = C.sequence_confidence(tmp_path, seq, pl)
    np.testing.assert_array_equal(a, b)
    assert path.stat().st_mtime_ns == mtime  # read back, not rewritten
    # other labels under the same name: the header digest no longer matches, the map is recomputed
    bwd2 = fwd.copy()
    pl2 = PseudoLabels(fwd, bwd2, fwd)
    c = C.sequence_confidence(tmp_path, seq, pl2)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(c, C.sequence_confidence_map(seq, pl2))
    # another definition: another folder; the old file is left alone
    monkeypatch.setattr(C, "DEFINITION", {**C.DEFINITION, "version": 999})
    assert C.confidence_key() != path.parts[-3]
    C.sequence_confidence(tmp_path, seq, pl)
    assert C.confidence_path(tmp_path, seq, C.confidence_key()).is_file() and path.is_file()


def test_set_confidences_stores_only_the_named_sets_keys(tmp_path):
    fwd, bwd = _planar(4, 20, 28)
    seq = _seq(fwd, bwd)
    pl = PseudoLabels(fwd, bwd, fwd)
    labels = {"dlir": {seq.key: pl}, "identity": {seq.key: pl}}
    confs = C.set_confidences([seq], labels, tmp_path, stored={"dlir": [seq.key]})
    expected = C.sequence_confidence_map(seq, pl)
    assert set(confs) == {"dlir", "identity"}
    for name in confs:
        np.testing.assert_array_equal(confs[name][seq.key], expected)
    assert C.confidence_path(tmp_path / "dlir", seq, C.confidence_key()).is_file()
    assert not (tmp_path / "identity").exists()  # not named in stored: computed in memory


def test_frames_outside_ed_es_measure_distance_only():
    t, shape = 6, (32, 32)
    fwd = np.zeros((t, *shape), np.uint8)
    fwd[:, 8:20, 8:20] = 1
    bwd = fwd.copy()
    bwd[2:5, 8:24, 8:20] = 1  # frames 2..4 lie between ED = 1 and ES = 4
    seq = _seq(fwd, bwd)
    seq.ed, seq.es = 1, 4
    conf = C.sequence_confidence_map(seq, PseudoLabels(fwd, bwd, fwd))
    # outside [ED, ES] forward == backward: distance only (1 px from the boundary: 1 / (2 r0))
    assert conf[0].min() == pytest.approx(0.25) and (conf[[1, 4]] == 1).all()
    assert (conf[2][fwd[2] != bwd[2]] < 0.5).all()


def test_generate_pseudo_labels_writes_the_confidence_beside_the_labels(tmp_path):
    import torch

    from echo_utils.pseudolabels import generate_pseudo_labels, load_pseudo_labels

    t, shape = 5, (32, 32)
    ed = np.zeros(shape, np.uint8)
    ed[8:22, 8:22] = 1
    es = np.zeros(shape, np.uint8)
    es[10:20, 10:20] = 1
    seq = SimpleNamespace(key="patient0001_2CH", patient="patient0001", view="2CH", ed=0, es=t - 1,
                          spacing=(0.5, 0.5), images=np.random.default_rng(0).random((t, *shape), np.float32),
                          labels={0: ed, t - 1: es})

    def identity(fixed, moving):
        return torch.zeros(fixed.shape[0], 2, *fixed.shape[2:])

    out = generate_pseudo_labels([seq], identity, tmp_path / "identity", method_name="identity",
                                 registration_id="id", progress=False)
    path = C.confidence_path(tmp_path / "identity", seq, C.confidence_key())
    assert path.is_file()
    pl = load_pseudo_labels(tmp_path / "identity", seq)
    conf = C.sequence_confidence(tmp_path / "identity", seq, pl)
    np.testing.assert_array_equal(conf, C.sequence_confidence_map(seq, out[seq.key]))
    assert (conf[1:-1][pl.forward[1:-1] != pl.backward[1:-1]] < 0.5).all()


def test_report_figures_and_statements():
    from echo_utils.report import confidence as R

    fwd, bwd = _planar(5, 20, 28)
    from echo_utils.pseudolabels.fuse import fuse_bidirectional

    fused = fuse_bidirectional(fwd, bwd)
    truth = np.zeros_like(fused)
    truth[:, :, :24] = 1
    seq = _seq(fwd, bwd, dense=truth)
    pl = PseudoLabels(fwd, bwd, fused)
    confs = {r: {seq.key: C.sequence_confidence_map(seq, pl)} for r in ("dlir", "identity")}
    labels = {r: {seq.key: pl} for r in ("dlir", "identity")}
    scores = C.score_confidence([seq], labels, confs, structures=("LV",))
    tab = R.auroc_table(scores)
    assert ("dlir", "auroc") in tab.columns and ("identity", "auroc_distance") in tab.columns
    shown = R.auroc_display(scores, 1)
    assert shown.data.equals(tab) and shown.caption.startswith("AUROC of low confidence for mislabelled pixels (1 ")
    lines = R.auroc_statements(scores, "dlir", structures=("LV",))
    assert len(lines) == 1 and "identity control" in lines[0]
    rel = C.reliability_table([seq], labels, confs, bins=5)
    fig = R.reliability_figure(rel, title="t")
    assert len(fig.data) == 2 and fig.layout.yaxis.type == "log"
    frame = R.worst_frame(seq, fused)
    assert frame in (1, 2, 3)
    fig = R.confidence_overlay_figure(seq, fused, confs["dlir"][seq.key], frame, title="t")
    assert any(tr.name == "mislabelled (exact truth)" for tr in fig.data)
    fig = R.confidence_frames_figure(seq, confs["dlir"][seq.key], {"mid": 2}, title="t")
    assert len(fig.data) == 1


def test_damaged_confidence_file_is_recomputed(tmp_path):
    fwd, bwd = _planar(3, 20, 28)
    seq = _seq(fwd, bwd)
    pl = PseudoLabels(fwd, bwd, fwd)
    a = C.sequence_confidence(tmp_path, seq, pl)
    path = C.confidence_path(tmp_path, seq, C.confidence_key())
    path.write_bytes(path.read_bytes()[:40])  # truncated
    np.testing.assert_array_equal(C.sequence_confidence(tmp_path, seq, pl), a)
