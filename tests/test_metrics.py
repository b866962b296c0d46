"""Tests for echo_utils.metrics: analytic answers, an independent library (MONAI) and edge cases."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from echo_utils import metrics as M

# ---------------------------------------------------------------------------------------------------------------
# helpers: shapes drawn in physical (mm) coordinates at pixel centres
# ---------------------------------------------------------------------------------------------------------------


def _grid(shape, spacing):
    sy, sx = spacing
    return np.meshgrid(np.arange(shape[0]) * sy, np.arange(shape[1]) * sx, indexing="ij")


def disc(shape, spacing, center_mm, radius_mm):
    r, c = _grid(shape, spacing)
    return np.hypot(r - center_mm[0], c - center_mm[1]) <= radius_mm


def half_ellipse(shape, spacing, base_mm, a, b, tilt_deg=0.0):
    """LV cavity cross-section: half-ellipse, semi-axes a (long, towards row 0) and b, cut at the base.

    ``base_mm`` = (row, col) of the base midpoint in mm; ``tilt_deg`` rotates the long axis in the image plane.
    """
    r, c = _grid(shape, spacing)
    th = np.deg2rad(tilt_deg)
    dr, dc = r - base_mm[0], c - base_mm[1]
    u = dr * np.cos(th) + dc * np.sin(th)  # along the long axis (negative towards the apex)
    v = -dr * np.sin(th) + dc * np.cos(th)
    return ((u / a) ** 2 + (v / b) ** 2 <= 1.0) & (u <= 0)


def blob(shape, center, radius, rng, amp=0.15):
    """A smooth random star-shaped mask (a 'realistic' segmentation)."""
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    th = np.arctan2(rr - center[0], cc - center[1])
    dist = np.hypot(rr - center[0], cc - center[1])
    k = np.arange(1, 6)[:, None, None]
    ph = rng.uniform(0, 2 * np.pi, 5)[:, None, None]
    am = (rng.normal(0, amp, 5) / np.arange(1, 6))[:, None, None]
    return dist <= radius * (1 + (am * np.cos(k * th[None] + ph)).sum(0))


def lv_labels(shape, rng, shift=(0, 0)):
    """Label map with LV cavity (1), myocardium ring (2) and LA (3)."""
    ep = blob(shape, (shape[0] * 0.45 + shift[0], shape[1] * 0.5 + shift[1]), shape[0] * 0.28, rng, 0.05)
    lv = ndi.binary_erosion(ep, iterations=max(2, shape[0] // 30))
    la = blob(shape, (shape[0] * 0.82 + shift[0], shape[1] * 0.5 + shift[1]), shape[0] * 0.12, rng, 0.05) & ~ep
    lab = np.zeros(shape, np.uint8)
    lab[ep] = 2
    lab[lv] = 1
    lab[la] = 3
    return lab


# ---------------------------------------------------------------------------------------------------------------
# Dice, HD, MAD: analytic
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [0.0, 20.0, 50.0, 90.0])
def test_dice_offset_discs_closed_form(d):
    r = 50.0
    a = disc((300, 300), (1, 1), (150, 100), r)
    b = disc((300, 300), (1, 1), (150, 100 + d), r)
    inter = 2 * r**2 * np.arccos(d / (2 * r)) - 0.5 * d * np.sqrt(4 * r**2 - d**2)
    expected = inter / (np.pi * r**2)
    assert M.dice(a, b) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.3, 0.5), (0.6, 0.25)])
def test_hausdorff_and_mad_concentric_discs(spacing):
    shape = (int(60 / spacing[0]), int(60 / spacing[1]))
    a = disc(shape, spacing, (30, 30), 20.0)
    b = disc(shape, spacing, (30, 30), 14.0)
    diag = np.hypot(*spacing)
    assert abs(M.hausdorff(a, b, spacing) - 6.0) <= diag
    assert abs(M.hausdorff(b, a, spacing) - 6.0) <= diag
    assert abs(M.mean_absolute_distance(a, b, spacing) - 6.0) <= diag
    assert M.hausdorff(a, b, spacing, percentile=95) <= M.hausdorff(a, b, spacing) + 1e-12


def test_self_distance_is_zero():
    rng = np.random.default_rng(0)
    a = blob((128, 128), (64, 64), 30, rng)
    assert M.mean_absolute_distance(a, a, (0.4, 0.2)) == 0.0
    assert M.hausdorff(a, a, (0.4, 0.2)) == 0.0
    assert M.dice(a, a) == 1.0


def test_anisotropic_spacing_scales_shift_per_axis():
    a = np.zeros((64, 64), bool)
    a[20:40, 20:40] = True
    sp = (0.3, 0.7)
    down = np.roll(a, 2, axis=0)
    right = np.roll(a, 2, axis=1)
    assert M.hausdorff(a, down, sp) == pytest.approx(2 * 0.3)
    assert M.hausdorff(a, right, sp) == pytest.approx(2 * 0.7)
    # pixels by default
    assert M.hausdorff(a, right) == pytest.approx(2.0)


def test_contour_is_inner_boundary_and_distances_equal_edt():
    rng = np.random.default_rng(1)
    a = blob((200, 180), (100, 90), 50, rng)
    b = blob((200, 180), (104, 85), 45, rng)
    sp = (0.35, 0.22)
    d_ab, d_ba = M.surface_distances(a, b, sp)
    ea = a & ~ndi.binary_erosion(a, ndi.generate_binary_structure(2, 1), border_value=0)
    eb = b & ~ndi.binary_erosion(b, ndi.generate_binary_structure(2, 1), border_value=0)
    assert d_ab.size == ea.sum() and d_ba.size == eb.sum()
    ref_ab = ndi.distance_transform_edt(~eb, sampling=sp)[ea]
    ref_ba = ndi.distance_transform_edt(~ea, sampling=sp)[eb]
    np.testing.assert_allclose(d_ab, ref_ab, atol=1e-9)
    np.testing.assert_allclose(d_ba, ref_ba, atol=1e-9)
    # 'average' vs 'pooled' MAD are the two documented combinations
    assert M.mean_absolute_distance(a, b, sp) == pytest.approx(0.5 * (ref_ab.mean() + ref_ba.mean()))
    pooled = np.concatenate([ref_ab, ref_ba]).mean()
    assert M.mean_absolute_distance(a, b, sp, symmetric="pooled") == pytest.approx(pooled)
    with pytest.raises(ValueError):
        M.mean_absolute_distance(a, b, sp, symmetric="min")


# ---------------------------------------------------------------------------------------------------------------
# independent library: MONAI (pinned in the dev extra)
# ---------------------------------------------------------------------------------------------------------------


def test_agrees_with_monai_on_random_masks():
    torch = pytest.importorskip("torch")
    mm = pytest.importorskip("monai.metrics")
    rng = np.random.default_rng(2024)
    for _ in range(6):
        sp = tuple(rng.uniform(0.15, 0.6, 2))
        shape = (256, 224)
        a = blob(shape, rng.uniform(80, 150, 2), rng.uniform(35, 60), rng)
        b = blob(shape, rng.uniform(80, 150, 2), rng.uniform(35, 60), rng)
        ta = torch.from_numpy(a)[None, None].float()
        tb = torch.from_numpy(b)[None, None].float()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m_dice = mm.compute_dice(ta, tb, include_background=True).item()
            m_hd = mm.compute_hausdorff_distance(ta, tb, include_background=True, spacing=list(sp)).item()
            m_hd95 = mm.compute_hausdorff_distance(ta, tb, include_background=True, spacing=list(sp),
                                                   percentile=95).item()
            m_asd = mm.compute_average_surface_distance(ta, tb, include_background=True, symmetric=True,
                                                        spacing=list(sp)).item()
        # same contour definition and exact EDT: equal up to MONAI's float32 output
        assert M.dice(a, b) == pytest.approx(m_dice, abs=1e-6)
        assert M.hausdorff(a, b, sp) == pytest.approx(m_hd, rel=1e-5)
        assert M.hausdorff(a, b, sp, percentile=95) == pytest.approx(m_hd95, rel=1e-5)
        assert M.mean_absolute_distance(a, b, sp, symmetric="pooled") == pytest.approx(m_asd, rel=1e-5)
        # our default averages the two directed means instead of pooling them: a documented, small difference
        assert M.mean_absolute_distance(a, b, sp) == pytest.approx(m_asd, rel=0.05)


def test_border_touching_masks_match_monai():
    torch = pytest.importorskip("torch")
    mm = pytest.importorskip("monai.metrics")
    a = np.zeros((40, 50), bool)
    a[:, :10] = True  # touches top, bottom and left borders
    b = np.zeros_like(a)
    b[:, :9] = True
    sp = (0.5, 0.3)
    # the image border is part of the contour (outside = background): both share the left column
    assert M.hausdorff(a, b, sp) == pytest.approx(0.3)
    ta, tb = (torch.from_numpy(x)[None, None].float() for x in (a, b))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m_hd = mm.compute_hausdorff_distance(ta, tb, include_background=True, spacing=list(sp)).item()
        m_asd = mm.compute_average_surface_distance(ta, tb, include_background=True, symmetric=True,
                                                    spacing=list(sp)).item()
    assert M.hausdorff(a, b, sp) == pytest.approx(m_hd, rel=1e-5)
    assert M.mean_absolute_distance(a, b, sp, symmetric="pooled") == pytest.approx(m_asd, rel=1e-5)
    full = np.ones((20, 20), bool)
    assert M.hausdorff(full, full, sp) == 0.0


# ---------------------------------------------------------------------------------------------------------------
# empty masks and input checks
# ---------------------------------------------------------------------------------------------------------------


def test_empty_mask_rules():
    a = np.zeros((32, 32), bool)
    b = np.zeros_like(a)
    b[5:10, 5:10] = True
    assert M.dice(a, a) == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert M.hausdorff(a, a, (1, 1)) == 0.0  # both empty: no warning
        assert M.mean_absolute_distance(a, a, (1, 1)) == 0.0
    assert M.dice(a, b) == 0.0
    with pytest.warns(M.EmptyMaskWarning):
        assert np.isnan(M.hausdorff(a, b, (1, 1)))
    with pytest.warns(M.EmptyMaskWarning):
        assert np.isnan(M.mean_absolute_distance(b, a, (1, 1)))
    with pytest.raises(ValueError):
        M.surface_distances(a, b)


def test_bad_inputs_raise():
    a = np.zeros((8, 8), bool)
    with pytest.raises(ValueError, match="same shape"):
        M.dice(a, np.zeros((8, 9), bool))
    with pytest.raises(ValueError, match="spacing"):
        M.hausdorff(a, a, (0.3, -1))
    with pytest.raises(ValueError, match="myo"):
        M.score_sequence(a, a, myo="wall")


# ---------------------------------------------------------------------------------------------------------------
# score_sequence
# ---------------------------------------------------------------------------------------------------------------


def test_score_sequence_matches_single_frame_functions():
    rng = np.random.default_rng(3)
    ref = np.stack([lv_labels((160, 160), rng) for _ in range(4)])
    pred = np.stack([lv_labels((160, 160), rng, shift=(2, -1)) for _ in range(4)])
    sp = (0.31, 0.27)
    df = M.score_sequence(pred, ref, sp, hd_percentile=95)
    assert list(df.structure.unique()) == ["LV", "MYO", "EPI", "LA"]
    assert len(df) == 4 * 4 and df.attrs["unit"] == "mm"
    assert {"frame", "structure", "dice", "hd", "mad", "hd95", "pred_px", "ref_px"} <= set(df.columns)
    for _, row in df.sample(6, random_state=0).iterrows():
        labels = M.STRUCTURES[row.structure]
        p, r = np.isin(pred[row.frame], labels), np.isin(ref[row.frame], labels)
        assert row.dice == pytest.approx(M.dice(p, r))
        assert row.hd == pytest.approx(M.hausdorff(p, r, sp))
        assert row.hd95 == pytest.approx(M.hausdorff(p, r, sp, percentile=95))
        assert row.mad == pytest.approx(M.mean_absolute_distance(p, r, sp))
    ring = M.score_sequence(pred, ref, sp, classes=(2,), myo="ring")
    epi = M.score_sequence(pred, ref, sp, classes=(1, 2), myo="epicardium")
    assert list(ring.structure.unique()) == ["MYO"]
    assert list(epi.structure.unique()) == ["LV", "EPI"]
    np.testing.assert_allclose(epi[epi.structure == "EPI"].dice, df[df.structure == "EPI"].dice)


def test_score_sequence_single_frame_and_pixels():
    rng = np.random.default_rng(4)
    ref = lv_labels((96, 96), rng)
    pred = np.roll(ref, 1, axis=1)
    df = M.score_sequence(pred, ref)  # 2D input = one frame, spacing None = pixels
    assert (df.frame == 0).all() and df.attrs["unit"] == "px"
    assert df.set_index("structure").loc["LV", "hd"] == pytest.approx(1.0)


def test_score_sequence_empty_frames_and_video_average():
    rng = np.random.default_rng(5)
    ref = np.stack([lv_labels((96, 96), rng) for _ in range(3)])
    pred = ref.copy()
    pred[1][pred[1] == 3] = 0  # LA missing in frame 1 of the prediction
    ref[:, 0, 0] = 0
    with pytest.warns(M.EmptyMaskWarning, match="1 "):
        df = M.score_sequence(pred, ref, (0.5, 0.5))
    la = df[df.structure == "LA"].set_index("frame")
    assert la.loc[1, "dice"] == 0.0 and np.isnan(la.loc[1, "hd"]) and np.isnan(la.loc[1, "mad"])
    df["patient"] = "patient0001"
    avg = M.average_per_video(df)
    assert list(avg.columns[:2]) == ["structure", "patient"]
    row = avg.set_index("structure").loc["LA"]
    assert row.n_frames == 3 and row.n_nan_hd == 1
    assert row.dice == pytest.approx(2 / 3)  # (1 + 0 + 1) / 3
    assert row.hd == 0.0  # NaN frame left out of the mean
    assert avg.attrs["unit"] == "mm"


# ---------------------------------------------------------------------------------------------------------------
# area curve, smoothness, temporal inconsistency
# ---------------------------------------------------------------------------------------------------------------


def test_area_curve_units():
    lab = np.zeros((3, 10, 10), np.uint8)
    lab[:, :2, :5] = 1
    lab[1, 5:, :] = 2
    np.testing.assert_array_equal(M.area_curve(lab, 1), [10, 10, 10])
    np.testing.assert_allclose(M.area_curve(lab, (1, 2), spacing=(0.5, 0.2)), [1.0, 6.0, 1.0])


@pytest.mark.parametrize("n", [4, 10, 37])
def test_smoothness_of_quadratic(n):
    c = 3.5
    t = np.arange(n, dtype=float)
    a = 0.5 * c * t**2 - 4 * t + 100  # a'' = c
    # authors' discretisation: trapz over the n-2 interior samples, unit spacing -> length n-3
    assert M.smoothness(a) == pytest.approx(c**2 * (n - 3))
    # unit-aware: time in [0, 1]; a(tau) = k tau^2 -> a'' = 2k over the interior [dt, 1 - dt]
    k = 250.0
    tau = np.linspace(0, 1, n)
    dt = 1 / (n - 1)
    assert M.smoothness(k * tau**2, normalize_time=True) == pytest.approx((2 * k) ** 2 * (1 - 2 * dt))
    assert M.smoothness(k * tau**2, dt=dt) == pytest.approx((2 * k) ** 2 * (1 - 2 * dt))


def test_smoothness_orders_noisy_curves_and_short_sequences():
    rng = np.random.default_rng(6)
    t = np.linspace(0, np.pi, 20)
    smooth = 1000 + 300 * np.cos(t)
    noisy = smooth + rng.normal(0, 20, t.size)
    assert M.smoothness(smooth) < M.smoothness(noisy)
    assert M.smoothness(smooth * 2) == pytest.approx(4 * M.smoothness(smooth))
    with pytest.warns(RuntimeWarning):
        assert np.isnan(M.smoothness([1.0, 2.0, 4.0]))


def _vital_d(a, lo, hi):
    """vital's d(t) written independently: the frame minus the mean of its neighbours, as a convolution with
    [-1/2, 1, -1/2] on the min-max scaled curve, end frames 0."""
    x = (np.asarray(a, float) - lo) / (hi - lo)
    return np.pad(np.convolve(x, [-0.5, 1.0, -0.5], mode="valid"), 1)


def test_temporal_inconsistency_flags_exactly_the_spike_frames():
    line = np.arange(11, dtype=float)  # linear: d = 0 everywhere
    assert M.temporal_inconsistency(line, bounds=(0, 10)) == 0.0
    # spike delta at frame 5, bounds (0, 10): d(5) = delta / 10, d(4) = d(6) = -delta / 20, others 0
    small = line.copy()
    small[5] += 0.25  # d(5) = 0.025 > 0.016, |d(4)| = |d(6)| = 0.0125 < 0.016
    ratio, flags = M.temporal_inconsistency(small, threshold=1.60e-2, bounds=(0, 10), return_frames=True)
    assert np.flatnonzero(flags).tolist() == [5] and ratio == pytest.approx(1 / 11)
    big = line.copy()
    big[5] += 0.5  # d(5) = 0.05, |d(4)| = |d(6)| = 0.025: the two neighbours fail too
    ratio, flags = M.temporal_inconsistency(big, threshold=1.60e-2, bounds=(0, 10), return_frames=True)
    assert np.flatnonzero(flags).tolist() == [4, 5, 6] and ratio == pytest.approx(3 / 11)
    np.testing.assert_array_equal(flags, np.abs(_vital_d(big, 0, 10)) > 1.60e-2)
    # strict inequality, as vital: |d| equal to the threshold passes
    eight = np.arange(9, dtype=float)
    eight[4] += 0.5  # d(4) = 0.5 / 8 = 0.0625 exactly in binary
    assert not M.temporal_inconsistency(eight, threshold=0.0625, bounds=(0, 8), return_frames=True)[1][4]
    assert M.temporal_inconsistency(eight, threshold=0.0624, bounds=(0, 8), return_frames=True)[1][4]
    # the end frames lack a neighbour and are never flagged, however far they jump
    ends = line.copy()
    ends[0] -= 5
    ends[-1] += 5
    assert not M.temporal_inconsistency(ends, bounds=(0, 10), return_frames=True)[1][[0, -1]].any()
    # without bounds the curve's own range scales it (vital's minmax_scaling without bounds)
    own = M.temporal_inconsistency(big, return_frames=True)[1]
    np.testing.assert_array_equal(own, np.abs(_vital_d(big, big.min(), big.max())) > 1.60e-2)
    assert M.temporal_inconsistency(np.full(5, 3.0)) == 0.0  # constant: consistent (vital would divide by 0)
    with pytest.raises(ValueError, match="non-empty"):
        M.temporal_inconsistency([])


@pytest.mark.parametrize("n, period", [(20, 38), (30, 29), (14, 26)])
def test_temporal_inconsistency_of_a_sinusoid(n, period):
    """a(t) = (1 + cos(w t)) / 2 scaled to [0, 1]: d(t) = (1 - cos w) / 2 * cos(w t) exactly. With at least 25
    frames per period, (1 - cos w) / 2 < 1.60e-2 and no frame fails vital's LV (or MYO) area threshold; with
    fewer, exactly the frames where the analytic |d| exceeds it fail."""
    w = 2 * np.pi / period
    t = np.arange(n)
    a = 500 + 300 * np.cos(w * t)
    for th in (1.60e-2, 3.21e-2):
        assert M.temporal_inconsistency(a, threshold=th, bounds=(200, 800)) == 0.0
    few = 500 + 300 * np.cos(2 * np.pi / 12 * t)  # 12 frames per period: (1 - cos w) / 2 = 0.067
    d = (1 - np.cos(2 * np.pi / 12)) / 2 * np.cos(2 * np.pi / 12 * t)
    expected = np.abs(d) > 1.60e-2
    expected[[0, -1]] = False
    _, flags = M.temporal_inconsistency(few, threshold=1.60e-2, bounds=(200, 800), return_frames=True)
    np.testing.assert_array_equal(flags, expected)
    assert flags.any()


# ---------------------------------------------------------------------------------------------------------------
# Simpson biplane, EF, agreement
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sp2, sp4, tilt2, tilt4",
    [
        ((0.3, 0.3), (0.3, 0.3), 0.0, 0.0),
        ((0.2, 0.3), (0.3, 0.22), 0.0, 0.0),
        ((0.25, 0.25), (0.28, 0.2), 12.0, -8.0),
    ],
)
def test_simpson_biplane_half_ellipsoid(sp2, sp4, tilt2, tilt4):
    a, b, c = 75.0, 24.0, 20.0  # mm: long semi-axis, 2CH and 4CH semi-axes
    exact = 2.0 / 3.0 * np.pi * a * b * c / 1000.0  # mL, half of the ellipsoid
    m2 = half_ellipse((512, 512), sp2, (95.0, 65.0), a, b, tilt2)
    m4 = half_ellipse((512, 512), sp4, (98.0, 60.0), a, c, tilt4)
    v = M.lv_volume_biplane(m2, m4, sp2, sp4)
    assert v == pytest.approx(exact, rel=0.03)
    d = M.simpson_disks(m2, sp2)
    assert d.diameters.shape == (20,) and d.length == pytest.approx(a, rel=0.02)
    # base below the apex (apex at the top), in the original pixel grid
    assert d.apex[0] < d.base[:, 0].min()


def test_simpson_robust_to_curved_base_and_ragged_edges():
    """A predicted cavity: the base bulges 3 mm towards the atrium, the long axis is tilted 25 degrees and the
    edge is ragged. The mitral plane is still the chord between the basal corners, so the volume stays within 3 %
    of the half-ellipsoid above that chord."""
    sp = (0.3, 0.3)
    a, b, c = 75.0, 24.0, 20.0
    exact = 2.0 / 3.0 * np.pi * a * b * c / 1000.0
    rng = np.random.default_rng(7)
    masks = []
    for w, tilt in ((b, 25.0), (c, -12.0)):
        m = half_ellipse((512, 512), sp, (110.0, 75.0), a, w, tilt)
        r, cc = _grid((512, 512), sp)
        th = np.deg2rad(tilt)
        u = (r - 110.0) * np.cos(th) + (cc - 75.0) * np.sin(th)
        v = -(r - 110.0) * np.sin(th) + (cc - 75.0) * np.cos(th)
        m |= (u > 0) & (u <= 3.0 * (1 - (v / w) ** 2))
        noise = ndi.gaussian_filter(rng.normal(size=m.shape), 6)
        masks.append(ndi.gaussian_filter(m.astype(float), 2) + 0.15 * noise / noise.std() > 0.5)
    assert M.lv_volume_biplane(masks[0], masks[1], sp, sp) == pytest.approx(exact, rel=0.03)


def test_simpson_label_map_and_ejection_fraction():
    sp = (0.3, 0.3)
    ed2, ed4 = (half_ellipse((512, 512), sp, (100, 70), 80, w) for w in (25, 22))
    es2, es4 = (half_ellipse((512, 512), sp, (100, 70), 68, w) for w in (19, 16.5))
    lab = ed2.astype(np.uint8)
    lab[~ed2 & half_ellipse((512, 512), sp, (100, 70), 86, 31)] = 2
    edv = M.lv_volume_biplane(ed2, ed4, sp, sp)
    assert M.lv_volume_biplane(lab, ed4, sp, sp) == pytest.approx(edv)  # label map: cavity = label 1
    esv = M.lv_volume_biplane(es2, es4, sp, sp)
    ef_true = 100 * (1 - (68 * 19 * 16.5) / (80 * 25 * 22))
    assert M.ejection_fraction(edv, esv) == pytest.approx(ef_true, abs=1.5)
    assert M.ejection_fraction(120.0, 48.0) == pytest.approx(60.0)
    np.testing.assert_allclose(M.ejection_fraction([100.0, 80.0], [40.0, 60.0]), [60.0, 25.0])
    with pytest.warns(RuntimeWarning):
        assert np.isnan(M.ejection_fraction(0.0, 1.0))
    with pytest.raises(ValueError, match="empty"):
        M.lv_volume_biplane(np.zeros((64, 64), bool), ed4, sp, sp)


def test_agreement():
    ref = np.array([50.0, 60.0, 70.0, 80.0])
    auto = 2 * ref + 1
    st = M.agreement(auto, ref)
    assert st["corr"] == pytest.approx(1.0)
    assert st["bias"] == pytest.approx(np.mean(auto - ref))
    assert st["mae"] == pytest.approx(np.mean(np.abs(auto - ref)))
    assert st["n"] == 4
    st = M.agreement(ref - 2.0, ref)
    assert st["bias"] == pytest.approx(-2.0) and st["mae"] == pytest.approx(2.0)
    assert st["corr"] == pytest.approx(1.0)
    assert np.isnan(M.agreement([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])["corr"])  # constant series
    with pytest.warns(RuntimeWarning):
        st = M.agreement([1.0, np.nan, 3.0], [1.0, 2.0, 2.0])
    assert st["n"] == 2 and st["bias"] == pytest.approx(0.5)


def test_plausible_indices_report_missing_values_with_reasons():
    ok, why = M.plausible_indices(120.0, 48.0)
    assert ok == {"EDV": 120.0, "ESV": 48.0, "EF": pytest.approx(60.0)} and why == []
    # an empty ES cavity (NaN volume): ESV and EF missing, EDV kept
    v, why = M.plausible_indices(120.0, float("nan"))
    assert v["EDV"] == 120.0 and np.isnan(v["ESV"]) and np.isnan(v["EF"])
    assert why == ["ESV not measurable", "EF needs both volumes"]
    # a near-empty ED cavity: 0.5 mL would give an EF of -9500 % (the 1670-point MAE of issue 13)
    v, why = M.plausible_indices(0.5, 48.0)
    assert np.isnan(v["EDV"]) and v["ESV"] == 48.0 and np.isnan(v["EF"]) and "below the 5 mL floor" in why[0]
    assert M.MIN_LV_VOLUME_ML == 5.0
    v, why = M.plausible_indices(4.0, 3.0, min_volume=1.0)  # the floor is a parameter
    assert v["EF"] == pytest.approx(25.0) and why == []
    # ESV > EDV: both volumes plausible, EF (-25 %) outside [0, 100] is missing
    v, why = M.plausible_indices(80.0, 100.0)
    assert (v["EDV"], v["ESV"]) == (80.0, 100.0) and np.isnan(v["EF"]) and why == ["EF -25 % outside [0, 100]"]
    v, _ = M.plausible_indices(80.0, 80.0)  # the ends of the interval are plausible
    assert v["EF"] == 0.0


def test_average_per_video_of_pseudo_label_scores():
    """The pseudo-label score layout (hd_mm, mad_px... and a per-frame phase column) averages like score tables."""
    t = pd.DataFrame({"key": ["a"] * 3 + ["b"] * 2, "kind": "forward", "structure": "LV",
                      "frame": [0, 1, 2, 0, 1], "phase": [0.0, 0.5, 1.0, 0.0, 1.0],
                      "dice": [1.0, 0.8, 0.6, 0.5, 0.7], "hd_mm": [0.0, np.nan, 2.0, 1.0, 3.0],
                      "mad_px": [0.0, 1.0, 2.0, 4.0, 6.0]})
    avg = M.average_per_video(t).set_index("key")
    assert list(avg.columns) == ["kind", "structure", "dice", "hd_mm", "mad_px", "n_frames", "n_nan_hd"]
    assert avg.loc["a", "dice"] == pytest.approx(0.8) and avg.loc["a", "hd_mm"] == pytest.approx(1.0)
    assert avg.loc["a", "n_nan_hd"] == 1 and avg.loc["b", "n_frames"] == 2 and avg.loc["b", "mad_px"] == 5.0
    with pytest.raises(ValueError, match="no metric column"):
        M.average_per_video(t[["key", "frame"]])


def test_tables_are_pandas():
    df = M.score_sequence(np.ones((2, 8, 8), np.uint8), np.ones((2, 8, 8), np.uint8), classes=(1,))
    assert isinstance(df, pd.DataFrame) and (df.dice == 1.0).all() and (df.hd == 0.0).all()
