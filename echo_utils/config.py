"""Typed, validated study profiles (``notebooks/params/*.yaml``).

A profile is one YAML file with one section per pipeline stage.  Every key is declared here with its type and
default; an unknown key, a wrong type or an impossible value is a :class:`ConfigError` that names the file and
the offending key, never a silent default.

>>> cfg = load_config("notebooks/params/ci.yaml")          # doctest: +SKIP
>>> cfg.registration.grid_spacing                          # doctest: +SKIP
8

The run directory (``runs/<profile>/`` by default) holds everything a run writes; :func:`resolve_run_dir`
decides it, and :class:`RunPaths` names the sub-folders that the notebooks exchange.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "ConfigError",
    "DataConfig",
    "RegistrationConfig",
    "PseudoLabelConfig",
    "NnUNetConfig",
    "EvaluationConfig",
    "StudyConfig",
    "load_config",
    "resolve_run_dir",
    "RunPaths",
    "config_hash",
    "PROJECT_ROOT",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A profile that cannot be used: the message names the file and the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class DataConfig(_Section):
    """Where the echocardiograms come from and how they are prepared."""

    source: Literal["synthetic", "camus", "ted"] = "synthetic"
    root: str | None = Field(
        None,
        description="dataset root; for 'synthetic' the cohort is generated here (default: <run_dir>/data). "
        "For 'camus' the folder that holds database_nifti/ (2023) or training/ and testing/ (legacy). "
        "May be given as an environment variable reference such as '${CAMUS_ROOT}'.",
    )
    ted_root: str | None = Field(None, description="TED root (folder holding database/), for dense evaluation")
    ted_map: str | None = Field(
        None, description="TED -> CAMUS id mapping CSV (ted_id,camus_id); default: the authors' data/ted2camus.csv "
        "shipped in echo_utils/data. The mapped CAMUS patients are left out of registration training."
    )
    n_patients: int = Field(20, ge=2, description="synthetic cohort size (patients, each with 2CH and 4CH)")
    size: int = Field(256, ge=32, description="synthetic image size in pixels (square)")
    frames: tuple[int, int] = Field((10, 40), description="synthetic ED->ES frame-count range, inclusive")
    full_cycle: bool = Field(False, description="synthetic: also write TED-like full-cycle sequences")
    resize: int | None = Field(None, ge=32, description="resample every sequence to resize x resize (paper: 512)")
    views: tuple[Literal["2CH", "4CH"], ...] = ("2CH", "4CH")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="fraction of patients held out for testing")
    val_fraction: float = Field(0.1, ge=0, lt=1, description="fraction of training patients for validation")
    max_patients: int | None = Field(None, ge=2, description="use only the first N patients of a real dataset")
    seed: int = 0

    @field_validator("root", "ted_root", "ted_map", mode="before")
    @classmethod
    def _expand_env(cls, value: object) -> object:
        """Expand ``${VAR}`` and ``~``; an unset variable is an error, not an empty path."""
        if not isinstance(value, str):
            return value
        expanded = os.path.expanduser(os.path.expandvars(value))
        if "$" in expanded:
            unset = re.findall(r"\$\{?(\w+)\}?", expanded)
            raise ValueError(f"environment variable(s) {', '.join(unset)} not set (used in {value!r})")
        return expanded

    @model_validator(mode="after")
    def _check_frames(self) -> "DataConfig":
        lo, hi = self.frames
        if not 2 <= lo <= hi:
            raise ValueError(f"frames must satisfy 2 <= min <= max, got {self.frames}")
        return self


class RegistrationConfig(_Section):
    """The DLIR B-spline network and its instance-optimised twin (paper-facts.md, 'Registration')."""

    method: Literal["dlir", "instance"] = Field("dlir", description="which registration notebook 03 uses")
    grid_spacing: int = Field(32, ge=2, description="B-spline control-point spacing in pixels (paper: 32 at 512)")
    alpha: float = Field(1.0, ge=0, description="bending-energy weight")
    ncc: Literal["global", "pair"] = "global"
    iterations: int = Field(10_000, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    kernels: int = Field(32, ge=1, description="convolution kernels per DIRNet layer")
    validate_every: int = Field(100, ge=1)
    checkpoint_every: int = Field(250, ge=1)
    instance_iterations: int = Field(100, ge=1, description="Adam steps per pair for InstanceBSpline")
    instance_lr: float = Field(0.05, gt=0)
    loss_sigma: float = Field(
        0.0,
        ge=0,
        description="Gaussian sigma (px) applied to fixed and moving images before the NCC of the loss (network "
        "input unchanged); 0 = the authors' raw NCC. Suppresses frame-to-frame speckle, which raw NCC rewards "
        "the network for blurring by sub-pixel shifts",
    )
    seed: int = 2022


class PseudoLabelConfig(_Section):
    """Propagation and Eq. 1 fusion (paper-facts.md, 'Propagation and fusion')."""

    mode: Literal["sequential", "composed", "fixed"] = Field(
        "sequential", description="label propagation: warp step by step (authors), compose the frame-to-frame "
        "displacements and warp once, or register the start frame to every frame (see echo_utils.fusion)"
    )
    weights: Literal["authors", "paper"] = "authors"
    assemble: Literal["sdf", "argmax"] = "sdf"
    closing: int = Field(0, ge=0, description="size of the optional square morphological closing (0 = off)")
    compare_instance: bool = Field(True, description="also generate pseudo-labels with InstanceBSpline")
    instance_sequences: int | None = Field(
        4, ge=1, description="compare_instance: how many evaluation sequences InstanceBSpline registers "
        "(it optimises every frame pair, so it is slow; None = all)"
    )
    max_sequences: int | None = Field(None, ge=1, description="limit the pseudo-label evaluation to N sequences")


class NnUNetConfig(_Section):
    """nnU-Net v2 datasets, plans and training budget."""

    models: tuple[Literal["2d_sparse", "2d_dense", "3d_dense", "3d_sparse"], ...] = (
        "2d_sparse",
        "2d_dense",
        "3d_dense",
        "3d_sparse",
    )
    dataset_id_base: int = Field(800, ge=1, le=995, description="ids base, base+1, base+2, base+3 are used")
    dataset_prefix: str = "Echo"
    configuration: Literal["default", "small"] = Field(
        "default", description="'default' keeps nnU-Net's plans; 'small' adds narrow CPU-friendly configs"
    )
    features_divisor: int = Field(1, ge=1, description="'small': divide every stage's feature count by this")
    patch_2d: tuple[int, int] | None = None
    patch_3d: tuple[int, int, int] | None = None
    batch_2d: int | None = Field(None, ge=1)
    batch_3d: int | None = Field(None, ge=1)
    epochs: int = Field(1000, ge=1)
    iterations_per_epoch: int = Field(250, ge=1)
    val_iterations: int = Field(50, ge=1)
    folds: tuple[int, ...] = (0, 1, 2, 3, 4)
    n_proc: int = Field(2, ge=1, description="processes for planning/preprocessing")
    n_proc_da: int = Field(0, ge=0, description="data-augmentation workers (0 = in the main process)")
    mirroring: bool = Field(False, description="test-time mirroring at prediction")
    time_spacing: float = Field(1.0, gt=0, description="spacing assigned to the time axis of 3D volumes")
    in_plane_size: int | None = Field(
        None, ge=16, description="'small': resample so the median image is this many pixels across (coarser "
        "target spacing, cheaper iterations); None keeps nnU-Net's spacing"
    )
    min_epochs: int | None = Field(
        None, ge=2, description="stop early once the EMA validation pseudo Dice rose < 0.01 over the last 20 % of "
        "the epochs, from this epoch on; None trains every epoch"
    )


class EvaluationConfig(_Section):
    """Notebook 05: tables and figures."""

    patient: str | None = Field(None, description="test patient for Fig. 4 (default: the first test patient)")
    myo_convention: Literal["ring", "epicardium"] = "epicardium"
    smoothness_units: Literal["px", "mm"] = "px"


class StudyConfig(_Section):
    """A whole profile."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$", description="profile name; the default run dir is runs/<name>")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0
    data: DataConfig = DataConfig()
    registration: RegistrationConfig = RegistrationConfig()
    pseudo_labels: PseudoLabelConfig = PseudoLabelConfig()
    nnunet: NnUNetConfig = NnUNetConfig()
    evaluation: EvaluationConfig = EvaluationConfig()

    @property
    def torch_device(self) -> str:
        """The device to compute on: ``cuda`` when asked for or (``auto``) available, else ``cpu``."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


def _format_errors(path: Path, err: ValidationError) -> str:
    lines = [f"invalid profile {path}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<top level>"
        if e["type"] == "extra_forbidden":
            lines.append(f"  - unknown key '{loc}'")
        else:
            lines.append(f"  - {loc}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def load_config(path: str | Path, overrides: dict | None = None) -> StudyConfig:
    """Load and validate a YAML profile.

    Parameters
    ----------
    path : the YAML file.
    overrides : optional nested dict merged over the file's values (e.g. ``{"registration": {"alpha": 0.5}}``),
        validated like the file itself; used by exercises and tests.

    Raises
    ------
    ConfigError if the file is missing, is not a YAML mapping, or fails validation.
    """
    path = Path(path)
    if not path.is_absolute() and not path.exists() and (PROJECT_ROOT / path).exists():
        path = PROJECT_ROOT / path
    if not path.is_file():
        raise ConfigError(f"profile not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"profile {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"profile {path} must be a YAML mapping, got {type(raw).__name__}")
    if overrides:
        raw = _deep_merge(raw, overrides)
    try:
        return StudyConfig.model_validate(raw, strict=False)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc)) from None


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def resolve_run_dir(cfg: StudyConfig, run_dir: str | Path | None = None, *, create: bool = True) -> Path:
    """The run directory: ``run_dir`` if given, else ``<project>/runs/<profile name>``.

    With ``create=False`` a missing directory is a :class:`ConfigError` (a notebook run alone must find the
    artifacts of the earlier notebooks).
    """
    path = Path(run_dir) if run_dir else PROJECT_ROOT / "runs" / cfg.name
    path = path.expanduser().resolve()
    if not path.exists():
        if not create:
            raise ConfigError(f"run directory {path} does not exist; run the earlier notebooks first")
        path.mkdir(parents=True)
    elif not path.is_dir():
        raise ConfigError(f"run directory {path} exists and is not a directory")
    return path


class RunPaths:
    """The sub-folders of a run directory that the notebooks exchange (see DESIGN.md, data flow)."""

    def __init__(self, run_dir: str | Path):
        self.root = Path(run_dir)

    @property
    def data(self) -> Path:
        """Synthetic cohort (CAMUS 2023 layout) and the written split file."""
        return self.root / "data"

    @property
    def registration(self) -> Path:
        """Registration checkpoints, cached by config hash, and their loss logs."""
        return self.root / "registration"

    @property
    def pseudo_labels(self) -> Path:
        """Pseudo-labels as NIfTI, one folder per registration method."""
        return self.root / "pseudo_labels"

    @property
    def nnunet(self) -> Path:
        """nnU-Net raw / preprocessed / results folders."""
        return self.root / "nnunet"

    @property
    def predictions(self) -> Path:
        """Segmentation predictions of every model on every test sequence."""
        return self.root / "predictions"

    @property
    def metrics(self) -> Path:
        """Tables (CSV) written by the notebooks."""
        return self.root / "metrics"


def config_hash(*parts: object, length: int = 12) -> str:
    """A short, stable hash of JSON-serialisable parts (pydantic models are dumped first)."""

    def norm(p: object) -> object:
        if isinstance(p, BaseModel):
            return p.model_dump(mode="json")
        return p

    blob = json.dumps([norm(p) for p in parts], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]
