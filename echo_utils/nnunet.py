"""nnU-Net v2 glue: export the four datasets, plan and preprocess, train, and predict every frame.

The paper's claim is about *training data*, not architecture: the same self-configuring nnU-Net
{cite}`isensee2021nnunet` is trained on four datasets built from the same sequences.

==============  ====  =====================================================================================
model           dim   training labels
==============  ====  =====================================================================================
``2d_sparse``   2D    the ED and ES frames with their manual labels (the usual CAMUS setting)
``2d_dense``    2D    every frame: manual labels at ED/ES, bidirectional pseudo-labels elsewhere (notebook 03)
``3d_dense``    3D    each sequence as one (T, H, W) volume, time as the third axis, the same dense labels
``3d_sparse``   3D    each sequence as one volume, labelled at ED/ES only; every other frame is nnU-Net's
                      *ignore* label (a baseline the paper did not run)
==============  ====  =====================================================================================

Everything goes through nnU-Net's own Python API (dataset.json helper, integrity check, fingerprint, planner,
preprocessor, trainer, predictor); this module only arranges the data and the run directory:

- :func:`configure_nnunet` points nnU-Net at ``<run>/nnunet/{raw,preprocessed,results}`` and sets the process
  counts (``nnUNet_def_n_proc``, ``nnUNet_n_proc_DA``) and ``nnUNet_compile``.
- :func:`export_dataset` writes the raw dataset (``imagesTr``/``labelsTr``/``imagesTs``, ``dataset.json``), checks it
  with ``verify_dataset_integrity`` and writes the patient-wise ``splits_final.json``.
- :func:`plan_and_preprocess` runs the fingerprint, the default ``ExperimentPlanner`` and the preprocessor; the
  ``small`` profiles add a narrow configuration (``2d_small`` / ``3d_fullres_small``) that ``inherits_from`` the
  planned one.
- :func:`train_model` trains :class:`EchoTrainer` (an ``nnUNetTrainer`` with the profile's budget), reusing a
  finished model and resuming an interrupted one from nnU-Net's checkpoint.
- :func:`predict_all` predicts every frame of every sequence with the in-process ``nnUNetPredictor`` and writes
  ``<run>/predictions/<model>/<patient>_<view>.nii.gz``, read back by :func:`load_prediction`.

Environment variables. ``nnunetv2.paths`` (2.8.1) reads ``nnUNet_raw``/``nnUNet_preprocessed``/``nnUNet_results``
lazily from ``os.environ`` at every use, so :func:`configure_nnunet` simply sets them for the current run. The
process count ``nnunetv2.configuration.default_num_processes`` however is read from ``nnUNet_def_n_proc`` once, at
import; :func:`configure_nnunet` therefore also patches that attribute in every nnU-Net module already imported.
nnU-Net's dataset tools (integrity check, fingerprint, preprocessing) start ``spawn`` process pools; here they run
in ``nnunet.n_proc`` threads instead (faster for small datasets, and no script re-executed in workers); set
``ECHO_NNUNET_POOLS=process`` for nnU-Net's own process pools (large datasets, many cores).

Command-line equivalents (what each function runs, for users of the nnU-Net CLI)::

    export nnUNet_raw=<run>/nnunet/raw nnUNet_preprocessed=<run>/nnunet/preprocessed \\
           nnUNet_results=<run>/nnunet/results nnUNet_extTrainer=<run>/nnunet/trainers \\
           nnUNet_def_n_proc=2 nnUNet_n_proc_DA=0 nnUNet_compile=0
    nnUNetv2_plan_and_preprocess -d 802 -c 3d_fullres -np 2 --verify_dataset_integrity
    # two steps have no command: time is kept as the first axis (ExperimentPlanner(..., suppress_transpose=True)),
    # and small profiles add the 3d_fullres_small configuration to nnUNetPlans.json (see small_configuration)
    nnUNetv2_train 802 3d_fullres_small 0 -tr EchoTrainer -device cpu
    nnUNetv2_predict -d 802 -c 3d_fullres_small -f 0 -tr EchoTrainer -i <raw>/imagesTs -o <out> --disable_tta \\
        -device cpu

``nnUNet_extTrainer`` points at a small generated module (``<run>/nnunet/trainers/echo_trainers.py``) whose
``EchoTrainer`` carries this run's budget, so the CLI trains exactly what :func:`train_model` trains, into the
same results folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np

from .config import NnUNetConfig, RunPaths, StudyConfig, config_hash
from .labels import LABEL_VALUES as LABELS  # name -> label value, as nnU-Net's dataset.json wants
from .labels import MODELS

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .camus import EchoSequence

__all__ = [
    "MODELS",
    "ModelSpec",
    "SPECS",
    "LABELS",
    "IGNORE_LABEL",
    "NnUNetError",
    "configure_nnunet",
    "dataset_id",
    "dataset_name",
    "configuration_name",
    "make_splits",
    "export_dataset",
    "plan_and_preprocess",
    "small_configuration",
    "trainer_class",
    "train_model",
    "training_log",
    "plans_table",
    "datasets_table",
    "load_predictor",
    "predict_sequence",
    "predict_all",
    "prediction_path",
    "load_prediction",
    "dense_pseudo_labels",
    "frame_roles",
    "prediction_slider",
    "EchoTrainer",
]

IGNORE_LABEL = 4  # nnU-Net's ignore label must be the highest label value
PLANS = "nnUNetPlans"
TRAINER = "EchoTrainer"
CHANNELS = {"0": "echo"}  # any name but 'CT' selects nnU-Net's per-image z-score normalisation
FILE_ENDING = ".nii.gz"
POOLS = os.environ.get("ECHO_NNUNET_POOLS", "thread")  # 'process' restores nnU-Net's spawn pools (see _pools)
# torch threads for nnU-Net training and prediction on CPU. One thread per process is the robust choice on a small
# machine: measured on the 2-core machine while other processes ran, 2 threads were 3-19x *slower* than 1 (the OpenMP
# threads wait for each other whenever one is descheduled). Set ECHO_NNUNET_THREADS=2 on an otherwise idle machine.
CPU_THREADS = int(os.environ.get("ECHO_NNUNET_THREADS", "1"))
_EXPORT_MARKER = "echo_export.json"
_PREPROCESS_MARKER = "echo_preprocess.json"
_TRAINING_MARKER = "echo_training.json"
_PREDICTION_MARKER = "echo_predictions.json"


class NnUNetError(RuntimeError):
    """Bad input or a clash with existing work; the message names the file or value and what to do."""


@dataclass(frozen=True)
class ModelSpec:
    """One of the four models: which frames it is trained on, and whether as 2D images or 3D volumes."""

    name: str
    offset: int  # dataset id = nnunet.dataset_id_base + offset
    dim: int  # 2: one training case per frame; 3: one (T, H, W) volume per sequence
    dense: bool  # labels on every frame (pseudo-labels) or only at ED/ES

    @property
    def parent_configuration(self) -> str:
        """The nnU-Net configuration the model trains (or, for small profiles, inherits from)."""
        return "2d" if self.dim == 2 else "3d_fullres"

    @property
    def camel(self) -> str:
        return self.name.replace("2d", "2D").replace("3d", "3D").title().replace("_", "")


SPECS = {
    "2d_sparse": ModelSpec("2d_sparse", 0, 2, False),
    "2d_dense": ModelSpec("2d_dense", 1, 2, True),
    "3d_dense": ModelSpec("3d_dense", 2, 3, True),
    "3d_sparse": ModelSpec("3d_sparse", 3, 3, False),
}


def _spec(model: str) -> ModelSpec:
    if model not in SPECS:
        raise NnUNetError(f"unknown nnU-Net model {model!r}; expected one of {list(SPECS)}")
    return SPECS[model]


# ----------------------------------------------------------------------------------------------------------------
# names and environment
# ----------------------------------------------------------------------------------------------------------------


def dataset_id(cfg: StudyConfig, model: str) -> int:
    """nnU-Net dataset id of ``model``: ``nnunet.dataset_id_base`` + 0..3."""
    return cfg.nnunet.dataset_id_base + _spec(model).offset


def dataset_name(cfg: StudyConfig, model: str) -> str:
    """``DatasetXXX_<prefix><Model>``, e.g. ``Dataset802_Echo3DDense``."""
    return f"Dataset{dataset_id(cfg, model):03d}_{cfg.nnunet.dataset_prefix}{_spec(model).camel}"


def configuration_name(cfg: StudyConfig, model: str) -> str:
    """The configuration trained: nnU-Net's own (``2d``/``3d_fullres``) or its narrow ``*_small`` child."""
    parent = _spec(model).parent_configuration
    return parent if cfg.nnunet.configuration == "default" else f"{parent}_small"


def _nnunet_dirs(paths: RunPaths) -> dict[str, Path]:
    root = Path(paths.nnunet)
    return {
        "nnUNet_raw": root / "raw",
        "nnUNet_preprocessed": root / "preprocessed",
        "nnUNet_results": root / "results",
        "nnUNet_extTrainer": root / "trainers",
    }


def configure_nnunet(cfg: StudyConfig, paths: RunPaths, device: str = "cpu") -> dict[str, str]:
    """Point nnU-Net at this run's folders and set its process counts; returns the variables set.

    Sets ``nnUNet_raw``, ``nnUNet_preprocessed``, ``nnUNet_results`` (under ``paths.nnunet``), ``nnUNet_extTrainer``
    (the generated trainer module for the CLI), ``nnUNet_def_n_proc`` = ``nnunet.n_proc``, ``nnUNet_n_proc_DA`` =
    ``nnunet.n_proc_da`` and ``nnUNet_compile`` (``0`` on CPU, where compilation costs more than it saves and the
    predictor would otherwise try it; ``1`` on CUDA). Also patches ``default_num_processes`` in the nnU-Net modules
    already imported, because nnU-Net reads ``nnUNet_def_n_proc`` only once, at import.
    """
    dirs = _nnunet_dirs(paths)
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    env = {k: str(v) for k, v in dirs.items()}
    env["nnUNet_def_n_proc"] = str(cfg.nnunet.n_proc)
    env["nnUNet_n_proc_DA"] = str(cfg.nnunet.n_proc_da)
    env["nnUNet_compile"] = "1" if str(device).startswith("cuda") else "0"
    os.environ.update(env)
    for name, module in list(sys.modules.items()):
        if name.startswith("nnunetv2") and module is not None and hasattr(module, "default_num_processes"):
            module.default_num_processes = cfg.nnunet.n_proc
    _write_trainer_module(cfg, dirs["nnUNet_extTrainer"])
    return env


# ----------------------------------------------------------------------------------------------------------------
# small helpers: atomic files, hashes
# ----------------------------------------------------------------------------------------------------------------


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def _jsonable(obj):
    """numpy scalars and arrays (nnU-Net logs np.float32) as plain Python numbers, recursively."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _read_json(path: Path):
    return json.loads(Path(path).read_text())


@contextlib.contextmanager
def _quiet(log_file: Path | None):
    """Send nnU-Net's prints (stdout) to ``log_file``; tqdm bars (stderr) stay visible."""
    if log_file is None:
        yield
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a") as fh, contextlib.redirect_stdout(fh):
        yield


@contextlib.contextmanager
def _environ(**values: str):
    """Temporarily set environment variables."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _ThreadContext:
    """Stands in for ``multiprocessing.get_context('spawn')`` in nnU-Net's dataset tools: a thread pool."""

    @staticmethod
    def Pool(processes=None):  # noqa: N802 - mimics multiprocessing's API
        from multiprocessing.pool import ThreadPool

        return ThreadPool(processes)


class _ThreadMultiprocessing:
    @staticmethod
    def get_context(method=None):
        return _ThreadContext()


@contextlib.contextmanager
def _pools(kind: str):
    """Run nnU-Net's integrity check, fingerprint and preprocessing pools as ``kind`` ('process' or 'thread').

    nnU-Net starts ``spawn`` process pools; every worker imports torch and nnU-Net again (seconds each on a busy
    2-core machine) and, in a script without an ``if __name__ == "__main__":`` guard, re-executes the script.
    Threads avoid both; the work per case is small and mostly outside the GIL (SimpleITK, numpy, blosc2).
    """
    if kind == "process":
        yield
        return
    import importlib

    names = (
        "nnunetv2.experiment_planning.verify_dataset_integrity",
        "nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor",
        "nnunetv2.preprocessing.preprocessors.default_preprocessor",
    )
    from multiprocessing.pool import ThreadPool

    modules = [importlib.import_module(n) for n in names]
    utils = importlib.import_module("nnunetv2.utilities.utils")  # lists files with a 12-process fork Pool
    saved = [m.multiprocessing for m in modules], utils.Pool
    for m in modules:
        m.multiprocessing = _ThreadMultiprocessing
    utils.Pool = ThreadPool
    try:
        yield
    finally:
        for m, old in zip(modules, saved[0]):
            m.multiprocessing = old
        utils.Pool = saved[1]


@contextlib.contextmanager
def _cpu_threads(device: str):
    """Run torch with :data:`CPU_THREADS` threads on CPU (restored afterwards); CUDA is left alone."""
    import torch

    if str(device).startswith("cuda"):
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(CPU_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _write_nifti(path: Path, array: np.ndarray, spacing: tuple[float, ...]) -> None:
    """Write ``array`` ((H, W) or (T, H, W), numpy order) with ``spacing`` in the same order, via SimpleITK."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(array)
    img.SetSpacing([float(s) for s in spacing[::-1]])  # SimpleITK wants (x, y[, z])
    tmp = path.with_name(path.name.replace(FILE_ENDING, ".partial" + FILE_ENDING))
    sitk.WriteImage(img, str(tmp), useCompression=True)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------------------------
# export
# ----------------------------------------------------------------------------------------------------------------


def _check_sequence(seq: "EchoSequence") -> None:
    img = np.asarray(seq.images)
    if img.ndim != 3 or img.shape[0] < 2:
        raise NnUNetError(f"{seq.key}: images must be (T, H, W) with T >= 2, got shape {img.shape}")
    for t in (seq.ed, seq.es):
        if t not in seq.labels:
            raise NnUNetError(f"{seq.key}: no manual label for frame {t} (ED={seq.ed}, ES={seq.es})")
        if seq.labels[t].shape != img.shape[1:]:
            raise NnUNetError(f"{seq.key}: label of frame {t} has shape {seq.labels[t].shape}, images {img.shape[1:]}")


def _dense_for(seq: "EchoSequence", dense_labels: dict | None) -> np.ndarray:
    if dense_labels is None or seq.key not in dense_labels:
        raise NnUNetError(
            f"dense training needs pseudo-labels for {seq.key}, but none were given. Run notebook 03 "
            "(03_pseudo_labels) into this run directory first, so that "
            f"pseudo_labels/<method>/{seq.patient}/{seq.key}_half_sequence_bidirectional.nii.gz exists."
        )
    dense = np.asarray(dense_labels[seq.key])
    if dense.shape != seq.images.shape:
        raise NnUNetError(f"{seq.key}: pseudo-labels have shape {dense.shape}, images {seq.images.shape}")
    if dense.min() < 0 or dense.max() > max(LABELS.values()):
        raise NnUNetError(f"{seq.key}: pseudo-label values must lie in 0..3, got {np.unique(dense)}")
    return dense


def _training_label(spec: ModelSpec, seq: "EchoSequence", dense_labels: dict | None) -> np.ndarray:
    """(T, H, W) uint8 training label of one sequence: dense (manual at ED/ES) or sparse (ignore elsewhere)."""
    if spec.dense:
        label = _dense_for(seq, dense_labels).astype(np.uint8, copy=True)
    else:
        label = np.full(seq.images.shape, IGNORE_LABEL, np.uint8)
    for t in (seq.ed, seq.es):
        label[t] = seq.labels[t]
    return label


def _training_cases(
    spec: ModelSpec, seq: "EchoSequence", dense_labels: dict | None
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(case id, image, label) of one sequence: one case per frame (2D) or per sequence (3D)."""
    label = _training_label(spec, seq, dense_labels)
    images = np.asarray(seq.images, dtype=np.float32)
    if spec.dim == 3:
        yield seq.key, images, label
        return
    frames = range(seq.n_frames) if spec.dense else sorted({seq.ed, seq.es})
    for t in frames:
        yield f"{seq.key}_f{t:03d}", images[t], label[t]


def dense_pseudo_labels(
    cfg: StudyConfig, paths: RunPaths, sequences: Iterable["EchoSequence"], method: str | None = None
) -> dict[str, np.ndarray]:
    """``{seq.key: (T, H, W) uint8}`` bidirectional pseudo-labels of notebook 03 (``paths.pseudo_labels/<method>``).

    ``method`` defaults to ``registration.method``. A missing file is a :class:`NnUNetError` that names it.
    """
    from .fusion import load_pseudo_labels

    root = Path(paths.pseudo_labels) / (method or cfg.registration.method)
    out = {}
    for seq in sequences:
        try:
            out[seq.key] = load_pseudo_labels(root, seq).bidirectional
        except FileNotFoundError as exc:
            raise NnUNetError(f"dense training needs the pseudo-labels of {seq.key}: {exc}") from None
    return out


def frame_roles(model: str, seq: "EchoSequence") -> list[str]:
    """What each frame of ``seq`` is in the training set of ``model``: 'manual', 'pseudo', 'ignore' or 'unused'."""
    spec = _spec(model)
    roles = []
    for t in range(seq.n_frames):
        if t in (seq.ed, seq.es):
            roles.append("manual")
        elif spec.dense:
            roles.append("pseudo")
        else:
            roles.append("ignore" if spec.dim == 3 else "unused")
    return roles


def make_splits(
    cfg: StudyConfig, train: Iterable["EchoSequence"], val: Iterable["EchoSequence"] = ()
) -> list[dict[str, list[str]]]:
    """Patient-wise folds, as lists of *patient ids* (both views of a patient always in the same fold).

    One fold (``nnunet.folds == [0]``): train on the study's training patients, validate on its validation
    patients (or on every fifth training patient when there is no validation split). Several folds: a seeded
    k-fold over all training and validation patients, ``k = max(5, max(folds) + 1)``, as nnU-Net's own 5-fold CV.
    """
    train_p = sorted({s.patient for s in train})
    val_p = sorted({s.patient for s in val} - set(train_p))
    folds = cfg.nnunet.folds
    if tuple(folds) == (0,):
        if not val_p:
            val_p = train_p[::5]
            train_p = [p for p in train_p if p not in val_p]
        if not train_p:
            raise NnUNetError("no training patients left for nnU-Net after taking the validation patients")
        return [{"train": train_p, "val": val_p}]
    patients = np.array(sorted(set(train_p) | set(val_p)))
    k = max(5, max(folds) + 1)
    if len(patients) < k:
        raise NnUNetError(f"{k}-fold cross-validation needs at least {k} patients, got {len(patients)}")
    order = np.random.RandomState(12345).permutation(len(patients))
    chunks = np.array_split(order, k)
    return [
        {"train": sorted(patients[np.concatenate(chunks[:i] + chunks[i + 1 :])].tolist()), "val": sorted(patients[c].tolist())}
        for i, c in enumerate(chunks)
    ]


def _case_splits(patient_splits: list[dict], case_ids: list[str]) -> list[dict[str, list[str]]]:
    def cases_of(patients):
        wanted = set(patients)
        return sorted(c for c in case_ids if c.split("_")[0] in wanted)

    return [{"train": cases_of(s["train"]), "val": cases_of(s["val"])} for s in patient_splits]


def _check_id_free(raw: Path, ds_id: int, name: str) -> None:
    clashes = sorted(p.name for p in raw.glob(f"Dataset{ds_id:03d}_*") if p.name != name and not p.name.endswith(".partial"))
    if clashes:
        raise NnUNetError(
            f"nnU-Net dataset id {ds_id} is already used by {clashes} in {raw}; nnU-Net needs unique ids. "
            "Choose another nnunet.dataset_id_base in the profile (nothing was changed)."
        )


def export_dataset(
    cfg: StudyConfig,
    paths: RunPaths,
    model: str,
    train: list["EchoSequence"],
    val: list["EchoSequence"] = (),
    test: list["EchoSequence"] = (),
    dense_labels: dict[str, np.ndarray] | None = None,
    *,
    verify: bool = True,
) -> Path:
    """Write (or reuse) the nnU-Net raw dataset of ``model``; returns its folder ``<raw>/DatasetXXX_Name``.

    Parameters
    ----------
    train, val : the sequences nnU-Net trains and validates on (``val`` becomes the validation fold, see
        :func:`make_splits`); their ``labels`` hold the manual ED/ES labels.
    test : sequences written to ``imagesTs`` as (T, H, W) volumes, for users of ``nnUNetv2_predict``.
    dense_labels : ``{seq.key: (T, H, W) uint8}`` pseudo-labels (notebook 03); required by the dense models.
        The manual labels replace them at ED and ES.
    verify : run nnU-Net's ``verify_dataset_integrity`` before the folder is published.

    Layout: 2D models get one case per frame (``patient0001_2CH_f004``, (H, W) images with spacing (sy, sx)),
    3D models one case per sequence ((T, H, W) volumes with spacing (``nnunet.time_spacing``, sy, sx)). The 3D
    sparse labels are :data:`IGNORE_LABEL` on every frame but ED and ES. ``dataset.json`` holds the channel, the
    labels (plus ``ignore``), ``numTraining`` and ``file_ending``; ``splits_final.json`` (patient-wise folds) goes
    to the preprocessed folder, where nnU-Net reads it.

    The export is written to ``<name>.partial``, verified and then renamed, so a published dataset is always
    complete. It is keyed by a hash of its content: the same content is reused; different content under the same
    id is a :class:`NnUNetError` and the existing dataset is left untouched.
    """
    spec = _spec(model)
    configure_nnunet(cfg, paths)
    dirs = _nnunet_dirs(paths)
    raw, name = dirs["nnUNet_raw"], dataset_name(cfg, model)
    train, val, test = list(train), list(val), list(test)
    if not train:
        raise NnUNetError(f"{model}: no training sequences given")
    for seq in train + val:
        _check_sequence(seq)
    if spec.dense:  # fail early, before anything is written
        missing = [s.key for s in train + val if dense_labels is None or s.key not in dense_labels]
        if missing:
            _dense_for(next(s for s in train + val if s.key in missing), dense_labels)

    patient_splits = make_splits(cfg, train, val)
    digest = hashlib.sha256()
    digest.update(json.dumps([spec.name, cfg.nnunet.time_spacing, patient_splits, sorted(s.key for s in test)]).encode())
    for seq in train + val:
        digest.update(seq.key.encode() + np.asarray(seq.spacing, np.float64).tobytes())
        digest.update(np.ascontiguousarray(seq.images, np.float32).tobytes())
        digest.update(_training_label(spec, seq, dense_labels).tobytes())
    for seq in test:
        digest.update(seq.key.encode() + np.ascontiguousarray(seq.images, np.float32).tobytes())
    content = digest.hexdigest()[:16]

    _check_id_free(raw, dataset_id(cfg, model), name)
    final = raw / name
    marker = final / _EXPORT_MARKER
    if final.exists():
        old = _read_json(marker).get("content") if marker.is_file() else None
        if old == content:
            _write_splits(paths, cfg, model, patient_splits, final)
            return final
        raise NnUNetError(
            f"{final} already holds a different dataset (content {old or 'unknown'}, now {content}). "
            "Finished work is never overwritten: use a new run directory or another nnunet.dataset_id_base, "
            "or remove that folder (and its preprocessed/results folders) yourself."
        )

    partial = raw / (name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)  # an interrupted export: never published, safe to redo
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (partial / sub).mkdir(parents=True)
    case_ids = []
    for seq in train + val:
        sy, sx = (float(v) for v in seq.spacing)
        for case, image, label in _training_cases(spec, seq, dense_labels):
            spacing = (sy, sx) if spec.dim == 2 else (cfg.nnunet.time_spacing, sy, sx)
            _write_nifti(partial / "imagesTr" / f"{case}_0000{FILE_ENDING}", image, spacing)
            _write_nifti(partial / "labelsTr" / f"{case}{FILE_ENDING}", label, spacing)
            case_ids.append(case)
    for seq in test:
        sy, sx = (float(v) for v in seq.spacing)
        _write_nifti(
            partial / "imagesTs" / f"{seq.key}_0000{FILE_ENDING}",
            np.asarray(seq.images, np.float32),
            (cfg.nnunet.time_spacing, sy, sx),
        )

    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    labels = dict(LABELS)
    if not spec.dense and spec.dim == 3:
        labels["ignore"] = IGNORE_LABEL
    generate_dataset_json(
        str(partial),
        channel_names=dict(CHANNELS),
        labels=labels,
        num_training_cases=len(case_ids),
        file_ending=FILE_ENDING,
        dataset_name=name,
        description=f"echo pseudo-labels study, model {model}: "
        + ("one case per frame" if spec.dim == 2 else "one (T, H, W) volume per sequence, time as the third axis")
        + f"; time spacing {cfg.nnunet.time_spacing}",
        license="CC BY-NC-SA 4.0 for CAMUS-derived data; synthetic data: MIT",
        converted_by="echo_utils.nnunet.export_dataset",
    )
    if verify:
        from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

        log = Path(paths.nnunet) / "logs" / f"{name}_verify.log"
        try:
            with _quiet(log), _pools(POOLS):
                verify_dataset_integrity(str(partial), num_processes=cfg.nnunet.n_proc)
        except (AssertionError, RuntimeError) as exc:
            raise NnUNetError(f"nnU-Net's integrity check failed for {partial}: {exc} (details in {log})") from exc
    _write_json(
        partial / _EXPORT_MARKER,
        {"content": content, "model": model, "cases": len(case_ids), "test": len(test), "splits": patient_splits},
    )
    os.replace(partial, final)
    _write_splits(paths, cfg, model, patient_splits, final)
    return final


def datasets_table(cfg: StudyConfig, paths: RunPaths, models: Iterable[str] | None = None) -> "pd.DataFrame":
    """One row per exported dataset: folder name, training cases, labels, and train / val patients per fold."""
    import pandas as pd

    rows = []
    for model in models or cfg.nnunet.models:
        folder = _nnunet_dirs(paths)["nnUNet_raw"] / dataset_name(cfg, model)
        if not (folder / _EXPORT_MARKER).is_file():
            raise NnUNetError(f"dataset {folder} has not been exported yet; call export_dataset first")
        info = _read_json(folder / _EXPORT_MARKER)
        rows.append({
            "model": model,
            "dataset": folder.name,
            "training cases": info["cases"],
            "test sequences": info["test"],
            "labels": ", ".join(_read_json(folder / "dataset.json")["labels"]),
            "train / val patients": "; ".join(f"{len(f['train'])} / {len(f['val'])}" for f in info["splits"]),
        })
    return pd.DataFrame(rows).set_index("model")


def _write_splits(paths: RunPaths, cfg: StudyConfig, model: str, patient_splits: list[dict], raw_folder: Path) -> Path:
    case_ids = sorted(p.name[: -len("_0000" + FILE_ENDING)] for p in (raw_folder / "imagesTr").glob(f"*{FILE_ENDING}"))
    splits = _case_splits(patient_splits, case_ids)
    out = _nnunet_dirs(paths)["nnUNet_preprocessed"] / dataset_name(cfg, model) / "splits_final.json"
    _write_json(out, splits)
    return out


# ----------------------------------------------------------------------------------------------------------------
# planning and preprocessing
# ----------------------------------------------------------------------------------------------------------------


def small_configuration(plans: dict, parent: str, nn: NnUNetConfig) -> dict:
    """A narrow CPU-friendly configuration that ``inherits_from`` ``parent`` in nnU-Net's plans.

    It keeps the parent's spacing, normalisation and preprocessed data (same ``data_identifier``), and sets:
    the patch (``patch_2d`` / ``patch_3d``, given in (T,) H, W order and transposed like the data), the batch size,
    and a U-Net topology recomputed for that patch by nnU-Net's own ``get_pool_and_conv_props`` with every stage's
    feature count divided by ``features_divisor``.
    """
    from copy import deepcopy

    from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props

    conf = plans["configurations"][parent]
    is_2d = parent == "2d"
    spacing = list(conf["spacing"])
    patch = nn.patch_2d if is_2d else nn.patch_3d
    if patch is None:
        patch = conf["patch_size"]
    elif not is_2d:
        patch = [patch[i] for i in plans["transpose_forward"]]
    batch = (nn.batch_2d if is_2d else nn.batch_3d) or conf["batch_size"]
    _, pool, kernels, patch, _ = get_pool_and_conv_props(spacing, list(patch), 4, 999999)
    n = len(pool)
    if n < 3:
        raise NnUNetError(
            f"a {parent} patch of {list(patch)} at spacing {spacing} gives a U-Net with only {n} stage(s): nnU-Net "
            "pools an axis only while it is within 2x of the finest spacing and at least 8 voxels long. Enlarge the "
            "patch (nnunet.patch_2d / patch_3d) or bring nnunet.time_spacing closer to the in-plane spacing."
        )
    max_features = 512 if is_2d else 320
    features = [max(2, min(max_features, 32 * 2**i) // nn.features_divisor) for i in range(n)]
    arch = deepcopy(conf["architecture"])
    enc = list(arch["arch_kwargs"]["n_conv_per_stage"])
    dec = list(arch["arch_kwargs"]["n_conv_per_stage_decoder"])
    arch["arch_kwargs"].update(
        {
            "n_stages": n,
            "features_per_stage": features,
            "kernel_sizes": [list(map(int, k)) for k in kernels],
            "strides": [list(map(int, s)) for s in pool],
            "n_conv_per_stage": (enc + [enc[-1]] * n)[:n],
            "n_conv_per_stage_decoder": (dec + [dec[-1]] * n)[: n - 1],
        }
    )
    return {
        "inherits_from": parent,
        "patch_size": [int(p) for p in patch],
        "batch_size": int(batch),
        "architecture": arch,
    }


def _plans_file(paths: RunPaths, cfg: StudyConfig, model: str) -> Path:
    return _nnunet_dirs(paths)["nnUNet_preprocessed"] / dataset_name(cfg, model) / f"{PLANS}.json"


def plan_and_preprocess(cfg: StudyConfig, paths: RunPaths, model: str) -> dict:
    """Fingerprint, plan and preprocess the exported dataset of ``model`` (cached); returns the plans dict.

    Equivalent to ``nnUNetv2_plan_and_preprocess -d ID -c 2d|3d_fullres -np n_proc``, plus, for small profiles,
    the narrow ``*_small`` configuration (:func:`small_configuration`). nnU-Net's verbose output goes to
    ``<run>/nnunet/logs/``; its tqdm bars stay visible.
    """
    spec = _spec(model)
    configure_nnunet(cfg, paths)
    name, ds_id = dataset_name(cfg, model), dataset_id(cfg, model)
    raw_marker = _nnunet_dirs(paths)["nnUNet_raw"] / name / _EXPORT_MARKER
    if not raw_marker.is_file():
        raise NnUNetError(f"dataset {name} has not been exported yet ({raw_marker} missing); call export_dataset first")
    content = _read_json(raw_marker)["content"]
    plans_file = _plans_file(paths, cfg, model)
    marker = plans_file.parent / _PREPROCESS_MARKER
    key = config_hash(content, cfg.nnunet.configuration, cfg.nnunet.features_divisor, cfg.nnunet.patch_2d,
                      cfg.nnunet.patch_3d, cfg.nnunet.batch_2d, cfg.nnunet.batch_3d)
    if marker.is_file() and _read_json(marker).get("key") == key and plans_file.is_file():
        return _read_json(plans_file)

    from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprint_dataset, preprocess_dataset

    class SmallFingerprintExtractor(DatasetFingerprintExtractor):
        """nnU-Net's fingerprint with 1e6 instead of 1e8 foreground intensity samples (seconds saved per dataset).

        The samples feed only the intensity statistics, which only CT normalisation uses; echo is z-scored.
        """

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.num_foreground_voxels_for_intensitystats = 1e6

    extractor = DatasetFingerprintExtractor if cfg.nnunet.configuration == "default" else SmallFingerprintExtractor

    log = Path(paths.nnunet) / "logs" / f"{name}_plan_and_preprocess.log"
    # nnU-Net's planner calls torch.set_num_threads(nnUNet_n_proc_DA), which fails for 0: plan with >= 1
    with _quiet(log), _pools(POOLS), _environ(nnUNet_n_proc_DA=str(max(1, cfg.nnunet.n_proc_da))):
        extract_fingerprint_dataset(ds_id, extractor, num_processes=cfg.nnunet.n_proc, check_dataset_integrity=False,
                                    clean=True, verbose=False)
        # suppress_transpose keeps time as the first axis of the 3D volumes: nnU-Net would otherwise move the
        # coarsest axis first, and with an in-plane spacing above nnunet.time_spacing rotate time into space.
        planner = ExperimentPlanner(ds_id, preprocessor_name="DefaultPreprocessor", plans_name=PLANS,
                                    suppress_transpose=True)
        plans = planner.plan_experiment()
        if spec.parent_configuration not in plans["configurations"]:
            raise NnUNetError(f"nnU-Net planned no {spec.parent_configuration!r} configuration for {name}")
        if cfg.nnunet.configuration == "small":
            plans["configurations"][configuration_name(cfg, model)] = small_configuration(
                plans, spec.parent_configuration, cfg.nnunet
            )
            _write_json(plans_file, plans)
        preprocess_dataset(ds_id, PLANS, configurations=[spec.parent_configuration],
                           num_processes=[cfg.nnunet.n_proc], verbose=False)
    _write_json(marker, {"key": key, "content": content})
    return _read_json(plans_file)


def plans_table(cfg: StudyConfig, paths: RunPaths, models: Iterable[str] | None = None) -> "pd.DataFrame":
    """One row per model: dataset, configuration, spacing, patch, batch, stages, features, kernels, strides, params."""
    import pandas as pd
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    rows = []
    for model in models or cfg.nnunet.models:
        plans_file = _plans_file(paths, cfg, model)
        if not plans_file.is_file():
            raise NnUNetError(f"no plans for {model} ({plans_file}); run plan_and_preprocess first")
        conf = PlansManager(str(plans_file)).get_configuration(configuration_name(cfg, model))
        arch = conf.network_arch_init_kwargs
        rows.append(
            {
                "model": model,
                "dataset": dataset_name(cfg, model),
                "configuration": configuration_name(cfg, model),
                "spacing": tuple(round(float(s), 3) for s in conf.spacing),
                "patch": tuple(int(p) for p in conf.patch_size),
                "batch": conf.batch_size,
                "stages": arch["n_stages"],
                "features": tuple(arch["features_per_stage"]),
                "kernels": " ".join("x".join(map(str, k)) for k in arch["kernel_sizes"]),
                "strides": " ".join("x".join(map(str, s)) for s in arch["strides"]),
                "parameters (M)": round(_count_parameters(conf) / 1e6, 3),
            }
        )
    return pd.DataFrame(rows).set_index("model")


def _count_parameters(conf) -> int:
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    net = get_network_from_plans(conf.network_arch_class_name, conf.network_arch_init_kwargs,
                                 conf.network_arch_init_kwargs_req_import, 1, len(LABELS), allow_init=False,
                                 deep_supervision=False)
    return sum(p.numel() for p in net.parameters())


# ----------------------------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------------------------


def _define_trainer():
    """Define :class:`EchoTrainer` on first use (importing the nnU-Net trainer costs a few seconds)."""
    import numpy as np
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from tqdm import tqdm

    class EchoTrainer(nnUNetTrainer):
        """``nnUNetTrainer`` with the profile's budget, quiet console output and a tqdm bar over epochs.

        The budget lives in class attributes (``echo_epochs``, ``echo_iterations``, ``echo_val_iterations``,
        ``echo_save_every``); :func:`trainer_class` makes a subclass, still named ``EchoTrainer`` so that its
        results folder is ``EchoTrainer__nnUNetPlans__<configuration>``, with the values of a profile. The base
        values are nnU-Net's defaults (1000 epochs of 250 iterations, 50 validation iterations).

        Everything nnU-Net logs still goes to its ``training_log_*.txt``; the console shows one progress bar. The
        per-epoch curves are also written to ``echo_training_log.json`` after every epoch.
        """

        echo_epochs = 1000
        echo_iterations = 250
        echo_val_iterations = 50
        echo_save_every = 50
        echo_verbose = False

        def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                     device: torch.device = torch.device("cuda")):
            super().__init__(plans, configuration, fold, dataset_json, device)
            self.num_epochs = self.echo_epochs
            self.num_iterations_per_epoch = self.echo_iterations
            self.num_val_iterations_per_epoch = self.echo_val_iterations
            self.save_every = self.echo_save_every

        def print_to_log_file(self, *args, also_print_to_console=True, add_timestamp=True):
            super().print_to_log_file(*args, also_print_to_console=also_print_to_console and self.echo_verbose,
                                      add_timestamp=add_timestamp)

        def on_epoch_end(self):
            super().on_epoch_end()
            log = _jsonable(self.logger.get_checkpoint())
            _write_json(Path(self.output_folder) / "echo_training_log.json", log)

        def run_training(self):
            """nnU-Net's loop (``nnUNetTrainer.run_training``) with a progress bar."""
            self.on_train_start()
            desc = f"{self.plans_manager.dataset_name} {self.configuration_name} fold {self.fold}"
            with tqdm(total=self.num_epochs, initial=self.current_epoch, desc=desc, unit="epoch",
                      mininterval=2.0, file=sys.stderr) as bar:
                for _ in range(self.current_epoch, self.num_epochs):
                    self.on_epoch_start()
                    self.on_train_epoch_start()
                    train_outputs = [self.train_step(next(self.dataloader_train))
                                     for _ in range(self.num_iterations_per_epoch)]
                    self.on_train_epoch_end(train_outputs)
                    with torch.no_grad():
                        self.on_validation_epoch_start()
                        val_outputs = [self.validation_step(next(self.dataloader_val))
                                       for _ in range(self.num_val_iterations_per_epoch)]
                        self.on_validation_epoch_end(val_outputs)
                    self.on_epoch_end()
                    bar.set_postfix(loss=f"{self.logger.get_value('train_losses', -1):.3f}",
                                    pseudo_dice=f"{np.mean(self.logger.get_value('mean_fg_dice', -1)):.3f}")
                    bar.update()
            self.on_train_end()

    return EchoTrainer


_TRAINER_CLASS = None


def __getattr__(name: str):  # PEP 562: ``from echo_utils.nnunet import EchoTrainer`` defines it on first use
    global _TRAINER_CLASS
    if name == "EchoTrainer":
        if _TRAINER_CLASS is None:
            _TRAINER_CLASS = _define_trainer()
            _TRAINER_CLASS.__module__ = __name__
        return _TRAINER_CLASS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _budget(cfg: StudyConfig) -> dict:
    nn = cfg.nnunet
    return {
        "echo_epochs": nn.epochs,
        "echo_iterations": nn.iterations_per_epoch,
        "echo_val_iterations": nn.val_iterations,
        "echo_save_every": max(1, min(50, nn.epochs // 20)),
    }


def trainer_class(cfg: StudyConfig, verbose: bool = False):
    """An :class:`EchoTrainer` subclass, named ``EchoTrainer``, with the budget of ``cfg.nnunet``."""
    base = __getattr__("EchoTrainer")
    attrs = dict(_budget(cfg), echo_verbose=verbose, __module__=__name__)
    return type(TRAINER, (base,), attrs)


def _write_trainer_module(cfg: StudyConfig, folder: Path) -> Path:
    """The module ``nnUNet_extTrainer`` points at, so ``nnUNetv2_train ... -tr EchoTrainer`` uses this budget."""
    lines = [
        f'"""Generated by echo_utils.nnunet.configure_nnunet (profile {cfg.name}): this run\'s training budget.',
        "",
        "Used by the nnU-Net CLI through nnUNet_extTrainer, e.g. nnUNetv2_train 802 3d_fullres_small 0 -tr EchoTrainer",
        '"""',
        "from echo_utils.nnunet import EchoTrainer as _EchoTrainer",
        "",
        "",
        "class EchoTrainer(_EchoTrainer):",
    ]
    lines += [f"    {k} = {v!r}" for k, v in _budget(cfg).items()]
    text = "\n".join(lines) + "\n"
    path = folder / "echo_trainers.py"
    if not path.is_file() or path.read_text() != text:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def _results_folder(cfg: StudyConfig, paths: RunPaths, model: str) -> Path:
    return (
        _nnunet_dirs(paths)["nnUNet_results"]
        / dataset_name(cfg, model)
        / f"{TRAINER}__{PLANS}__{configuration_name(cfg, model)}"
    )


def _fold_folder(cfg: StudyConfig, paths: RunPaths, model: str, fold: int) -> Path:
    return _results_folder(cfg, paths, model) / f"fold_{fold}"


def train_model(
    cfg: StudyConfig,
    paths: RunPaths,
    model: str,
    fold: int = 0,
    device: str = "cpu",
    *,
    verbose: bool = False,
) -> Path:
    """Train fold ``fold`` of ``model`` (after :func:`plan_and_preprocess`); returns the fold folder.

    A fold with ``checkpoint_final.pth`` is reused as it is. A fold with ``checkpoint_latest.pth`` (an interrupted
    run) continues from it, like ``nnUNetv2_train ... --c``. The results folder records the plans and budget it
    was trained with; training it again with different ones is a :class:`NnUNetError` (the model is kept).
    On CPU the data augmentation runs in ``nnunet.n_proc_da`` workers (0: in this process, as fast on 2 cores and
    half the memory), ``pin_memory`` is off (nnU-Net pins only on CUDA) and nothing is compiled.
    """
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json

    configure_nnunet(cfg, paths, device)
    plans_file = _plans_file(paths, cfg, model)
    if not plans_file.is_file():
        raise NnUNetError(f"no plans for {model} ({plans_file}); run plan_and_preprocess first")
    out = _fold_folder(cfg, paths, model, fold)
    marker = out.parent / _TRAINING_MARKER
    plans = load_json(str(plans_file))
    key = {
        "plans": config_hash(plans["configurations"][configuration_name(cfg, model)], plans["configurations"].get(
            _spec(model).parent_configuration)),
        "budget": _budget(cfg),
    }
    if marker.is_file():
        old = _read_json(marker)
        if old != key:
            raise NnUNetError(
                f"{out.parent} was trained with other plans or budget ({old}) than now ({key}). "
                "Finished work is never overwritten: use a new run directory or another nnunet.dataset_id_base."
            )
    else:
        _write_json(marker, key)
    if (out / "checkpoint_final.pth").is_file():
        return out
    latest = out / "checkpoint_latest.pth"
    resume = latest.is_file()
    plans["continue_training"] = resume
    dataset_json = load_json(str(plans_file.parent / "dataset.json"))
    torch_device = torch.device(device)
    log = Path(paths.nnunet) / "logs" / f"{dataset_name(cfg, model)}_train_fold{fold}.log"
    with _quiet(None if verbose else log), _cpu_threads(device):
        trainer = trainer_class(cfg, verbose)(plans, configuration_name(cfg, model), fold, dataset_json, torch_device)
        if resume:
            trainer.load_checkpoint(str(latest))
        trainer.run_training()
        if cfg.nnunet.configuration == "default":  # nnU-Net's own final validation, as nnUNetv2_train runs it
            trainer.perform_actual_validation(False)
    return out


def training_log(cfg: StudyConfig, paths: RunPaths, model: str, fold: int = 0) -> "pd.DataFrame":
    """nnU-Net's per-epoch log: train/val loss, pseudo Dice (per class and mean, with its EMA), lr, seconds."""
    import pandas as pd

    path = _fold_folder(cfg, paths, model, fold) / "echo_training_log.json"
    if not path.is_file():
        raise NnUNetError(f"no training log for {model} fold {fold} ({path}); train the model first")
    log = _read_json(path)
    n = len(log["train_losses"])
    df = pd.DataFrame(
        {
            "epoch": np.arange(n),
            "train_loss": log["train_losses"][:n],
            "val_loss": log["val_losses"][:n],
            "pseudo_dice": log["mean_fg_dice"][:n],
            "ema_pseudo_dice": log["ema_fg_dice"][:n],
            "lr": log["lrs"][:n],
            "seconds": np.subtract(log["epoch_end_timestamps"][:n], log["epoch_start_timestamps"][:n]),
        }
    )
    per_class = np.asarray(log["dice_per_class_or_region"][:n], dtype=float)
    for i, label in enumerate(list(LABELS)[1:]):
        if per_class.ndim == 2 and per_class.shape[1] > i:
            df[f"dice {label}"] = per_class[:, i]
    df.insert(0, "model", model)
    return df


# ----------------------------------------------------------------------------------------------------------------
# prediction
# ----------------------------------------------------------------------------------------------------------------


def load_predictor(cfg: StudyConfig, paths: RunPaths, model: str, device: str = "cpu", *,
                   checkpoint: str = "checkpoint_final.pth", mirroring: bool | None = None):
    """An in-process ``nnUNetPredictor`` for ``model``, averaging the folds in ``nnunet.folds``.

    The network is built with :class:`EchoTrainer`'s ``build_network_architecture`` and handed over with
    ``manual_initialization``: about 2 s per sequence on CPU, against 12-16 s for ``nnUNetv2_predict``, which
    starts worker processes for every call. Test-time mirroring follows ``nnunet.mirroring`` (off on CPU: it
    doubles the time per mirrored axis).
    """
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    configure_nnunet(cfg, paths, device)
    folder = _results_folder(cfg, paths, model)
    params, axes = [], None
    for fold in cfg.nnunet.folds:
        ckpt = folder / f"fold_{fold}" / checkpoint
        if not ckpt.is_file():
            raise NnUNetError(f"{model}: no trained model at {ckpt}; run train_model first")
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        params.append(state["network_weights"])
        axes = state.get("inference_allowed_mirroring_axes", axes)
    plans_manager = PlansManager(load_json(str(folder / "plans.json")))
    dataset_json = load_json(str(folder / "dataset.json"))
    conf = plans_manager.get_configuration(configuration_name(cfg, model))
    network = __getattr__("EchoTrainer").build_network_architecture(
        plans_manager, conf, determine_num_input_channels(plans_manager, conf, dataset_json),
        plans_manager.get_label_manager(dataset_json).num_segmentation_heads, enable_deep_supervision=False,
    )
    network.load_state_dict(params[0])
    use_mirroring = cfg.nnunet.mirroring if mirroring is None else mirroring
    with _quiet(Path(os.devnull)):  # the predictor prints a note about perform_everything_on_device on CPU
        predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=use_mirroring,
                                    perform_everything_on_device=str(device).startswith("cuda"),
                                    device=torch.device(device), verbose=False, verbose_preprocessing=False,
                                    allow_tqdm=False)
    predictor.manual_initialization(network, plans_manager, conf, params, dataset_json, TRAINER, axes)
    return predictor


def predict_sequence(predictor, seq: "EchoSequence", time_spacing: float = 1.0) -> np.ndarray:
    """Segment every frame of ``seq``: (T, H, W) uint8 label map aligned with ``seq.images``.

    The sequence goes in as one (1, T, H, W) volume with spacing (time_spacing, sy, sx): a 3D model slides its
    patch over the volume; a 2D model predicts it frame by frame (nnU-Net's 2D inference is slice-wise).
    """
    image = np.asarray(seq.images, np.float32)[None]
    props = {"spacing": [float(time_spacing), *(float(s) for s in seq.spacing)]}
    with _quiet(Path(os.devnull)):
        seg = predictor.predict_single_npy_array(image, props, None, None, False)
    seg = np.asarray(seg).astype(np.uint8)
    if seg.shape != seq.images.shape:
        raise NnUNetError(f"{seq.key}: prediction has shape {seg.shape}, images {seq.images.shape}")
    return seg


def prediction_path(paths: RunPaths, model: str, seq: "EchoSequence") -> Path:
    """``<run>/predictions/<model>/<patient>_<view>.nii.gz``."""
    return Path(paths.predictions) / model / f"{seq.key}{FILE_ENDING}"


def predict_all(
    cfg: StudyConfig,
    paths: RunPaths,
    model: str,
    sequences: list["EchoSequence"],
    device: str = "cpu",
    *,
    out_name: str | None = None,
    progress: bool = True,
) -> Path:
    """Predict every frame of every sequence with ``model``; returns ``<run>/predictions/<out_name or model>``.

    Predictions that exist are reused. The folder records the checkpoint it was made with; predicting into it
    with a different model is a :class:`NnUNetError` (nothing is overwritten).
    """
    out = Path(paths.predictions) / (out_name or model)
    out.mkdir(parents=True, exist_ok=True)
    ckpts = [_fold_folder(cfg, paths, model, f) / "checkpoint_final.pth" for f in cfg.nnunet.folds]
    missing = [str(c) for c in ckpts if not c.is_file()]
    if missing:
        raise NnUNetError(f"{model}: no trained model at {missing}; run train_model first")
    key = {"model": model, "dataset": dataset_name(cfg, model), "configuration": configuration_name(cfg, model),
           "checkpoints": [_file_digest(c) for c in ckpts], "mirroring": cfg.nnunet.mirroring,
           "time_spacing": cfg.nnunet.time_spacing}
    marker = out / _PREDICTION_MARKER
    if marker.is_file() and _read_json(marker) != key:
        raise NnUNetError(f"{out} holds predictions of another model ({_read_json(marker)}); "
                          "finished work is never overwritten: remove the folder yourself or use a new run directory")
    _write_json(marker, key)
    todo = [s for s in sequences if not (out / f"{s.key}{FILE_ENDING}").is_file()]
    if not todo:
        return out
    predictor = load_predictor(cfg, paths, model, device)
    with _cpu_threads(device):
        _predict_into(out, predictor, todo, cfg, progress)
    return out


def _predict_into(out: Path, predictor, todo: list, cfg: StudyConfig, progress: bool) -> None:
    from tqdm import tqdm

    for seq in tqdm(todo, desc=f"predict {out.name}", unit="seq", disable=not progress, mininterval=2.0,
                    file=sys.stderr):
        seg = predict_sequence(predictor, seq, cfg.nnunet.time_spacing)
        _write_nifti(out / f"{seq.key}{FILE_ENDING}", seg, (cfg.nnunet.time_spacing, *map(float, seq.spacing)))


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def load_prediction(paths: RunPaths, model: str, seq: "EchoSequence") -> np.ndarray:
    """The (T, H, W) uint8 prediction of ``model`` for ``seq`` (see :func:`predict_all`)."""
    import SimpleITK as sitk

    path = prediction_path(paths, model, seq)
    if not path.is_file():
        raise NnUNetError(f"no {model} prediction for {seq.key}: {path} is missing; run notebook 04 first")
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(path))).astype(np.uint8)
    if seg.shape != tuple(seq.images.shape):
        raise NnUNetError(f"{path}: shape {seg.shape} does not match the sequence {tuple(seq.images.shape)}")
    return seg


def prediction_slider(seq: "EchoSequence", predictions: dict[str, np.ndarray], *, title: str,
                      alpha: float = 0.35, height: int = 420):
    """One test sequence with the predictions of several models side by side, as a slider over frames.

    ``predictions``: ``{panel title: (T, H, W) uint8}``. Axes in mm (``seq.spacing``); label colours as in
    :data:`echo_utils.plots.LABEL_COLORS`.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from .plots import animation_controls, overlay_rgb

    names = list(predictions)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.02)
    sy, sx = (float(v) for v in seq.spacing)

    def jpeg(rgb) -> str:  # JPEG: ~5x smaller than PNG for speckled echo frames; the slider holds T x panels
        import base64
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="JPEG", quality=88)
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")

    def traces(t):
        return [go.Image(source=jpeg(overlay_rgb(seq.images[t], predictions[n][t], alpha=alpha)), x0=sx / 2, dx=sx,
                         y0=sy / 2, dy=sy, name=n, hoverinfo="skip") for n in names]

    for j, tr in enumerate(traces(0), 1):
        fig.add_trace(tr, row=1, col=j)
    labels = [f"frame {t}" + (" (ED)" if t == seq.ed else " (ES)" if t == seq.es else "") for t in range(seq.n_frames)]
    fig.frames = [go.Frame(data=traces(t), name=lab, traces=list(range(len(names)))) for t, lab in enumerate(labels)]
    fig.update_layout(title=title, height=height,
                      **animation_controls(labels, frame_ms=150, buttons_y=-0.12, slider_pad=30))
    for j in range(1, len(names) + 1):
        fig.update_xaxes(title_text="x (mm)", constrain="domain", row=1, col=j)
        fig.update_yaxes(title_text="depth (mm)" if j == 1 else None, scaleanchor=f"x{'' if j == 1 else j}",
                         autorange="reversed", row=1, col=j)
    return fig
