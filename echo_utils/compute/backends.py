"""Backends: where a job runs -- in this process (``inline``), in a local subprocess or on Slurm (both submitit).

``inline`` is today's behaviour: the job's function runs in the calling process, its output shows where the
caller's does. ``local`` and ``slurm`` hand the same call to submitit (:class:`submitit.LocalExecutor`,
:class:`submitit.SlurmExecutor`), each job with its own log folder ``<run_dir>/jobs/<name>/logs``; the call is
:class:`submitit.helpers.Checkpointable`, so a Slurm job that is preempted or reaches its time limit is requeued
(up to ``compute.slurm.max_requeue`` times) and resumes from the cached step's own checkpoints.

Every submission is recorded in ``submitted.json`` (backend, job id, time), so a later call -- a notebook executed
after ``python -m echo_utils.run --submit`` -- attaches to a job that is still queued or running instead of
submitting it twice.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from submitit.helpers import Checkpointable

from .jobs import Job, atomic_write_json, execute, is_done

__all__ = ["Resources", "resources", "SubmititBackend", "Handle", "JobCall", "NoSlurmError", "sbatch_script"]


class NoSlurmError(RuntimeError):
    """``backend: slurm`` on a machine without Slurm (no ``sbatch``/``srun`` on the PATH)."""


@dataclass(frozen=True)
class Resources:
    """What one job asks the scheduler for."""

    gpus: int
    cpus: int
    mem_gb: int
    timeout_min: int

    def describe(self) -> str:
        return f"{self.gpus} GPU, {self.cpus} CPU, {self.mem_gb} GB, {self.timeout_min} min"


def resources(job: Job, compute) -> Resources:
    """The resources of ``job`` under ``compute`` (a :class:`~echo_utils.config.ComputeConfig`).

    Slurm: the section's ``gpus_per_job`` (0 for CPU-only kinds), ``cpus``, ``mem_gb``, ``timeout_min``, then the
    ``per_kind`` override of the job's kind. Local and inline: ``local.gpus_per_job`` for GPU kinds, the
    machine's CPUs, no memory limit (0), ``local.timeout_min``.
    """
    if compute.backend == "slurm":
        s = compute.slurm
        r = dict(gpus=s.gpus_per_job if job.gpu else 0, cpus=s.cpus, mem_gb=s.mem_gb, timeout_min=s.timeout_min)
        over = s.per_kind.get(job.kind)
        if over is not None:
            r.update({("gpus" if k == "gpus_per_job" else k): v for k, v in over.model_dump().items() if v is not None})
        return Resources(**r)
    loc = compute.local
    return Resources(gpus=loc.gpus_per_job if job.gpu else 0, cpus=os.cpu_count() or 1, mem_gb=0,
                     timeout_min=loc.timeout_min)


def _slurm_parameters(job: Job, compute, after_ids: list[str]) -> dict:
    s = compute.slurm
    r = resources(job, compute)
    params = dict(job_name=job.name, time=r.timeout_min, cpus_per_task=r.cpus, mem=f"{r.mem_gb}GB")
    if r.gpus:
        params["gpus_per_node"] = r.gpus
    if s.partition:
        params["partition"] = s.partition
    if s.account:
        params["account"] = s.account
    if after_ids:
        params["dependency"] = "afterok:" + ":".join(after_ids)
        params["additional_parameters"] = {"kill-on-invalid-dep": "yes"}
    extra = dict(s.extra)
    if "additional_parameters" in extra and "additional_parameters" in params:
        extra["additional_parameters"] = {**params.pop("additional_parameters"), **extra["additional_parameters"]}
    params.update(extra)
    return params


def sbatch_script(job: Job, compute, after_ids: list[str] | None = None) -> str:
    """The sbatch script submitit would write for ``job`` (no Slurm needed): for ``--dry-run``."""
    from submitit.slurm.slurm import _make_sbatch_string

    params = _slurm_parameters(job, compute, after_ids or [])
    return _make_sbatch_string(command="python -u -m submitit.core._submit <folder>",
                               folder=str(job.folder / "logs"), **params)


class Handle:
    """A submitted (or attached) job: its state is read from the marker first, then from submitit."""

    def __init__(self, job: Job, backend: str, job_id: str, sjob=None, pid: int | None = None):
        self.job, self.backend, self.job_id, self.sjob, self.pid = job, backend, str(job_id), sjob, pid

    def state(self) -> str:
        """``'pending'``, ``'running'``, ``'done'`` or ``'failed'``."""
        if self.sjob is not None and self.backend == "local":
            # done only once the process has exited too: a job that wrote its marker may still be finishing, and
            # a caller that returns then (a notebook's kernel shutting down) would interrupt it
            if not self.sjob.done():
                return "running"
            return "done" if is_done(self.job) else "failed"
        if self.pid is not None:  # a local job started by another process: the same rule
            return "running" if _alive(self.pid) else ("done" if is_done(self.job) else "failed")
        if is_done(self.job):
            return "done"
        if self.sjob is not None:
            try:
                st = self.sjob.state.upper()
            except Exception:  # noqa: BLE001 - sacct hiccups: keep waiting
                return "running"
            if st.startswith(("PENDING", "REQUEUE", "CONFIGURING", "SUSPENDED")):
                return "pending"
            if st.startswith(("RUNNING", "COMPLETING", "UNKNOWN", "READY")):
                return "running"
            # COMPLETED without a marker is a failure too (the function raised after a requeue, or was killed)
            return "failed" if not is_done(self.job) else "done"
        return "failed"

    def cancel(self) -> None:
        if self.sjob is not None:
            self.sjob.cancel(check=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a reused pid of some other program is not our job
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        return b"submitit" in cmd
    except OSError:
        return True


class SubmititBackend:
    """Submit :class:`Job` s through submitit's local or Slurm executor."""

    def __init__(self, compute):
        self.compute = compute
        self.kind = compute.backend
        if self.kind not in ("local", "slurm"):
            raise ValueError(f"SubmititBackend handles 'local' and 'slurm', not {self.kind!r}")
        if self.kind == "slurm" and not (shutil.which("sbatch") and shutil.which("srun")):
            raise NoSlurmError(
                "compute.backend is 'slurm' but this machine has no Slurm (sbatch/srun not on the PATH). Run on the "
                "cluster's login node, use --dry-run to list the jobs, or set compute.backend: local."
            )

    def _executor(self, job: Job, after_ids: list[str]):
        import submitit

        folder = job.folder / "logs"
        if self.kind == "local":
            ex = submitit.LocalExecutor(folder=folder, max_num_timeout=self.compute.local.max_requeue)
            r = resources(job, self.compute)
            ex.update_parameters(timeout_min=r.timeout_min, gpus_per_node=r.gpus)
            return ex
        ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=self.compute.slurm.max_requeue)
        ex.update_parameters(**_slurm_parameters(job, self.compute, after_ids))
        return ex

    def submit(self, job: Job, after_ids: list[str] | None = None) -> Handle:
        """Submit ``job`` (after the Slurm jobs ``after_ids`` succeeded) and record it in ``submitted.json``."""
        sjob = self._executor(job, list(after_ids or [])).submit(JobCall(job))
        record = {"backend": self.kind, "job_id": str(sjob.job_id), "submitted": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        atomic_write_json(job.folder / "submitted.json", record)
        return Handle(job, self.kind, sjob.job_id, sjob=sjob)

    def attach(self, job: Job) -> Handle | None:
        """A handle on the job's earlier submission if it is still queued or running, else None."""
        path = job.folder / "submitted.json"
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if rec.get("backend") != self.kind:
            return None
        if self.kind == "slurm":
            import submitit

            sjob = submitit.SlurmJob(folder=job.folder / "logs", job_id=rec["job_id"])
            h = Handle(job, "slurm", rec["job_id"], sjob=sjob)
            return h if h.state() in ("pending", "running") else None
        pid = int(rec["job_id"])
        return Handle(job, "local", rec["job_id"], pid=pid) if _alive(pid) else None


class JobCall(Checkpointable):
    """``execute(job)`` as a submitit call; requeued as it is on a timeout or a preemption (the cached steps resume
    from their own checkpoints)."""

    def __init__(self, job: Job):
        self.job = job

    def __call__(self) -> dict:
        return execute(self.job)
