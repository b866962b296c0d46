"""nnU-Net's environment for one run: the four models, their dataset names, folders, process and thread counts.

Environment variables. ``nnunetv2.paths`` (2.8.1) reads ``nnUNet_raw``/``nnUNet_preprocessed``/``nnUNet_results``
and ``nnUNet_extTrainer`` lazily from ``os.environ`` at every use, so :func:`configure_nnunet` simply sets them for
the current run. ``nnUNet_def_n_proc`` is read by nnU-Net once, at import; this package never relies on it (every
nnU-Net call here gets its process count explicitly), it is set for users of the command line.

Process pools and threads (profile keys ``nnunet.pools`` and ``nnunet.threads``; the environment variables
``ECHO_NNUNET_POOLS`` and ``ECHO_NNUNET_THREADS`` override them when the profile is loaded):

- ``pools: thread`` (default): the integrity check, fingerprint and preprocessing run nnU-Net's per-case functions
  in ``nnunet.n_proc`` threads of this process (:mod:`echo_utils.segmentation.plans`). nnU-Net itself starts
  ``spawn`` process pools for these steps; every spawned worker imports torch and nnU-Net again (seconds each on a
  busy 2-core machine) and re-executes a calling script that has no ``if __name__ == "__main__":`` guard.
- ``pools: process``: nnU-Net's own functions and their spawn pools (large datasets, many cores). Where the caller
  is a script file (spawn would re-import it), :func:`pools` falls back to threads with a warning.
- ``threads``: torch threads for training and prediction on CPU. Measured on the 2-core machine while other
  processes ran, 2 threads were 3-19x *slower* than 1 (the OpenMP threads wait for each other whenever one is
  descheduled); 2 pay off only on an otherwise idle machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..artifacts.atomic import atomic_path
from ..artifacts.atomic import write_json as _write_json
from ..artifacts.record import KeyedRecord
from ..config import NnUNetConfig
from ..labels import LABEL_VALUES  # name -> label value, as nnU-Net's dataset.json wants
from ..labels import ALL_MODELS, MODELS

__all__ = [
    "MODELS",
    "ALL_MODELS",
    "LABEL_VALUES",
    "IGNORE_LABEL",
    "PLANS",
    "TRAINER",
    "FILE_ENDING",
    "NnUNetError",
    "NnUNetRun",
    "ModelSpec",
    "SPECS",
    "spec",
    "dataset_id",
    "dataset_name",
    "configuration_name",
    "nnunet_dirs",
    "configure_nnunet",
    "pools",
    "threads",
    "cpu_threads",
    "model_seed",
]

IGNORE_LABEL = 4  # nnU-Net's ignore label must be the highest label value
PLANS = "nnUNetPlans"
TRAINER = "EchoTrainer"
FILE_ENDING = ".nii.gz"
EXT_TRAINERS = Path(__file__).resolve().parent / "ext_trainers"  # what nnUNet_extTrainer points at (for the CLI)


class NnUNetError(RuntimeError):
    """Bad input or a clash with existing work; the message names the file or value and what to do."""


@dataclass(frozen=True)
class ModelSpec:
    """One of the models: which frames it is trained on, and whether as 2D images or 3D volumes."""

    name: str
    offset: int  # dataset id = nnunet.dataset_id_base + offset
    dim: int  # 2: one training case per frame; 3: one (T, H, W) volume per sequence
    dense: bool  # labels on every frame (pseudo-labels) or only at ED/ES
    masked: bool = False  # dense, with the pseudo-labelled pixels of low confidence as the ignore label

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
    # optional (labels.OPTIONAL_MODELS): 3D dense whose doubtful pseudo-labelled pixels are ignored (export.py)
    "3d_dense_masked": ModelSpec("3d_dense_masked", 4, 3, True, masked=True),
}
assert tuple(SPECS) == tuple(ALL_MODELS) and set(MODELS) <= set(SPECS)


def spec(model: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``model``; an unknown name is a :class:`NnUNetError` listing the known ones."""
    if model not in SPECS:
        raise NnUNetError(f"unknown nnU-Net model {model!r}; expected one of {list(SPECS)}")
    return SPECS[model]


def _section(nn) -> NnUNetConfig:
    """``nn`` itself when it is the profile's ``nnunet`` section; the whole profile is a TypeError that says so."""
    if not isinstance(nn, NnUNetConfig):
        raise TypeError(f"echo_utils.segmentation takes the profile's nnunet section (cfg.nnunet), "
                        f"not {type(nn).__name__}: translate the profile at the edge "
                        "(echo_utils.study.stages.nnunet_run)")
    return nn


@dataclass(frozen=True)
class NnUNetRun:
    """What every nnU-Net step of one run needs, built once at the edge (:func:`echo_utils.study.stages.nnunet_run`):

    ``nn``: the profile's ``nnunet`` section (:class:`~echo_utils.config.NnUNetConfig`, its seed already derived
    from the profile's); ``root``: the run's nnU-Net folder (``<run>/nnunet``: ``raw``, ``preprocessed``,
    ``results``, ``logs``); ``predictions``: the folder of the prediction sets (``<run>/predictions``).
    The pseudo-labels, confidence maps and sequences are plain arguments of the steps that read them.
    """

    nn: NnUNetConfig
    root: Path
    predictions: Path

    def __post_init__(self):
        _section(self.nn)
        object.__setattr__(self, "root", Path(self.root))
        object.__setattr__(self, "predictions", Path(self.predictions))

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def preprocessed(self) -> Path:
        return self.root / "preprocessed"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def logs(self) -> Path:
        """nnU-Net's verbose output of each step (``<name>_verify.log``, ``_plan_and_preprocess.log``, ...)."""
        return self.root / "logs"


def dataset_id(nn: NnUNetConfig, model: str) -> int:
    """nnU-Net dataset id of ``model``: ``nnunet.dataset_id_base`` + 0..3 (+ 4: ``3d_dense_masked``)."""
    return _section(nn).dataset_id_base + spec(model).offset


def dataset_name(nn: NnUNetConfig, model: str) -> str:
    """``DatasetXXX_<prefix><Model>``, e.g. ``Dataset802_Echo3DDense``."""
    return f"Dataset{dataset_id(nn, model):03d}_{nn.dataset_prefix}{spec(model).camel}"


def configuration_name(nn: NnUNetConfig, model: str) -> str:
    """The configuration trained: nnU-Net's own (``2d``/``3d_fullres``) or its narrow ``*_small`` child."""
    parent = spec(model).parent_configuration
    return parent if _section(nn).configuration == "default" else f"{parent}_small"


def model_seed(nn: NnUNetConfig, model: str) -> int:
    """The seed of one model's training: a hash of ``nnunet.seed`` (derived from the profile's seed) and the name.

    Derived per model, so that a model trained alone (a resumed, partial or reordered notebook 04) gets the same
    random numbers as in a full run, whatever was trained before it in the same process.
    """
    seed = _section(nn).seed
    return int.from_bytes(hashlib.sha256(f"{seed}/{model}".encode()).digest()[:4], "little") % (2**31 - 1)


def nnunet_dirs(root: Path | NnUNetRun) -> dict[str, Path]:
    """The ``raw``, ``preprocessed`` and ``results`` folders of an nnU-Net folder (``<run>/nnunet``, or an
    :class:`NnUNetRun`'s), keyed by nnU-Net's variable names."""
    root = root.root if isinstance(root, NnUNetRun) else Path(root)
    return {"nnUNet_raw": root / "raw", "nnUNet_preprocessed": root / "preprocessed",
            "nnUNet_results": root / "results"}


def configure_nnunet(run: NnUNetRun, device: str = "cpu") -> dict[str, str]:
    """Point nnU-Net at this run's folders and set its process counts; returns the variables set.

    Sets ``nnUNet_raw``, ``nnUNet_preprocessed``, ``nnUNet_results`` (under ``run.root``), ``nnUNet_extTrainer``
    (the folder holding :class:`~echo_utils.segmentation.trainer.EchoTrainer` for ``nnUNetv2_train -tr``),
    ``nnUNet_def_n_proc`` = ``nnunet.n_proc``, ``nnUNet_n_proc_DA`` = ``nnunet.n_proc_da`` and ``nnUNet_compile``
    (``0`` on CPU, where compilation costs more than it saves; ``1`` on CUDA).
    """
    dirs = nnunet_dirs(run)
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    env = {k: str(v) for k, v in dirs.items()}
    env["nnUNet_extTrainer"] = str(EXT_TRAINERS)
    env["nnUNet_def_n_proc"] = str(run.nn.n_proc)
    env["nnUNet_n_proc_DA"] = str(run.nn.n_proc_da)
    env["nnUNet_compile"] = "1" if str(device).startswith("cuda") else "0"
    os.environ.update(env)
    return env


def pools(nn: NnUNetConfig) -> str:
    """``nnunet.pools`` ('thread' or 'process'); 'process' falls back to 'thread' (with a warning) when the caller is
    a script file, which nnU-Net's spawn workers would import and run again."""
    kind = _section(nn).pools
    main = sys.modules.get("__main__")
    if kind == "process" and getattr(main, "__file__", None) and getattr(main, "__spec__", None) is None:
        warnings.warn(f"nnunet.pools 'process' from the script {main.__file__}: nnU-Net's spawn workers would run "
                      "it again; using threads instead", RuntimeWarning, stacklevel=2)
        return "thread"
    return kind


def threads(nn: NnUNetConfig) -> int:
    """torch threads for training and prediction on CPU: ``nnunet.threads``."""
    return _section(nn).threads


@contextlib.contextmanager
def cpu_threads(nn: NnUNetConfig, device: str):
    """Run torch with :func:`threads` threads on CPU (restored afterwards); CUDA is left alone."""
    import torch

    if str(device).startswith("cuda"):
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(threads(nn))
    try:
        yield
    finally:
        torch.set_num_threads(old)


# small helpers shared by the modules of this package ------------------------------------------------------------


def write_json(path: Path, obj) -> None:
    """Atomic JSON write (the run directory's one writer, :func:`echo_utils.artifacts.write_json`)."""
    _write_json(path, jsonable(obj), indent=2, sort_keys=True, default=str)


def marker_record(path: Path, what: str, field: str) -> KeyedRecord:
    """One of our done markers beside nnU-Net's files (``echo_export.json``, ``echo_preprocess.json``) as the
    artifact store's keyed record: the key under ``field``, written last, as :func:`write_json` writes (indent 2,
    sorted keys: the layout of every earlier marker, which reads back unchanged)."""
    return KeyedRecord(path, what=what, field=field, indent=2, sort_keys=True)


def read_json(path: Path):
    """A JSON file; a truncated or corrupt one is a :class:`~echo_utils.safe_load.DamagedFile` naming it."""
    from ..safe_load import read_json as _read_json

    return _read_json(path)


def jsonable(obj):
    """numpy scalars and arrays (nnU-Net logs np.float32) as plain Python numbers, recursively."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


@contextlib.contextmanager
def quiet(log_file: Path | None):
    """Send nnU-Net's prints (stdout) to ``log_file``; tqdm bars (stderr) stay visible."""
    if log_file is None:
        yield
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a") as fh, contextlib.redirect_stdout(fh):
        yield


def write_nifti(path: Path, array: np.ndarray, spacing: tuple[float, ...]) -> None:
    """Write ``array`` ((H, W) or (T, H, W), numpy order) with ``spacing`` in the same order, via SimpleITK."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(array)
    img.SetSpacing([float(s) for s in spacing[::-1]])  # SimpleITK wants (x, y[, z])
    with atomic_path(path) as tmp:  # the temporary name keeps the .nii.gz suffix SimpleITK reads the format from
        sitk.WriteImage(img, str(tmp), useCompression=True)


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]
