"""Small CAMUS (2023 NIfTI, legacy MHD) and TED (MHD) data sets written in the real layouts, for the data tests.

The files are written here with nibabel / SimpleITK directly (not with the phantom's writer), so that a wrong axis
order in the readers cannot be hidden by the same mistake in the writer.  Every image has a bright marker at the
apex (top rows, centre columns) and every label map the myocardium there: ``H != W`` and ``sy != sx`` make any
transposition visible.

:func:`write_paper_study` writes a CAMUS 2023 + TED pair in which some TED ids map to CAMUS ids through the
authors' ``ted2camus.csv`` (TED 1 -> CAMUS 2, TED 2 -> CAMUS 4, TED 3 -> CAMUS 5), one TED id has no mapping
(19, one of the four TED patients in the CAMUS test set), one TED patient has another ED...ES frame count than
its CAMUS half-sequence and one another image size.  The TED labels are the CAMUS ones moved by one pixel, so a
seed never scores as a perfect copy of its reference.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

T, H, W = 5, 40, 30
SY, SX = 0.3, 0.6  # mm per pixel along rows, columns
APEX = (slice(0, 3), slice(13, 17))


def sequence(T=T, seed=0, H=H, W=W) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images and labels ``(T, H, W)``: apex marker, a cavity that shrinks by a row per frame, an LA."""
    rng = np.random.default_rng(seed)
    img = rng.integers(10, 100, size=(T, H, W), dtype=np.uint8)
    cy, cx = H / 40, W / 30
    apex = (slice(0, 3), slice(int(13 * cx), int(17 * cx)))
    img[(slice(None), *apex)] = 255
    lab = np.zeros((T, H, W), np.uint8)
    lab[(slice(None), *apex)] = 2
    for t in range(T):
        lab[t, int(8 * cy) : int((22 - t) * cy), int(10 * cx) : int(20 * cx)] = 1
    lab[:, int(30 * cy) : int(36 * cy), int(8 * cx) : int(22 * cx)] = 3
    img[lab == 1] //= 3  # a dark cavity, so that a registration has something to track
    return img, lab


def nii(path: Path, arr: np.ndarray, spacing=(SY, SX)) -> None:
    """CAMUS 2023: nibabel sees (W, H[, T]), zooms (sx, sy[, 1])."""
    sy, sx = spacing
    data = arr.T if arr.ndim == 2 else arr.transpose(2, 1, 0)
    img = nib.Nifti1Image(np.ascontiguousarray(data), np.diag([sx, sy, 1.0, 1.0]))
    img.header.set_zooms((sx, sy) + ((1.0,) if arr.ndim == 3 else ()))
    nib.save(img, str(path))


def mhd(path: Path, arr: np.ndarray, spacing=(SY, SX)) -> None:
    """Legacy CAMUS and TED: SimpleITK arrays are (T, H, W); ElementSpacing is (sx, sy[, st])."""
    sy, sx = spacing
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((sx, sy) + ((1.0,) if arr.ndim == 3 else ()))
    sitk.WriteImage(img, str(path))


def cfg(path: Path, **items) -> None:
    path.write_text("".join(f"{k}: {v}\n" for k, v in items.items()))


def write_nifti_patient(root: Path, pid: str, *, T=T, cfg_items=None, dense=True, seed=0, H=H, W=W) -> Path:
    """One CAMUS 2023 patient: ``database_nifti/<pid>/`` with both views, ED = frame 1, ES = frame T."""
    d = root / "database_nifti" / pid
    d.mkdir(parents=True)
    img, lab = sequence(T, seed, H, W)
    for view in ("2CH", "4CH"):
        nii(d / f"{pid}_{view}_half_sequence.nii.gz", img)
        if dense:
            nii(d / f"{pid}_{view}_half_sequence_gt.nii.gz", lab)
        for key, t in (("ED", 0), ("ES", T - 1)):
            nii(d / f"{pid}_{view}_{key}.nii.gz", img[t])
            nii(d / f"{pid}_{view}_{key}_gt.nii.gz", lab[t])
        items = dict(ED=1, ES=T, NbFrame=T, Sex="F", Age=61, ImageQuality="Good", EF=52, FrameRate=25)
        items.update(cfg_items or {})
        cfg(d / f"Info_{view}.cfg", **items)
    return d


def write_split(root: Path, split: dict[str, list[str]]) -> None:
    """CAMUS 2023 ``database_split/subgroup_{training,validation,testing}.txt``."""
    sdir = root / "database_split"
    sdir.mkdir(parents=True, exist_ok=True)
    for key, name in (("train", "training"), ("val", "validation"), ("test", "testing")):
        (sdir / f"subgroup_{name}.txt").write_text("".join(f"{p}\n" for p in split[key]))


def write_legacy_patient(root: Path, pid: str, group="training", *, T=T) -> Path:
    d = root / group / pid
    d.mkdir(parents=True)
    img, lab = sequence(T)
    for view in ("2CH", "4CH"):
        mhd(d / f"{pid}_{view}_sequence.mhd", img)
        for key, t in (("ED", 0), ("ES", T - 1)):
            mhd(d / f"{pid}_{view}_{key}.mhd", img[t])
            mhd(d / f"{pid}_{view}_{key}_gt.mhd", lab[t])
        cfg(d / f"Info_{view}.cfg", ED=1, ES=T, NbFrame=T, Sex="M", Age=70, ImageQuality="Medium",
            LVedv=120.5, LVesv=60.1, LVef=50.1)
    return d


def write_ted_patient(root: Path, pid: str, *, T=9, ed=1, es=5, seed=0, H=H, W=W, shift=0) -> Path:
    """One TED patient: ``database/<pid>/<pid>_4CH_{sequence,sequence_gt}.mhd`` + ``_4CH_info.cfg`` (full cycle:
    the frames ED...ES contract, the rest relax back).  ``shift`` moves the labels down by that many rows."""
    d = root / "database" / pid
    d.mkdir(parents=True)
    n_sys = es - ed + 1
    img_s, lab_s = sequence(n_sys, seed, H, W)
    order = np.r_[np.zeros(ed - 1, int), np.arange(n_sys), np.arange(n_sys - 2, n_sys - 2 - (T - es), -1)]
    order = np.clip(order, 0, n_sys - 1)
    img, lab = img_s[order], lab_s[order]
    lab[lab == 3] = 0  # TED: LV cavity and myocardium only
    if shift:
        lab = np.roll(lab, shift, axis=1)
    mhd(d / f"{pid}_4CH_sequence.mhd", img)
    mhd(d / f"{pid}_4CH_sequence_gt.mhd", lab)
    cfg(d / f"{pid}_4CH_info.cfg", ED=ed, ES=es, NbFrame=T, ImageQuality="Good")
    return d


# The CAMUS / TED pair of the paper-protocol tests
PAPER_SPLIT = {
    "train": ["patient0002", "patient0004", "patient0005", "patient0006", "patient0007", "patient0008"],
    "val": ["patient0003", "patient0010"],
    "test": ["patient0001", "patient0009"],
}
PAPER_TED = {  # TED id -> (CAMUS id by the authors' mapping, or None; how the fixture differs from CAMUS)
    "patient001": ("patient0002", "same frames"),
    "patient002": ("patient0004", "another image size"),
    "patient003": ("patient0005", "another frame count"),
    "patient019": (None, "no mapping"),
}
PAPER_T, PAPER_SIZE = 6, (48, 40)


def write_paper_study(tmp: Path) -> tuple[Path, Path]:
    """(CAMUS 2023 root, TED root) of :data:`PAPER_SPLIT` / :data:`PAPER_TED` (see the module docstring)."""
    camus_root, ted_root = tmp / "camus", tmp / "ted"
    h, w = PAPER_SIZE
    for i in range(1, 11):
        write_nifti_patient(camus_root, f"patient{i:04d}", T=PAPER_T, seed=i, H=h, W=w)
    write_split(camus_root, PAPER_SPLIT)
    write_ted_patient(ted_root, "patient001", T=10, ed=1, es=PAPER_T, seed=2, H=h, W=w, shift=1)
    write_ted_patient(ted_root, "patient002", T=10, ed=2, es=PAPER_T + 1, seed=4, H=2 * h, W=2 * w, shift=2)
    write_ted_patient(ted_root, "patient003", T=12, ed=1, es=PAPER_T + 2, seed=5, H=h, W=w, shift=1)
    write_ted_patient(ted_root, "patient019", T=10, ed=1, es=PAPER_T, seed=9, H=h, W=w)
    return camus_root, ted_root
