"""The study's units of work as jobs: DIR training, pseudo-label shards, nnU-Net preparation, training, prediction.

Each builder returns :class:`~echo_utils.compute.jobs.Job` s with stable names (their folders under
``<run_dir>/jobs/``), in the order the pipeline needs them:

==================  ===========================================  ==================================================
kind                name                                         calls (cached, resumable)
==================  ===========================================  ==================================================
dir_training        ``dir-training``                             ``registration.registration_from_config('dlir')``
pseudo_labels       ``pseudo-labels-<method>-<shard:03d>``       ``pseudolabels.generate_pseudo_labels`` on
                                                                 ``compute.shard_size`` train + val sequences
nnunet_prepare      ``nnunet-prepare``                           dense pseudo-labels, ``export_dataset`` and
                                                                 ``plan_and_preprocess`` for every model
nnunet_training     ``nnunet-train-<dataset>-<config>-fold<k>``  ``train_model(model, fold)``
nnunet_prediction   ``nnunet-predict-<model>-<set>``             ``predict_all`` on the test set (and 2D sparse on
                                                                 train + val and the TED sequences, for Fig. 2)
==================  ===========================================  ==================================================

The job functions (``task_*``) rebuild the validated profile from its JSON dump, so a job runs the same in this
process, in a subprocess or on a cluster node. Each job's key covers the profile sections its result depends on
(never ``compute``: changing the backend or the Slurm settings redoes nothing).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from .jobs import Job, job_key

__all__ = [
    "STAGES",
    "dir_training_jobs",
    "pseudo_label_jobs",
    "nnunet_prepare_jobs",
    "nnunet_training_jobs",
    "nnunet_prediction_jobs",
    "study_jobs",
    "stage_jobs",
]

#: Pipeline stages in order; each stage's jobs need the previous stage's to be done.
STAGES = ("dir_training", "pseudo_labels", "nnunet_prepare", "nnunet_training", "nnunet_prediction")
_KEY_SECTIONS = ("seed", "data", "registration", "pseudo_labels", "nnunet")
_MOD = __name__


# ----------------------------------------------------------------------------------------------------------------
# helpers shared by the builders (planning side) and the tasks (job side)
# ----------------------------------------------------------------------------------------------------------------


def _dump(cfg) -> dict:
    return cfg.model_dump(mode="json")


def _key(fn: str, cfg, *extra) -> str:
    dump = _dump(cfg)
    return job_key(fn, [{k: dump.get(k) for k in _KEY_SECTIONS}, *extra])


def _context(config: dict, run_dir: str):
    """``(cfg, paths)`` from a profile dump and the run directory (strict JSON validation, as ``load_config``)."""
    from ..config import StudyConfig
    from ..rundir import RunPaths

    cfg = StudyConfig.model_validate_json(json.dumps(config), strict=True)
    return cfg, RunPaths(run_dir)


def _device(device: str | None) -> str:
    """``'auto'``/None -> ``cuda`` when this process sees a GPU, else ``cpu`` (resolved where the job runs)."""
    if device in (None, "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _job_device(cfg, device: str | None) -> str:
    """The device a job is told: ``auto`` on Slurm (decided on the node), else the caller's."""
    return "auto" if cfg.compute.backend == "slurm" else (device or cfg.device)


def _segmentation():
    """nnU-Net v2 (:mod:`echo_utils.segmentation`), imported where a job needs it (importing it is cheap)."""
    from .. import segmentation

    return segmentation


def _data():
    from ..data import study

    return study


def _split_keys(cfg, paths, splits) -> list[tuple[str, str]]:
    study = _data()
    return [k for s in splits for k in study.study_sequences(cfg, paths, s)]


def _load(cfg, paths, splits) -> list:
    """The sequences of ``splits``, in the study's order."""
    return [s for split in splits for s in _data().load_study(cfg, paths, split)]


def _load_keys(cfg, paths, keys) -> list:
    """Only the sequences ``keys`` (``[patient, view]`` pairs): a pseudo-label shard must not read the whole cohort
    (806 sequences at 512 x 512 in the paper)."""
    listed_in = "this shard (the data changed since the jobs were planned)"
    return list(_data().iter_sequences(cfg, paths, [tuple(k) for k in keys], listed_in=listed_in))


# ----------------------------------------------------------------------------------------------------------------
# job functions (run where the job runs)
# ----------------------------------------------------------------------------------------------------------------


def _training_monitor(cfg, paths, val):
    """The phantom's end-point error logged during training (``registration.evidence.training_monitor``)."""
    from ..registration.evidence import training_monitor

    return training_monitor(cfg, paths, val)


def task_dir_training(config: dict, run_dir: str, device: str) -> dict:
    """Train (or read back) the DLIR network on the train split, validated on val, as notebooks 02 and 03 do."""
    from .. import registration

    cfg, paths = _context(config, run_dir)
    train, val = _load(cfg, paths, ["train"]), _load(cfg, paths, ["val"])
    model = registration.registration_from_config("dlir", cfg.registration, train=train, val=val,
                                                  run_dir=paths.registration, device=_device(device),
                                                  exclude_patients=_data().registration_exclusions(cfg, paths),
                                                  monitor=_training_monitor(cfg, paths, val))
    return {"outputs": [Path(model.run_dir) / "model.pt"]}


def _primary_registration(cfg, paths, device: str):
    """The registration notebook 03 uses (``registration.method``). The network comes from the ``dir-training``
    job's marker when that job is done with the current settings (no need to read the training data for the cache
    key), else from ``registration_from_config`` (trained or read from its cache)."""
    from .. import registration

    from .jobs import is_done, read_marker

    method = cfg.registration.method
    if method != "dlir":
        return registration.registration_from_config(method, cfg.registration)
    job = dir_training_jobs(cfg, paths)[0]
    if is_done(job):
        return registration.load_registration(Path(paths.root) / read_marker(job)["outputs"][0], device=device)
    train, val = _load(cfg, paths, ["train"]), _load(cfg, paths, ["val"])
    return registration.registration_from_config("dlir", cfg.registration, train=train, val=val,
                                                 run_dir=paths.registration, device=device,
                                                 exclude_patients=_data().registration_exclusions(cfg, paths),
                                                 monitor=_training_monitor(cfg, paths, val))


def task_pseudo_labels(config: dict, run_dir: str, device: str, keys: list) -> dict:
    """Pseudo-labels (forward, backward, Eq. 1) of the sequences ``keys`` with the study's registration, cached
    under ``pseudo_labels/<method>/`` where notebook 03 and the nnU-Net export read them."""
    from .. import pseudolabels

    cfg, paths = _context(config, run_dir)
    device = _device(device)
    seqs = _load_keys(cfg, paths, keys)
    method = cfg.registration.method
    out_dir = paths.pseudo_labels / method
    pseudolabels.generate_pseudo_labels(seqs, _primary_registration(cfg, paths, device), out_dir, cfg_pl=cfg.pseudo_labels,
                                  method_name=method, progress=False)
    return {"outputs": [pseudolabels.pseudo_label_path(out_dir, s, k) for s in seqs for k in pseudolabels.KINDS]}


def task_nnunet_prepare(config: dict, run_dir: str) -> dict:
    """Export every model's nnU-Net dataset (dense pseudo-labels for the dense models) and plan + preprocess it."""
    cfg, paths = _context(config, run_dir)
    seg = _segmentation()
    train, val, test = (_load(cfg, paths, [s]) for s in ("train", "val", "test"))
    models = cfg.nnunet.models
    dense = seg.dense_pseudo_labels(cfg, paths, train + val) if any(seg.SPECS[m].dense for m in models) else None
    outputs = []
    for model in models:
        seg.export_dataset(cfg, paths, model, train, val, test, dense)
        seg.plan_and_preprocess(cfg, paths, model)
        name = seg.dataset_name(cfg, model)
        outputs.append(Path(paths.nnunet) / "preprocessed" / name / "nnUNetPlans.json")
    return {"outputs": outputs}


def task_nnunet_training(config: dict, run_dir: str, device: str, model: str, fold: int) -> dict:
    """Train fold ``fold`` of ``model`` (resumes from ``checkpoint_latest.pth``)."""
    cfg, paths = _context(config, run_dir)
    out = _segmentation().train_model(cfg, paths, model, fold, _device(device))
    return {"outputs": [Path(out) / "checkpoint_final.pth"]}


def task_nnunet_prediction(config: dict, run_dir: str, device: str, model: str, splits: list,
                           out_name: str | None = None) -> dict:
    """Predict every sequence of ``splits`` with ``model`` (all folds averaged); cached per sequence."""
    cfg, paths = _context(config, run_dir)
    seg = _segmentation()
    seqs = _load(cfg, paths, splits)
    kw = {"out_name": out_name} if out_name else {}
    seg.predict_all(cfg, paths, model, seqs, _device(device), **kw)
    return {"outputs": [seg.prediction_path(paths, out_name or model, s) for s in seqs]}


def task_nnunet_prediction_fig2(config: dict, run_dir: str, device: str, model: str = "2d_sparse") -> dict:
    """2D sparse on the Fig. 2 sequences that are in no split (the paper: TED patients paired with CAMUS), as
    notebook 04 does (``predictions/2d_sparse_fig2``); nothing to do when every Fig. 2 sequence is in a split."""
    from ..data.study import evaluation_sequences

    cfg, paths = _context(config, run_dir)
    seg = _segmentation()
    known = {f"{p}_{v}" for p, v in _split_keys(cfg, paths, ["train", "val", "test"])}
    seqs = [s for s in evaluation_sequences(cfg, paths) if s.key not in known]
    if seqs:
        seg.predict_all(cfg, paths, model, seqs, _device(device), out_name="2d_sparse_fig2")
    return {"outputs": [seg.prediction_path(paths, "2d_sparse_fig2", s) for s in seqs]}


# ----------------------------------------------------------------------------------------------------------------
# builders (run where the jobs are planned: a notebook or ``python -m echo_utils.run --submit``)
# ----------------------------------------------------------------------------------------------------------------


def _job(cfg, paths, name, task, kind, after=(), key_extra=(), **kwargs) -> Job:
    fn = f"{_MOD}:{task}"
    kwargs = {"config": _dump(cfg), "run_dir": str(paths.root), **kwargs}
    return Job(name=name, fn=fn, kwargs=kwargs, kind=kind, run_dir=str(paths.root),
               key=_key(fn, cfg, *key_extra), after=tuple(after))


def dir_training_jobs(cfg, paths, device: str | None = None) -> list[Job]:
    """One job: the DLIR network's training."""
    return [_job(cfg, paths, "dir-training", "task_dir_training", "dir_training", device=_job_device(cfg, device))]


def pseudo_label_jobs(cfg, paths, device: str | None = None) -> list[Job]:
    """One job per ``compute.shard_size`` train + val sequences (the nnU-Net training data), in the study's order."""
    keys = [list(k) for k in _split_keys(cfg, paths, ["train", "val"])]
    size = cfg.compute.shard_size
    n = math.ceil(len(keys) / size)
    method = cfg.registration.method
    return [
        _job(cfg, paths, f"pseudo-labels-{method}-{i:03d}", "task_pseudo_labels", "pseudo_labels",
             after=["dir-training"], key_extra=[keys[i * size:(i + 1) * size]], device=_job_device(cfg, device),
             keys=keys[i * size:(i + 1) * size])
        for i in range(n)
    ]


def nnunet_prepare_jobs(cfg, paths, device: str | None = None, *, after=()) -> list[Job]:
    """One CPU job: dataset export, planning and preprocessing of every model."""
    return [_job(cfg, paths, "nnunet-prepare", "task_nnunet_prepare", "nnunet_prepare", after=after)]


def nnunet_training_jobs(cfg, paths, device: str | None = None) -> list[Job]:
    """One job per (dataset, configuration, fold): ``len(models) x len(folds)`` independent trainings.

    The 3D models come first: they take the longest, and a backend that runs a few jobs at once
    (``local.max_parallel``) then fills the cores with the short 2D trainings at the end instead of waiting for a
    3D training started last."""
    seg = _segmentation()
    jobs = []
    for model in sorted(cfg.nnunet.models, key=lambda m: -seg.SPECS[m].dim):
        ds, conf = seg.dataset_name(cfg, model), seg.configuration_name(cfg, model)
        for fold in cfg.nnunet.folds:
            jobs.append(_job(cfg, paths, f"nnunet-train-{ds}-{conf}-fold{fold}", "task_nnunet_training",
                             "nnunet_training", after=["nnunet-prepare"], key_extra=[model, fold],
                             device=_job_device(cfg, device), model=model, fold=int(fold)))
    return jobs


def nnunet_prediction_jobs(cfg, paths, device: str | None = None) -> list[Job]:
    """One job per prediction set: each model on the test split; 2D sparse on train + val (Fig. 2's control) and,
    with TED (the paper), on the Fig. 2 sequences that are in no split."""
    seg = _segmentation()
    sets = [(m, ["test"], None) for m in cfg.nnunet.models]
    if "2d_sparse" in cfg.nnunet.models:
        sets.append(("2d_sparse", ["train", "val"], "2d_sparse_train"))
    jobs = []
    for model, splits, out_name in sets:
        ds, conf = seg.dataset_name(cfg, model), seg.configuration_name(cfg, model)
        after = [f"nnunet-train-{ds}-{conf}-fold{f}" for f in cfg.nnunet.folds]
        label = "test" if splits == ["test"] else "trainval"
        jobs.append(_job(cfg, paths, f"nnunet-predict-{model}-{label}", "task_nnunet_prediction",
                         "nnunet_prediction", after=after, key_extra=[model, splits, out_name],
                         device=_job_device(cfg, device), model=model, splits=splits, out_name=out_name))
    if "2d_sparse" in cfg.nnunet.models and cfg.data.source == "camus" and cfg.data.ted_root:
        after = [f"nnunet-train-{seg.dataset_name(cfg, '2d_sparse')}-{seg.configuration_name(cfg, '2d_sparse')}"
                 f"-fold{f}" for f in cfg.nnunet.folds]
        jobs.append(_job(cfg, paths, "nnunet-predict-2d_sparse-fig2", "task_nnunet_prediction_fig2",
                         "nnunet_prediction", after=after, key_extra=["fig2"], device=_job_device(cfg, device),
                         model="2d_sparse"))
    return jobs


def _shard_names(cfg, paths) -> list[str]:
    """The pseudo-label shards' names; a pattern when the data set cannot be read here (a dry run without data)."""
    try:
        return [j.name for j in pseudo_label_jobs(cfg, paths)]
    except Exception:  # noqa: BLE001 - only for listing: submission plans the shards first and fails there
        return [f"pseudo-labels-{cfg.registration.method}-*"]


_BUILDERS = {
    "dir_training": dir_training_jobs,
    "pseudo_labels": pseudo_label_jobs,
    "nnunet_prepare": lambda cfg, paths, device=None: nnunet_prepare_jobs(cfg, paths, device,
                                                                          after=_shard_names(cfg, paths)),
    "nnunet_training": nnunet_training_jobs,
    "nnunet_prediction": nnunet_prediction_jobs,
}


def stage_jobs(stage: str, cfg, paths, device: str | None = None) -> list[Job]:
    """The jobs of one stage (one of :data:`STAGES`)."""
    if stage not in _BUILDERS:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
    return _BUILDERS[stage](cfg, paths, device)


def study_jobs(cfg, paths, device: str | None = None, stages=STAGES) -> list[list[Job]]:
    """The jobs of ``stages``, one list per stage, in pipeline order."""
    return [stage_jobs(s, cfg, paths, device) for s in stages]
