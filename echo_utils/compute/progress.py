"""Waiting for submitted jobs: a progress display of pending / running / done / failed, and the failure report.

:func:`wait_for` polls the handles of submitted jobs (``compute.poll_seconds`` apart), keeps at most
``max_parallel`` of them running (the local executor has no queue of its own: on a small machine all jobs at once
would fight for the cores), starts a job only once the jobs of the same set it names in ``after`` are done, and
returns a :class:`JobsReport`. A failed job does not stop the others, except those that need it (they are not run
and count as failed); at the end :class:`JobsFailed` lists each failed job with the tail of its log and the command
that resubmits it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from .jobs import Job, log_tail, read_marker

__all__ = ["JobsReport", "JobsFailed", "wait_for", "resubmit_command", "job_row", "STATES"]

#: The states a job is shown in, in display order.
STATES = ("pending", "running", "done", "failed")


def resubmit_command(job: Job) -> str:
    """The shell command that resubmits ``job`` alone (its folder's ``job.json`` holds everything needed)."""
    return f"python -m echo_utils.compute resubmit {job.folder}"


@dataclass
class JobsReport:
    """What happened to a set of jobs: one row per job (name, kind, model and fold where the job has them, state,
    skipped, seconds, job id, and the backend that ran it).

    ``backend`` is the backend the jobs actually ran on: with ``backend: inline`` in the profile, jobs whose kinds are
    all in ``compute.local_kinds`` run on ``local``, and the report says ``local``. A report combining stages that ran
    on different backends (:func:`~echo_utils.compute.runner.run_stages`) names them all, in the order used
    (e.g. ``"inline, local"``); each row's ``backend`` says which ran that job."""

    backend: str
    rows: list[dict] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATES}
        for r in self.rows:
            out[r["state"]] = out.get(r["state"], 0) + 1
        return out

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.rows if r["state"] == "failed"]

    def table(self):
        """The rows as a pandas DataFrame indexed by job name."""
        import pandas as pd

        return pd.DataFrame(self.rows).set_index("name") if self.rows else pd.DataFrame()

    def summary(self) -> str:
        c = self.counts()
        skipped = sum(r["skipped"] for r in self.rows)
        return (f"{len(self.rows)} jobs ({self.backend}): " + ", ".join(f"{c[s]} {s}" for s in STATES)
                + f"; {skipped} were already done")


class JobsFailed(RuntimeError):
    """Some jobs failed: the message shows each one's log tail and its resubmit command."""

    def __init__(self, report: JobsReport, jobs: dict[str, Job], tail_lines: int = 25):
        self.report = report
        parts = [f"{len(report.failed)} of {len(report.rows)} jobs failed ({report.backend} backend)."]
        for r in report.failed:
            job = jobs[r["name"]]
            if r.get("not_run"):
                parts += ["", f"== job {job.name} ({job.kind}) was not run: {r['not_run']}"]
                continue
            parts += [
                "",
                f"== job {job.name} ({job.kind}, id {r.get('job_id') or '-'}) failed; folder {job.folder}",
                log_tail(job, tail_lines) or "(no log written)",
                f"resubmit it:   {resubmit_command(job)}",
            ]
        parts += ["", "Finished jobs are kept: resubmitting the whole set redoes only the failed and missing ones."]
        super().__init__("\n".join(parts))


#: Job arguments copied into the report's rows (so a notebook can tabulate, e.g., training time per model and fold).
ROW_ARGS = ("model", "fold")


def job_row(job: Job, state: str, skipped: bool, job_id: str | None = None, backend: str | None = None) -> dict:
    """One row of a :class:`JobsReport`; ``seconds`` is the job's own run time from its marker (also when it was
    done before: the time it took then); ``backend`` the backend that ran (or would have run) the job."""
    marker = read_marker(job) if state == "done" else None
    return {"name": job.name, "kind": job.kind, **{k: job.kwargs[k] for k in ROW_ARGS if k in job.kwargs},
            "state": state, "skipped": skipped, "seconds": marker.get("seconds") if marker else None,
            "job_id": job_id, "backend": backend}


def wait_for(
    handles: dict,
    queued: list[Job],
    submit: Callable[[Job], object],
    *,
    backend: str,
    done_before: list[Job] = (),
    max_parallel: int | None = None,
    poll_seconds: float = 5.0,
    progress: bool = True,
    log=print,
) -> JobsReport:
    """Submit ``queued`` jobs as slots free up and poll every handle until all are done or failed.

    Parameters
    ----------
    handles : ``{name: Handle}`` of jobs already submitted (or attached).
    queued : jobs not submitted yet, in the order they are started; ``submit(job) -> Handle`` submits one. A job
        whose ``after`` names jobs of this set waits until they are done (names outside the set are taken as done:
        an earlier stage that was waited for); if one of them failed, the job is not run and counts as failed.
    done_before : jobs that were already done (counted, shown as done and ``skipped``).
    max_parallel : at most this many jobs pending or running at once (None: no limit).
    """
    from tqdm.auto import tqdm

    handles = dict(handles)
    queued = list(queued)
    jobs = {j.name: j for j in [*done_before, *queued]} | {n: h.job for n, h in handles.items()}
    final: dict[str, str] = {j.name: "done" for j in done_before}
    not_run: dict[str, str] = {}
    total = len(jobs)
    if not handles and not queued:
        progress = False  # everything was done: nothing to show
    bar = tqdm(total=total, desc=f"jobs ({backend})", unit="job", disable=not progress, file=sys.stderr,
               mininterval=max(poll_seconds, 0.5), initial=len(done_before))
    announced: set[str] = set()
    while True:
        states = {n: final.get(n) or handles[n].state() for n in handles}
        newly = [n for n, s in states.items() if s in ("done", "failed") and n not in final]
        for n in newly:
            final[n] = states[n]
            if states[n] == "failed" and n not in announced:
                announced.add(n)
                log(f"job {n} failed (log tail and resubmit command at the end)", flush=True)
        for job in list(queued):  # a job whose prerequisite failed is never run
            failed = [a for a in job.after if final.get(a) == "failed"]
            if failed:
                queued.remove(job)
                final[job.name] = "failed"
                not_run[job.name] = f"it needs {', '.join(failed)}, which failed"
                log(f"job {job.name} not run: {not_run[job.name]}", flush=True)
                newly.append(job.name)
        active = [n for n in handles if n not in final]
        ready = [j for j in queued if all(a not in jobs or final.get(a) == "done" for a in j.after)]
        if queued and not ready and not active:
            raise ValueError("jobs wait on each other (their 'after' names form a cycle): "
                             + ", ".join(j.name for j in queued))
        for job in ready[:None if max_parallel is None else max(max_parallel - len(active), 0)]:
            queued.remove(job)
            handles[job.name] = submit(job)
            states[job.name] = "pending"
        counts = {s: 0 for s in STATES}
        counts["pending"] = len(queued)
        counts["done"] = len(done_before)
        counts["failed"] = len(not_run)
        for s in states.values():
            counts[s] += 1
        bar.set_postfix(counts, refresh=False)
        bar.update(len(newly))
        if not queued and all(n in final for n in handles):
            break
        time.sleep(poll_seconds)
    bar.close()
    report = JobsReport(backend=backend)
    for job in done_before:
        report.rows.append(job_row(job, "done", True, None, backend))
    for n, h in handles.items():
        report.rows.append(job_row(h.job, final[n], False, h.job_id, backend))
    for n, why in not_run.items():
        report.rows.append(job_row(jobs[n], "failed", False, None, backend) | {"not_run": why})
    if report.failed:
        raise JobsFailed(report, jobs)
    return report
