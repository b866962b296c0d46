"""CAMUS (2023 NIfTI and legacy MHD) and TED readers, returning :class:`EchoSequence`.

Conventions (the book's data chapter): images float32 ``(T, H, W)`` in [0, 1] with the apex at row 0; labels uint8
(0 background, 1 LV cavity, 2 LV myocardium, 3 left atrium); spacing ``(sy, sx)`` in mm per pixel;
ED/ES 0-based frame indices.

Axis conventions on disk (CAMUS: Leclerc et al., IEEE TMI 2019; TED: Painchaud et al., IEEE TMI 2022):

* CAMUS 2023 NIfTI: nibabel returns ``(W, H[, T])`` with zooms ``(sx, sy[, 1])``: transposed to ``(T, H, W)``.
* CAMUS legacy and TED MHD/RAW: SimpleITK returns ``(T, H, W)`` with ElementSpacing ``(sx, sy[, st])``.

The sequence itself, :class:`EchoSequence`, and :func:`resize_sequence` are in :mod:`echo_utils.data.sequence`
(re-exported here).  Single files: :func:`load_sequence` (layout detected from the files present), :func:`load_ted_sequence`.
Whole data sets: :func:`list_patients`, :func:`iter_sequences`, :func:`read_split`.  The TED -> CAMUS patient
mapping: :func:`read_ted_map` (the authors' ``data/ted2camus.csv``, shipped with the package).  The study's cohort,
splits and selections from a profile are in :mod:`echo_utils.data.cohort`.

Every problem is an :class:`EchoDataError` naming the file and the problem; a dataset with one bad file raises
instead of returning part of the data.  Reference labels are checked on read: values in {0, 1, 2, 3}, and an LV
cavity in every ED/ES label and every dense frame (an all-background reference would score as a perfect empty
segmentation, or fail much later in a volume computation without naming the file).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ..labels import LABEL_NAMES  # label value -> name (the one vocabulary)
from .sequence import DenseKind, EchoSequence, resize_sequence  # what every reader returns (re-exported here)

# ================================================================================================================
# Readers
# ================================================================================================================


__all__ = [
    "EchoSequence",
    "EchoDataError",
    "LABEL_NAMES",
    "read_cfg",
    "frame_number",
    "detect_layout",
    "load_sequence",
    "load_ted_sequence",
    "list_patients",
    "iter_sequences",
    "resize_sequence",
    "read_split",
    "read_ted_map",
    "TED_MAP_FILE",
]

VIEWS = ("2CH", "4CH")
SPLIT_NAMES = {"train": "training", "val": "validation", "test": "testing"}
_SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "validation": "val", "test": "test",
                  "testing": "test"}


class EchoDataError(ValueError):
    """A dataset file that cannot be used: the message names the file and the problem."""


def read_cfg(path: str | Path) -> dict:
    """Read an ``Info_*.cfg`` / ``*_info.cfg`` file of ``Key: value`` lines (numbers converted)."""
    path = Path(path)
    if not path.is_file():
        raise EchoDataError(f"{path}: missing cfg file")
    out: dict = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        if ":" not in line:
            raise EchoDataError(f"{path}, line {n}: expected 'Key: value', got {line!r}")
        key, value = (s.strip() for s in line.split(":", 1))
        for cast in (int, float):
            try:
                out[key] = cast(value)
                break
            except ValueError:
                continue
        else:
            out[key] = value
    return out


def _load_nifti(path: Path) -> tuple[np.ndarray, tuple[float, float]]:
    """NIfTI as CAMUS 2023 stores it, (W, H[, T]) -> ``(H, W)`` or ``(T, H, W)``; spacing (sy, sx) from zooms."""
    import nibabel as nib

    if not path.is_file():
        raise EchoDataError(f"{path}: missing file")
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise EchoDataError(f"{path}: cannot read NIfTI ({exc})") from exc
    zooms = img.header.get_zooms()
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        arr = data.T
    elif data.ndim == 3:
        arr = data.transpose(2, 1, 0)
    else:
        raise EchoDataError(f"{path}: expected a 2D or 3D image, got shape {data.shape}")
    return np.ascontiguousarray(arr), (float(zooms[1]), float(zooms[0]))


def _load_mhd(path: Path) -> tuple[np.ndarray, tuple[float, float]]:
    """MHD/RAW via SimpleITK: arrays come back ``(H, W)`` or ``(T, H, W)``; spacing (sy, sx) from ElementSpacing."""
    import SimpleITK as sitk

    if not path.is_file():
        raise EchoDataError(f"{path}: missing file")
    try:
        img = sitk.ReadImage(str(path))
    except Exception as exc:  # noqa: BLE001
        raise EchoDataError(f"{path}: cannot read MHD ({exc})") from exc
    arr = sitk.GetArrayFromImage(img)
    sp = img.GetSpacing()
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim not in (2, 3):
        raise EchoDataError(f"{path}: expected a 2D or 3D image, got shape {arr.shape}")
    return arr, (float(sp[1]), float(sp[0]))


def _as_images(arr: np.ndarray, path: Path) -> np.ndarray:
    """float32 ``(T, H, W)`` in [0, 1]: integers are divided by 255 (or their max if larger); floats outside
    [0, 1] are min-max scaled.  NaN / infinite / empty / all-zero images are errors."""
    if arr.ndim == 2:
        arr = arr[None]
    if arr.size == 0 or 0 in arr.shape:
        raise EchoDataError(f"{path}: empty image (shape {arr.shape})")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise EchoDataError(f"{path}: image contains NaN or infinite values")
    a = arr.astype(np.float32)
    lo, hi = float(a.min()), float(a.max())
    if hi == lo:
        raise EchoDataError(f"{path}: empty image (every pixel is {lo})")
    if np.issubdtype(arr.dtype, np.integer) and lo >= 0:
        a /= 255.0 if hi <= 255 else hi
    elif lo < 0 or hi > 1:
        a = (a - lo) / (hi - lo)
    return a


def _as_labels(arr: np.ndarray, path: Path, *, what: str = "label map", require_lv: bool = True) -> np.ndarray:
    """uint8 label map checked as a reference: values in {0, 1, 2, 3}; with ``require_lv`` the LV cavity (label 1)
    present in the map (2D) or in every frame (3D).  Errors name the file, the patient (its folder) and ``what``."""
    where = f"{path} (patient {path.parent.name}, {what})"
    if arr.size == 0:
        raise EchoDataError(f"{where}: empty label map (shape {arr.shape})")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise EchoDataError(f"{where}: label map contains NaN or infinite values")
        if not np.all(arr == np.round(arr)):
            raise EchoDataError(f"{where}: label map has non-integer values")
    bad = np.setdiff1d(np.unique(arr), np.arange(4))
    if bad.size:
        raise EchoDataError(f"{where}: label values {bad.tolist()} outside {{0, 1, 2, 3}}")
    lab = arr.astype(np.uint8)
    if require_lv:
        frames = lab[None] if lab.ndim == 2 else lab
        empty = np.flatnonzero(~(frames == 1).any(axis=(1, 2)))
        if empty.size:
            at = "" if lab.ndim == 2 else f" at frame(s) {(empty + 1).tolist()[:10]} (1-based)"
            kind = "is all background" if not frames[empty[0]].any() else "has no LV cavity (label 1)"
            raise EchoDataError(f"{where}: reference label {kind}{at}; a reference needs the LV cavity")
    return lab


def _check_same_shape(img_shape, gt_shape, img_path: Path, gt_path: Path) -> None:
    if tuple(img_shape) != tuple(gt_shape):
        raise EchoDataError(f"{gt_path}: shape {tuple(gt_shape)} differs from the image {img_path.name} "
                            f"shape {tuple(img_shape)}")


def frame_number(info: dict, key: str, cfg_path: str | Path) -> int:
    """The 1-based frame number ``info[key]`` (``ED``, ``ES``, ``NbFrame``) of a cfg read by :func:`read_cfg`; a
    missing key or a value that is not a whole number is an :class:`EchoDataError` naming the file and the key."""
    if key not in info:
        raise EchoDataError(f"{cfg_path}: missing key '{key}'")
    value = info[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise EchoDataError(f"{cfg_path}: {key} = {value!r} is not a frame number (a whole number)")
    return value


def _frames_from_cfg(info: dict, n_frames: int, cfg_path: Path, seq_path: Path) -> tuple[int, int]:
    """0-based ED/ES indices from the cfg's 1-based frame numbers, checked against the sequence length."""
    nb = frame_number(info, "NbFrame", cfg_path) if "NbFrame" in info else None
    if nb is not None and nb != n_frames:
        raise EchoDataError(f"{cfg_path}: NbFrame = {nb} but {seq_path.name} has {n_frames} frames")
    ed, es = frame_number(info, "ED", cfg_path) - 1, frame_number(info, "ES", cfg_path) - 1
    for key, idx in (("ED", ed), ("ES", es)):
        if not 0 <= idx < n_frames:
            raise EchoDataError(f"{cfg_path}: {key} = {idx + 1} is out of range 1..{n_frames} "
                                f"(frames of {seq_path.name})")
    return ed, es


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Dice over the foreground labels present in either map (1.0 for two empty maps)."""
    scores = []
    for v in np.union1d(np.unique(a), np.unique(b)):
        if v == 0:
            continue
        x, y = a == v, b == v
        scores.append(2.0 * np.logical_and(x, y).sum() / (x.sum() + y.sum()))
    return float(np.mean(scores)) if scores else 1.0


def _check_phases_against_dense(ed_label: np.ndarray, es_label: np.ndarray, dense: np.ndarray, ed: int, es: int,
                                cfg_path: Path, dense_path: Path) -> None:
    """The sparse ED and ES labels must match the dense labels at the frames the cfg names better than at each
    other's frame: otherwise the cfg's ED and ES are swapped (or wrong) with respect to the dense labels."""
    stated = _agreement(ed_label, dense[ed]) + _agreement(es_label, dense[es])
    swapped = _agreement(ed_label, dense[es]) + _agreement(es_label, dense[ed])
    if swapped > stated:
        raise EchoDataError(
            f"{cfg_path}: ED = {ed + 1}, ES = {es + 1} contradict the dense labels {dense_path.name}: the ED label "
            f"matches their frame {es + 1} and the ES label their frame {ed + 1} better (mean Dice {swapped / 2:.2f} "
            f"swapped, {stated / 2:.2f} as stated): ED and ES are swapped in the cfg or in the _ED_gt/_ES_gt files")


def detect_layout(patient_dir: str | Path, view: str = "2CH") -> str:
    """``'nifti2023'``, ``'mhd_legacy'`` or ``'ted'`` from the files present; :class:`EchoDataError` otherwise."""
    d = Path(patient_dir)
    p = d.name
    if not d.is_dir():
        raise EchoDataError(f"{d}: patient folder not found")
    if (d / f"{p}_{view}_half_sequence.nii.gz").exists() or (d / f"{p}_{view}_half_sequence.nii").exists():
        return "nifti2023"
    if (d / f"{p}_{view}_sequence.mhd").exists():
        return "ted" if (d / f"{p}_{view}_info.cfg").exists() else "mhd_legacy"
    raise EchoDataError(
        f"{d}: unknown layout for view {view}: expected {p}_{view}_half_sequence.nii.gz (CAMUS 2023), "
        f"{p}_{view}_sequence.mhd + Info_{view}.cfg (CAMUS legacy) or {p}_4CH_sequence.mhd + "
        f"{p}_4CH_info.cfg (TED)"
    )


def _nifti_path(d: Path, stem: str) -> Path:
    gz = d / f"{stem}.nii.gz"
    return gz if gz.exists() or not (d / f"{stem}.nii").exists() else d / f"{stem}.nii"


def _dense_kind(info: dict, default: str, cfg_path: Path) -> str:
    kind = str(info.get("DenseKind", default)).strip().lower()
    if kind not in ("exact", "manual", "interpolated"):
        raise EchoDataError(f"{cfg_path}: DenseKind must be exact, manual or interpolated, got {kind!r}")
    return kind


def load_sequence(patient_dir: str | Path, view: str) -> EchoSequence:
    """Read one view of one CAMUS patient (2023 NIfTI or legacy MHD, detected from the files).

    2023 NIfTI: ``_half_sequence`` (ED -> ES), ``_half_sequence_gt`` as ``dense`` (kind from the cfg key
    ``DenseKind``, default ``'interpolated'``: the real CAMUS dense labels are interpolated, not manual),
    ``_ED_gt`` / ``_ES_gt`` as sparse labels.  Legacy MHD: ``_sequence``, ``_ED_gt``, ``_ES_gt``; no dense labels.
    """
    view = view.upper()
    if view not in VIEWS:
        raise EchoDataError(f"unknown view {view!r}: expected one of {VIEWS}")
    d = Path(patient_dir)
    layout = detect_layout(d, view)
    p = d.name
    if layout == "ted":
        return load_ted_sequence(d)
    cfg_path = d / f"Info_{view}.cfg"
    info = read_cfg(cfg_path)
    if layout == "nifti2023":
        seq_path = _nifti_path(d, f"{p}_{view}_half_sequence")
        load = _load_nifti
        sparse_paths = {k: _nifti_path(d, f"{p}_{view}_{k}_gt") for k in ("ED", "ES")}
        dense_path = _nifti_path(d, f"{p}_{view}_half_sequence_gt")
    else:
        seq_path = d / f"{p}_{view}_sequence.mhd"
        load = _load_mhd
        sparse_paths = {k: d / f"{p}_{view}_{k}_gt.mhd" for k in ("ED", "ES")}
        dense_path = None
    raw, spacing = load(seq_path)
    if raw.ndim != 3:
        raise EchoDataError(f"{seq_path}: expected a sequence (T, H, W), got shape {raw.shape}")
    images = _as_images(raw, seq_path)
    ed, es = _frames_from_cfg(info, images.shape[0], cfg_path, seq_path)
    if ed >= es:
        raise EchoDataError(f"{cfg_path}: ED = {ed + 1} is not before ES = {es + 1}, but {seq_path.name} is a half "
                            f"sequence from ED to ES ({images.shape[0]} frames); the cfg's ED and ES contradict it")
    labels = {}
    for key, idx in (("ED", ed), ("ES", es)):
        lab, _ = load(sparse_paths[key])
        _check_same_shape(images.shape[1:], lab.shape, seq_path, sparse_paths[key])
        labels[idx] = _as_labels(lab, sparse_paths[key], what=f"{view} {key} label")
    dense = kind = None
    if dense_path is not None and dense_path.exists():
        lab, _ = load(dense_path)
        _check_same_shape(images.shape, lab.shape, seq_path, dense_path)
        dense = _as_labels(lab, dense_path, what=f"{view} dense labels")
        kind = _dense_kind(info, "interpolated", cfg_path)
        _check_phases_against_dense(labels[ed], labels[es], dense, ed, es, cfg_path, dense_path)
    return EchoSequence(patient=p, view=view, images=images, spacing=spacing, ed=ed, es=es, labels=labels,
                        dense=dense, dense_kind=kind, info=info)


def load_ted_sequence(patient_dir: str | Path) -> EchoSequence:
    """Read one TED patient: the full-cycle 4CH ``_sequence`` and its per-frame ``_sequence_gt`` (``manual``).

    The sparse labels are the dense labels at ED and ES.
    """
    d = Path(patient_dir)
    p = d.name
    seq_path, gt_path, cfg_path = (d / f"{p}_4CH_sequence.mhd", d / f"{p}_4CH_sequence_gt.mhd",
                                   d / f"{p}_4CH_info.cfg")
    if not seq_path.exists():
        raise EchoDataError(f"{seq_path}: missing file (TED layout: {p}_4CH_sequence.mhd)")
    info = read_cfg(cfg_path)
    raw, spacing = _load_mhd(seq_path)
    if raw.ndim != 3:
        raise EchoDataError(f"{seq_path}: expected a sequence (T, H, W), got shape {raw.shape}")
    images = _as_images(raw, seq_path)
    ed, es = _frames_from_cfg(info, images.shape[0], cfg_path, seq_path)
    lab, _ = _load_mhd(gt_path)
    _check_same_shape(images.shape, lab.shape, seq_path, gt_path)
    dense = _as_labels(lab, gt_path, what="4CH dense labels")
    return EchoSequence(patient=p, view="4CH", images=images, spacing=spacing, ed=ed, es=es,
                        labels={ed: dense[ed].copy(), es: dense[es].copy()}, dense=dense,
                        dense_kind=_dense_kind(info, "manual", cfg_path), info=info)


# ----------------------------------------------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------------------------------------------

_PATIENT_RE = re.compile(r"^patient\d+$")


def _dataset_layout(root: Path) -> tuple[str, dict[str, Path]]:
    """(layout, {patient: folder}) of a dataset root (CAMUS 2023, CAMUS legacy or TED)."""
    root = Path(root)
    if not root.is_dir():
        raise EchoDataError(f"{root}: dataset root not found")
    candidates = [("nifti2023", [root / "database_nifti"]), ("mhd_legacy", [root / "training", root / "testing"]),
                  ("ted", [root / "database"])]
    for layout, dirs in candidates:
        found = {q.name: q for d in dirs if d.is_dir() for q in d.iterdir() if q.is_dir() and _PATIENT_RE.match(q.name)}
        if found:
            return layout, dict(sorted(found.items()))
    direct = {q.name: q for q in root.iterdir() if q.is_dir() and _PATIENT_RE.match(q.name)}
    if direct:
        first = next(iter(sorted(direct.values())))
        layout = "ted" if list(first.glob("*_4CH_info.cfg")) else ("nifti2023" if list(first.glob("*.nii*"))
                                                                   else "mhd_legacy")
        return layout, dict(sorted(direct.items()))
    raise EchoDataError(
        f"{root}: unknown dataset layout: expected database_nifti/patientXXXX (CAMUS 2023), "
        "training|testing/patientXXXX (CAMUS legacy) or database/patientNNN (TED)"
    )


def list_patients(root: str | Path) -> dict[str, Path]:
    """``{patient id: folder}`` of a dataset root, sorted by id."""
    return _dataset_layout(Path(root))[1]


def read_split(root: str | Path) -> dict[str, list[str]] | None:
    """The official split of a dataset root, ``{'train', 'val', 'test'}`` -> patient ids, or ``None``.

    CAMUS 2023: ``database_split/subgroup_{training,validation,testing}.txt``.  Legacy CAMUS: the ``testing``
    folder is the test set and ``training`` the rest (no validation set: ``val`` is empty).
    """
    root = Path(root)
    sdir = root / "database_split"
    if sdir.is_dir():
        out = {}
        for short, long in SPLIT_NAMES.items():
            f = sdir / f"subgroup_{long}.txt"
            if not f.is_file():
                raise EchoDataError(f"{f}: missing split file")
            out[short] = sorted({ln.strip() for ln in f.read_text().splitlines() if ln.strip()})
        return out
    if (root / "training").is_dir() and (root / "testing").is_dir():
        pats = {k: sorted(q.name for q in (root / k).iterdir() if q.is_dir() and _PATIENT_RE.match(q.name))
                for k in ("training", "testing")}
        return {"train": pats["training"], "val": [], "test": pats["testing"]}
    return None


def _resolve_split(root: Path, split) -> set[str] | None:
    if split is None or split == "all":
        return None
    if isinstance(split, str):
        key = _SPLIT_ALIASES.get(split)
        if key is None:
            raise EchoDataError(f"unknown split {split!r}: expected train, val, test or all")
        official = read_split(root)
        if official is None:
            raise EchoDataError(f"{root}: no official split files (database_split/ or training|testing/)")
        return set(official[key])
    return set(split)


def iter_sequences(root: str | Path, split=None, views: Iterable[str] = VIEWS) -> Iterator[EchoSequence]:
    """Every sequence of a dataset root in a deterministic order (patient id, then ``views`` order).

    ``split``: ``None``/``'all'``, a split name (``train``/``val``/``test``, official split files), or an
    iterable of patient ids.  TED roots yield their 4CH full-cycle sequences.
    """
    root = Path(root)
    layout, patients = _dataset_layout(root)
    wanted = _resolve_split(root, split)
    for pid, folder in patients.items():
        if wanted is not None and pid not in wanted:
            continue
        if layout == "ted":
            yield load_ted_sequence(folder)
            continue
        for view in views:
            yield load_sequence(folder, view)


# ----------------------------------------------------------------------------------------------------------------
# TED -> CAMUS patient mapping
# ----------------------------------------------------------------------------------------------------------------

TED_MAP_FILE = Path(__file__).with_name("ted2camus.csv")
"""The authors' mapping (repository ``temporally-consistent-echosegmentation``, file ``data/ted2camus.csv``)."""


def read_ted_map(path: str | Path | None = None) -> dict[str, str]:
    """TED patient id -> CAMUS patient id, as folder names: ``{"patient001": "patient0002", ...}``.

    TED (Painchaud et al., IEEE TMI 2022) renumbers 98 CAMUS patients; the paper's authors ship the 94 that are in
    the CAMUS training set as ``data/ted2camus.csv`` (columns ``ted_id,camus_id``, integers), a copy of which is
    :data:`TED_MAP_FILE` (the default).  Lines starting with ``#`` are comments.  Both columns must be unique.
    """
    path = Path(path) if path is not None else TED_MAP_FILE
    if not path.is_file():
        raise EchoDataError(f"{path}: TED -> CAMUS mapping not found")
    lines = [(n, ln) for n, ln in enumerate(path.read_text().splitlines(), 1)
             if ln.strip() and not ln.lstrip().startswith("#")]
    rows = list(csv.reader(ln for _, ln in lines))
    if not rows or [c.strip() for c in rows[0]] != ["ted_id", "camus_id"]:
        raise EchoDataError(f"{path}: expected the header 'ted_id,camus_id'")
    out: dict[str, str] = {}
    for (n, _), row in zip(lines[1:], rows[1:]):
        try:
            ted, cam = (int(c) for c in row)
        except ValueError:
            raise EchoDataError(f"{path}, line {n}: expected two integers 'ted_id,camus_id', got {row}") from None
        tid, cid = f"patient{ted:03d}", f"patient{cam:04d}"
        if tid in out:
            raise EchoDataError(f"{path}, line {n}: TED id {ted} listed twice")
        if cid in out.values():
            raise EchoDataError(f"{path}, line {n}: CAMUS id {cam} listed twice")
        out[tid] = cid
    return out
