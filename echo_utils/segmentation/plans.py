"""nnU-Net's self-configuration for each model: fingerprint, plans (plus a narrow CPU configuration), preprocessing.

:func:`plan_and_preprocess` is ``nnUNetv2_plan_and_preprocess -d ID -c 2d|3d_fullres`` through nnU-Net's Python
API, with two additions that have no command-line flag: time is kept as the first axis of the 3D volumes
(``ExperimentPlanner(..., suppress_transpose=True)``), and the ``small`` profiles add a configuration
(``2d_small`` / ``3d_fullres_small``, :func:`small_configuration`) that ``inherits_from`` the planned one.

Every trained configuration also carries an ``"echo"`` entry (:func:`training_settings`): the training budget, the
seed of this model and its patch sampling. :class:`~echo_utils.segmentation.trainer.EchoTrainer` reads it from the
plans, so ``nnUNetv2_train ... -tr EchoTrainer`` trains exactly what :func:`~echo_utils.segmentation.train.train_model`
trains. The entry is written (or updated) after preprocessing and never changes the preprocessed data.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from copy import deepcopy
from multiprocessing.pool import ThreadPool
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from ..config import NnUNetConfig, config_hash
from .env import (LABEL_VALUES, PLANS, NnUNetError, NnUNetRun, _section, configure_nnunet, configuration_name,
                  dataset_id, dataset_name, jsonable, marker_record, model_seed, pools, quiet, read_json, spec,
                  write_json)
from .export import export_marker

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["plan_and_preprocess", "small_configuration", "training_settings", "model_budget", "epoch_budgets",
           "plans_file", "plans_table",
           "reference_plan", "stage_table", "plan_stages", "REFERENCE_VOLUMES"]

PREPROCESS_MARKER = "echo_preprocess.json"


def plans_file(run: NnUNetRun, model: str) -> Path:
    """``<run>/nnunet/preprocessed/DatasetXXX_Name/nnUNetPlans.json``."""
    return run.preprocessed / dataset_name(run.nn, model) / f"{PLANS}.json"


def model_budget(nn: NnUNetConfig, model: str) -> tuple[int, int | None]:
    """``(epochs, min_epochs)`` of one model: ``nnunet.epochs_3d`` / ``min_epochs_3d`` for the 3D models where the
    profile sets them, else ``nnunet.epochs`` / ``min_epochs`` (the 2D models always).

    A 3D epoch sees ``batch_3d`` patches of ``patch_3d`` frames per iteration, a 2D one ``batch_2d`` frames: the
    two kinds need not converge in the same number of epochs, and the convergence rule (a plateau of the EMA
    validation Dice, :func:`~echo_utils.segmentation.train.convergence`) is read against each model's own budget.
    """
    _section(nn)
    if spec(model).dim == 3:
        epochs = nn.epochs_3d if nn.epochs_3d is not None else nn.epochs
        min_epochs = nn.min_epochs_3d if nn.min_epochs_3d is not None else nn.min_epochs
        return epochs, min_epochs
    return nn.epochs, nn.min_epochs


def epoch_budgets(nn: NnUNetConfig) -> dict[str, int]:
    """``{model: epochs}`` of the profile's models (:func:`model_budget`): the budgets a convergence table reads."""
    return {model: model_budget(nn, model)[0] for model in nn.models}


def training_settings(nn: NnUNetConfig, model: str) -> dict:
    """The ``"echo"`` entry of a trained configuration: budget, seed and sampling of one model.

    ``epochs``, ``iterations_per_epoch``, ``val_iterations``: nnU-Net's loop (its defaults: 1000, 250, 50); the
    epochs and ``min_epochs`` are the model's own (:func:`model_budget`: the 3D models may have their own).
    ``min_epochs``: stop early once the EMA validation pseudo Dice has plateaued, but not before this epoch
    (``None``: never stop early; see :func:`echo_utils.segmentation.train.converged`). ``save_every``: epochs
    between resumable checkpoints. ``seed``: :func:`~echo_utils.segmentation.env.model_seed`.
    ``oversample_foreground``: the share of patches nnU-Net centres on a labelled voxel (its default 0.33); 1.0
    for the 3D sparse model, whose labelled voxels all lie in the ED and ES frames, so every patch holds one of
    them (an 8-frame patch drawn at random from a 20-frame sequence would usually hold neither).
    ``min_class_dice``: the early stop and the "converged" verdict also need every class's EMA validation pseudo
    Dice at or above this (``nnunet.plateau_min_class_dice``).

    The 3D sparse model is supervised only at ED and ES, and some of nnU-Net's defaults hide even that (see
    :class:`~echo_utils.segmentation.trainer.EchoTrainer`):

    - ``padding_as_ignore``: nnU-Net centres a patch on the sampled voxel without clamping it to the sequence, so a
      patch centred on ES (the last frame) runs about half a patch past the end; those frames are padding (seg
      -1), which nnU-Net's transforms turn into *background*. Here they become the ignore label: the network is
      not taught that nothing exists past the end of a sequence. Only a dataset with an ignore label can do this,
      i.e. the 3D sparse one (the other models' patches hold labels on every frame they see).
    - ``time_jitter`` (only with ``nnunet.time_jitter``): a patch centred on a labelled voxel holds its frame (ED or
      ES) in the middle, so the network only learns to segment a labelled frame from context on both sides, never
      from one side, as at the ends of a sequence; the patch is moved along time to put the labelled frame anywhere
      in it.
    - ``random_in_plane``: nnU-Net centres a foreground patch on its labelled voxel in every axis, and with
      ``oversample_foreground`` 1.0 every patch is one, so few patches lie on the image as the sliding-window
      prediction does (a 64-px frame in a 64-px patch is mostly shifted, its far side padding); the 3D sparse
      model then segmented the left atrium in the black corners it had never been taught. Only the patch's time
      comes from the labelled voxel; in plane it is placed as a random patch.
    - ``deep_supervision_full_time_only``: the deep-supervision targets are downsampled with nearest-exact, which
      along time keeps every other frame and drops ED (frame 0) and, often, ES; those outputs would learn "no
      foreground anywhere". Deep supervision stays on, but only for the outputs at full time resolution (the
      others get loss weight 0), which keep every labelled frame.
    """
    _section(nn)
    sparse3d = spec(model).dim == 3 and not spec(model).dense
    epochs, min_epochs = model_budget(nn, model)
    return {
        "epochs": epochs,
        "iterations_per_epoch": nn.iterations_per_epoch,
        "val_iterations": nn.val_iterations,
        "min_epochs": min_epochs,
        "save_every": max(1, min(50, epochs // 20)),
        "seed": model_seed(nn, model),
        "oversample_foreground": 1.0 if sparse3d else None,
        "min_class_dice": nn.plateau_min_class_dice,
        "padding_as_ignore": sparse3d,
        "random_in_plane": sparse3d,
        "time_jitter": sparse3d and nn.time_jitter,
        "deep_supervision_full_time_only": sparse3d,
    }


def small_configuration(plans: dict, parent: str, nn: NnUNetConfig) -> dict:
    """A narrow CPU-friendly configuration that ``inherits_from`` ``parent`` in nnU-Net's plans.

    It keeps the parent's normalisation and resampling, and sets:

    - the in-plane spacing: the parent's, scaled so that the median image is ``nnunet.in_plane_size`` pixels
      across (``None``: the parent's spacing and preprocessed data); the time spacing of 3D volumes is kept;
    - the patch (``patch_2d`` / ``patch_3d``, in (T,) H, W order), the batch size;
    - a U-Net topology recomputed for that patch and spacing by nnU-Net's own ``get_pool_and_conv_props``, with
      every stage's feature count divided by ``features_divisor``.
    """
    from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props

    conf = plans["configurations"][parent]
    is_2d = parent == "2d"
    spacing = [float(s) for s in conf["spacing"]]
    out = {"inherits_from": parent}
    if nn.in_plane_size is not None:
        median = conf["median_image_size_in_voxels"]
        for axis in (-2, -1):  # y, x: time (first axis of 3D volumes) keeps its spacing
            spacing[axis] = spacing[axis] * float(median[axis]) / nn.in_plane_size
        out["spacing"] = spacing
        out["data_identifier"] = f"{PLANS}_{parent}_small_{nn.in_plane_size}px"
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
            "patch (nnunet.patch_2d / patch_3d)."
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
    out.update({"patch_size": [int(p) for p in patch], "batch_size": int(batch), "architecture": arch})
    return out


def _fingerprint_extractor(small: bool):
    """nnU-Net's ``DatasetFingerprintExtractor``, or a subclass that analyses the cases in threads.

    nnU-Net's ``run`` starts a spawn pool (see :mod:`echo_utils.segmentation.env`); the subclass runs the same
    ``analyze_case`` in a thread pool and aggregates the results as nnU-Net does. For small profiles it samples 1e6
    instead of 1e8 foreground intensities: they feed only the intensity statistics, which only CT normalisation
    uses (echo is z-scored per image).
    """
    from batchgenerators.utilities.file_and_folder_operations import isfile, join, load_json, maybe_mkdir_p, save_json
    from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json
    from nnunetv2.paths import nnUNet_preprocessed

    class ThreadedFingerprintExtractor(DatasetFingerprintExtractor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if small:
                self.num_foreground_voxels_for_intensitystats = 1e6

        def run(self, overwrite_existing: bool = False) -> dict:
            out = join(nnUNet_preprocessed, self.dataset_name)
            maybe_mkdir_p(out)
            fingerprint_file = join(out, "dataset_fingerprint.json")
            if isfile(fingerprint_file) and not overwrite_existing:
                return load_json(fingerprint_file)
            keys = list(self.dataset)
            rw = determine_reader_writer_from_dataset_json(self.dataset_json, self.dataset[keys[0]]["images"][0])
            n_samples = int(self.num_foreground_voxels_for_intensitystats // len(keys))
            with ThreadPool(self.num_processes) as pool:
                results = pool.starmap(DatasetFingerprintExtractor.analyze_case,
                                       [(self.dataset[k]["images"], self.dataset[k]["label"], rw, n_samples)
                                        for k in keys])
            intensities = np.concatenate([r[2][0] for r in results])
            p005, median, p995 = np.percentile(intensities, (0.5, 50.0, 99.5))
            fingerprint = {
                "spacings": [r[1] for r in results],
                "shapes_after_crop": [r[0] for r in results],
                "foreground_intensity_properties_per_channel": {0: {
                    "mean": float(np.mean(intensities)), "median": float(median), "std": float(np.std(intensities)),
                    "min": float(np.min(intensities)), "max": float(np.max(intensities)),
                    "percentile_99_5": float(p995), "percentile_00_5": float(p005)}},
                "median_relative_size_after_cropping": np.median([r[4] for r in results], 0),
            }
            save_json(fingerprint, fingerprint_file)
            return fingerprint

    return ThreadedFingerprintExtractor


def _preprocess_in_threads(run: NnUNetRun, model: str, configuration: str) -> None:
    """nnU-Net's ``DefaultPreprocessor.run_case_save`` for every case, in ``nnunet.n_proc`` threads.

    The same work as ``preprocess_dataset`` (which starts a spawn pool): the output folder of the configuration's
    ``data_identifier`` is rebuilt, and the labels are copied to ``gt_segmentations/`` for nnU-Net's validation.
    """
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    name = dataset_name(run.nn, model)
    pre = run.preprocessed / name
    manager = PlansManager(str(plans_file(run, model)))
    conf = manager.get_configuration(configuration)
    dataset_json = read_json(pre / "dataset.json")
    cases = get_filenames_of_train_images_and_targets(str(run.raw / name), dataset_json)
    out = pre / conf.data_identifier
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    preprocessor = DefaultPreprocessor(verbose=False)
    with ThreadPool(run.nn.n_proc) as pool:
        pool.starmap(preprocessor.run_case_save, [(str(out / k), c["images"], c["label"], manager, conf,
                                                    dataset_json) for k, c in cases.items()])
    gt = pre / "gt_segmentations"
    gt.mkdir(exist_ok=True)
    for k, c in cases.items():
        shutil.copyfile(c["label"], gt / f"{k}{dataset_json['file_ending']}")


@contextlib.contextmanager
def _planning_threads(n_proc_da: int):
    """nnU-Net's planner calls ``torch.set_num_threads(nnUNet_n_proc_DA)``, which fails for 0: plan with >= 1."""
    old = os.environ.get("nnUNet_n_proc_DA")
    os.environ["nnUNet_n_proc_DA"] = str(max(1, n_proc_da))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("nnUNet_n_proc_DA", None)
        else:
            os.environ["nnUNet_n_proc_DA"] = old


def plan_and_preprocess(run: NnUNetRun, model: str) -> dict:
    """Fingerprint, plan and preprocess the exported dataset of ``model`` (cached); returns the plans dict.

    Equivalent to ``nnUNetv2_plan_and_preprocess -d ID -c 2d|3d_fullres -np n_proc``, plus, for small profiles,
    the narrow ``*_small`` configuration (:func:`small_configuration`), which is preprocessed instead of its parent
    when it has its own spacing. nnU-Net's verbose output goes to ``<run>/nnunet/logs/``.
    """
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner

    s = spec(model)
    configure_nnunet(run)
    nn = run.nn
    name, ds_id = dataset_name(nn, model), dataset_id(nn, model)
    raw_marker = export_marker(run, model)
    if not raw_marker.is_file():
        raise NnUNetError(f"dataset {name} has not been exported yet ({raw_marker} missing); call export_dataset first")
    content = read_json(raw_marker)["content"]
    pfile = plans_file(run, model)
    marker = marker_record(pfile.parent / PREPROCESS_MARKER, f"the preprocessed dataset {name}", "key")
    conf_name = configuration_name(nn, model)
    key = config_hash(content, nn.configuration, nn.features_divisor, nn.patch_2d, nn.patch_3d, nn.batch_2d,
                      nn.batch_3d, nn.in_plane_size)
    stored = marker.read()  # another key: planned with other settings, preprocessed again
    if not (stored is not None and stored["key"] == key and pfile.is_file()):
        log = run.logs / f"{name}_plan_and_preprocess.log"
        with quiet(log):
            small = nn.configuration == "small"
            if pools(nn) == "process":
                from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprint_dataset

                extract_fingerprint_dataset(ds_id, num_processes=nn.n_proc, check_dataset_integrity=False,
                                            clean=True, verbose=False)
            else:
                _fingerprint_extractor(small)(ds_id, nn.n_proc, verbose=False).run(overwrite_existing=True)
            # suppress_transpose keeps time as the first axis of the 3D volumes: nnU-Net would otherwise move the
            # coarsest axis first
            planner = ExperimentPlanner(ds_id, preprocessor_name="DefaultPreprocessor", plans_name=PLANS,
                                        suppress_transpose=True)
            with _planning_threads(nn.n_proc_da):
                plans = planner.plan_experiment()
            if s.parent_configuration not in plans["configurations"]:
                raise NnUNetError(f"nnU-Net planned no {s.parent_configuration!r} configuration for {name}")
            if small:
                plans["configurations"][conf_name] = small_configuration(plans, s.parent_configuration, nn)
            write_json(pfile, plans)
            if pools(nn) == "process":
                from nnunetv2.experiment_planning.plan_and_preprocess_api import preprocess_dataset

                preprocess_dataset(ds_id, PLANS, configurations=[conf_name], num_processes=[nn.n_proc], verbose=False)
            else:
                _preprocess_in_threads(run, model, conf_name)
        marker.write({"key": key, "content": content})
    plans = read_json(pfile)
    settings = training_settings(nn, model)
    if plans["configurations"][conf_name].get("echo") != settings:  # the trainer's settings: no new preprocessing
        plans["configurations"][conf_name]["echo"] = settings
        write_json(pfile, plans)
    return plans


def plans_table(run: NnUNetRun, models: Iterable[str] | None = None) -> "pd.DataFrame":
    """One row per model: configuration, spacing, patch, batch, stages, features, kernels, strides, parameters;
    and, for small profiles, what nnU-Net itself planned for a GPU (``parent patch``, ``parent batch``...)."""
    import pandas as pd
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    rows = []
    nn = run.nn
    for model in models or nn.models:
        pfile = plans_file(run, model)
        if not pfile.is_file():
            raise NnUNetError(f"no plans for {model} ({pfile}); run plan_and_preprocess first")
        manager = PlansManager(str(pfile))
        conf = manager.get_configuration(configuration_name(nn, model))
        arch = conf.network_arch_init_kwargs
        row = {
            "model": model,
            "dataset": dataset_name(nn, model),
            "configuration": configuration_name(nn, model),
            "spacing": tuple(round(float(v), 3) for v in conf.spacing),
            "patch": tuple(int(p) for p in conf.patch_size),
            "batch": conf.batch_size,
            "stages": arch["n_stages"],
            "features": tuple(arch["features_per_stage"]),
            "kernels": " ".join("x".join(map(str, k)) for k in arch["kernel_sizes"]),
            "strides": " ".join("x".join(map(str, v)) for v in arch["strides"]),
            "parameters (M)": round(_count_parameters(conf) / 1e6, 3),
        }
        if spec(model).dim == 3:  # what shapes the plan: time spacing over the finest in-plane spacing
            row["time / in-plane spacing"] = round(float(conf.spacing[0]) / float(min(conf.spacing[1:])), 3)
        if nn.configuration == "small":
            parent = manager.get_configuration(spec(model).parent_configuration)
            row.update({"nnU-Net's patch": tuple(int(p) for p in parent.patch_size),
                        "nnU-Net's batch": parent.batch_size,
                        "nnU-Net's features": tuple(parent.network_arch_init_kwargs["features_per_stage"])})
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def _count_parameters(conf) -> int:
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    net = get_network_from_plans(conf.network_arch_class_name, conf.network_arch_init_kwargs,
                                 conf.network_arch_init_kwargs_req_import, 1, len(LABEL_VALUES), allow_init=False,
                                 deep_supervision=False)
    return sum(p.numel() for p in net.parameters())


#: The paper's 3D volumes as nnU-Net saw them: CAMUS half sequences resized to 512 x 512 (in-plane about 0.3 mm,
#: time 1 as the files store it), 10-30 frames. ``nnunet.time_reference_spacing`` / ``time_reference_size`` replace
#: the spacing and size where a profile sets them.
REFERENCE_VOLUMES = {"spacing": (1.0, 0.3, 0.3), "size": 512, "frames": (10, 30), "cases": 40}


@contextlib.contextmanager
def _environment(**values: str):
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


def reference_plan(spacing: Iterable[float] | None = None, size: int | None = None,
                   frames: tuple[int, int] | None = None, cases: int | None = None) -> dict:
    """nnU-Net's own ``3d_fullres`` plan for a fingerprint of the paper's volumes (no data needed).

    A fingerprint of ``cases`` volumes of ``frames[0]..frames[1]`` x ``size`` x ``size`` voxels at ``spacing``
    (t, y, x) (defaults: :data:`REFERENCE_VOLUMES`, CAMUS-like) is handed to nnU-Net's ``ExperimentPlanner``
    (``suppress_transpose=True``, time first, as for the study's datasets) in a temporary nnU-Net folder; its
    target spacing and ``get_plans_for_configuration`` give the configuration dict (patch, batch, architecture)
    that ``nnUNetv2_plan_and_preprocess`` would write for such a dataset. Compare with :func:`plan_stages`.
    """
    import tempfile

    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
    from nnunetv2.preprocessing.resampling.default_resampling import compute_new_shape

    ref = REFERENCE_VOLUMES
    spacing = [float(v) for v in (spacing if spacing is not None else ref["spacing"])]
    size, frames, cases = size or ref["size"], frames or ref["frames"], cases or ref["cases"]
    n_frames = np.round(np.linspace(frames[0], frames[1], cases)).astype(int)
    name = "Dataset999_EchoReference"
    with tempfile.TemporaryDirectory() as tmp:
        raw, pre = Path(tmp) / "raw", Path(tmp) / "preprocessed"
        (raw / name).mkdir(parents=True)
        (pre / name).mkdir(parents=True)
        ids = [f"case{i:03d}" for i in range(cases)]
        write_json(raw / name / "dataset.json", {
            "channel_names": {"0": "echo"}, "labels": dict(LABEL_VALUES), "numTraining": cases, "file_ending": ".nii.gz",
            "dataset": {c: {"images": [f"imagesTr/{c}_0000.nii.gz"], "label": f"labelsTr/{c}.nii.gz"} for c in ids}})
        write_json(pre / name / "dataset_fingerprint.json", {
            "spacings": [spacing] * cases, "shapes_after_crop": [[int(t), size, size] for t in n_frames],
            "foreground_intensity_properties_per_channel": {"0": {
                "mean": 0.5, "median": 0.5, "std": 0.2, "min": 0.0, "max": 1.0, "percentile_99_5": 1.0,
                "percentile_00_5": 0.0}},
            "median_relative_size_after_cropping": 1.0})
        with _environment(nnUNet_raw=str(raw), nnUNet_preprocessed=str(pre)), _planning_threads(1), \
                quiet(Path(tmp) / "planner.log"):
            planner = ExperimentPlanner(name, preprocessor_name="DefaultPreprocessor", plans_name=PLANS,
                                        suppress_transpose=True)
            target = planner.determine_fullres_target_spacing()
            shapes = [compute_new_shape(j, i, target) for i, j in
                      zip(planner.dataset_fingerprint["spacings"], planner.dataset_fingerprint["shapes_after_crop"])]
            median = np.median(shapes, 0)
            conf = planner.get_plans_for_configuration(target, median, planner.generate_data_identifier("3d_fullres"),
                                                       float(np.prod(median, dtype=np.float64) * cases), {})
    return jsonable(conf)


def stage_table(conf: dict) -> "pd.DataFrame":
    """One row per U-Net stage of a configuration dict (``patch_size``, ``spacing``, ``architecture``): the feature
    map of the patch in that stage, the stride into it, its convolution kernel, its features, and the spacing its
    convolutions see. A kernel of 1 along an axis means the stage does not convolve along it."""
    import pandas as pd

    arch = conf["architecture"]["arch_kwargs"]
    strides = np.array(arch["strides"], int)
    fmap = np.array(conf["patch_size"], int) // np.cumprod(strides, axis=0)
    spacing = np.array(conf["spacing"], float) * np.cumprod(strides, axis=0)
    return pd.DataFrame({
        "feature map": ["x".join(map(str, f)) for f in fmap],
        "stride into stage": ["x".join(map(str, v)) for v in strides],
        "kernel": ["x".join(map(str, k)) for k in arch["kernel_sizes"]],
        "features": list(arch["features_per_stage"]),
        "spacing": [" / ".join(f"{v:.3g}" for v in sp) for sp in spacing],
    }, index=pd.RangeIndex(len(strides), name="stage"))


def plan_stages(run: NnUNetRun, model: str) -> "pd.DataFrame":
    """:func:`stage_table` of the configuration ``model`` trains (after :func:`plan_and_preprocess`)."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    pfile = plans_file(run, model)
    if not pfile.is_file():
        raise NnUNetError(f"no plans for {model} ({pfile}); run plan_and_preprocess first")
    conf = PlansManager(str(pfile)).get_configuration(configuration_name(run.nn, model))
    return stage_table({"patch_size": list(conf.patch_size), "spacing": list(conf.spacing),
                        "architecture": {"arch_kwargs": conf.network_arch_init_kwargs}})
