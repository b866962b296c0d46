"""Readers: small fixtures written in each real layout (real axis conventions and header spacing), read back.

The fixtures are written here with nibabel / SimpleITK directly (not with the phantom's writer), so that a wrong
axis order in the reader cannot be hidden by the same mistake in the writer.  Every image has a bright marker at
the apex (top rows, centre columns) and every label map the myocardium there: ``H != W`` and ``sy != sx`` make
any transposition visible.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from echo_utils import camus
from echo_utils.camus import EchoDataError
from echo_utils.config import RunPaths, load_config

T, H, W = 5, 40, 30
SY, SX = 0.3, 0.6  # mm per pixel along rows, columns
APEX = (slice(0, 3), slice(13, 17))


def _sequence(T=T, seed=0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    img = rng.integers(10, 100, size=(T, H, W), dtype=np.uint8)
    img[(slice(None), *APEX)] = 255
    lab = np.zeros((T, H, W), np.uint8)
    lab[(slice(None), *APEX)] = 2
    for t in range(T):
        lab[t, 8 : 22 - t, 10:20] = 1
    lab[:, 30:36, 8:22] = 3
    return img, lab


# --- writers in the real conventions ------------------------------------------------------------------------------


def _nii(path: Path, arr: np.ndarray) -> None:
    """CAMUS 2023: nibabel sees (W, H[, T]), zooms (sx, sy[, 1])."""
    data = arr.T if arr.ndim == 2 else arr.transpose(2, 1, 0)
    img = nib.Nifti1Image(np.ascontiguousarray(data), np.diag([SX, SY, 1.0, 1.0]))
    img.header.set_zooms((SX, SY) + ((1.0,) if arr.ndim == 3 else ()))
    nib.save(img, str(path))


def _mhd(path: Path, arr: np.ndarray) -> None:
    """Legacy CAMUS and TED: SimpleITK arrays are (T, H, W); ElementSpacing is (sx, sy[, st])."""
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((SX, SY) + ((1.0,) if arr.ndim == 3 else ()))
    sitk.WriteImage(img, str(path))


def _cfg(path: Path, **items) -> None:
    path.write_text("".join(f"{k}: {v}\n" for k, v in items.items()))


def write_nifti_patient(root: Path, pid: str, *, T=T, cfg=None, dense=True) -> Path:
    d = root / "database_nifti" / pid
    d.mkdir(parents=True)
    img, lab = _sequence(T)
    for view in ("2CH", "4CH"):
        _nii(d / f"{pid}_{view}_half_sequence.nii.gz", img)
        if dense:
            _nii(d / f"{pid}_{view}_half_sequence_gt.nii.gz", lab)
        for key, t in (("ED", 0), ("ES", T - 1)):
            _nii(d / f"{pid}_{view}_{key}.nii.gz", img[t])
            _nii(d / f"{pid}_{view}_{key}_gt.nii.gz", lab[t])
        items = dict(ED=1, ES=T, NbFrame=T, Sex="F", Age=61, ImageQuality="Good", EF=52, FrameRate=25)
        items.update(cfg or {})
        _cfg(d / f"Info_{view}.cfg", **items)
    return d


def write_legacy_patient(root: Path, pid: str, group="training", *, T=T) -> Path:
    d = root / group / pid
    d.mkdir(parents=True)
    img, lab = _sequence(T)
    for view in ("2CH", "4CH"):
        _mhd(d / f"{pid}_{view}_sequence.mhd", img)
        for key, t in (("ED", 0), ("ES", T - 1)):
            _mhd(d / f"{pid}_{view}_{key}.mhd", img[t])
            _mhd(d / f"{pid}_{view}_{key}_gt.mhd", lab[t])
        _cfg(d / f"Info_{view}.cfg", ED=1, ES=T, NbFrame=T, Sex="M", Age=70, ImageQuality="Medium",
             LVedv=120.5, LVesv=60.1, LVef=50.1)
    return d


def write_ted_patient(root: Path, pid: str, *, T=9) -> Path:
    d = root / "database" / pid
    d.mkdir(parents=True)
    img, lab = _sequence(T)
    lab[lab == 3] = 0
    _mhd(d / f"{pid}_4CH_sequence.mhd", img)
    _mhd(d / f"{pid}_4CH_sequence_gt.mhd", lab)
    _cfg(d / f"{pid}_4CH_info.cfg", ED=1, ES=5, NbFrame=T, ImageQuality="Good")
    return d


def _check_orientation(seq, T, la=True):
    assert seq.images.shape == (T, H, W) and seq.images.dtype == np.float32
    assert seq.spacing == pytest.approx((SY, SX))
    assert np.all(seq.images[(slice(None), *APEX)] == 1.0)  # the marker is at the apex: top rows, centre
    assert seq.images[:, 5:, :].max() < 100 / 255 + 1e-6
    for lab in seq.labels.values():
        assert lab.shape == (H, W) and lab.dtype == np.uint8
        assert np.all(lab[APEX] == 2)
        assert np.all(lab[30:36, 8:22] == (3 if la else 0))


# --- the three layouts --------------------------------------------------------------------------------------------


def test_nifti_2023(tmp_path):
    d = write_nifti_patient(tmp_path, "patient0001")
    assert camus.detect_layout(d, "2CH") == "nifti2023"
    seq = camus.load_sequence(d, "4CH")
    _check_orientation(seq, T)
    assert (seq.patient, seq.view, seq.ed, seq.es, seq.key) == ("patient0001", "4CH", 0, T - 1, "patient0001_4CH")
    assert sorted(seq.labels) == [0, T - 1]
    assert seq.dense_kind == "interpolated"  # real CAMUS half_sequence_gt is interpolated, not manual
    assert seq.dense.shape == (T, H, W) and np.all(seq.dense[(slice(None), *APEX)] == 2)
    assert (seq.dense[:, 8:22, 15] == 1).sum(axis=1).tolist() == [14 - t for t in range(T)]
    assert seq.info == dict(ED=1, ES=T, NbFrame=T, Sex="F", Age=61, ImageQuality="Good", EF=52, FrameRate=25)


def test_nifti_dense_kind_from_cfg_and_optional(tmp_path):
    seq = camus.load_sequence(write_nifti_patient(tmp_path, "patient0001", cfg={"DenseKind": "exact"}), "2CH")
    assert seq.dense_kind == "exact"
    seq = camus.load_sequence(write_nifti_patient(tmp_path, "patient0002", dense=False), "2CH")
    assert seq.dense is None and seq.dense_kind is None


def test_legacy_mhd(tmp_path):
    d = write_legacy_patient(tmp_path, "patient0001")
    assert camus.detect_layout(d, "2CH") == "mhd_legacy"
    seq = camus.load_sequence(d, "2CH")
    _check_orientation(seq, T)
    assert seq.dense is None and seq.dense_kind is None
    assert seq.info["LVedv"] == 120.5 and seq.info["LVef"] == 50.1


def test_ted(tmp_path):
    d = write_ted_patient(tmp_path, "patient001")
    assert camus.detect_layout(d, "4CH") == "ted"
    seq = camus.load_ted_sequence(d)
    _check_orientation(seq, 9, la=False)
    assert (seq.view, seq.ed, seq.es, seq.dense_kind) == ("4CH", 0, 4, "manual")
    np.testing.assert_array_equal(seq.labels[4], seq.dense[4])
    # load_sequence recognises a TED folder too
    assert camus.load_sequence(d, "4CH").dense_kind == "manual"


def test_iter_sequences_and_splits(tmp_path):
    root = tmp_path / "camus"
    for i in (3, 1, 2):
        write_nifti_patient(root, f"patient{i:04d}")
    (root / "database_split").mkdir()
    for name, pats in (("training", [1, 3]), ("validation", []), ("testing", [2])):
        (root / "database_split" / f"subgroup_{name}.txt").write_text("".join(f"patient{i:04d}\n" for i in pats))
    keys = [s.key for s in camus.iter_sequences(root)]
    assert keys == [f"patient{i:04d}_{v}" for i in (1, 2, 3) for v in ("2CH", "4CH")]
    assert [s.key for s in camus.iter_sequences(root, "test", views=("4CH",))] == ["patient0002_4CH"]
    assert camus.read_split(root) == {"train": ["patient0001", "patient0003"], "val": [], "test": ["patient0002"]}

    legacy = tmp_path / "legacy"
    write_legacy_patient(legacy, "patient0001", "testing")
    write_legacy_patient(legacy, "patient0002", "training")
    assert camus.read_split(legacy) == {"train": ["patient0002"], "val": [], "test": ["patient0001"]}
    assert len(list(camus.iter_sequences(legacy, ["patient0002"]))) == 2

    ted = tmp_path / "ted"
    write_ted_patient(ted, "patient002")
    write_ted_patient(ted, "patient001")
    assert [s.patient for s in camus.iter_sequences(ted)] == ["patient001", "patient002"]


# --- resizing -----------------------------------------------------------------------------------------------------


def test_resize_sequence(tmp_path):
    seq = camus.load_sequence(write_nifti_patient(tmp_path, "patient0001"), "2CH")
    big = camus.resize_sequence(seq, (80, 90))
    assert big.images.shape == (T, 80, 90) and big.dense.shape == (T, 80, 90)
    assert big.spacing == pytest.approx((SY * H / 80, SX * W / 90))
    # physical extent preserved
    assert big.spacing[0] * 80 == pytest.approx(seq.spacing[0] * H)
    assert big.spacing[1] * 90 == pytest.approx(seq.spacing[1] * W)
    assert 0.0 <= big.images.min() and big.images.max() <= 1.0
    # nearest for labels: no new values, areas in mm^2 preserved to within a pixel row
    assert set(np.unique(big.dense)) == set(np.unique(seq.dense))
    a0 = (seq.dense[0] == 1).sum() * np.prod(seq.spacing)
    a1 = (big.dense[0] == 1).sum() * np.prod(big.spacing)
    assert a1 == pytest.approx(a0, rel=0.1)
    assert np.all(big.labels[0][:4, 40:50] == 2)  # apex marker still at the top
    assert camus.resize_sequence(seq, 512).shape == (512, 512)


# --- errors -------------------------------------------------------------------------------------------------------


def test_error_missing_file(tmp_path):
    d = write_nifti_patient(tmp_path, "patient0001")
    (d / "patient0001_2CH_ES_gt.nii.gz").unlink()
    with pytest.raises(EchoDataError, match=r"patient0001_2CH_ES_gt\.nii\.gz: missing file"):
        camus.load_sequence(d, "2CH")
    (d / "Info_4CH.cfg").unlink()
    with pytest.raises(EchoDataError, match=r"Info_4CH\.cfg: missing"):
        camus.load_sequence(d, "4CH")


def test_error_unknown_layout(tmp_path):
    d = tmp_path / "patient0001"
    d.mkdir()
    (d / "notes.txt").write_text("x")
    with pytest.raises(EchoDataError, match="unknown layout"):
        camus.load_sequence(d, "2CH")
    with pytest.raises(EchoDataError, match="unknown dataset layout"):
        list(camus.iter_sequences(tmp_path / "patient0001"))
    with pytest.raises(EchoDataError, match="not found"):
        camus.load_sequence(tmp_path / "nope", "2CH")


def test_error_nbframe(tmp_path):
    d = write_nifti_patient(tmp_path, "patient0001", cfg={"NbFrame": T + 2})
    with pytest.raises(EchoDataError, match=rf"Info_2CH\.cfg: NbFrame = {T + 2} but .* has {T} frames"):
        camus.load_sequence(d, "2CH")


@pytest.mark.parametrize("key,value", [("ED", 0), ("ES", T + 1)])
def test_error_ed_es_range(tmp_path, key, value):
    d = write_nifti_patient(tmp_path, "patient0001", cfg={key: value})
    with pytest.raises(EchoDataError, match=rf"Info_2CH\.cfg: {key} = {value} is out of range 1\.\.{T}"):
        camus.load_sequence(d, "2CH")


def test_error_shape_mismatch(tmp_path):
    d = write_nifti_patient(tmp_path, "patient0001")
    _nii(d / "patient0001_2CH_half_sequence_gt.nii.gz", np.zeros((T, H, W - 1), np.uint8))
    with pytest.raises(EchoDataError, match=r"half_sequence_gt\.nii\.gz: shape .* differs from the image"):
        camus.load_sequence(d, "2CH")
    d = write_legacy_patient(tmp_path, "patient0002")
    _mhd(d / "patient0002_2CH_ED_gt.mhd", np.zeros((H + 1, W), np.uint8))
    with pytest.raises(EchoDataError, match=r"patient0002_2CH_ED_gt\.mhd: shape"):
        camus.load_sequence(d, "2CH")


def test_error_label_values(tmp_path):
    d = write_nifti_patient(tmp_path, "patient0001")
    bad = _sequence()[1][T - 1]
    bad[5, 5] = 7
    _nii(d / "patient0001_4CH_ES_gt.nii.gz", bad)
    with pytest.raises(EchoDataError, match=r"ES_gt\.nii\.gz: label values \[7\] outside"):
        camus.load_sequence(d, "4CH")


def test_error_nan_and_empty_images(tmp_path):
    d = write_nifti_patient(tmp_path, "patient0001")
    img = _sequence()[0].astype(np.float32)
    img[1, 3, 3] = np.nan
    _nii(d / "patient0001_2CH_half_sequence.nii.gz", img)
    with pytest.raises(EchoDataError, match=r"half_sequence\.nii\.gz: image contains NaN"):
        camus.load_sequence(d, "2CH")
    _nii(d / "patient0001_4CH_half_sequence.nii.gz", np.zeros((T, H, W), np.uint8))
    with pytest.raises(EchoDataError, match=r"half_sequence\.nii\.gz: empty image"):
        camus.load_sequence(d, "4CH")
    d = write_ted_patient(tmp_path, "patient001")
    _mhd(d / "patient001_4CH_sequence.mhd", np.zeros((9, H, W), np.uint8))
    with pytest.raises(EchoDataError, match="empty image"):
        camus.load_ted_sequence(d)


def test_no_partial_dataset(tmp_path):
    """A bad file anywhere makes the whole read fail: no partially read dataset is returned."""
    root = tmp_path / "camus"
    write_nifti_patient(root, "patient0001")
    d = write_nifti_patient(root, "patient0002", cfg={"ES": 99})
    with pytest.raises(EchoDataError, match=str(d / "Info_2CH.cfg").replace(".", r"\.")):
        list(camus.iter_sequences(root))


# --- the study's data set -----------------------------------------------------------------------------------------


def test_load_study_synthetic(tmp_path):
    cfg = load_config("notebooks/params/ci.yaml", {"data": {"n_patients": 4, "frames": [4, 5], "size": 48}})
    paths = RunPaths(tmp_path / "run")
    split = camus.study_split(cfg, paths)
    assert sorted(sum(split.values(), [])) == [f"patient{i:04d}" for i in range(1, 5)]
    assert all(split[k] for k in ("train", "test"))
    assert not set(split["train"]) & set(split["test"])
    assert camus.study_sequences(cfg, paths, "test") == [(p, v) for p in split["test"] for v in ("2CH", "4CH")]
    seqs = camus.load_study(cfg, paths, "train")
    assert [s.key for s in seqs] == [f"{p}_{v}" for p in split["train"] for v in ("2CH", "4CH")]
    assert all(s.dense_kind == "exact" and s.shape == (48, 48) for s in seqs)
    lazy = camus.iter_study(cfg, paths, "train")
    assert not isinstance(lazy, list)
    first = next(lazy)
    assert first.key == seqs[0].key
    np.testing.assert_array_equal(first.images, seqs[0].images)
    assert (paths.data / "database_nifti").is_dir()
    # resize and views
    cfg2 = load_config("notebooks/params/ci.yaml", {"data": {"n_patients": 4, "frames": [4, 5], "size": 48,
                                                             "resize": 64, "views": ["4CH"]}})
    seqs2 = camus.load_study(cfg2, paths, "test")
    assert [s.view for s in seqs2] == ["4CH"] * len(split["test"])
    assert seqs2[0].shape == (64, 64)
    ref = camus.load_sequence(paths.data / "database_nifti" / split["test"][0], "4CH")
    assert seqs2[0].spacing == pytest.approx((ref.spacing[0] * 48 / 64, ref.spacing[1] * 48 / 64))
    # another cohort size in the same run directory is refused, not silently overwritten
    cfg3 = load_config("notebooks/params/ci.yaml", {"data": {"n_patients": 5, "frames": [4, 5], "size": 48}})
    with pytest.raises(RuntimeError, match="other parameters"):
        camus.load_study(cfg3, paths, "all")


def test_load_study_camus_env_and_seeded_split(tmp_path, monkeypatch):
    def cfg_for(**data):
        return load_config("notebooks/params/ci.yaml", {"data": {"source": "camus", "root": "${CAMUS_ROOT}",
                                                                 "test_fraction": 0.1, "val_fraction": 0.0,
                                                                 **data}})

    paths = RunPaths(tmp_path / "run")
    monkeypatch.delenv("CAMUS_ROOT", raising=False)
    with pytest.raises(ValueError, match="CAMUS_ROOT"):  # the profile names the unset variable
        cfg_for()
    monkeypatch.setenv("CAMUS_ROOT", str(tmp_path / "missing"))
    with pytest.raises(EchoDataError, match="folder not found"):
        camus.load_study(cfg_for(), paths, "all")
    root = tmp_path / "camus"
    for i in range(1, 11):
        write_nifti_patient(root, f"patient{i:04d}")  # no database_split: seeded split written to split.json
    monkeypatch.setenv("CAMUS_ROOT", str(root))
    cfg = cfg_for()
    split = camus.study_split(cfg, paths)
    assert len(split["test"]) == 1 and len(split["train"]) == 9 and split["val"] == []
    stored = json.loads((paths.data / "split.json").read_text())
    assert stored["split"] == split
    assert camus.study_split(cfg, paths) == split  # reused
    test = camus.load_study(cfg, paths, "test")
    assert [s.key for s in test] == [f"{split['test'][0]}_2CH", f"{split['test'][0]}_4CH"]
    assert test[0].dense_kind == "interpolated"
    s4 = camus.study_split(cfg_for(max_patients=4), paths)
    assert sum(len(v) for v in s4.values()) <= 4 and s4["test"]
    with pytest.raises(EchoDataError, match="split.json"):
        camus.study_split(cfg_for(seed=5), paths)
