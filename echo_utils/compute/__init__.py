"""Cluster jobs: the study's independent units of work, run inline, as local processes or on Slurm (submitit).

The profile's ``compute`` section picks the backend (:class:`~echo_utils.config.ComputeConfig`): ``inline`` (the
default: the notebook's own process, as before), ``local`` (submitit subprocesses, the same job folders and logs
as on a cluster) or ``slurm``. The modules, one concept each:

* :mod:`.jobs` -- a :class:`Job` (stable name, function, arguments, folder ``<run_dir>/jobs/<name>/``, done marker);
* :mod:`.backends` -- submission through submitit, resources per job kind, the sbatch header;
* :mod:`.progress` -- waiting with a pending / running / done / failed display, log tails and resubmit commands;
* :mod:`.pipeline` -- the study's jobs: DIR training, pseudo-label shards, nnU-Net preparation, training,
  prediction (each job calls its stage of :mod:`echo_utils.study.stages`);
* :mod:`.runner` -- :func:`run_jobs`, :func:`run_stages` (the notebooks) and :func:`submit_study` (``--submit``).

>>> compute.run_stages(["dir_training", "pseudo_labels"], study, device)     # doctest: +SKIP
"""

from .backends import NoSlurmError, Resources, resources
from .jobs import JOB_KINDS, Job, execute, is_done, log_tail
from .progress import JobsFailed, JobsReport, resubmit_command
from .runner import plan_study, run_jobs, run_stages, submit_study
from .pipeline import (
    STAGES,
    dir_training_jobs,
    nnunet_prediction_jobs,
    nnunet_prepare_jobs,
    nnunet_training_jobs,
    pseudo_label_jobs,
    stage_jobs,
    study_jobs,
)

__all__ = [
    "Job",
    "JOB_KINDS",
    "STAGES",
    "JobsFailed",
    "JobsReport",
    "NoSlurmError",
    "Resources",
    "resources",
    "execute",
    "is_done",
    "log_tail",
    "resubmit_command",
    "run_jobs",
    "run_stages",
    "submit_study",
    "plan_study",
    "stage_jobs",
    "study_jobs",
    "dir_training_jobs",
    "pseudo_label_jobs",
    "nnunet_prepare_jobs",
    "nnunet_training_jobs",
    "nnunet_prediction_jobs",
]
