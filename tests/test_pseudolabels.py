"""Tests of echo_utils.pseudolabels (its contract names through echo_utils.fusion): propagation, Eq. 1 fusion,
pseudo-labels of a sequence, NIfTI cache.

The registrations here are private test doubles: an identity, and a translation estimated from the image
centroids (exact for the moving-disc sequences used). Label warping uses a private nearest-neighbour translation
warp with the project's convention (``warped(p) = moving(p + u(p))``), so these tests do not depend on
echo_utils.registration.
"""

from __future__ import annotations

import json
import warnings

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from echo_utils import fusion, pseudolabels
from echo_utils.camus import EchoSequence
from echo_utils.fusion import PseudoLabels
from echo_utils.pseudolabels import PseudoLabelCacheMismatch
from echo_utils.registration import inference
from echo_utils.report import fig2


# ----------------------------------------------------------------------------------------------------------------
# test doubles
# ----------------------------------------------------------------------------------------------------------------


def grid_warp(x: torch.Tensor, u: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """warped(p) = x(p + u(p)); u (N,2,H,W) in pixels (ch0 rows, ch1 cols); align_corners=True, border padding."""
    n, _, h, w = u.shape
    if x.shape[0] == 1 and n > 1:
        x = x.expand(n, *x.shape[1:])
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    gy = (ys + u[:, 0]) * 2 / (h - 1) - 1
    gx = (xs + u[:, 1]) * 2 / (w - 1) - 1
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(x.float(), grid, mode=mode, padding_mode="border", align_corners=True)


def identity_registration(fixed, moving):
    return torch.zeros(fixed.shape[0], 2, *fixed.shape[-2:])


class CentroidTranslation:
    """Translation u = centroid(moving) - centroid(fixed) (rounded): warp(moving, u) == fixed for a moved blob."""

    def __init__(self):
        self.calls = 0
        self.pairs = 0

    def __call__(self, fixed, moving):
        self.calls += 1
        self.pairs += fixed.shape[0]
        out = torch.zeros(fixed.shape[0], 2, *fixed.shape[-2:])
        for i in range(fixed.shape[0]):
            cf = ndi.center_of_mass(fixed[i, 0].numpy())
            cm = ndi.center_of_mass(moving[i, 0].numpy())
            out[i, 0] = round(cm[0] - cf[0])
            out[i, 1] = round(cm[1] - cf[1])
        return out


def disc(shape, center, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius**2


def heart_label(shape, center):
    """LV cavity disc (1) inside a myocardium ring (2), LA disc (3) below."""
    lab = np.zeros(shape, np.uint8)
    lab[disc(shape, center, 9)] = 2
    lab[disc(shape, center, 6)] = 1
    lab[disc(shape, (center[0] + 13, center[1]), 4)] = 3
    return lab


def moving_sequence(t=7, shape=(64, 64), start=(22, 20), velocity=(1, 2), ed=0, es=None, patient="patient0001"):
    """A heart translating by ``velocity`` px per frame; images = smoothed labels; exact dense truth."""
    es = t - 1 if es is None else es
    dense = np.stack([heart_label(shape, (start[0] + k * velocity[0], start[1] + k * velocity[1])) for k in range(t)])
    images = ndi.gaussian_filter((dense > 0).astype(np.float32) + 0.5 * (dense == 1), sigma=(0, 1, 1))
    images = (images / images.max()).astype(np.float32)
    return EchoSequence(
        patient=patient, view="2CH", images=images, spacing=(0.3, 0.2), ed=ed, es=es,
        labels={ed: dense[ed].copy(), es: dense[es].copy()}, dense=dense, dense_kind="exact",
    )


# ----------------------------------------------------------------------------------------------------------------
# propagation
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("mode", ["sequential", "fixed"])
def test_identity_registration_propagates_label_unchanged(direction, mode):
    seq = moving_sequence()
    label = seq.dense[0] if direction == "forward" else seq.dense[-1]
    out = fusion.propagate(seq.images, label, identity_registration, direction, mode=mode, warp=grid_warp)
    assert out.shape == seq.images.shape and out.dtype == np.uint8
    assert all(np.array_equal(out[k], label) for k in range(len(out)))


@pytest.mark.parametrize("mode", ["sequential", "composed", "fixed"])
def test_translation_registration_shifts_label_exactly(mode):
    seq = moving_sequence(t=6, velocity=(2, -3), start=(24, 40))
    reg = CentroidTranslation()
    fwd = fusion.propagate(seq.images, seq.dense[0], reg, "forward", mode=mode, warp=grid_warp)
    bwd = fusion.propagate(seq.images, seq.dense[-1], reg, "backward", mode=mode, warp=grid_warp)
    for k in range(6):
        shifted = np.roll(seq.dense[0], (2 * k, -3 * k), axis=(0, 1))  # far from the border: roll == shift
        assert np.array_equal(fwd[k], shifted), f"forward frame {k}"
        assert np.array_equal(bwd[k], seq.dense[k]), f"backward frame {k}"
    assert reg.calls == 2, "all pairs of a direction go to the registration in one batched call"


def test_composed_mode_accumulates_subpixel_motion_that_sequential_rounds_away():
    label = heart_label((64, 64), (30, 30))
    images = np.zeros((5, 64, 64), np.float32)

    def drift(fixed, moving):  # 0.4 px along the columns at every step
        u = torch.zeros(fixed.shape[0], 2, *fixed.shape[-2:])
        u[:, 1] = 0.4
        return u

    seq = fusion.propagate(images, label, drift, mode="sequential", warp=grid_warp)
    comp = fusion.propagate(images, label, drift, mode="composed", warp=grid_warp)
    assert all(np.array_equal(seq[k], label) for k in range(5))  # each step rounds 0.4 px to 0
    for k, shift in enumerate([0, 0, 1, 1, 2]):  # round(0.4 k)
        assert np.array_equal(comp[k], np.roll(label, -shift, axis=1)), k


def test_sequential_mode_registers_next_to_current_frame():
    seq = moving_sequence(t=5)
    seen = []

    def spy(fixed, moving):
        seen.extend(zip(fixed[:, 0, 0, 0].tolist(), moving[:, 0, 0, 0].tolist()))
        return identity_registration(fixed, moving)

    images = np.broadcast_to(np.arange(5, dtype=np.float32)[:, None, None] / 10, (5, 8, 8)).copy()
    fusion.propagate(images, np.ones((8, 8), np.uint8), spy, "forward", warp=grid_warp)
    assert np.allclose(seen, [((k + 1) / 10, k / 10) for k in range(4)])  # (fixed = t+1, moving = t)
    seen.clear()
    fusion.propagate(images, np.ones((8, 8), np.uint8), spy, "backward", mode="fixed", warp=grid_warp)
    assert np.allclose(seen, [(k / 10, 0.4) for k in (3, 2, 1, 0)])  # (fixed = every frame, moving = ES)


def test_propagate_rejects_bad_input():
    seq = moving_sequence()
    with pytest.raises(ValueError, match="shape"):
        fusion.propagate(seq.images, seq.dense[0][:-1], identity_registration, warp=grid_warp)
    with pytest.raises(ValueError, match="direction"):
        fusion.propagate(seq.images, seq.dense[0], identity_registration, "sideways", warp=grid_warp)
    with pytest.raises(ValueError, match=r"\(T, H, W\)"):
        fusion.propagate(seq.images[0], seq.dense[0], identity_registration, warp=grid_warp)

    def bad(fixed, moving):
        return torch.zeros(fixed.shape[0], 2, 4, 4)

    with pytest.raises(ValueError, match="displacement of shape"):
        fusion.propagate(seq.images, seq.dense[0], bad, warp=grid_warp)


# ----------------------------------------------------------------------------------------------------------------
# Eq. 1 fusion
# ----------------------------------------------------------------------------------------------------------------


def test_fusion_weights_conventions():
    wf, wb = pseudolabels.fusion_weights(5, "authors")
    assert wf[0] == 1.0 and wb[-1] == 1.0 and np.allclose(wf + wb, 1)
    assert np.isclose(wf[2], 0.5)
    wf, wb = pseudolabels.fusion_weights(5, "paper")
    assert np.isclose(wf[0], np.cos(np.pi / 10) ** 2) and wb[-1] == 1.0  # Eq. 1 as printed, t = 1..N
    with pytest.raises(ValueError):
        pseudolabels.fusion_weights(5, "other")


@pytest.mark.parametrize("spacing", [None, (0.7, 0.3)])
def test_signed_distance_matches_scipy(spacing):
    rng = np.random.default_rng(0)
    mask = ndi.binary_opening(rng.random((40, 50)) > 0.4, iterations=2)
    sp = spacing or (1.0, 1.0)
    ref = ndi.distance_transform_edt(mask, sampling=sp) - ndi.distance_transform_edt(~mask, sampling=sp)
    assert np.allclose(pseudolabels.signed_distance(mask, spacing), ref, atol=1e-4)
    assert (pseudolabels.signed_distance(np.zeros((5, 6), bool)) < -10).all()  # empty: farther than the image


def random_labels(rng, t=6, shape=(48, 56)):
    out = np.zeros((t, *shape), np.uint8)
    for k in range(t):
        c = (24 + rng.integers(-4, 5), 28 + rng.integers(-4, 5))
        out[k] = heart_label(shape, c)
        out[k][ndi.binary_dilation(rng.random(shape) > 0.995, iterations=2)] = rng.integers(1, 4)
    return out


def naive_fusion(forward, backward, weights, assemble):
    """Full-frame scipy reference of Eq. 1 (independent of the cropping and the edt package)."""
    t = forward.shape[0]
    wf, wb = pseudolabels.fusion_weights(t, weights)
    k = int(max(forward.max(), backward.max())) + 1
    out = np.zeros_like(forward)
    for i in range(t):
        s = []
        for c in range(k):
            ds = []
            for m in (forward[i] == c, backward[i] == c):
                ds.append(ndi.distance_transform_edt(m) - ndi.distance_transform_edt(~m) if m.any() else -1e9 + 0 * m)
            s.append(wf[i] * ds[0] + wb[i] * ds[1])
        s = np.round(np.stack(s), 6)  # documented tie rule: equal within 1e-6 -> lowest label; 0 is not > 0
        out[i] = np.argmax(s, 0) if assemble == "sdf" else np.argmax(s > 0, 0)
    return out


@pytest.mark.parametrize("assemble", ["sdf", "argmax"])
@pytest.mark.parametrize("weights", ["authors", "paper"])
def test_fusion_equals_full_frame_scipy_reference(assemble, weights):
    rng = np.random.default_rng(1)
    f, b = random_labels(rng), random_labels(rng)
    out = fusion.fuse_bidirectional(f, b, weights=weights, assemble=assemble)
    assert np.array_equal(out, naive_fusion(f, b, weights, assemble))


def test_fused_signed_distance_is_eq1_before_thresholding():
    rng = np.random.default_rng(2)
    f, b = random_labels(rng, t=5), random_labels(rng, t=5)
    for c in (1, 2):
        s = pseudolabels.fused_signed_distance(f, b, c, weights="paper")
        wf, wb = pseudolabels.fusion_weights(5, "paper")
        ref = np.stack([wf[i] * (ndi.distance_transform_edt(f[i] == c) - ndi.distance_transform_edt(f[i] != c))
                        + wb[i] * (ndi.distance_transform_edt(b[i] == c) - ndi.distance_transform_edt(b[i] != c))
                        for i in range(5)])
        np.testing.assert_allclose(s, ref, atol=1e-9)
        # thresholded at 0 it gives the class where the argmax rule claims it (no other class claims these pixels)
        out = fusion.fuse_bidirectional(f, b, weights="paper", assemble="argmax")
        assert ((out == c) <= (np.round(s, 6) > 0)).all()


def test_fuse_directions_fuses_ed_to_es_and_copies_the_rest():
    """fuse_directions re-runs Eq. 1 between ED and ES with other options and copies the other frames."""
    seq = moving_sequence(t=8, ed=2, es=6)
    rng = np.random.default_rng(3)
    fwd, bwd = random_labels(rng, t=8), random_labels(rng, t=8)
    marker = np.full(fwd.shape, 7, np.uint8)
    pl = PseudoLabels(forward=fwd, backward=bwd, bidirectional=marker)
    out = pseudolabels.fuse_directions(seq, pl, assemble="argmax", weights="paper")
    assert (out[[0, 1, 7]] == 7).all()
    assert np.array_equal(out[2:7], fusion.fuse_bidirectional(fwd[2:7], bwd[2:7], assemble="argmax", weights="paper"))
    assert (pl.bidirectional == 7).all()  # the input is not modified


@pytest.mark.parametrize("assemble", ["sdf", "argmax"])
def test_authors_weights_keep_references_at_ed_and_es(assemble):
    rng = np.random.default_rng(2)
    f, b = random_labels(rng), random_labels(rng)
    assert not np.array_equal(f[0], b[0])
    out = fusion.fuse_bidirectional(f, b, weights="authors", assemble=assemble)
    assert np.array_equal(out[0], f[0]) and np.array_equal(out[-1], b[-1])
    paper = fusion.fuse_bidirectional(f, b, weights="paper", assemble=assemble)
    assert np.array_equal(paper[-1], b[-1])


@pytest.mark.parametrize("assemble", ["sdf", "argmax"])
def test_two_discs_fuse_to_intermediate_radius(assemble):
    t, shape, c = 5, (80, 80), (40, 41)
    f = np.repeat(disc(shape, c, 10)[None], t, 0).astype(np.uint8)
    b = np.repeat(disc(shape, c, 20)[None], t, 0).astype(np.uint8)
    out = fusion.fuse_bidirectional(f, b, assemble=assemble)  # authors: mid frame weights 0.5 / 0.5
    yy, xx = np.mgrid[:80, :80]
    r = np.hypot(yy - c[0], xx - c[1])
    mid = out[2].astype(bool)
    assert mid[r <= 14].all() and not mid[r >= 16].any()  # a disc of radius 15 within one pixel
    assert abs(np.sqrt(mid.sum() / np.pi) - 15) < 1


def test_output_is_a_valid_label_map():
    rng = np.random.default_rng(3)
    for assemble in ("sdf", "argmax"):
        f, b = random_labels(rng, t=4), random_labels(rng, t=4)
        out = fusion.fuse_bidirectional(f, b, assemble=assemble, closing=3)
        assert out.shape == f.shape and out.dtype == np.uint8
        assert set(np.unique(out)) <= {0, 1, 2, 3}


def test_argmax_rule_leaves_holes_that_sdf_fills():
    """Authors' rule: a pixel that no fused class claims becomes background; the sdf rule gives it a class."""
    shape = (40, 40)
    f = np.zeros((3, *shape), np.uint8)
    b = np.zeros_like(f)
    f[:, 10:30, 10:20] = 1
    f[:, 10:30, 20:30] = 2
    b[:, 10:30, 10:24] = 1  # the LV/MYO border moved by 4 px
    b[:, 10:30, 24:30] = 2
    argmax = fusion.fuse_bidirectional(f, b, assemble="argmax")
    sdf = fusion.fuse_bidirectional(f, b, assemble="sdf")
    assert (argmax[1, 10:30, 10:30] == 0).any()
    assert (sdf[1, 10:30, 10:30] > 0).all()


def test_fusion_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        fusion.fuse_bidirectional(np.zeros((3, 8, 8), np.uint8), np.zeros((3, 8, 9), np.uint8))
    with pytest.raises(ValueError, match="assembly"):
        fusion.fuse_bidirectional(np.zeros((3, 8, 8), np.uint8), np.zeros((3, 8, 8), np.uint8), assemble="vote")


# ----------------------------------------------------------------------------------------------------------------
# pseudo-labels of a sequence
# ----------------------------------------------------------------------------------------------------------------


def test_pseudo_labels_of_a_moving_heart_are_exact():
    seq = moving_sequence(t=7)
    reg = CentroidTranslation()
    pl = fusion.pseudo_labels(seq, reg, warp=grid_warp)
    assert reg.calls == 1, "both directions in one batched registration call"
    for kind, arr in pl.items():
        assert arr.dtype == np.uint8 and arr.shape == seq.images.shape
        assert np.array_equal(arr, seq.dense), kind


def test_pseudo_labels_ends_are_the_references_and_full_cycle_frames_are_filled():
    seq = moving_sequence(t=9, ed=2, es=6)
    pl = fusion.pseudo_labels(seq, CentroidTranslation(), warp=grid_warp)
    assert np.array_equal(pl.forward[2], seq.labels[2]) and np.array_equal(pl.backward[6], seq.labels[6])
    assert np.array_equal(pl.bidirectional[2], seq.labels[2]) and np.array_equal(pl.bidirectional[6], seq.labels[6])
    for k in (0, 1, 7, 8):  # outside [ED, ES]: propagated from the nearest reference, the same for all kinds
        assert np.array_equal(pl.forward[k], pl.backward[k]) and np.array_equal(pl.forward[k], pl.bidirectional[k])
        assert np.array_equal(pl.forward[k], seq.dense[k])


def test_pseudo_labels_when_ed_is_after_es():
    seq = moving_sequence(t=6, ed=5, es=1)
    pl = fusion.pseudo_labels(seq, CentroidTranslation(), warp=grid_warp)
    assert np.array_equal(pl.bidirectional, seq.dense)


def test_pseudo_labels_bad_input():
    seq = moving_sequence()
    del seq.labels[seq.es]
    with pytest.raises(ValueError, match="no ES label"):
        fusion.pseudo_labels(seq, identity_registration, warp=grid_warp)
    seq = moving_sequence()
    seq.labels[seq.ed] = np.zeros_like(seq.labels[seq.ed])
    with pytest.raises(ValueError, match="ED label is empty"):
        fusion.pseudo_labels(seq, identity_registration, warp=grid_warp)
    seq = moving_sequence()
    seq.labels[seq.es] = seq.labels[seq.es][:-1]
    with pytest.raises(ValueError, match="shape"):
        fusion.pseudo_labels(seq, identity_registration, warp=grid_warp)
    seq = moving_sequence()
    seq.labels[seq.ed][seq.labels[seq.ed] == 3] = 0  # LA only in the ES label
    with pytest.warns(UserWarning, match="class 3 .*in the ES label but not in the ED label"):
        pl = fusion.pseudo_labels(seq, CentroidTranslation(), warp=grid_warp)
    assert not (pl.forward == 3).any() and (pl.bidirectional[-1] == 3).any()


def test_config_supplies_options_and_keywords_win():
    from echo_utils.config import PseudoLabelConfig

    seq = moving_sequence(t=5)
    seq.labels[seq.es] = np.roll(seq.labels[seq.es], 3, axis=1)  # make the directions disagree
    reg = identity_registration
    cfg = PseudoLabelConfig(assemble="argmax", weights="paper")
    a = fusion.pseudo_labels(seq, reg, config=cfg, warp=grid_warp)
    b = fusion.pseudo_labels(seq, reg, assemble="argmax", weights="paper", warp=grid_warp)
    c = fusion.pseudo_labels(seq, reg, config=cfg, weights="authors", warp=grid_warp)
    assert np.array_equal(a.bidirectional, b.bidirectional)
    assert not np.array_equal(a.bidirectional[0], c.bidirectional[0])  # 'paper' mixes ES into the ED frame


# ----------------------------------------------------------------------------------------------------------------
# files and cache
# ----------------------------------------------------------------------------------------------------------------


def test_nifti_round_trip_uses_camus_layout(tmp_path):
    seq = moving_sequence(t=5, shape=(40, 48))
    pl = fusion.pseudo_labels(seq, CentroidTranslation(), warp=grid_warp)
    written = pseudolabels.save_pseudo_labels(pl, tmp_path, seq)
    path = tmp_path / "patient0001" / "patient0001_2CH_half_sequence_bidirectional.nii.gz"
    assert written["bidirectional"] == path and path.is_file()
    img = nib.load(str(path))
    assert img.shape == (48, 40, 5)  # (W, H, T) like CAMUS
    assert np.allclose(img.header.get_zooms(), (0.2, 0.3, 1.0))  # (sx, sy, 1)
    assert img.get_data_dtype() == np.uint8
    back = pseudolabels.load_pseudo_labels(tmp_path, seq)
    assert all(np.array_equal(back[k], pl[k]) for k in pseudolabels.KINDS)
    assert np.array_equal(pseudolabels.load_pseudo_labels(tmp_path, "patient0001_2CH").forward, pl.forward)
    with pytest.raises(FileNotFoundError, match="patient0002"):
        pseudolabels.load_pseudo_labels(tmp_path, "patient0002_2CH")


def test_generate_caches_and_refuses_to_mix(tmp_path):
    from echo_utils.config import PseudoLabelConfig

    seqs = [moving_sequence(t=5, patient=f"patient000{i}") for i in (1, 2)]
    reg = CentroidTranslation()
    out = pseudolabels.generate_pseudo_labels(seqs, reg, tmp_path, method_name="test", registration_id="r1",
                                        warp=grid_warp, progress=False)
    assert list(out) == ["patient0001_2CH", "patient0002_2CH"] and reg.calls == 2
    record = json.loads((tmp_path / "params.json").read_text())
    assert record["registration"] == "r1" and record["pseudo_labels"]["assemble"] == "sdf"
    again = pseudolabels.generate_pseudo_labels(seqs, reg, tmp_path, method_name="test", registration_id="r1",
                                          warp=grid_warp, progress=False)
    assert reg.calls == 2, "cached sequences are read back, not recomputed"
    assert np.array_equal(again["patient0002_2CH"].bidirectional, out["patient0002_2CH"].bidirectional)
    assert out.read_back == () and again.read_back == ("patient0001_2CH", "patient0002_2CH")
    assert (again.method, again.out_dir, again.n_sequences, again.recomputed) == ("test", tmp_path, 2, ())
    with pytest.raises(PseudoLabelCacheMismatch, match="registration"):
        pseudolabels.generate_pseudo_labels(seqs, reg, tmp_path, method_name="test", registration_id="r2",
                                      warp=grid_warp, progress=False)
    with pytest.raises(PseudoLabelCacheMismatch, match="assemble"):
        pseudolabels.generate_pseudo_labels(seqs, reg, tmp_path, cfg_pl=PseudoLabelConfig(assemble="argmax"),
                                      method_name="test", registration_id="r1", warp=grid_warp, progress=False)


def test_the_store_prints_nothing_and_the_report_says_what_it_read_back(tmp_path, capsys):
    from echo_utils.config import display_path
    from echo_utils.report.pseudo_labels import store_summary

    seqs = [moving_sequence(t=5, patient=f"patient000{i}") for i in (1, 2, 3)]
    kw = dict(method_name="test", registration_id="r1", warp=grid_warp)
    first = pseudolabels.generate_pseudo_labels(seqs[:2], CentroidTranslation(), tmp_path, **kw)
    mixed = pseudolabels.generate_pseudo_labels(seqs, CentroidTranslation(), tmp_path, **kw)  # 2 stored, 1 new
    memory = pseudolabels.generate_pseudo_labels(seqs, CentroidTranslation(), None, **kw)
    assert capsys.readouterr().out == ""  # presentation is the report's: the store prints nothing
    assert store_summary(first) == [] and store_summary(memory) == []
    assert store_summary(mixed) == [f"pseudo-labels (test): 2/3 sequences read from {display_path(tmp_path)}"]
    assert store_summary({"a": mixed, "b": memory, "c": {}}) == store_summary(mixed)
    pseudolabels.pseudo_label_path(tmp_path, seqs[0], "forward").write_bytes(b"damaged")
    again = pseudolabels.generate_pseudo_labels(seqs, CentroidTranslation(), tmp_path, **kw)
    assert again.recomputed == ("patient0001_2CH",) and again.read_back == ("patient0002_2CH", "patient0003_2CH")
    assert store_summary(again)[1] == "pseudo-labels (test): patient0001_2CH computed again (its stored files were damaged)"


def test_registration_fingerprint_tracks_weights():
    a = torch.nn.Conv2d(2, 2, 1)
    fp = pseudolabels.registration_fingerprint(a)
    assert pseudolabels.registration_fingerprint(a) == fp
    with torch.no_grad():
        a.weight.add_(1e-3)
    assert pseudolabels.registration_fingerprint(a) != fp


# ----------------------------------------------------------------------------------------------------------------
# scoring
# ----------------------------------------------------------------------------------------------------------------


def test_scores_and_wilcoxon_table():
    seqs = [moving_sequence(t=5, patient=f"patient000{i}", start=(22, 18 + i)) for i in range(1, 7)]
    labels = {}
    for i, s in enumerate(seqs):
        shifted = np.roll(s.dense, 1 + i % 2, axis=2)
        shifted[[s.ed, s.es]] = s.dense[[s.ed, s.es]]
        labels[s.key] = PseudoLabels(forward=shifted, backward=shifted.copy(), bidirectional=s.dense.copy())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = fig2.score_pseudo_labels(seqs, labels, progress=False)
    assert set(scores["structure"]) == {"LV", "MYO", "EPI", "LA"}
    bi = scores[scores.kind == "bidirectional"]
    assert np.allclose(bi["dice"], 1) and np.allclose(bi["hd_mm"], 0)
    fw = scores[(scores.kind == "forward") & (scores.structure == "LV") & (scores.frame == 2)]
    assert (fw["hd_px"] > 0).all() and np.allclose(fw["hd_px"] / fw["hd_mm"], (512 / 64) / 0.2)
    videos = fig2.per_video(scores)
    assert len(videos) == 6 * 3 * 4 and (videos["n_frames"] == 5).all()
    table = fig2.compare_directions(videos)
    row = table[(table.structure == "LV") & (table.metric == "dice")].iloc[0]
    assert row["median_bidirectional"] == 1 and row["median_forward"] < 1
    assert row["p_bidirectional_vs_forward"] == pytest.approx(0.03125)  # exact two-sided test, n = 6, all better


def test_px_at_512_shortcut_matches_direct_measure():
    from echo_utils import metrics

    seq = moving_sequence(t=4, shape=(64, 64))
    seq.spacing = (0.25, 0.25)  # square pixels on a square image: px-at-512 = mm x one factor
    pred = np.roll(seq.dense, 2, axis=1)
    scores = fig2.score_pseudo_labels([seq], {seq.key: {"shifted": pred}}, progress=False)
    row = scores[(scores.structure == "LV") & (scores.frame == 1)].iloc[0]
    lv_p, lv_r = pred[1] == 1, seq.dense[1] == 1
    assert row["hd_px"] == pytest.approx(metrics.hausdorff(lv_p, lv_r, (8.0, 8.0)))
    assert row["mad_px"] == pytest.approx(metrics.mean_absolute_distance(lv_p, lv_r, (8.0, 8.0)))


def test_memoized_registration_registers_each_pair_once():
    seq = moving_sequence(t=6)
    inner = CentroidTranslation()
    memo = inference.MemoizedRegistration(inner)
    a = fusion.pseudo_labels(seq, memo, mode="sequential", warp=grid_warp)
    b = fusion.pseudo_labels(seq, memo, mode="composed", warp=grid_warp)
    assert inner.pairs == 10 and memo.hits == 10 and memo.misses == 10  # 5 forward + 5 backward pairs, once
    assert np.array_equal(a.bidirectional, b.bidirectional) and np.array_equal(b.forward, seq.dense)
    assert pseudolabels.registration_fingerprint(memo) == pseudolabels.registration_fingerprint(inner)


def test_bfloat16_network_registration_is_close_to_float32():
    from echo_utils.registration import BSplineDIR

    torch.manual_seed(0)
    net = BSplineDIR(grid_spacing=8, kernels=8, image_size=(32, 32))
    with torch.no_grad():
        net.net[-1].weight.normal_(0, 0.5)
    net.optimise_for_inference()
    images = np.random.default_rng(0).random((4, 32, 32)).astype(np.float32)
    pairs = [(1, 0), (2, 1), (3, 2)]
    u32 = inference.register_pairs(net, images, pairs)
    u16 = inference.register_pairs(net, images, pairs, precision="bfloat16")
    assert u16.dtype == torch.float32 and u16.shape == u32.shape
    scale = float(u32.abs().max())
    assert scale > 0.05 and float((u16 - u32).abs().max()) < 0.05 * scale
    with pytest.raises(ValueError, match="precision"):
        inference.register_pairs(net, images, pairs, precision="half")
