"""Running a set of jobs on the profile's backend: the one call of the notebooks and of ``run.py --submit``.

:func:`run_jobs` skips the jobs that are done, attaches to those still queued or running from an earlier
submission, submits the rest and (by default) waits for them with a progress display. :func:`run_stages` does it
stage after stage (notebook 03: DIR training, then the pseudo-label shards). :func:`submit_study` hands the whole
pipeline to the backend at once: on Slurm every stage is submitted with an ``afterok`` dependency on the previous
one and the call returns; ``dry_run`` lists the jobs, their resources and the sbatch header instead.
"""

from __future__ import annotations

import shutil

from .backends import NoSlurmError, SubmititBackend, resources, sbatch_script
from .jobs import Job, execute, is_done, write_spec
from .progress import JobsReport, job_row, wait_for
from ..study import Study
from .pipeline import STAGES, stage_jobs

__all__ = ["run_jobs", "run_stages", "submit_study", "submit_main", "plan_study", "compute_settings", "NoSlurmError"]


def compute_settings(cfg_or_compute):
    """The :class:`~echo_utils.config.ComputeConfig` of a profile (or the section itself, or its dict)."""
    from ..config import ComputeConfig

    if isinstance(cfg_or_compute, ComputeConfig):
        return cfg_or_compute
    if isinstance(cfg_or_compute, dict):
        return ComputeConfig.model_validate(cfg_or_compute)
    return cfg_or_compute.compute


def _check_names(jobs: list[Job]) -> None:
    seen = set()
    for j in jobs:
        if j.name in seen:
            raise ValueError(f"two jobs are named {j.name!r}; job names must be unique")
        seen.add(j.name)


def run_jobs(jobs, cfg, *, wait: bool = True, progress: bool = True, log=print) -> JobsReport:
    """Run ``jobs`` on the backend of ``cfg.compute``; jobs that are done are skipped.

    Parameters
    ----------
    jobs : :class:`~echo_utils.compute.jobs.Job` s, in the order they are started; a job whose ``after`` names
        others of them starts once those are done (``inline``: give them in that order).
    cfg : the profile (:class:`~echo_utils.config.StudyConfig`) or its ``compute`` section.
    wait : wait until every job is done or failed (``local``: at most ``local.max_parallel`` at once); False
        submits them all and returns (their state in the report is ``pending``).
    progress : a tqdm display of jobs pending / running / done / failed (``local`` and ``slurm``).

    With ``backend: inline``, jobs whose kinds are all in ``compute.local_kinds`` run on the ``local`` backend
    instead (``local.max_parallel`` at once): the notebook's other steps stay in its process.

    Returns a :class:`~echo_utils.compute.progress.JobsReport`, its rows in the order of ``jobs``. ``inline`` runs the jobs one after the other in
    this process and lets the first error propagate unchanged, as the notebooks did before jobs existed; on the
    other backends a failure is a :class:`~echo_utils.compute.progress.JobsFailed` naming every failed job, its log
    tail and its resubmit command, raised once the others are finished.
    """
    compute = compute_settings(cfg)
    jobs = list(jobs)
    _check_names(jobs)
    if compute.backend == "inline" and jobs and all(j.kind in compute.local_kinds for j in jobs):
        compute = compute.model_copy(update={"backend": "local"})  # compute.local_kinds: these run as processes
    for job in jobs:
        write_spec(job, {"compute": compute.model_dump(mode="json")})
    done = [j for j in jobs if is_done(j)]
    todo = [j for j in jobs if not is_done(j)]
    report = JobsReport(backend=compute.backend)
    if compute.backend == "inline":
        for job in jobs:
            execute(job)  # a done job returns its marker without running
            report.rows.append(job_row(job, "done", job in done, backend="inline"))
        return report
    backend = SubmititBackend(compute)
    handles = {}
    for job in todo:
        h = backend.attach(job)
        if h is not None:
            handles[job.name] = h
            log(f"job {job.name}: attached to {compute.backend} job {h.job_id}, submitted earlier", flush=True)
    queued = [j for j in todo if j.name not in handles]
    if not wait:
        for job in queued:
            handles[job.name] = backend.submit(job)
        report.rows += [job_row(job, "done", True, backend=compute.backend) for job in done]
        report.rows += [job_row(h.job, "pending", False, h.job_id, compute.backend) for h in handles.values()]
        return report
    report = wait_for(
        handles, queued, backend.submit, backend=compute.backend, done_before=done,
        max_parallel=compute.local.max_parallel if compute.backend == "local" else None,
        poll_seconds=compute.poll_seconds, progress=progress, log=log,
    )
    order = {job.name: i for i, job in enumerate(jobs)}
    report.rows.sort(key=lambda r: order[r["name"]])  # the jobs' order, as inline, whatever order they finished in
    return report


def run_stages(stages, study: Study, device: str | None = None, *, pipelined: bool = False, progress: bool = True,
               log=print) -> JobsReport:
    """Run the study's ``stages`` (names from :data:`~echo_utils.compute.pipeline.STAGES`) one after the other,
    waiting for each; returns the combined report. E.g. notebook 03:
    ``run_stages(["dir_training", "pseudo_labels"], study, device)``.

    ``pipelined``: plan every stage's jobs first and run them as one set, each job as soon as the jobs it needs
    (its ``after``) are done, e.g. notebook 04's predictions of a model while the other models still train (a slot
    of ``local.max_parallel`` freed by a short training is not left idle until the longest ends). Only for stages
    that can be planned before the stage before them has run (nnU-Net's training and prediction).

    The report's ``backend`` names the backend(s) the stages actually ran on (``compute.local_kinds`` may send a
    stage of an ``inline`` profile to ``local``), in the order used, e.g. ``"local"`` or ``"inline, local"``; with
    no stages, the profile's backend."""
    if not isinstance(study, Study):
        raise TypeError(f"run_stages takes a Study (echo_utils.study.Study.of(cfg, paths)), not {type(study).__name__}")
    cfg = study.cfg
    if isinstance(stages, str):
        stages = [stages]
    if pipelined:
        jobs = [job for stage in stages for job in stage_jobs(stage, study, device)]
        reports = [run_jobs(jobs, cfg, progress=progress, log=log)] if stages else []
    else:
        reports = [run_jobs(stage_jobs(stage, study, device), cfg, progress=progress, log=log) for stage in stages]
    used = list(dict.fromkeys(r.backend for r in reports))
    report = JobsReport(backend=", ".join(used) if used else compute_settings(cfg).backend)
    for r in reports:
        report.rows += r.rows
    return report


def plan_study(study: Study, device: str | None = None, stages=STAGES) -> tuple[list[list[Job]], dict[str, str]]:
    """The jobs of every stage that can be planned now, and ``{stage: reason}`` for those that cannot (the
    pseudo-label shards need the data set's split; without the data they are listed as unknown)."""
    planned, missing = [], {}
    for stage in stages:
        try:
            planned.append(stage_jobs(stage, study, device))
        except Exception as exc:  # noqa: BLE001 - reported, the listing goes on
            planned.append([])
            missing[stage] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return planned, missing


def _table(planned: list[list[Job]], stages, compute, missing: dict[str, str]) -> str:
    rows = [("stage", "job", "resources", "after", "state")]
    for stage, jobs in zip(stages, planned):
        if stage in missing:
            rows.append((stage, "(cannot be listed yet)", "", "", missing[stage][:90]))
        for j in jobs:
            after = ", ".join(j.after) if len(j.after) <= 2 else f"{j.after[0]} ... ({len(j.after)} jobs)"
            rows.append((stage, j.name, resources(j, compute).describe(), after,
                         "done" if is_done(j) else "to submit"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows)


def submit_study(study: Study, device: str | None = None, *, stages=STAGES, dry_run: bool = False,
                 progress: bool = True, log=print) -> int:
    """Submit the study's jobs on the profile's backend (``python -m echo_utils.run --submit``); returns an exit
    code (0 = submitted or listed).

    * ``slurm``: every stage is submitted at once, each job after the Slurm jobs of the stage before it
      (``--dependency=afterok``); the call returns, and ``make book`` renders what the jobs produced once they are
      done (the notebooks attach to jobs still running).
    * ``local`` and ``inline``: there is no scheduler to hand the chain to, so the stages run here, one after the
      other, and the call waits.
    * ``dry_run``: list every job with its resources and the sbatch header of one job per kind; submit nothing.
    """
    cfg, paths = study.cfg, study.paths
    compute = compute_settings(cfg)
    stages = list(stages)
    planned, missing = plan_study(study, device, stages)
    n_jobs = sum(len(j) for j in planned)
    n_todo = sum(not is_done(j) for jobs in planned for j in jobs)
    if dry_run:
        log(_table(planned, stages, compute, missing))
        if compute.backend == "slurm":
            shown = set()
            for jobs in planned:
                for j in jobs:
                    if j.kind not in shown:
                        shown.add(j.kind)
                        log(f"\n# sbatch header of {j.name} ({j.kind}):")
                        log("\n".join(ln for ln in sbatch_script(j, compute, ["<ids of: after>"] if j.after else [])
                                      .splitlines() if ln.startswith("#SBATCH")))
        where = {"slurm": "to Slurm" + (f" (partition {compute.slurm.partition})" if compute.slurm.partition else ""),
                 "local": "as local processes", "inline": "in this process"}[compute.backend]
        slurm_note = ""
        if compute.backend == "slurm" and not shutil.which("sbatch"):
            slurm_note = " This machine has no Slurm (sbatch not on the PATH): submit from the cluster's login node."
        unknown = f" Not listed yet: {', '.join(missing)} (see the state column)." if missing else ""
        log(f"\ndry run: {n_todo} of {n_jobs} jobs would be submitted {where}; {n_jobs - n_todo} are done. "
            f"Nothing was submitted.{unknown}{slurm_note}")
        return 0
    if missing:
        raise ValueError("cannot plan the jobs of " + "; ".join(f"{s} ({r})" for s, r in missing.items()))
    if compute.backend != "slurm":
        log(f"{compute.backend} backend: the {n_todo} missing jobs of {n_jobs} run here, stage after stage")
        for stage, jobs in zip(stages, planned):
            # stages are re-planned when their turn comes: a stage's jobs may depend on the previous one's outputs
            run_jobs(stage_jobs(stage, study, device), cfg, progress=progress, log=log)
        return 0
    backend = SubmititBackend(compute)  # NoSlurmError without sbatch/srun
    slurm_ids: dict[str, str] = {}
    lines = []
    for jobs in planned:
        for job in jobs:
            write_spec(job, {"compute": compute.model_dump(mode="json")})
            if is_done(job):
                continue
            h = backend.attach(job)
            if h is None:
                h = backend.submit(job, after_ids=[slurm_ids[a] for a in job.after if a in slurm_ids])
            slurm_ids[job.name] = h.job_id
            lines.append(f"  {h.job_id:>10}  {job.name}  ({resources(job, compute).describe()})")
    log("\n".join([f"submitted {len(lines)} Slurm jobs ({n_jobs - len(lines)} were done):", *lines]))
    log(f"follow them with `squeue --me` or `python -m echo_utils.compute status {paths.root}`; once they are done, "
        "`make book` (same PARAMS and RUN_DIR) renders what they produced.")
    return 0



def submit_main(params, *, overrides=None, run_dir=None, device: str | None = None, dry_run: bool = False,
                log=print) -> int:
    """``python -m echo_utils.run --params FILE [--set K=V ...] --submit [--dry-run]``.

    Loads the profile; a real submission then goes through the run directory's guards
    (:func:`echo_utils.rundir.open_run_dir`: ``run.json`` settings check, no other runner holding ``run.lock``) and
    holds the lock while it submits (or, ``local``/``inline``, while the jobs run). A dry run names the run directory
    but creates nothing. Every expected failure (a bad profile, no Slurm, missing data, failed jobs) is one
    ``error:`` message on stderr and exit code 1, never a traceback.
    """
    import sys

    from ..config import ConfigError
    from ..rundir import RunLock, RunPaths, load_profile, open_run_dir, run_dir_path
    from .progress import JobsFailed

    try:
        cfg = load_profile(params, overrides, device)  # once: the dry run and the Slurm check need it first
        if dry_run:  # nothing is created: the run directory is only named
            study = Study(cfg, RunPaths(run_dir_path(cfg.name, run_dir)))
            return submit_study(study, device or cfg.device, dry_run=True, log=log)
        if cfg.compute.backend == "slurm":
            SubmititBackend(cfg.compute)  # NoSlurmError first, before anything is planned or created
        paths = open_run_dir(cfg, run_dir, params=params, overrides=overrides)
        with RunLock(paths.root, log=log):  # the cohort is resolved under the lock, when the shards are planned
            return submit_study(Study(cfg, paths), device or cfg.device, log=log)
    except (ConfigError, NoSlurmError, JobsFailed, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
