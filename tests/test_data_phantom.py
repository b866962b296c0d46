"""The synthetic cohort (echo_utils.data.phantom, phantom_patient, phantom_motion, phantom_cohort): determinism, label
topology, motion, biplane EF, and reading it back."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from echo_utils import metrics
from echo_utils.data import camus, phantom, phantom_cohort
from echo_utils.data import phantom_motion

SIZE = 96  # >= 96 exercises the coarse backward map used at the study's sizes


def _hashes(root: Path) -> dict[str, str]:
    skip = {"cohort_timing.json"}  # the generation time is the only thing allowed to differ
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in skip
    }


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cohort")
    return phantom_cohort.make_cohort(root, 3, size=64, frames=(6, 9), seed=3, full_cycle=True, progress=False)


@pytest.fixture(scope="module")
def rendered() -> list:
    """Four patients rendered in memory (both views), one of each quality at least."""
    out = []
    for i in range(4):
        pp = phantom.sample_patient(i, seed=11, frames=(8, 14))
        out.append((pp, phantom.render_patient(pp, SIZE)))
    return out


def test_same_seed_same_files(cohort, tmp_path):
    again = phantom_cohort.make_cohort(tmp_path / "again", 3, size=64, frames=(6, 9), seed=3, full_cycle=True,
                                progress=False, workers=2)  # the number of processes does not matter
    assert _hashes(cohort) == _hashes(again)
    other = phantom_cohort.make_cohort(tmp_path / "other", 3, size=64, frames=(6, 9), seed=4, full_cycle=True,
                                progress=False)
    a, b = _hashes(cohort), _hashes(other)
    assert a.keys() == b.keys()
    key = "database_nifti/patient0001/patient0001_2CH_ED.nii.gz"
    assert a[key] != b[key]


def test_cohort_layout_and_reuse(cohort):
    pdir = cohort / "database_nifti" / "patient0002"
    names = {p.name for p in pdir.iterdir()}
    for view in ("2CH", "4CH"):
        for suffix in ("half_sequence", "half_sequence_gt", "ED", "ED_gt", "ES", "ES_gt"):
            assert f"patient0002_{view}_{suffix}.nii.gz" in names
        assert f"Info_{view}.cfg" in names
    split = camus.read_split(cohort)
    assert sorted(sum(split.values(), [])) == ["patient0001", "patient0002", "patient0003"]
    assert split["test"]
    mtime = (cohort / "cohort.json").stat().st_mtime_ns
    phantom_cohort.make_cohort(cohort, 3, size=64, frames=(6, 9), seed=3, full_cycle=True, progress=False)
    assert (cohort / "cohort.json").stat().st_mtime_ns == mtime  # reused, not regenerated
    with pytest.raises(phantom_cohort.CohortMismatch, match="size"):
        phantom_cohort.make_cohort(cohort, 3, size=80, frames=(6, 9), seed=3, full_cycle=True, progress=False)


def test_read_back_through_load_sequence(cohort):
    summary = json.loads((cohort / "cohort_summary.json").read_text())
    for p in summary["patients"]:
        for view in ("2CH", "4CH"):
            seq = camus.load_sequence(cohort / "database_nifti" / p["patient"], view)
            T = p["n_frames"]
            assert seq.images.shape == (T, 64, 64) and seq.images.dtype == np.float32
            assert 0.0 <= seq.images.min() and seq.images.max() <= 1.0
            assert seq.ed == 0 and seq.es == T - 1
            assert seq.dense_kind == "exact" and seq.dense.shape == (T, 64, 64)
            np.testing.assert_array_equal(seq.labels[0], seq.dense[0])
            np.testing.assert_array_equal(seq.labels[T - 1], seq.dense[T - 1])
            assert seq.info["ImageQuality"] == p["quality"]
            assert seq.spacing[0] == pytest.approx(seq.spacing[1])
            # apex at the top: the myocardium starts in the upper third, the LA lies in the lower half
            rows = np.nonzero(seq.dense[0] == 2)[0]
            assert rows.min() < 64 / 3
            assert np.nonzero(seq.dense[0] == 3)[0].mean() > 32


def test_ted_like_full_cycle(cohort):
    ted = phantom_cohort.ted_root(cohort)
    seqs = list(camus.iter_sequences(ted))
    assert len(seqs) == 3
    for seq in seqs:
        assert seq.view == "4CH" and seq.dense_kind == "exact"
        T = seq.n_frames
        assert 0 == seq.ed < seq.es < T - 1
        assert set(np.unique(seq.dense)) <= {0, 1, 2}  # TED labels: LV cavity and myocardium only
        lv = (seq.dense == 1).sum(axis=(1, 2))
        # full cycle: smallest around ES (the plateau and late regional motion may put the minimum a frame early)
        assert lv[seq.es] <= 1.03 * lv.min() and lv[seq.es] < 0.9 * lv[0]
        np.testing.assert_array_equal(seq.dense[0], seq.dense[-1])  # back to ED
        # its first half is the CAMUS half sequence of the same patient
        camus_pid = seq.info["CAMUS"]
        half = camus.load_sequence(cohort / "database_nifti" / camus_pid, "4CH")
        np.testing.assert_array_equal(half.images, seq.images[: half.n_frames])


def test_label_topology(rendered):
    for pp, views in rendered:
        for view, (img, lab, sp, phases) in views.items():
            for t in (0, len(phases) // 2, len(phases) - 1):
                m = lab[t]
                for k in (1, 2, 3):
                    n = ndimage.label(m == k)[1]
                    assert n == 1, f"{pp.patient} {view} frame {t}: label {k} has {n} components"
                # the cavity is enclosed by myocardium and LA: its neighbours are never background
                ring = ndimage.binary_dilation(m == 1) & (m != 1)
                assert set(np.unique(m[ring])) <= {2, 3}
                # the LA lies beyond the base: below the cavity centroid, touching the cavity
                assert np.nonzero(m == 3)[0].min() > np.nonzero(m == 1)[0].mean()
                assert np.any(m[ring] == 3)
                # the myocardium is open at the mitral plane: it does not enclose the LA
                assert not np.any(ndimage.binary_dilation(m == 3) & ndimage.binary_erosion(m == 2))


def test_motion_areas(rendered):
    for pp, views in rendered:
        for view, (img, lab, sp, phases) in views.items():
            lv = (lab == 1).sum(axis=(1, 2)).astype(float)
            myo = (lab == 2).sum(axis=(1, 2)).astype(float)
            la = (lab == 3).sum(axis=(1, 2)).astype(float)
            # the cavity empties (nearly monotone: a late regional motion may reopen it by a few pixels)
            assert np.all(np.diff(lv) <= 0.02 * lv[0]) and lv[-1] < 0.9 * lv[0], f"{pp.patient} {view}: LV"
            assert la[-1] > la[0], f"{pp.patient} {view}: LA does not fill"
            # myocardial area nearly conserved (exactly in the global model; regional bumps shear the wall)
            assert np.ptp(myo) / myo.mean() < 0.08, f"{pp.patient} {view}: myocardial area not conserved"
            # longitudinal shortening: the mitral plane (lowest cavity row) moves towards the apex
            base = [np.nonzero(lab[t] == 1)[0].max() for t in (0, len(phases) - 1)]
            assert base[1] < base[0]
            # rapid early ejection then a plateau: the first third of systole moves more than the last third
            n = len(phases)
            assert phases[n // 3] > 1.0 - phases[2 * n // 3], f"{pp.patient}: no rapid early ejection"
            # ... and so the area curve is not the sin^2 law of the Eq. 1 weights
            assert phantom_motion.sin2_law_distance(lab)["max_abs"] > 0.1, f"{pp.patient} {view}"


def test_time_course():
    p = phantom.systole_phase(20, (0.05, 0.55, 0.93))  # version-1 knots at tau = 0.12, 0.5, 0.85
    assert p[0] == 0.0 and p[-1] == 1.0 and np.all(np.diff(p) > 0)
    p = phantom.systole_phase(21, [[0.1, 0.02], [0.35, 0.65], [0.7, 0.95]])
    assert p[0] == 0.0 and p[-1] == 1.0 and np.all(np.diff(p) >= 0)
    assert p[2] == pytest.approx(0.02, abs=1e-9) and p[14] == pytest.approx(0.95, abs=1e-9)  # through the knots
    for i in range(20):  # every patient's own course: rapid early ejection, then a plateau
        knots = phantom.sample_patient(i, 0).knots
        p = phantom.systole_phase(41, knots)
        assert np.all(np.diff(p) >= -1e-12) and p[16] > 0.45 and 1.0 - p[34] < 0.1
    q = phantom.diastole_phase(25)
    assert q[-1] == 0.0 and np.all(np.diff(q) < 0)


def test_biplane_ef_matches_request(rendered):
    for pp, views in rendered:
        (_, l2, s2, _), (_, l4, s4, _) = views["2CH"][:4], views["4CH"][:4]
        sp2, sp4 = (s2, s2), (s4, s4)
        edv = metrics.lv_volume_biplane(l2[0] == 1, l4[0] == 1, sp2, sp4)
        esv = metrics.lv_volume_biplane(l2[-1] == 1, l4[-1] == 1, sp2, sp4)
        ef = 100.0 * (edv - esv) / edv
        # regional wall motion (hypokinesis) lowers the EF of the global contraction
        assert pp.ef - 12.0 < ef < pp.ef + 3.0, pp.patient
        assert edv == pytest.approx(float(phantom.lv_volume(pp, 0.0)), rel=0.05)  # ED: no extra motion yet
        # without the extra motion, the requested EF and the model's exact volume are what Simpson's rule measures
        glob = dataclasses.replace(pp, motion={})
        g = phantom.render_patient(glob, SIZE)
        l2, l4 = g["2CH"][1], g["4CH"][1]
        edv = metrics.lv_volume_biplane(l2[0] == 1, l4[0] == 1, sp2, sp4)
        esv = metrics.lv_volume_biplane(l2[-1] == 1, l4[-1] == 1, sp2, sp4)
        assert 100.0 * (edv - esv) / edv == pytest.approx(pp.ef, abs=3.0), pp.patient
        assert esv == pytest.approx(float(phantom.lv_volume(pp, 1.0)), rel=0.08)


def test_requested_ranges():
    pats = [phantom.sample_patient(i, 0, (10, 40)) for i in range(60)]
    efs = np.array([p.ef for p in pats])
    frames = np.array([p.n_frames for p in pats])
    assert 25 <= efs.min() and efs.max() <= 75 and np.ptp(efs) > 35
    assert 10 <= frames.min() and frames.max() <= 40
    assert {p.quality for p in pats} == set(phantom.QUALITIES)


def test_speckle_moves_and_decorrelates():
    pp = phantom.sample_patient(0, seed=5, frames=(12, 12))
    pp.quality = "Good"
    pp.motion = {}  # no rigid drift: the far tissue stands still
    img, lab, sp, phases = phantom.render_patient(pp, SIZE)["2CH"]
    x = img.astype(float)
    # a static patch of tissue far from the heart (lower left of the sector): decorrelates gradually
    patch = x[:, int(0.8 * SIZE) : int(0.9 * SIZE), int(0.3 * SIZE) : int(0.45 * SIZE)].reshape(len(x), -1)
    c = np.corrcoef(patch)
    assert c[0, 1] > c[0, len(x) // 2] > c[0, -1]
    assert c[0, 1] > 0.5 and c[0, -1] < c[0, 1] - 0.1


def test_true_displacement_carries_speckle_and_labels(cohort):
    """The exact motion field: warping the ED frame with it reproduces frame t (speckle, labels)."""
    pp = phantom_cohort.patient_params(cohort, "patient0002")
    pp_big = phantom.sample_patient(1, seed=3, frames=(12, 12))
    pp_big.quality = "Good"
    T = pp_big.n_frames
    img, lab, sp, phases = phantom.render_patient(pp_big, SIZE)["4CH"]
    u = phantom.true_displacement(pp_big, "4CH", SIZE)
    assert u.shape == (T, 2, SIZE, SIZE) and np.abs(u[0]).max() < 1e-3  # ED maps onto itself
    t = T // 3
    ii, jj = np.meshgrid(np.arange(SIZE), np.arange(SIZE), indexing="ij")
    coords = np.stack([ii + u[t, 0], jj + u[t, 1]])
    warped = ndimage.map_coordinates(img[0].astype(float), coords, order=1)
    myo = ndimage.binary_erosion(lab[t] == 2, iterations=1)
    moved = np.corrcoef(warped[myo], img[t][myo].astype(float))[0, 1]
    static = np.corrcoef(img[0][myo].astype(float), img[t][myo].astype(float))[0, 1]
    assert moved > 0.5 and moved > static + 0.2, (moved, static)
    # the labels follow the same motion: nearest warp of the ED labels ~ the exact labels at frame t (up to the
    # nearest-neighbour rounding of a ~5-pixel-thick wall)
    warped_lab = ndimage.map_coordinates(lab[0], coords, order=0)
    for k, tol in ((1, 0.97), (2, 0.9)):
        inter = np.logical_and(warped_lab == k, lab[t] == k).sum()
        dice = 2 * inter / ((warped_lab == k).sum() + (lab[t] == k).sum())
        assert dice > tol, (k, dice)
    # recovering a cohort patient's parameters from cohort.json
    seq = camus.load_sequence(cohort / "database_nifti" / "patient0002", "2CH")
    assert pp.n_frames == seq.n_frames and pp.quality == seq.info["ImageQuality"]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1))


def _warp_onehot(lab: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``lab(p + u(p))`` by linear interpolation of the one-hot maps and argmax (scipy, independent of torch)."""
    ii, jj = np.meshgrid(np.arange(lab.shape[0]), np.arange(lab.shape[1]), indexing="ij")
    coords = np.stack([ii + u[0], jj + u[1]])
    prob = [ndimage.map_coordinates((lab == k).astype(float), coords, order=1, mode="nearest") for k in range(4)]
    return np.argmax(prob, axis=0)


def test_pair_displacement_carries_labels_to_the_next_frame():
    """Warping frame t's labels by the exact pair displacement reproduces frame t+1's (and ED's reproduce ES)."""
    for i, view in ((0, "2CH"), (2, "4CH")):  # patient 3 of seed 0 has a hypokinetic segment
        pp = phantom.sample_patient(i, seed=0, frames=(10, 12))
        img, lab, sp, phases = phantom.render_patient(pp, SIZE)[view]
        T = len(lab)
        pairs = [(t + 1, t) for t in range(0, T - 1, 3)] + [(T - 1, 0), (0, T - 1)]
        for fixed, moving in pairs:
            u = phantom.pair_displacement(pp, view, SIZE, fixed, moving)
            assert u.shape == (2, SIZE, SIZE)
            warped = _warp_onehot(lab[moving], u)
            for k, tol in ((1, 0.97), (2, 0.93)):
                d = _dice(warped == k, lab[fixed] == k)
                ident = _dice(lab[moving] == k, lab[fixed] == k)
                assert d > tol, (pp.patient, view, fixed, moving, k, d)
                if abs(fixed - moving) > 1:  # ED <-> ES: far better than no motion
                    assert d > ident + 0.03, (pp.patient, view, fixed, moving, k, d, ident)
        # consistent with true_displacement (frame -> ED): the pair (t, 0) is exactly that field
        t = T // 2
        np.testing.assert_allclose(phantom.pair_displacement(pp, view, SIZE, t, 0),
                                   phantom.true_displacement(pp, view, SIZE)[t], atol=0.02)


def test_regional_motion_and_rigid_drift():
    pats = [phantom.sample_patient(i, 0) for i in range(20)]
    assert 3 <= sum(p.motion["hypokinetic"] for p in pats) <= 15
    pp = next(p for p in pats if p.motion["hypokinetic"])
    u = phantom.true_displacement(pp, "4CH", SIZE)
    glob = phantom.true_displacement(dataclasses.replace(pp, motion={}), "4CH", SIZE)
    extra = np.hypot(*(u[-1] - glob[-1]))
    # the rigid drift moves the whole sector content, including tissue far from the heart
    geo = phantom.view_geometry(pp, "4CH", SIZE, [0.0])
    far = (geo["d_out"][0] > 25) & (geo["labels"][0] == 0) & np.isfinite(geo["d_out"][0])
    assert far.sum() > 100 and np.median(extra[far]) > 0.3
    # and the wall of the hypokinetic segment moves less than the global contraction predicts
    lab = phantom.render_patient(pp, SIZE)["4CH"][1]
    lab_glob = phantom.render_patient(dataclasses.replace(pp, motion={}), SIZE)["4CH"][1]
    assert not np.array_equal(lab[-1], lab_glob[-1])
    np.testing.assert_array_equal(lab[0] > 0, lab_glob[0] > 0)  # ED unchanged up to the drift (zero at ED)


def test_sin2_law_distance_analytic():
    T, n = 21, 256
    tau = np.linspace(0, 1, T)
    yy, xx = np.mgrid[:n, :n] - n / 2 + 0.5

    def discs(a):  # cavity areas a(t) in px: discs of radius sqrt(a / pi)
        return np.stack([(yy**2 + xx**2 <= ai / np.pi).astype(np.uint8) for ai in a])

    a_ed, a_es = 20000.0, 8000.0
    law = a_ed - (a_ed - a_es) * np.sin(np.pi * tau / 2) ** 2
    assert phantom_motion.sin2_law_distance(discs(law))["max_abs"] < 0.01
    linear = a_ed - (a_ed - a_es) * tau
    expected = np.abs(tau - np.sin(np.pi * tau / 2) ** 2).max()  # max |tau - sin^2(pi tau / 2)| on the grid
    got = phantom_motion.sin2_law_distance(discs(linear))
    assert got["max_abs"] == pytest.approx(expected, abs=0.01)
    with pytest.raises(ValueError):
        phantom_motion.sin2_law_distance(np.zeros((5, 8, 8), np.uint8))


def test_make_cohort_from_a_plain_script(tmp_path):
    """Issue 17: 8+ patients from a script without an ``if __name__ == "__main__":`` guard (no re-import)."""
    script = tmp_path / "make.py"
    script.write_text(textwrap.dedent(f"""
        from echo_utils import phantom
        print("body ran")
        phantom.make_cohort({str(tmp_path / "c")!r}, 8, size=32, frames=(3, 4), progress=False)
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("body ran") == 1
    assert (tmp_path / "c" / "cohort.json").exists()
    assert json.loads((tmp_path / "c" / "cohort_timing.json").read_text())["workers"] == 2


def test_sin2_law_table(cohort):
    seqs = [camus.load_sequence(cohort / "database_nifti" / p, v) for p in ("patient0001", "patient0002")
            for v in ("2CH", "4CH")]
    table = phantom_motion.sin2_law_table(seqs)
    assert list(table.key) == [s.key for s in seqs]
    for s, row in zip(seqs, table.itertuples()):
        assert row.max_abs == phantom_motion.sin2_law_distance(s.dense[s.ed : s.es + 1])["max_abs"]
