"""The profile's schema: one pydantic section per pipeline stage, every key with its type, default and checks.

An unknown key, a wrong type or an impossible value is a :class:`ConfigError` naming the key (the loader,
:mod:`echo_utils.config.load`, adds the file).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Section seeds not set in a profile are the top-level seed plus these offsets (2022: the authors' registration
# seed, kept for seed 0 so that the shipped profiles reproduce their earlier numbers).
SEED_OFFSETS: dict[str, int] = {"data": 0, "registration": 2022, "nnunet": 0}


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
    views: tuple[Literal["2CH", "4CH"], ...] = Field(("2CH", "4CH"), min_length=1)
    test_fraction: float = Field(0.2, gt=0, lt=1, description="fraction of patients held out for testing")
    val_fraction: float = Field(0.1, ge=0, lt=1, description="fraction of training patients for validation")
    max_patients: int | None = Field(None, ge=2, description="use only the first N patients of a real dataset")
    seed: int = Field(0, description="cohort generation and split; default: the profile's top-level seed")

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


class ElastixConfig(_Section):
    """elastix's B-spline registration, a classical reference (``registration.elastix``; the method chapter).

    The final grid spacing is the network's ``registration.grid_spacing``; the metric is normalised correlation
    plus elastix's bending-energy penalty."""

    bending_weight: float = Field(
        1.0, ge=0, description="weight of TransformBendingEnergyPenalty against the NCC (elastix's own scale, not "
        "alpha); chosen by benchmarks/bench_reference_tuning.py on the training patients")
    iterations: int = Field(256, ge=1, description="ASGD iterations per resolution (elastix's default)")
    resolutions: int = Field(3, ge=1, le=6, description="pyramid levels; the grid spacing doubles per coarser level")
    samples: int = Field(2048, ge=16, description="random samples per iteration (elastix's default)")
    mask: Literal["none", "sector"] = Field(
        "none", description="'sector': the NCC counts only the fixed image's sector (as registration.loss_mask)")
    seed: int = Field(121212, description="elastix's RandomSeed (sample positions): fixed for reproducibility")
    threads: int = Field(1, ge=1, description="elastix's threads (1: reproducible, fair on a shared machine)")
    workers: int = Field(1, ge=1, description="pairs registered at once, one process each (speed only: the same "
                         "fields; the time per pair divides by up to this)")


class OpticalFlowConfig(_Section):
    """TV-L1 optical flow (scikit-image), a classical reference (``registration.optical_flow``; the method chapter)."""

    attachment: float = Field(
        15.0, gt=0, description="weight of the data term (skimage's default 15; smaller = smoother); chosen by "
        "benchmarks/bench_reference_tuning.py on the training patients")
    tightness: float = Field(0.3, gt=0, description="coupling of the TV-L1 sub-problems (skimage's default)")
    num_warp: int = Field(5, ge=1, description="image warps per pyramid level")
    num_iter: int = Field(10, ge=1, description="fixed-point iterations per warp")
    sigma: float = Field(0.0, ge=0, description="Gaussian smoothing (px) of both images before the flow")


class RegistrationConfig(_Section):
    """The DLIR B-spline network and its instance-optimised twin (paper Sec. 2.1, "Pseudo-labels generation"; the
    method chapter), and the classical references beside them (``elastix``, ``optical_flow``)."""

    method: Literal["dlir", "instance", "elastix", "optical_flow"] = Field(
        "dlir", description="which registration notebook 03 uses")
    grid_spacing: int = Field(32, ge=2, description="B-spline control-point spacing in pixels (paper: 32 at 512)")
    alpha: float = Field(1.0, ge=0, description="bending-energy weight (TorchIR's mean over the two components)")
    alpha_reference_size: int | None = Field(
        None, ge=1, description="image size (px) at which alpha is given; the loss uses alpha * (size / this)^2, "
        "the same balance for the same anatomy (registration.losses.scaled_alpha); None = alpha as is")
    ncc: Literal["global", "pair"] = "global"
    pair_max_gap: int | None = Field(
        None, ge=1, description="train on frame pairs at most this many frames apart; None = every ordered pair "
        "(the authors)")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="learning rate: constant (the authors) or a linear warm-up then cosine decay")
    lr_warmup: float = Field(0.05, ge=0, lt=1, description="cosine schedule: the fraction of the iterations "
                             "spent warming the learning rate up linearly")
    output_init_std: float = Field(
        0.0, ge=0, description="standard deviation of the DIRNet output layer's initial weights; 0 = zeros (the "
        "authors: the untrained network is the identity), VoxelMorph and CLAS use 1e-5")
    threads: int | None = Field(
        None, ge=1, description="torch threads while training the network on CPU (speed only, not in the cache "
        "key); None = leave torch's setting; env ECHO_REGISTRATION_THREADS overrides")
    keep: Literal["best", "last"] = Field(
        "best", description="network weights kept: best validation loss (the authors' best_model_iter.pt) or last")
    iterations: int = Field(10_000, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    kernels: int = Field(32, ge=1, description="convolution kernels per DIRNet layer")
    group_norm: int = Field(
        0, ge=0, description="group normalisation with this many groups after every hidden DIRNet convolution "
        "(must divide kernels); 0 = none (the paper's and TorchIR's DIRNet)")
    input_size: int | None = Field(
        None, ge=1, description="the network reads both frames average-pooled to this height (px; the image height "
        "divided by a power of two that divides grid_spacing) and pools that much less, so the control grid, the "
        "field, the loss and alpha stay at the full resolution: fewer convolution pixels per update; None = the "
        "full resolution (the paper)")
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
    loss_mask: Literal["none", "sector"] = Field(
        "none", description="'sector': the NCC counts only the fixed image's ultrasound sector without its static "
        "edge (the authors' optional loss mask); 'none' = every pixel (the authors' default)")
    seed: int = Field(2022, description="network initialisation and pair sampling; default: the profile's "
                      "top-level seed + 2022 (the authors' seed at seed 0)")
    elastix: ElastixConfig = Field(default_factory=ElastixConfig, description="the elastix reference's settings")
    optical_flow: OpticalFlowConfig = Field(default_factory=OpticalFlowConfig,
                                            description="the TV-L1 optical-flow reference's settings")

    @field_validator("grid_spacing")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        """The DIRNet pools the image log2(grid_spacing) times: the spacing must be a power of two."""
        if value & (value - 1):
            raise ValueError(f"must be a power of two (the network pools log2(grid_spacing) times), got {value}")
        return value

    @model_validator(mode="after")
    def _check_group_norm(self) -> "RegistrationConfig":
        """GroupNorm splits the kernels into equal groups: group_norm must divide kernels."""
        if self.group_norm and self.kernels % self.group_norm:
            raise ValueError(f"group_norm {self.group_norm} must divide kernels {self.kernels} (GroupNorm splits "
                             "the feature maps into equal groups); 0 = no normalisation")
        return self


class PseudoLabelConfig(_Section):
    """Propagation and Eq. 1 fusion (paper Sec. 2.1, Eq. 1; the method chapter)."""

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

    models: tuple[Literal["2d_sparse", "2d_dense", "3d_dense", "3d_sparse", "3d_dense_masked"], ...] = Field(
        ("2d_sparse", "2d_dense", "3d_dense", "3d_sparse"), min_length=1,
        description="the nnU-Nets to train (labels.MODELS, Table 1's four, by default); 3d_dense_masked "
        "(labels.OPTIONAL_MODELS) is 3D dense with its low-confidence pseudo-labelled pixels ignored",
    )
    dataset_id_base: int = Field(800, ge=1, le=995, description="ids base .. base+3 are used (base+4: "
                                 "3d_dense_masked)")
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
    folds: tuple[int, ...] = Field((0, 1, 2, 3, 4), min_length=1, description="folds to train (0..k-1)")
    n_proc: int = Field(2, ge=1, description="processes for planning/preprocessing")
    n_proc_da: int = Field(0, ge=0, description="data-augmentation workers (0 = in the main process)")
    mirroring: bool = Field(False, description="test-time mirroring at prediction")
    time_spacing: float = Field(
        1.0, gt=0, description="what the sequence files store along time (CAMUS and the synthetic cohort: 1); the "
        "3D volumes' time spacing when time_reference_spacing is None"
    )
    time_reference_spacing: tuple[float, float, float] | None = Field(
        None, description="(t, y, x) spacing of the paper's 3D volumes at 512 px (CAMUS: time 1 as stored, in-plane "
        "about 0.3 mm). The 3D datasets then get time spacing = t / min(y, x) x the finest in-plane spacing of the "
        "grid the network trains on, so nnU-Net plans time against space as it did for the paper's data "
        "(segmentation.export.volume_time_spacing); None: time_spacing as stored"
    )
    time_reference_size: int = Field(
        512, ge=16, description="image size of the reference volumes (the paper resized CAMUS to 512 x 512): the "
        "fingerprint of nnU-Net's reference plan in notebook 04 (segmentation.plans.reference_plan)"
    )
    in_plane_size: int | None = Field(
        None, ge=16, description="'small': resample so the median image is this many pixels across (coarser "
        "target spacing, cheaper iterations); None keeps nnU-Net's spacing"
    )
    min_epochs: int | None = Field(
        None, ge=2, description="stop early once the EMA validation pseudo Dice rose < 0.01 over the last 20 % of "
        "the epochs, from this epoch on; None trains every epoch"
    )
    epochs_3d: int | None = Field(
        None, ge=1, description="epochs of the 3D models (a 3D epoch sees batch_3d patches per iteration, a 2D one "
        "batch_2d frames); None: epochs"
    )
    min_epochs_3d: int | None = Field(
        None, ge=2, description="min_epochs of the 3D models; None: min_epochs"
    )
    time_jitter: bool = Field(
        False, description="3d_sparse: move each training patch along time so that its labelled frame (ED or ES) "
        "lies anywhere in the patch instead of in its middle (segmentation.trainer.LabelledFrameDataLoader)"
    )
    seed: int = Field(0, description="seed of every nnU-Net training; default: the profile's top-level seed")
    masked_confidence_threshold: float | None = Field(
        None, gt=0, le=1, description="3d_dense_masked: pseudo-labelled pixels whose confidence is below this "
        "become nnU-Net's ignore label. None: chosen on the validation patients (maximum F1 of 'confidence below "
        "the threshold' for the pseudo-label errors, against their exact truth); without exact truth (real data) "
        "0.5, the edge of the band where the two propagation directions disagree (segmentation.masking)"
    )
    plateau_min_class_dice: float = Field(
        0.05, ge=0, lt=1, description="the early stop and the 'converged' verdict need every class's EMA validation "
        "pseudo Dice at or above this (a class at 0 has not been learned, whatever the mean does)"
    )
    threads: int = Field(
        1, ge=1, description="torch threads for nnU-Net on CPU (speed only); env ECHO_NNUNET_THREADS overrides"
    )
    pools: Literal["thread", "process"] = Field(
        "thread", description="nnU-Net's dataset-step pools (speed only); env ECHO_NNUNET_POOLS overrides"
    )
    time_padding: Literal["none", "reflect"] = Field(
        "none", description="3D models only: 'reflect' pads every sequence along time by reflection (numpy "
        "'reflect', the end frame not repeated) with time_padding_frames frames on each side, in the exported 3D "
        "datasets (images and labels) and at prediction (cropped off before anything is written), so the network "
        "sees temporal context past ED and ES (segmentation.time_padding); 'none': nnU-Net's zero padding (the authors)"
    )
    time_padding_frames: int | None = Field(
        None, ge=1, description="frames added at each end with time_padding 'reflect'; None: half the 3D patch's "
        "time extent (patch_3d[0] // 2), so a patch centred on ED or ES lies inside the padded sequence"
    )

    @model_validator(mode="after")
    def _check_time_padding(self) -> "NnUNetConfig":
        if self.time_padding == "none" and self.time_padding_frames is not None:
            raise ValueError(f"time_padding_frames = {self.time_padding_frames} is set but time_padding is 'none': "
                             "set time_padding: reflect, or remove time_padding_frames")
        if self.time_padding == "reflect" and self.time_padding_frames is None and self.patch_3d is None:
            raise ValueError("time_padding 'reflect' derives its frame count from patch_3d (half its time extent), "
                             "but patch_3d is not set (nnU-Net plans the patch after the export): set patch_3d or "
                             "time_padding_frames")
        return self

    @field_validator("time_reference_spacing")
    @classmethod
    def _positive_reference(cls, value):
        if value is not None and min(value) <= 0:
            raise ValueError(f"time_reference_spacing must be three positive spacings (t, y, x), got {list(value)}")
        return value

    @field_validator("models")
    @classmethod
    def _distinct_models(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"models must be distinct, got {list(value)}")
        return value

    @field_validator("folds")
    @classmethod
    def _distinct_folds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(f < 0 for f in value) or len(set(value)) != len(value):
            raise ValueError(f"folds must be distinct numbers >= 0, got {list(value)}")
        return value


class EvaluationConfig(_Section):
    """Notebook 05: tables and figures."""

    patient: str | None = Field(None, description="test patient for Fig. 4 (default: the first test patient)")
    smoothness_units: Literal["px", "mm"] = "px"


class SlurmKindOverride(_Section):
    """Per job kind, what differs from the ``slurm`` defaults (unset keys keep them)."""

    gpus_per_job: int | None = Field(None, ge=0)
    cpus: int | None = Field(None, ge=1)
    mem_gb: int | None = Field(None, ge=1)
    timeout_min: int | None = Field(None, ge=1)


class SlurmConfig(_Section):
    """``compute.backend: slurm``: the sbatch settings of every job (submitit's ``SlurmExecutor``)."""

    partition: str | None = Field(None, description="Slurm partition (--partition); None: the cluster's default")
    account: str | None = Field(None, description="Slurm account (--account)")
    gpus_per_job: int = Field(1, ge=0, description="GPUs of a GPU job (--gpus-per-node); CPU-only jobs get none")
    cpus: int = Field(8, ge=1, description="CPUs per job (--cpus-per-task): nnU-Net's data augmentation workers")
    mem_gb: int = Field(64, ge=1, description="memory per job in GB (--mem)")
    timeout_min: int = Field(2880, ge=1, description="time limit per job in minutes (--time); a job that reaches it "
                             "is requeued and resumes from its checkpoint")
    max_requeue: int = Field(3, ge=0, description="requeues after a timeout or a preemption")
    per_kind: dict[Literal["dir_training", "pseudo_labels", "nnunet_prepare", "nnunet_training",
                           "nnunet_prediction"], SlurmKindOverride] = Field(
        default_factory=dict, description="resources of one job kind that differ from the defaults above")
    extra: dict[str, Any] = Field(
        default_factory=dict, description="passed as they are to submitit's SlurmExecutor.update_parameters, e.g. "
        "qos, constraint, setup (shell lines run before the job), additional_parameters (any other sbatch flag)")


class LocalConfig(_Section):
    """``compute.backend: local``: jobs as subprocesses of this machine (submitit's ``LocalExecutor``)."""

    max_parallel: int = Field(1, ge=1, description="jobs running at once (they share this machine's cores and GPU)")
    gpus_per_job: int = Field(0, ge=0, description="GPUs made visible to a GPU job (CUDA_VISIBLE_DEVICES)")
    timeout_min: int = Field(10080, ge=1, description="time limit per job in minutes")
    max_requeue: int = Field(0, ge=0, description="restarts after a timeout")


class ComputeConfig(_Section):
    """Where the study's jobs run (``echo_utils.compute``): in the notebook's process, local processes, or Slurm.

    Never part of a cache key: changing the backend, the shard size or the Slurm settings redoes nothing.
    """

    backend: Literal["inline", "local", "slurm"] = Field(
        "inline", description="inline: in the calling process (the notebooks' default); local: submitit "
        "subprocesses with job folders and logs; slurm: sbatch jobs through submitit")
    shard_size: int = Field(50, ge=1, description="pseudo-label sequences per job")
    local_kinds: tuple[Literal["dir_training", "pseudo_labels", "nnunet_prepare", "nnunet_training",
                               "nnunet_prediction"], ...] = Field(
        (), description="backend inline only: job kinds that run on the local backend instead, local.max_parallel "
        "at once (e.g. the nnU-Net trainings, one torch thread each, two at once on 2 cores); the others stay inline")
    poll_seconds: float = Field(10.0, gt=0, description="seconds between two looks at the submitted jobs")
    local: LocalConfig = LocalConfig()
    slurm: SlurmConfig = SlurmConfig()


class StudyConfig(_Section):
    """A whole profile."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$", description="profile name; the default run dir is runs/<name>")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = Field(0, description="the one seed: a section's seed not set in the profile derives from it")
    data: DataConfig = DataConfig()
    registration: RegistrationConfig = RegistrationConfig()
    pseudo_labels: PseudoLabelConfig = PseudoLabelConfig()
    nnunet: NnUNetConfig = NnUNetConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    compute: ComputeConfig = ComputeConfig()

    @model_validator(mode="after")
    def _derive_seeds(self) -> "StudyConfig":
        """A section seed not given explicitly is ``seed + SEED_OFFSETS[section]``."""
        for section, offset in SEED_OFFSETS.items():
            sec = getattr(self, section)
            if "seed" not in sec.model_fields_set:
                # the model is frozen: set the derived section once, here, as pydantic's own __init__ would
                object.__setattr__(self, section, sec.model_copy(update={"seed": self.seed + offset}))
        return self

    @model_validator(mode="after")
    def _check_folds_against_cohort(self) -> "StudyConfig":
        """Cross-validation needs k = max(5, max(folds) + 1) training patients (a single fold 0 needs none).

        Checked for the synthetic cohort, whose size is known here; the split follows
        ``echo_utils.data.phantom`` (test = round(n * test_fraction), at least 1, at most n - 1).
        """
        folds = self.nnunet.folds
        if tuple(folds) == (0,) or self.data.source != "synthetic":
            return self
        n = self.data.n_patients
        n_train = n - min(n - 1, max(1, int(round(n * self.data.test_fraction))))
        k = max(5, max(folds) + 1)
        if n_train < k:
            raise ValueError(
                f"nnunet.folds {list(folds)} means {k}-fold cross-validation, which needs at least {k} training "
                f"patients; data.n_patients {n} with test_fraction {self.data.test_fraction} leaves {n_train}"
            )
        return self

    @property
    def torch_device(self) -> str:
        """The device to compute on: ``cuda`` when asked for or (``auto``) available, else ``cpu``."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
