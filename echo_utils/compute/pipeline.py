"""The study's units of work as jobs: DIR training, pseudo-label shards, nnU-Net preparation, training, prediction.

Each builder returns :class:`~echo_utils.compute.jobs.Job` s with stable names (their folders under
``<run_dir>/jobs/``), in the order the pipeline needs them:

==================  ===========================================  ==================================================
kind                name                                         calls (cached, resumable)
==================  ===========================================  ==================================================
dir_training        ``dir-training``                             ``stages.registration`` (``'dlir'``)
pseudo_labels       ``pseudo-labels-<method>-<shard:03d>``       ``stages.pseudo_labels`` on ``compute.shard_size``
                                                                 train + val sequences
nnunet_prepare      ``nnunet-prepare``                           ``stages.nnunet_datasets`` (every model)
nnunet_training     ``nnunet-train-<dataset>-<config>-fold<k>``  ``stages.model(model, fold)``
nnunet_prediction   ``nnunet-predict-<model>-<set>``             ``stages.predictions`` on the test set (and 2D
                                                                 sparse on train + val and, ``stages.
                                                                 fig2_predictions``, the TED sequences: Fig. 2)
==================  ===========================================  ==================================================

Each job function (``task_*``) rebuilds the :class:`~echo_utils.study.Study` from its JSON dump
(:meth:`~echo_utils.study.Study.to_dict`: the profile, the run directory and the cohort resolved where the jobs were
planned), so a job runs the same in this process, in a subprocess or on a cluster node without working the cohort
out again, and calls the stage of :mod:`echo_utils.study.stages` it stands for. Each job's key covers the profile
sections its result depends on (never ``compute``: changing the backend or the Slurm settings redoes nothing); it
names the job function as ``echo_utils.compute.study:<task>``, this module's name until 2026-12-03, so the done
markers of earlier runs stay valid.

The builders take a :class:`~echo_utils.study.Study` (``builder(study, device)``); a profile is refused with a
TypeError that says so.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..study import Study, stages
from .jobs import Job, is_done, job_key, read_marker

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
#: the module the job keys name (this module's earlier name): renaming it must not make finished jobs stale
_KEY_MOD = "echo_utils.compute.study"


def _check_study(study) -> Study:
    """``study`` itself; anything else (the earlier ``cfg, paths`` form) is a TypeError naming what to pass."""
    if not isinstance(study, Study):
        raise TypeError(f"the compute builders take a Study (echo_utils.study.Study.of(cfg, paths)), not "
                        f"{type(study).__name__}")
    return study


def _key(task: str, cfg, *extra) -> str:
    """A job's key: the profile sections the work depends on, without the speed-only keys (threads, workers), so
    that a run with more threads reuses the finished jobs."""
    from ..rundir.settings import without_runtime_keys

    dump = without_runtime_keys(cfg.model_dump(mode="json"))
    return job_key(f"{_KEY_MOD}:{task}", [{k: dump.get(k) for k in _KEY_SECTIONS}, *extra])


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


# ----------------------------------------------------------------------------------------------------------------
# job functions (run where the job runs): each rebuilds the study and calls its stage
# ----------------------------------------------------------------------------------------------------------------


def task_dir_training(study: dict, device: str) -> dict:
    """Train (or read back) the DLIR network (:func:`echo_utils.study.stages.registration`)."""
    model = stages.registration(Study.from_dict(study), _device(device), name="dlir")
    return {"outputs": [Path(model.run_dir) / "model.pt"]}


def _primary_registration(study: Study, device: str):
    """The registration the pseudo-labels use (``registration.method``). The network comes from the
    ``dir-training`` job's marker when that job is done with the current settings (a shard need not read the
    training data for the cache key), else from :func:`echo_utils.study.stages.registration`."""
    if study.cfg.registration.method == "dlir":
        job = dir_training_jobs(study)[0]
        if is_done(job):
            from ..registration import load_registration

            return load_registration(Path(study.paths.root) / read_marker(job)["outputs"][0], device=device)
    return stages.registration(study, device)


def task_pseudo_labels(study: dict, device: str, keys: list) -> dict:
    """Pseudo-labels of the sequences ``keys`` with the study's registration
    (:func:`echo_utils.study.stages.pseudo_labels`)."""
    s = Study.from_dict(study)
    device = _device(device)
    return {"outputs": stages.pseudo_labels(s, _primary_registration(s, device), keys)}


def task_nnunet_prepare(study: dict) -> dict:
    """Every model's nnU-Net dataset (:func:`echo_utils.study.stages.nnunet_datasets`)."""
    return {"outputs": stages.nnunet_datasets(Study.from_dict(study))}


def task_nnunet_training(study: dict, device: str, model: str, fold: int) -> dict:
    """Fold ``fold`` of ``model`` (:func:`echo_utils.study.stages.model`)."""
    return {"outputs": [stages.model(Study.from_dict(study), model, fold, _device(device))]}


def task_nnunet_prediction(study: dict, device: str, model: str, splits: list, out_name: str | None = None) -> dict:
    """Every sequence of ``splits`` predicted by ``model`` (:func:`echo_utils.study.stages.predictions`)."""
    return {"outputs": stages.predictions(Study.from_dict(study), model, splits, _device(device), out_name=out_name)}


def task_nnunet_prediction_fig2(study: dict, device: str, model: str = "2d_sparse") -> dict:
    """2D sparse on the Fig. 2 sequences that are in no split (:func:`echo_utils.study.stages.fig2_predictions`)."""
    return {"outputs": stages.fig2_predictions(Study.from_dict(study), _device(device), model)}


# ----------------------------------------------------------------------------------------------------------------
# builders (run where the jobs are planned: a notebook or ``python -m echo_utils.run --submit``)
# ----------------------------------------------------------------------------------------------------------------


def _job(study: Study, name, task, kind, after=(), key_extra=(), **kwargs) -> Job:
    _check_study(study)
    kwargs = {"study": study.to_dict(), **kwargs}
    return Job(name=name, fn=f"{_MOD}:{task}", kwargs=kwargs, kind=kind, run_dir=str(study.paths.root),
               key=_key(task, study.cfg, *key_extra), after=tuple(after))


def dir_training_jobs(study: Study, device: str | None = None) -> list[Job]:
    """One job: the DLIR network's training."""
    return [_job(study, "dir-training", "task_dir_training", "dir_training",
                 device=_job_device(study.cfg, device))]


def pseudo_label_jobs(study: Study, device: str | None = None) -> list[Job]:
    """One job per ``compute.shard_size`` train + val sequences (the nnU-Net training data), in the study's order."""
    cfg = _check_study(study).cfg
    keys = [list(k) for split in ("train", "val") for k in study.cohort.keys(split)]
    size = cfg.compute.shard_size
    n = math.ceil(len(keys) / size)
    method = cfg.registration.method
    return [
        _job(study, f"pseudo-labels-{method}-{i:03d}", "task_pseudo_labels", "pseudo_labels",
             after=["dir-training"], key_extra=[keys[i * size:(i + 1) * size]], device=_job_device(cfg, device),
             keys=keys[i * size:(i + 1) * size])
        for i in range(n)
    ]


def nnunet_prepare_jobs(study: Study, device: str | None = None, *, after=()) -> list[Job]:
    """One CPU job: dataset export, planning and preprocessing of every model."""
    return [_job(study, "nnunet-prepare", "task_nnunet_prepare", "nnunet_prepare", after=after)]


def nnunet_training_jobs(study: Study, device: str | None = None) -> list[Job]:
    """One job per (dataset, configuration, fold): ``len(models) x len(folds)`` independent trainings.

    The 3D models come first: they take the longest, and a backend that runs a few jobs at once
    (``local.max_parallel``) then fills the cores with the short 2D trainings at the end instead of waiting for a
    3D training started last."""
    cfg, seg = _check_study(study).cfg, _segmentation()
    jobs = []
    for model in sorted(cfg.nnunet.models, key=lambda m: -seg.SPECS[m].dim):
        ds, conf = seg.dataset_name(cfg.nnunet, model), seg.configuration_name(cfg.nnunet, model)
        for fold in cfg.nnunet.folds:
            jobs.append(_job(study, f"nnunet-train-{ds}-{conf}-fold{fold}", "task_nnunet_training",
                             "nnunet_training", after=["nnunet-prepare"], key_extra=[model, fold],
                             device=_job_device(cfg, device), model=model, fold=int(fold)))
    return jobs


def nnunet_prediction_jobs(study: Study, device: str | None = None) -> list[Job]:
    """One job per prediction set: each model on the test split; 2D sparse on train + val (Fig. 2's control) and,
    with TED (the paper), on the Fig. 2 sequences that are in no split."""
    cfg, seg = _check_study(study).cfg, _segmentation()
    nn = cfg.nnunet
    sets = [(m, ["test"], None) for m in nn.models]
    if "2d_sparse" in cfg.nnunet.models:
        sets.append(("2d_sparse", ["train", "val"], "2d_sparse_train"))
    jobs = []
    for model, splits, out_name in sets:
        ds, conf = seg.dataset_name(nn, model), seg.configuration_name(nn, model)
        after = [f"nnunet-train-{ds}-{conf}-fold{f}" for f in nn.folds]
        label = "test" if splits == ["test"] else "trainval"
        jobs.append(_job(study, f"nnunet-predict-{model}-{label}", "task_nnunet_prediction",
                         "nnunet_prediction", after=after, key_extra=[model, splits, out_name],
                         device=_job_device(cfg, device), model=model, splits=splits, out_name=out_name))
    if "2d_sparse" in cfg.nnunet.models and cfg.data.source == "camus" and cfg.data.ted_root:
        after = [f"nnunet-train-{seg.dataset_name(nn, '2d_sparse')}-{seg.configuration_name(nn, '2d_sparse')}"
                 f"-fold{f}" for f in nn.folds]
        jobs.append(_job(study, "nnunet-predict-2d_sparse-fig2", "task_nnunet_prediction_fig2",
                         "nnunet_prediction", after=after, key_extra=["fig2"], device=_job_device(cfg, device),
                         model="2d_sparse"))
    return jobs


def _shard_names(study: Study) -> list[str]:
    """The pseudo-label shards' names; a pattern when the data set cannot be read here (a dry run without data)."""
    try:
        return [j.name for j in pseudo_label_jobs(study)]
    except Exception:  # noqa: BLE001 - only for listing: submission plans the shards first and fails there
        return [f"pseudo-labels-{study.cfg.registration.method}-*"]


_BUILDERS = {
    "dir_training": dir_training_jobs,
    "pseudo_labels": pseudo_label_jobs,
    "nnunet_prepare": lambda study, device=None: nnunet_prepare_jobs(study, device, after=_shard_names(study)),
    "nnunet_training": nnunet_training_jobs,
    "nnunet_prediction": nnunet_prediction_jobs,
}


def stage_jobs(stage: str, study: Study, device: str | None = None) -> list[Job]:
    """The jobs of one stage (one of :data:`STAGES`) of ``study``."""
    if stage not in _BUILDERS:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
    return _BUILDERS[stage](_check_study(study), device)


def study_jobs(study: Study, device: str | None = None, stages=STAGES) -> list[list[Job]]:
    """The jobs of ``stages``, one list per stage, in pipeline order."""
    _check_study(study)
    return [stage_jobs(s, study, device) for s in stages]
