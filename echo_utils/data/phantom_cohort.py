"""The synthetic cohort on disk: the phantom's patients written in the CAMUS 2023 layout (and TED-like cycles).

:func:`make_cohort` renders every patient of :mod:`echo_utils.data.phantom` and writes
``root/database_nifti/patientXXXX/patientXXXX_{2CH,4CH}_{half_sequence,ED,ES}[_gt].nii.gz`` + ``Info_{2CH,4CH}.cfg``
(with ``DenseKind: exact``), ``root/database_split/subgroup_*.txt``, ``root/cohort.json`` (the generation
parameters, the completion marker), and with ``full_cycle=True`` a TED-like
``root/ted/database/patientNNN/patientNNN_4CH_{sequence,sequence_gt}.mhd`` + ``_info.cfg``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ..artifacts.atomic import write_json
from ..artifacts.files import COHORT_FILE, COHORT_SUMMARY_FILE, COHORT_TIMING_FILE
from ..artifacts.read import read_json
from ..artifacts.record import KeyedRecord, RecordMismatch
from .phantom import render_patient
from .phantom_patient import PatientParams, lv_volume, sample_patient
from .split import split_patients  # the one seeded patient split (also used for real data sets)

__all__ = ["make_cohort", "cohort_params", "cohort_record", "CohortMismatch", "patient_params", "ted_root",
           "cohort_summary"]

COHORT_VERSION = 2  # 2: own time course per patient, regional wall motion, rigid drift


class CohortMismatch(RecordMismatch, RuntimeError):
    """An existing cohort folder was generated with other parameters (it is never silently overwritten): the
    artifact store's :class:`~echo_utils.artifacts.record.RecordMismatch` of ``cohort.json``."""


# ----------------------------------------------------------------------------------------------------------------
# Writing the CAMUS 2023 layout (and the TED-like full cycle)
# ----------------------------------------------------------------------------------------------------------------


def _write_nifti(path: Path, arr: np.ndarray, spacing: tuple[float, float]) -> None:
    """Write ``(H, W)`` or ``(T, H, W)`` as CAMUS 2023 does: stored (W, H[, T]), zooms (sx, sy[, 1])."""
    import nibabel as nib

    data = arr.T if arr.ndim == 2 else arr.transpose(2, 1, 0)
    zooms = (spacing[1], spacing[0]) + ((1.0,) if arr.ndim == 3 else ())
    img = nib.Nifti1Image(np.ascontiguousarray(data), affine=np.diag([*zooms[:2], 1.0, 1.0]))
    img.header.set_zooms(zooms)
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))


def _write_mhd(path: Path, arr: np.ndarray, spacing: tuple[float, float]) -> None:
    """Write ``(H, W)`` or ``(T, H, W)`` as MHD/RAW (SimpleITK order: x = cols, y = rows, z = frames)."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((spacing[1], spacing[0]) + ((1.0,) if arr.ndim == 3 else ()))
    sitk.WriteImage(img, str(path), False)


def _write_cfg(path: Path, items: dict) -> None:
    path.write_text("".join(f"{k}: {v}\n" for k, v in items.items()))


def cohort_params(
    n_patients: int, size: int, frames, seed: int, full_cycle: bool, test_fraction: float, val_fraction: float
) -> dict:
    """The parameters that define a cohort (stored in ``cohort.json``; a mismatch refuses reuse)."""
    return {
        "version": COHORT_VERSION,
        "n_patients": int(n_patients),
        "size": int(size),
        "frames": [int(frames[0]), int(frames[1])],
        "seed": int(seed),
        "full_cycle": bool(full_cycle),
        "test_fraction": float(test_fraction),
        "val_fraction": float(val_fraction),
    }


def cohort_record(root: str | Path) -> KeyedRecord:
    """``root/cohort.json``: the cohort's generation parameters, its key and its done marker (written last, as
    ``json.dumps(indent=1)``); another cohort there is a :class:`CohortMismatch`, a damaged record a
    :class:`~echo_utils.artifacts.read.DamagedFile` saying how to regenerate it."""
    from ..safe_load import rerun_hint

    root = Path(root)
    path = root / COHORT_FILE
    return KeyedRecord(path, what="the synthetic cohort there", error=CohortMismatch,
                       advice=f"Delete {root} or use another run directory.",
                       rebuild=lambda: rerun_hint(path, "01", delete=root), indent=1, sort_keys=False)


def patient_params(root: str | Path, patient: str) -> PatientParams:
    """The parameters of one patient of a generated cohort (recomputed from ``cohort.json``: seed and ranges)."""
    params = cohort_record(root).read()
    if params is None:
        raise FileNotFoundError(f"{Path(root) / COHORT_FILE} does not exist: {root} is not a generated cohort")
    index = int(patient.replace("patient", "")) - 1
    if not 0 <= index < params["n_patients"]:
        raise ValueError(f"{root}: no patient {patient!r} in a cohort of {params['n_patients']}")
    return sample_patient(index, params["seed"], tuple(params["frames"]))


def ted_root(root: str | Path) -> Path:
    """The TED-like folder (holding ``database/``) of a cohort made with ``full_cycle=True``."""
    return Path(root) / "ted"


def _write_patient(folder: Path, pp: PatientParams, size: int, full_cycle: bool, ted_dir: Path | None) -> dict:
    views = render_patient(pp, size, full_cycle)
    pdir = folder / pp.patient
    pdir.mkdir(parents=True)
    T = pp.n_frames
    summary = {"patient": pp.patient, "quality": pp.quality, "ef": pp.ef, "n_frames": T}
    edv, esv = lv_volume(pp, 0.0), lv_volume(pp, 1.0)
    for view, (img, lab, sp, phases) in views.items():
        spacing = (sp, sp)
        stem = pdir / f"{pp.patient}_{view}"
        half_img, half_lab = img[:T], lab[:T]
        _write_nifti(Path(f"{stem}_half_sequence.nii.gz"), half_img, spacing)
        _write_nifti(Path(f"{stem}_half_sequence_gt.nii.gz"), half_lab, spacing)
        _write_nifti(Path(f"{stem}_ED.nii.gz"), half_img[0], spacing)
        _write_nifti(Path(f"{stem}_ED_gt.nii.gz"), half_lab[0], spacing)
        _write_nifti(Path(f"{stem}_ES.nii.gz"), half_img[T - 1], spacing)
        _write_nifti(Path(f"{stem}_ES_gt.nii.gz"), half_lab[T - 1], spacing)
        _write_cfg(
            pdir / f"Info_{view}.cfg",
            {
                "ED": 1,
                "ES": T,
                "NbFrame": T,
                "Sex": pp.sex,
                "Age": pp.age,
                "ImageQuality": pp.quality,
                "EF": round(pp.ef, 2),
                "FrameRate": round(pp.frame_rate, 2),
                "LVedv": round(float(edv), 2),
                "LVesv": round(float(esv), 2),
                "DenseKind": "exact",
                "Synthetic": "true",
            },
        )
        if view == "4CH" and ted_dir is not None:
            tid = f"patient{int(pp.patient[-4:]):03d}"
            tdir = ted_dir / tid
            tdir.mkdir(parents=True)
            gt = lab.copy()
            gt[gt == 3] = 0  # TED labels: LV cavity and myocardium only
            _write_mhd(tdir / f"{tid}_4CH_sequence.mhd", img, spacing)
            _write_mhd(tdir / f"{tid}_4CH_sequence_gt.mhd", gt, spacing)
            _write_cfg(
                tdir / f"{tid}_4CH_info.cfg",
                {
                    "ED": 1,
                    "ES": T,
                    "NbFrame": len(phases),
                    "ImageQuality": pp.quality,
                    "EF": round(pp.ef, 2),
                    "FrameRate": round(pp.frame_rate, 2),
                    "CAMUS": pp.patient,
                    "DenseKind": "exact",
                    "Synthetic": "true",
                },
            )
    return summary


def _generate_one(args):
    folder, index, seed, frames, size, full_cycle, ted_dir = args
    pp = sample_patient(index, seed, frames)
    return _write_patient(Path(folder), pp, size, full_cycle, Path(ted_dir) if ted_dir else None)


def make_cohort(
    root: str | Path,
    n_patients: int,
    *,
    size: int = 256,
    frames: tuple[int, int] = (10, 40),
    seed: int = 0,
    full_cycle: bool = False,
    test_fraction: float = 0.2,
    val_fraction: float = 0.1,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Generate (or reuse) a synthetic cohort in the CAMUS 2023 NIfTI layout under ``root``; returns ``root``.

    The cohort is generated into a temporary folder next to ``root`` and moved into place; ``cohort.json`` is
    written last and marks a complete cohort.  An existing complete cohort with the same parameters is reused;
    one with other parameters raises :class:`CohortMismatch` (never silently overwritten).

    Parameters
    ----------
    root : destination folder (created; may already hold other files, e.g. a run's ``split.json``).
    n_patients : number of patients; each has a 2CH and a 4CH half sequence (ED -> ES).
    size : image size in pixels (square images, square pixels).
    frames : inclusive range of the ED -> ES frame count.
    seed : the same seed gives the same files.
    full_cycle : also write TED-like full-cycle 4CH sequences under ``root/ted/database``.
    test_fraction, val_fraction : the seeded split written to ``database_split/``.
    workers : threads (default: up to 2 when n_patients >= 8).  Threads, not processes: numpy releases the GIL in
        the heavy steps (measured 1.9x with 2 threads), and a plain script without an
        ``if __name__ == "__main__":`` guard works (a spawned process would re-import it).
    """
    from tqdm import tqdm

    root = Path(root)
    frames = (int(frames[0]), int(frames[1]))
    if n_patients < 1:
        raise ValueError(f"n_patients must be >= 1, got {n_patients}")
    if not 2 <= frames[0] <= frames[1]:
        raise ValueError(f"frames must satisfy 2 <= min <= max, got {frames}")
    if size < 32:
        raise ValueError(f"size must be >= 32 pixels, got {size}")
    params = cohort_params(n_patients, size, frames, seed, full_cycle, test_fraction, val_fraction)
    record = cohort_record(root)
    marker = record.path
    if record.check(params) is not None:  # the same cohort is there: reused
        return root
    for name in ("database_nifti", "database_split", "ted"):
        if (root / name).exists():
            raise CohortMismatch(
                f"{root / name} exists but {marker} does not: an incomplete or foreign cohort. Delete it first."
            )
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".cohort-", dir=root))
    try:
        nifti = tmp / "database_nifti"
        nifti.mkdir()
        ted_dir = ted_root(tmp) / "database" if full_cycle else None
        jobs = [(str(nifti), i, seed, frames, size, full_cycle, str(ted_dir) if ted_dir else None)
                for i in range(n_patients)]
        if workers is None:
            workers = min(2, os.cpu_count() or 1) if n_patients >= 8 else 1
        t0 = time.perf_counter()
        if workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as ex:
                summaries = list(tqdm(ex.map(_generate_one, jobs), total=n_patients, desc="phantom",
                                      disable=not progress))
        else:
            summaries = [_generate_one(j) for j in tqdm(jobs, desc="phantom", disable=not progress)]
        split = split_patients([s["patient"] for s in summaries], seed, test_fraction, val_fraction)
        sdir = tmp / "database_split"
        sdir.mkdir()
        for name, pats in split.items():
            (sdir / f"subgroup_{name}.txt").write_text("".join(p + "\n" for p in pats))
        for name in ("database_nifti", "database_split", "ted"):
            if (tmp / name).exists():
                os.replace(tmp / name, root / name)
        # per-patient summary (deterministic) and the generation time (not: it varies from run to run)
        write_json(root / COHORT_SUMMARY_FILE, dict(params, patients=summaries), indent=1, sort_keys=False)
        seconds = time.perf_counter() - t0
        write_json(root / COHORT_TIMING_FILE, {"seconds": round(seconds, 2), "workers": workers}, indent=None,
                   sort_keys=False)
        record.write(params)  # the done marker, written last, holds the parameters only (compared on reuse)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def cohort_summary(root: str | Path) -> dict:
    """The generation summary: parameters, ``seconds`` (generation time) and ``patients`` (one dict per patient:
    quality, requested EF, frame count)."""
    root = Path(root)
    out = read_json(root / COHORT_SUMMARY_FILE)
    timing = root / COHORT_TIMING_FILE
    out.update(read_json(timing) if timing.exists() else {"seconds": None})
    return out
