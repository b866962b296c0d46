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
    assert conf.max() == 1.0 and conf.min() > 0.5  # the directions agree everywhere
    assert conf[32, 32] == 1.0  # 15 px inside, both agree
    assert conf[2, 2] == 1.0  # far outside, both agree
    # next to the boundary (1 px inside, |s| = 1 < r0) the confidence is not maximal
    assert 0.5 < conf[32, 32 + 15] < 1.0


def test_known_disagreement_band_is_exactly_the_low_confidence_region():
    t, shape = 5, (64, 64)
    fwd = np.zeros((t, *shape), np.uint8)
    bwd = np.zeros((t, *shape), np.uint8)
    fwd[:] = np.where(_disk(shape, (32, 32), 10), 1, 0)
    bwd[:] = np.where(_disk(shape, (32, 32), 16), 1, 0)
    # a myocardium ring around the cavity, displaced in the backward direction only: a second band
    fwd[:, 40:46, 20:44][fwd[:, 40:46, 20:44] == 0] = 2
    bwd[:, 50:56, 20:44] = 2
    conf = C.confidence_map(fwd, bwd)
    band = fwd != bwd
    assert band[1:-1].any()
    for k in range(1, t - 1):
        np.testing.assert_array_equal(conf[k] < 0.5, band[k])
    # ED and ES carry the manual references (weight 1): no doubt
    assert (conf[0] == 1).all() and (conf[-1] == 1).all()


def test_band_confidence_is_zero_on_the_fused_boundary_and_grows_across_the_band():
    # 1D analytic case: concentric contours at r = 20 (forward) and r = 26 (backward), mid-sequence weights
    r = np.arange(0.0, 40.0)
    d_f, d_b = 20.0 - r, 26.0 - r
    conf = C.class_confidence(d_f, d_b, 0.5, 0.5, r0=2.0)
    assert conf[23] == 0.0  # s = 0: the fused boundary
    np.testing.assert_allclose(conf[21:26], 0.5 * np.abs(23.0 - r[21:26]) / 6.0, rtol=1e-6)
    # agreement: 0.5 + 0.5 min(1, |s| / (r0 + delta)), delta = 6
    np.testing.assert_allclose(conf[18], 0.5 + 0.5 * 5.0 / 8.0, rtol=1e-6)
    assert conf[0] == 1.0 and conf[39] == 1.0
    # the weights move the fused boundary along the band
    conf_w = C.class_confidence(d_f, d_b, 0.75, 0.25)
    assert np.argmin(conf_w) == 21  # s = 0.75 (20 - r) + 0.25 (26 - r) = 21.5 - r: pixels 21 and 22 tie
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
    assert rel.loc[rel.bin_lo >= 0.5, "n_errors"].sum() == 0


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
    assert (c > 0.5).all() and not np.array_equal(a, c)
    # another definition: another folder; the old file is left alone
    monkeypatch.setattr(C, "DEFINITION", {**C.DEFINITION, "version": 999})
    assert C.confidence_key() != path.parts[-3]
    C.sequence_confidence(tmp_path, seq, pl)
    assert C.confidence_path(tmp_path, seq, C.confidence_key()).is_file() and path.is_file()


def test_frames_outside_ed_es_measure_distance_only():
    t, shape = 6, (32, 32)
    fwd = np.zeros((t, *shape), np.uint8)
    fwd[:, 8:20, 8:20] = 1
    bwd = fwd.copy()
    bwd[2:5, 8:24, 8:20] = 1  # frames 2..4 lie between ED = 1 and ES = 4
    seq = _seq(fwd, bwd)
    seq.ed, seq.es = 1, 4
    conf = C.sequence_confidence_map(seq, PseudoLabels(fwd, bwd, fwd))
    assert (conf[[0, 5]] > 0.5).all() and (conf[[1, 4]] == 1).all()
    np.testing.assert_array_equal(conf[2] < 0.5, fwd[2] != bwd[2])


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
    np.testing.assert_array_equal(conf[1:-1] < 0.5, pl.forward[1:-1] != pl.backward[1:-1])
